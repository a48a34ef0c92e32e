"""pix2pix training: data (aligned A|B folders, paired A/ B/ folders, synthetic facades),
augmentation, losses, the training loop, checkpoints, logging and DDP.

Entry points:
    * :func:`train.loop.train` -- run a training job from a :class:`train.config.TrainConfig`.
    * :func:`train.synthetic.synthetic_pair` / :func:`train.synthetic.write_aligned_dataset`.
"""
