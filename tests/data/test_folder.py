"""ImageFolder: discovery, patches, augmentation, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from learnreg.data.folder import ImageFolder, find_images
from learnreg.data.io import ImageFileError


def _write(path, height, width, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "a.png", 20, 30, seed=1)
    _write(tmp_path / "sub" / "b.JPG", 24, 18, seed=2)
    _write(tmp_path / "sub" / "c.tif", 16, 16, mode="L", seed=3)
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_finds_images_recursively(folder):
    names = [path.name for path in find_images(folder)]
    assert names == ["a.png", "b.JPG", "c.tif"]


@pytest.mark.parametrize("channels", [1, 3])
def test_patches_shape_range_and_determinism(folder, channels):
    dataset = ImageFolder(folder, patch_size=12, channels=channels, patches_per_image=2, seed=7)
    assert len(dataset) == 6
    patches = [dataset[i] for i in range(len(dataset))]
    assert all(p.shape == (channels, 12, 12) and p.dtype == torch.float32 for p in patches)
    assert all(0 <= float(p.min()) and float(p.max()) <= 1 for p in patches)
    again = ImageFolder(folder, patch_size=12, channels=channels, patches_per_image=2, seed=7)
    assert all(torch.equal(a, again[i]) for i, a in enumerate(patches))
    assert not torch.equal(patches[0], patches[1])  # two crops of one image
    dataset.set_epoch(1)
    assert any(not torch.equal(dataset[i], patches[i]) for i in range(len(dataset)))


def test_patch_is_a_flipped_or_rotated_crop(folder):
    dataset = ImageFolder(folder, patch_size=8, channels=3, seed=0)
    image = dataset.image(0)
    for seed in range(6):
        patch = dataset.patch(0, generator=torch.Generator().manual_seed(seed))
        # undo every dihedral transform and search the crop in the image
        candidates = [torch.rot90(patch, -k, dims=(-2, -1)) for k in range(4)]
        candidates += [c.flip(-1) for c in candidates]
        windows = image.unfold(1, 8, 1).unfold(2, 8, 1)  # (C, H-7, W-7, 8, 8)
        assert any((windows == c[:, None, None]).all(0).all(-1).all(-1).any() for c in candidates)


def test_center_crop_without_augmentation(folder):
    dataset = ImageFolder(folder, patch_size=10, channels=3, augment=False, crop="center")
    torch.testing.assert_close(dataset[0], dataset.image(0)[:, 5:15, 10:20])


def test_errors(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "missing", patch_size=8, channels=3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"no images \(.png, .jpg, .jpeg, .tif, .tiff\) found under"):
        ImageFolder(empty, patch_size=8, channels=3)
    with pytest.raises(ImageFileError, match=r"c.tif is 16 x 16, smaller than patch_size 17"):
        ImageFolder(folder, patch_size=17, channels=3)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageFileError, match="broken.png"):
        ImageFolder(folder, patch_size=8, channels=3)
    with pytest.raises(ValueError, match="channels must be 1"):
        ImageFolder(folder, patch_size=8, channels=2)
