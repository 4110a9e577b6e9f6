"""Data: file input/output and bundled development images.

:mod:`learnreg.data.io` reads and writes images and depth maps (PNG, JPEG,
TIFF, ``.npy``, PFM) atomically and never over an input;
:mod:`learnreg.data.samples` serves the scikit-image development images;
:mod:`learnreg.data.depthscenes` renders synthetic depth scenes with an RGB guide.
"""

from learnreg.data.depthscenes import (
    DepthScene,
    DepthSceneConfig,
    DepthScenePool,
    add_depth_noise,
    depth_scene_batch,
    invalid_mask,
    render_scene,
)
from learnreg.data.io import (
    DEPTH_EXTENSIONS,
    IMAGE_EXTENSIONS,
    ImageFileError,
    OverwriteError,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    check_output_path,
    read_depth,
    read_image,
    write_depth,
    write_image,
)
from learnreg.data.samples import DEVELOPMENT_IMAGES, sample

__all__ = [
    "DEPTH_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "ImageFileError",
    "OverwriteError",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_path",
    "read_depth",
    "read_image",
    "write_depth",
    "write_image",
    "DEVELOPMENT_IMAGES",
    "sample",
    "DepthScene",
    "DepthSceneConfig",
    "DepthScenePool",
    "add_depth_noise",
    "depth_scene_batch",
    "invalid_mask",
    "render_scene",
]
