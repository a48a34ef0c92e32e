"""The shared fixtures produce loadable checkpoints."""

from p2p_deploy.models.opening import open_model


def test_tiny_checkpoint_loads(tiny_checkpoint, tiny_config):
    loaded = open_model(tiny_checkpoint)
    assert loaded.card.generator == tiny_config
    assert loaded.card.direction == "BtoA"
