"""Dead-leaves images: occluding shapes with power-law sizes, generated on the fly.

A dead-leaves image is the view from above of shapes ("leaves") falling on top
of each other. With radii distributed as ``p(r) ∝ r^-alpha``, ``alpha = 3``,
between ``r_min`` and ``r_max`` the model is close to scale invariant: its power
spectrum falls as ``1/f^2`` like that of natural images, and denoisers trained
on it alone come close to ones trained on photographs (Achddou et al., SSVM
2021). This is the default training source for natural-image priors, since no
dataset is downloaded (see DESIGN.md, "Data without downloads").

Generation (after ``raphaelachddou/ffdnet_dead_leaves``, with the
VibrantLeaves additions of ``rachddou/DeadLeavesPlus`` made optional):

1. radii by inverse-CDF sampling,
   ``r = [r_min^(1-alpha) - U (r_min^(1-alpha) - r_max^(1-alpha))]^(1/(1-alpha))``;
   centres uniform on the canvas padded by ``r_max`` on every side (shapes that
   miss the canvas are discarded, which leaves the process seen through the
   canvas unchanged);
2. shapes are painted front to back into uncovered pixels only, i.e. each pixel
   takes the first shape that covers it; drawing stops once at most
   ``max_uncovered`` pixels are left (they get a background colour) or after
   ``max_shapes`` shapes;
3. each shape is a disk, or with probability ``polygons`` a convex polygon of
   3 to 8 vertices inscribed in its disk;
4. colour = a random pixel of a random natural image (the palette, below);
   optionally a texture (1/f noise or a sinusoid, same across channels) and,
   on shapes larger than ``ramp_radius * size``, a linear ramp;
5. optionally (probability ``strokes`` per image) thin straight strokes are
   laid on top of the leaves: one to four groups, each a single stroke or a
   family of 3 to 12 parallel, equally spaced ones (mortar between bricks,
   fences, tiles, window frames), 0.7 to 4 pixels wide, a flat palette colour
   per group. Disks alone have no straight edges and no long thin lines, and a
   denoiser trained on them frays both (brick mortar, camera's tripod);
6. everything is drawn on a canvas ``supersample`` times larger and
   box-averaged down, which anti-aliases the edges (a mild blur).

Painting is vectorised: shapes are drawn in batches; small shapes are grouped
by bounding-box size and tested against their box all at once, and each pixel
keeps the smallest shape index that covers it (``scatter_reduce`` with
``amin``), which is exactly front-to-back painting.

Palette
-------
Colours are pixels of the development images bundled with scikit-image, used
**only as a colour palette** (no structure of the photographs reaches the
images): ``retina`` and ``motorcycle_right`` (``stereo_motorcycle()[1]``) for RGB;
for grey the BT.601 luma of those plus ``camera``, ``brick``, ``coins`` and ``moon``.
scikit-image's other photographs are held out for users' judgement and are not
used, not even for colours. The palette is built once, lazily, on the first call.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info
from learnreg.config import DictConfig
from learnreg.data._leaves import UNCOVERED, Shapes, paint, paint_strokes, sample_shapes
from learnreg.physics.kernels import gaussian_lowpass

__all__ = ["DeadLeavesConfig", "DeadLeaves", "dead_leaves", "dead_leaves_batch"]

_RGB_SOURCES = ("retina", "motorcycle_right")
_GRAY_SOURCES = ("camera", "brick", "coins", "moon")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as learnreg.data.io


@functools.lru_cache(maxsize=2)
def _palette(channels: int) -> tuple[Tensor, Tensor]:
    """Palette pixels, shape (N, C) uint8, and image offsets (K + 1,) int64."""
    import skimage.data

    def load(name: str) -> np.ndarray:
        return skimage.data.stereo_motorcycle()[1] if name == "motorcycle_right" else getattr(skimage.data, name)()

    rgb = [load(name).reshape(-1, 3) for name in _RGB_SOURCES]
    if channels == 3:
        images = rgb
    else:
        gray = [load(name).reshape(-1, 1) for name in _GRAY_SOURCES]
        luma = [np.rint(image.astype(np.float32) @ _LUMA).astype(np.uint8)[:, None] for image in rgb]
        images = luma + gray
    offsets = np.cumsum([0] + [len(image) for image in images])
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(offsets)


def _palette_colours(count: int, channels: int, generator: torch.Generator) -> Tensor:
    """``count`` colours, shape (count, C) float32 in [0, 1]: a random pixel of a random image."""
    pixels, offsets = _palette(channels)
    image = torch.randint(len(offsets) - 1, (count,), generator=generator)
    start, length = offsets[image], offsets[image + 1] - offsets[image]
    index = start + (torch.rand(count, generator=generator, dtype=torch.float64) * length).long()
    return pixels[index].float() / 255.0


@dataclass(frozen=True)
class DeadLeavesConfig(DictConfig):
    """Parameters of dead-leaves images; round-trips through :meth:`to_dict`.

    Attributes
    ----------
    size : int
        Side of the square images (patches), in pixels.
    channels : {1, 3}
        Grey or RGB.
    r_min, r_max : float
        Radius range in output pixels; ``r_max = None`` means ``size``.
    alpha : float
        Exponent of ``p(r) ∝ r^-alpha``, > 1; 3 gives a ``1/f^2`` spectrum.
    polygons : float
        Probability that a shape is a convex polygon instead of a disk.
    strokes : float
        Probability that an image gets a layer of thin straight strokes on top.
    stroke_width : float
        Largest stroke width, in output pixels (widths are uniform from 0.7 to this).
    stroke_spacing : (float, float)
        Range of the centre-to-centre spacing of the parallel strokes of a group, in output pixels
        (uniform in it, widened where needed to leave a gap of >= 2 px): the default ``(6, 40)``
        draws gratings of at most 1/6 cycle per pixel, ``(2.5, 16)`` reaches 0.4 (fins, railings, fabric).
    rough : float
        Probability that a disk gets a rough outline: its radius shrinks by up to ``0.3 r``
        along a random angular profile (8 harmonics of orders 3 to 48, amplitudes ``1/k``).
    blur : float
        Probability that an image is defocused: a Gaussian blur of standard
        deviation ``U[0.3, blur_sigma]`` output pixels over the whole image
        (soft edges, as out-of-focus or motion-softened photographs have).
    blur_sigma : float
        Largest blur standard deviation, in output pixels.
    periodic : float
        Probability that an image is made periodic, like a brick wall, tiling or fabric: its
        top-left ``p_y x p_x`` block (periods ``U{8..48}`` pixels each) is repeated over the
        image, every other row of blocks shifted by ``U[0, p_x)`` (a running bond).
    textures : bool
        Give half of the shapes a texture (1/f noise or a sinusoid).
    texture_amplitude : float
        Largest texture amplitude (standard deviation of the noise, peak of the sinusoid);
        each textured shape draws ``U[0, texture_amplitude]``.
    texture_beta : float
        The 1/f noise fields have amplitude spectra ``f^-beta``, ``beta ~ U[texture_beta,
        texture_beta + 1]``: 0 reaches white grain (fine stochastic textures such as stone or
        fabric), 0.5 (the default) keeps them smooth.
    ramps : bool
        Give shapes larger than ``ramp_radius * size`` a linear ramp (p = 0.7).
    ramp_radius : float
        Radius, as a fraction of ``size``, above which ramps apply.
    supersample : int
        Canvas oversampling factor for anti-aliasing (2 to 4 is sensible).
    max_uncovered : int
        Stop once at most this many output pixels (``* supersample**2`` canvas
        pixels) are uncovered.
    max_shapes : int
        Shape budget per image (shapes that reach the canvas), checked after
        each batch of shapes, so it may be passed by up to one batch.
    """

    size: int = 128
    channels: int = 3
    r_min: float = 1.0
    r_max: float | None = None
    alpha: float = 3.0
    polygons: float = 0.0
    strokes: float = 0.0
    stroke_width: float = 4.0
    stroke_spacing: tuple[float, float] = (6.0, 40.0)
    rough: float = 0.0
    blur: float = 0.0
    blur_sigma: float = 1.5
    periodic: float = 0.0
    textures: bool = True
    texture_amplitude: float = 0.1
    texture_beta: float = 0.5
    ramps: bool = True
    ramp_radius: float = 0.2
    supersample: int = 3
    max_uncovered: int = 4
    max_shapes: int = 50_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "stroke_spacing", tuple(float(v) for v in self.stroke_spacing))
        _check(size=(self.size, self.size), channels=self.channels, r_min=self.r_min,
               r_max=self.r_max, alpha=self.alpha, polygons=self.polygons, strokes=self.strokes,
               supersample=self.supersample, max_shapes=self.max_shapes, stroke_width=self.stroke_width,
               stroke_spacing=self.stroke_spacing, rough=self.rough, blur=self.blur, blur_sigma=self.blur_sigma,
               texture_amplitude=self.texture_amplitude, texture_beta=self.texture_beta,
               periodic=self.periodic)



def _check(*, size: tuple[int, int], channels: int, r_min: float, r_max: float | None,
           alpha: float, polygons: float, supersample: int, max_shapes: int,
           strokes: float = 0.0, stroke_width: float = 4.0, rough: float = 0.0,
           blur: float = 0.0, blur_sigma: float = 1.5, texture_amplitude: float = 0.1,
           texture_beta: float = 0.5, periodic: float = 0.0,
           stroke_spacing: tuple[float, float] = (6.0, 40.0)) -> None:
    if min(size) <= 0:
        raise ValueError(f"dead_leaves: size must be positive, got {size}")
    if channels not in (1, 3):
        raise ValueError(f"dead_leaves: channels must be 1 (grey) or 3 (RGB), got {channels}")
    if not r_min > 0 or (r_max is not None and not r_max > r_min):
        raise ValueError(f"dead_leaves: need 0 < r_min < r_max, got r_min={r_min}, r_max={r_max}")
    if not alpha > 1:
        raise ValueError(f"dead_leaves: alpha must be > 1 (3 for a 1/f^2 spectrum), got {alpha}")
    probabilities = {"polygons": polygons, "strokes": strokes, "rough": rough, "blur": blur, "periodic": periodic}
    for name, value in probabilities.items():
        if not 0 <= value <= 1:
            raise ValueError(f"dead_leaves: {name} is a probability in [0, 1], got {value}")
    if not 0.3 <= blur_sigma <= 8:
        raise ValueError(f"dead_leaves: blur_sigma must be in [0.3, 8] output pixels, got {blur_sigma}")
    if not 0 <= texture_amplitude <= 1:
        raise ValueError(f"dead_leaves: texture_amplitude must be in [0, 1], got {texture_amplitude}")
    if not 0 <= texture_beta <= 2:
        raise ValueError(f"dead_leaves: texture_beta must be in [0, 2], got {texture_beta}")
    if not stroke_width >= 0.7:
        raise ValueError(f"dead_leaves: stroke_width must be >= 0.7 output pixels, got {stroke_width}")
    if len(stroke_spacing) != 2 or not 2.0 <= stroke_spacing[0] <= stroke_spacing[1] <= 100.0:
        raise ValueError(f"dead_leaves: stroke_spacing must be a range (low, high) with 2 <= low <= high <= 100 "
                         f"output pixels, got {stroke_spacing}")
    if supersample < 1 or max_shapes < 1:
        raise ValueError(f"dead_leaves: supersample and max_shapes must be >= 1, "
                         f"got {supersample} and {max_shapes}")


def _repeat_block(image: Tensor, generator: torch.Generator) -> Tensor:
    """``image`` (1, C, H, W) made periodic: its top-left ``p_y x p_x`` block repeated, odd block rows
    shifted right by ``shift`` (``p ~ U{8..48}``, capped at the image size; ``shift ~ U{0..p_x-1}``)."""
    height, width = image.shape[-2:]
    p_y, p_x = (min(int(p), side) for p, side in zip(torch.randint(8, 49, (2,), generator=generator),
                                                      (height, width)))
    shift = int(torch.randint(p_x, (1,), generator=generator))
    rows = torch.arange(height)
    block_row = rows // p_y
    cols = (torch.arange(width)[None, :] + (block_row[:, None] % 2) * shift) % p_x  # (H, W)
    return image[..., rows[:, None] % p_y, cols]


def _noise_fields(count: int, height: int, width: int, generator: torch.Generator, *,
                  beta_min: float = 0.5) -> Tensor:
    """``count`` fields of 1/f^beta noise, beta ~ U[beta_min, beta_min + 1]; shape (count, H, W), unit std."""
    white = torch.randn(count, height, width, generator=generator)
    beta = beta_min + torch.rand(count, 1, 1, generator=generator)
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    frequency = torch.sqrt(fy**2 + fx**2).clamp(min=1.0 / max(height, width))
    field = torch.fft.irfft2(torch.fft.rfft2(white) * frequency ** (-beta), s=(height, width))
    field = field - field.mean(dim=(1, 2), keepdim=True)
    return field / field.std(dim=(1, 2), keepdim=True).clamp(min=1e-12)


def dead_leaves(size: int | tuple[int, int], *, channels: int = 3, generator: torch.Generator,
                r_min: float = 1.0, r_max: float | None = None, alpha: float = 3.0,
                polygons: float = 0.0, textures: bool = True, ramps: bool = True,
                ramp_radius: float = 0.2, supersample: int = 3, max_uncovered: int = 4,
                max_shapes: int = 50_000, strokes: float = 0.0, stroke_width: float = 4.0,
                stroke_spacing: tuple[float, float] = (6.0, 40.0),
                rough: float = 0.0, blur: float = 0.0, blur_sigma: float = 1.5,
                texture_amplitude: float = 0.1, texture_beta: float = 0.5, periodic: float = 0.0) -> Tensor:
    """Generate one dead-leaves image.

    Parameters
    ----------
    size : int or (int, int)
        Output ``H = W = size``, or ``(H, W)``.
    channels : {1, 3}
        Grey or RGB.
    generator : torch.Generator
        The only source of randomness: the same seed gives the same image.
    r_min, r_max : float
        Radius range in output pixels; ``r_max=None`` means ``max(H, W)``.
    alpha, polygons, textures, ramps, ramp_radius, supersample, max_uncovered, max_shapes, strokes,
    stroke_width, stroke_spacing, rough, blur, blur_sigma, texture_amplitude, texture_beta, periodic
        See :class:`DeadLeavesConfig`.

    Returns
    -------
    Tensor, shape (C, H, W), float32, values in [0, 1]

    Examples
    --------
    >>> image = dead_leaves(64, generator=torch.Generator().manual_seed(0))
    >>> image.shape
    torch.Size([3, 64, 64])
    """
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    _check(size=(height, width), channels=channels, r_min=r_min, r_max=r_max, alpha=alpha,
           polygons=polygons, supersample=supersample, max_shapes=max_shapes, strokes=strokes,
           stroke_width=stroke_width, rough=rough, blur=blur, blur_sigma=blur_sigma,
           texture_amplitude=texture_amplitude, texture_beta=texture_beta, periodic=periodic,
           stroke_spacing=stroke_spacing)
    s = int(supersample)
    r_max = float(max(height, width) if r_max is None else r_max)
    canvas_h, canvas_w = height * s, width * s
    index = torch.full((canvas_h, canvas_w), UNCOVERED, dtype=torch.int64)
    batches: list[Shapes] = []
    count = 0
    while count < max_shapes:
        shapes = sample_shapes(canvas_h, canvas_w, r_min=r_min * s, r_max=r_max * s,
                                alpha=alpha, polygons=polygons, generator=generator, rough=rough)
        paint(index, shapes, count)
        batches.append(shapes)
        count += len(shapes.r)
        if int((index == UNCOVERED).sum()) <= max_uncovered * s * s:
            break
    index[index == UNCOVERED] = count  # the background: one more shape behind all others
    groups = 0
    if strokes > 0 and float(torch.rand(1, generator=generator)) < strokes:
        groups = paint_strokes(index, count + 1, max(height, width), s, generator, stroke_width,
                               spacing=tuple(stroke_spacing))
    # strokes get r = 0: no ramp
    cy, cx, r = (torch.cat([getattr(b, name) for b in batches] + [torch.zeros(1 + groups)])
                 for name in ("cy", "cx", "r"))
    n = count + 1 + groups

    # per-shape table, gathered once per canvas pixel: colour (C), then the coefficients of
    # colour + a0 * field0 + a1 * field1 + a_wave * sin(ky * y + kx * x + phase) + gy * y + gx * x + g0
    table = torch.zeros(n, channels + 9)
    table[:, :channels] = _palette_colours(n, channels, generator)
    if textures:
        kind = torch.randint(4, (n,), generator=generator)  # 0, 1: flat; 2: 1/f noise; 3: sinusoid
        amplitude = texture_amplitude * torch.rand(n, generator=generator)
        field = torch.randint(2, (n,), generator=generator)
        frequency = (0.02 + 0.2 * torch.rand(n, generator=generator)) * (2 * math.pi / s)  # rad/px
        orientation = torch.rand(n, generator=generator) * math.pi
        table[:, channels] = amplitude * ((kind == 2) & (field == 0))
        table[:, channels + 1] = amplitude * ((kind == 2) & (field == 1))
        table[:, channels + 2] = amplitude * (kind == 3)
        table[:, channels + 3] = frequency * torch.sin(orientation)
        table[:, channels + 4] = frequency * torch.cos(orientation)
        table[:, channels + 5] = torch.rand(n, generator=generator) * (2 * math.pi)
        table[count:, channels:] = 0  # flat background and strokes
    if ramps:
        ramped = (r > ramp_radius * max(height, width) * s) & (torch.rand(n, generator=generator) < 0.7)
        slope = 0.3 * (2 * torch.rand(n, generator=generator) - 1) * ramped / r.clamp(min=1.0)
        direction = torch.rand(n, generator=generator) * (2 * math.pi)
        gy, gx = slope * torch.sin(direction), slope * torch.cos(direction)
        # +- 0.3 across the shape, zero at its centre
        table[:, channels + 6], table[:, channels + 7] = gy, gx
        table[:, channels + 8] = -(gy * cy + gx * cx)
    values = table.index_select(0, index.view(-1))  # (Hc * Wc, C + 9)
    y = (torch.arange(canvas_h, dtype=torch.float32) + 0.5)[:, None].expand(-1, canvas_w).reshape(-1)
    x = (torch.arange(canvas_w, dtype=torch.float32) + 0.5)[None, :].expand(canvas_h, -1).reshape(-1)
    image = values[:, :channels]
    shade = torch.zeros(canvas_h * canvas_w)
    if textures:
        noise = _noise_fields(2, height, width, generator, beta_min=texture_beta)
        noise = noise.repeat_interleave(s, dim=1).repeat_interleave(s, dim=2).reshape(2, -1)
        c = channels
        shade += values[:, c] * noise[0] + values[:, c + 1] * noise[1]
        shade += values[:, c + 2] * torch.sin(values[:, c + 3] * y + values[:, c + 4] * x + values[:, c + 5])
    if ramps:
        c = channels + 6
        shade += values[:, c] * y + values[:, c + 1] * x + values[:, c + 2]
    image = image + shade[:, None]
    image = image.clamp(0.0, 1.0).T.reshape(1, channels, canvas_h, canvas_w)  # (HW, C) -> (1, C, H, W)
    if s > 1:
        image = F.avg_pool2d(image, s)
    if periodic > 0 and float(torch.rand(1, generator=generator)) < periodic:
        image = _repeat_block(image, generator)
    if blur > 0 and float(torch.rand(1, generator=generator)) < blur:
        width = 0.3 + (blur_sigma - 0.3) * float(torch.rand(1, generator=generator))
        image = gaussian_lowpass(image, width)
    return image[0].contiguous()


def dead_leaves_batch(config: DeadLeavesConfig, batch_size: int, *,
                      generator: torch.Generator) -> Tensor:
    """A batch of dead-leaves images, shape (B, C, size, size), float32 in [0, 1]."""
    return torch.stack([
        dead_leaves(config.size, channels=config.channels, generator=generator,
                    r_min=config.r_min, r_max=config.r_max, alpha=config.alpha,
                    polygons=config.polygons, textures=config.textures, ramps=config.ramps,
                    ramp_radius=config.ramp_radius, supersample=config.supersample,
                    max_uncovered=config.max_uncovered, max_shapes=config.max_shapes,
                    strokes=config.strokes, stroke_width=config.stroke_width,
                    stroke_spacing=config.stroke_spacing, rough=config.rough,
                    blur=config.blur, blur_sigma=config.blur_sigma,
                    texture_amplitude=config.texture_amplitude, texture_beta=config.texture_beta,
                    periodic=config.periodic)
        for _ in range(batch_size)
    ])


class DeadLeaves(IterableDataset):
    """Batches of dead-leaves patches, generated on the fly (no files).

    Each iteration restarts from ``seed`` (mixed with the epoch and the
    :class:`~torch.utils.data.DataLoader` worker id), so a run is reproducible
    and workers never repeat each other. Use with ``DataLoader(dataset,
    batch_size=None, num_workers=...)``: the dataset already yields batches.

    Parameters
    ----------
    config : DeadLeavesConfig
        Image parameters (size, channels, radii...).
    batch_size : int
        Images per batch.
    seed : int
        Seed of the stream.
    batches : int, optional
        Batches per epoch (split across workers); endless when ``None``.

    Yields
    ------
    Tensor, shape (batch_size, C, size, size), float32 in [0, 1]

    Examples
    --------
    >>> stream = DeadLeaves(DeadLeavesConfig(size=32), batch_size=2, seed=0, batches=1)
    >>> [batch.shape for batch in stream]
    [torch.Size([2, 3, 32, 32])]
    """

    def __init__(self, config: DeadLeavesConfig, *, batch_size: int, seed: int,
                 batches: int | None = None):
        super().__init__()
        if batch_size < 1 or (batches is not None and batches < 0):
            raise ValueError(f"DeadLeaves: need batch_size >= 1 and batches >= 0, "
                             f"got {batch_size} and {batches}")
        self.config = config
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.batches = batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw different images in each epoch (as ``DistributedSampler.set_epoch``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.batches is None:
            raise TypeError("DeadLeaves: an endless stream (batches=None) has no length")
        return self.batches

    def __iter__(self) -> Iterator[Tensor]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        state = np.random.SeedSequence([self.seed, self.epoch, worker]).generate_state(1, np.uint64)
        generator = torch.Generator().manual_seed(int(state[0]))
        remaining = None if self.batches is None else len(range(worker, self.batches, workers))
        while remaining is None or remaining > 0:
            yield dead_leaves_batch(self.config, self.batch_size, generator=generator)
            if remaining is not None:
                remaining -= 1
