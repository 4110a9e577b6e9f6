"""Bundled development images."""

from __future__ import annotations

import pytest
import torch

from learnreg.data import DEVELOPMENT_IMAGES, sample


@pytest.mark.parametrize("name", sorted(DEVELOPMENT_IMAGES))
def test_each_sample_loads_with_the_right_shape_and_range(name):
    info = DEVELOPMENT_IMAGES[name]
    image = sample(name)
    channels = 1 if info.mode == "gray" else 3
    assert image.dtype == torch.float32 and image.dim() == 4
    assert image.shape[:2] == (1, channels)
    assert min(image.shape[-2:]) >= 256
    assert image.min() >= 0 and image.max() <= 1 and image.std() > 0.01
    assert sample(name, size=256).shape == (1, channels, 256, 256)


def test_crops_and_fresh_tensors():
    full = sample("coins")
    assert full.shape == (1, 1, 303, 384)
    centre = sample("coins", size=(100, 50))
    torch.testing.assert_close(centre, full[..., 101:201, 167:217])
    corner = sample("coins", size=32, crop=(10, 20))
    torch.testing.assert_close(corner, full[..., 10:42, 20:52])
    corner.zero_()
    assert sample("coins", size=32, crop=(10, 20)).max() > 0


def test_sample_errors():
    with pytest.raises(ValueError, match="unknown sample 'lena'; valid names: camera, brick"):
        sample("lena")
    with pytest.raises(ValueError, match="exceeds 'clock', which is 300 x 400"):
        sample("clock", size=512)
    with pytest.raises(ValueError, match="choose an offset inside"):
        sample("clock", size=64, crop=(250, 0))
    with pytest.raises(ValueError, match="crop must be 'center'"):
        sample("clock", size=64, crop="corner")


def test_held_out_images_are_not_served():
    assert "astronaut" not in DEVELOPMENT_IMAGES
    assert all(info.mode in ("gray", "rgb") for info in DEVELOPMENT_IMAGES.values())
