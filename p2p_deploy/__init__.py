"""p2p-deploy: pix2pix from training to fast production inference.

Importing this package is cheap (no torch); the heavy parts live in submodules.
"""

__version__ = "0.1.0"
