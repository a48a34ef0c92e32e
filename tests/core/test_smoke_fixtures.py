"""The shared fixtures produce loadable checkpoints."""

from p2p_deploy.checkpoint import load_generator


def test_tiny_checkpoint_loads(tiny_checkpoint, tiny_config):
    loaded = load_generator(tiny_checkpoint)
    assert loaded.config == tiny_config
    assert loaded.meta["direction"] == "BtoA"
