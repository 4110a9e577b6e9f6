"""learnreg: image and depth restoration with learned regularizers."""

__version__ = "0.1.0"
