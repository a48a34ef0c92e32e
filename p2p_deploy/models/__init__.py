"""Model definitions: the U-Net generator and the PatchGAN discriminator of pix2pix."""

from p2p_deploy.models.discriminator import PatchDiscriminator
from p2p_deploy.models.generator import UNetGenerator
from p2p_deploy.models.init import init_weights

__all__ = ["UNetGenerator", "PatchDiscriminator", "init_weights"]
