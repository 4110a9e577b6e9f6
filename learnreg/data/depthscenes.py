"""Synthetic depth scenes with an RGB guide, for guided depth super-resolution.

A scene is a set of solids in the unit cube in front of a background surface,
seen by an orthographic camera on the plane ``z = 0`` looking along ``+z``; pixel
``(i, j)`` of an ``H x W`` map casts one ray from ``((j + 0.5) / W, (i + 0.5) / H, 0)``
and its depth is the ``z`` of the first hit with ``t > 0`` (a solid cut by the camera
plane shows its exit surface), in ``(0, 1]`` (the background is at most 1, anything
behind it is hidden). Ray casting is analytic (:mod:`learnreg.data._raycast`) except
for tori, which are sphere traced; scenes are described by :class:`Scene` (surfaces,
albedos, light; :mod:`learnreg.data._scenes`), drawn by :func:`sample_scene` and
ray cast by :func:`render`.

Families (``DepthSceneConfig.family``):

* ``"gdsr"`` -- after the synthetic data of Riegler et al. (primal-dual networks for
  guided depth super-resolution): 16 to 32 boxes, edges U(0.01, 0.6) each, rotations
  about x, y, z U(-pi, pi), centroid (U(0, 1), U(0, 1), U(0.2, 1)); 0 to 4 spheres,
  centre (U(0.1, 0.8), U(0.1, 0.8), U(0.1, 1.5)), radius U(0.1, 0.3); 0 to 2 slanted
  half planes; a flat background at depth 1.
* ``"heldout"`` -- for generalisation tests, never for training: a sloped background
  with smooth Gaussian bumps (depth in (0.5, 1]), 2 to 6 finite cylinders, 1 to 3 tori,
  2 to 6 thin rods (cylinders or boxes), 20 to 60 small clutter objects, 3 to 8 boxes
  and 0 to 3 spheres.

The guide is ``albedo * (ambient + (1 - ambient) max(0, n . l)) + noise``, clipped to
[0, 1]: Lambertian shading from the analytic normal ``n`` under a directional light
``l`` drawn in the camera hemisphere (at most 60 degrees off the optical axis). Each
surface, background included, is textured with probability ``textured_fraction``
(stripes, 3-D checkerboard, dead-leaves-like disks or 1/f-like noise, fixed to the
surface in its own randomly rotated frame), so the guide has edges where depth has
none (the texture-copy trap); otherwise it has a flat colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from learnreg.config import DictConfig
from learnreg.data._raycast import (pixel_grid, raycast_box, raycast_cylinder, raycast_heightfield,
                                    raycast_plane, raycast_sphere, raycast_torus, rotation_matrix)
from learnreg.data._scenes import (TEXTURES, Albedo, Scene, SceneObject, gdsr_objects, heldout_background,
                                   heldout_objects, random_albedo, uniform)

__all__ = ["FAMILIES", "TEXTURES", "DepthSceneConfig", "DepthScene", "Albedo", "SceneObject", "Scene",
           "sample_scene", "render", "render_scene", "depth_scene_batch", "DepthScenePool",
           "add_depth_noise", "invalid_mask", "pixel_grid", "rotation_matrix", "raycast_heightfield",
           "raycast_plane", "raycast_sphere", "raycast_box", "raycast_cylinder", "raycast_torus"]

FAMILIES = ("gdsr", "heldout")
_CASTERS = {"heightfield": raycast_heightfield, "sphere": raycast_sphere, "box": raycast_box,
            "cylinder": raycast_cylinder, "torus": raycast_torus}


@dataclass(frozen=True)
class DepthSceneConfig(DictConfig):
    """Parameters of synthetic depth scenes; round-trips through :meth:`to_dict`.

    Attributes
    ----------
    size : int or (int, int)
        Side of the square maps, or ``(H, W)``; at least 8.
    family : {"gdsr", "heldout"}
        Scene distribution (see the module docstring).
    guide_noise : float
        Standard deviation of the Gaussian noise added to the guide.
    textured_fraction : float
        Probability that a surface is textured rather than flat-coloured.
    supersample : int
        Rays per pixel side; depth, guide and normals average ``supersample**2`` rays.
    ambient : float
        Ambient share of the lighting, in [0, 1].
    """

    size: int | tuple[int, int] = 128
    family: str = "gdsr"
    guide_noise: float = 0.01
    textured_fraction: float = 0.5
    supersample: int = 1
    ambient: float = 0.3

    def __post_init__(self) -> None:
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
        if len(size) != 2 or not all(isinstance(side, int) and side >= 8 for side in size):
            raise ValueError(f"DepthSceneConfig: size must be an int >= 8 or two of them, got {self.size!r}")
        if not isinstance(self.size, int):
            object.__setattr__(self, "size", size)
        if self.family not in FAMILIES:
            raise ValueError(f"DepthSceneConfig: family must be one of {list(FAMILIES)}, got {self.family!r}")
        if not self.guide_noise >= 0:
            raise ValueError(f"DepthSceneConfig: guide_noise must be >= 0, got {self.guide_noise}")
        if not 0 <= self.textured_fraction <= 1:
            raise ValueError(f"DepthSceneConfig: textured_fraction must be in [0, 1], "
                             f"got {self.textured_fraction}")
        if not (isinstance(self.supersample, int) and self.supersample >= 1):
            raise ValueError(f"DepthSceneConfig: supersample must be an int >= 1, got {self.supersample!r}")
        if not 0 <= self.ambient <= 1:
            raise ValueError(f"DepthSceneConfig: ambient must be in [0, 1], got {self.ambient}")

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return (self.size, self.size) if isinstance(self.size, int) else self.size


@dataclass
class DepthScene:
    """A rendered scene.

    Attributes
    ----------
    depth : Tensor, shape (1, H, W), float32
        Depth in scene units, in (0, 1] (background at most 1).
    guide : Tensor, shape (3, H, W), float32
        RGB guide in [0, 1].
    normals : Tensor, shape (3, H, W), float32
        Unit normals at the hits, facing the camera (z component <= 0).
    objects : Tensor, shape (H, W), int64
        Index of the visible surface: 0 the background, ``k`` the ``k``-th object.
    """

    depth: Tensor
    guide: Tensor
    normals: Tensor
    objects: Tensor


def sample_scene(config: DepthSceneConfig, *, generator: torch.Generator) -> Scene:
    """Draw a scene of ``config.family`` (its surfaces, albedos and light)."""
    textured = config.textured_fraction
    if config.family == "gdsr":
        background = SceneObject("heightfield", {"offset": 1.0}, random_albedo(generator, textured, 0.75))
        objects = gdsr_objects(generator, textured)
    else:
        background = heldout_background(generator, textured)
        objects = heldout_objects(generator, textured)
    polar, azimuth = uniform(generator, 0, math.pi / 3), uniform(generator, -math.pi, math.pi)
    light = torch.tensor([math.sin(polar) * math.cos(azimuth), math.sin(polar) * math.sin(azimuth),
                          -math.cos(polar)], dtype=torch.float64)
    return Scene(background, objects, light, config.ambient)


def _window(bound: tuple[Tensor, float], height: int, width: int) -> tuple[slice, slice] | None:
    """Rows and columns whose pixel centres can see a bounding sphere."""
    (x, y, _), radius = bound[0].tolist(), bound[1]
    rows = slice(max(0, math.floor((y - radius) * height - 0.5)),
                 min(height, math.ceil((y + radius) * height + 0.5)))
    cols = slice(max(0, math.floor((x - radius) * width - 0.5)),
                 min(width, math.ceil((x + radius) * width + 0.5)))
    return None if rows.start >= rows.stop or cols.start >= cols.stop else (rows, cols)


def _cast(scene: Scene, height: int, width: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Depth (H, W), normals (H, W, 3), object ids (H, W), albedo (H, W, 3), shading (H, W)."""
    x, y = pixel_grid(height, width)
    background = scene.background
    depth, normal = _CASTERS[background.kind](x, y, **background.parameters)
    missed = ~torch.isfinite(depth)
    depth = torch.where(missed, 1.0, depth.clamp(max=1.0))
    normal = torch.where(missed[..., None], torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64), normal)
    ids = torch.zeros(height, width, dtype=torch.int64)
    for number, item in enumerate(scene.objects, start=1):
        bound = item.bound()
        window = (slice(None), slice(None)) if bound is None else _window(bound, height, width)
        if window is None or (bound is not None and float(bound[0][2]) - bound[1] >= float(depth[window].max())):
            continue
        t, n = _CASTERS[item.kind](x[window], y[window], **item.parameters)
        closer = t < depth[window]
        depth[window] = torch.where(closer, t, depth[window])
        normal[window] = torch.where(closer[..., None], n, normal[window])
        ids[window] = torch.where(closer, number, ids[window])
    points = torch.stack([x, y, depth], dim=-1).reshape(-1, 3)
    flat = ids.reshape(-1)
    order = torch.argsort(flat, stable=True)
    albedo = torch.empty(height * width, 3, dtype=torch.float64)
    surfaces = [background, *scene.objects]
    counts = torch.bincount(flat, minlength=len(surfaces)).tolist()
    for number, pixels in enumerate(order.split(counts)):
        if len(pixels):
            albedo[pixels] = surfaces[number].albedo(surfaces[number].local(points[pixels])).clamp(0, 1)
    shading = scene.ambient + (1 - scene.ambient) * (normal @ scene.light).clamp(min=0)
    return depth, normal, ids, albedo.reshape(height, width, 3), shading


def render(scene: Scene, size: int | tuple[int, int], *, supersample: int = 1, guide_noise: float = 0.0,
           generator: torch.Generator | None = None) -> DepthScene:
    """Ray cast ``scene`` into an ``H x W`` depth map, guide, normals and object map.

    Parameters
    ----------
    scene : Scene
        What to draw (see :func:`sample_scene`).
    size : int or (int, int)
        ``H = W = size``, or ``(H, W)``.
    supersample : int
        Average ``supersample**2`` rays per pixel (depth, guide, normals); the object map
        keeps the ray nearest the pixel centre.
    guide_noise : float
        Standard deviation of the Gaussian noise added to the guide (needs ``generator``).
    generator : torch.Generator, optional
        Source of the guide noise.

    Returns
    -------
    DepthScene
    """
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    s = int(supersample)
    depth, normal, ids, albedo, shading = _cast(scene, height * s, width * s)
    guide = (albedo * shading[..., None]).permute(2, 0, 1)
    normal = normal.permute(2, 0, 1)
    if s > 1:
        depth = F.avg_pool2d(depth[None, None], s)[0, 0]
        guide = F.avg_pool2d(guide[None], s)[0]
        normal = F.avg_pool2d(normal[None], s)[0]
        normal = normal / normal.norm(dim=0, keepdim=True).clamp(min=1e-12)
        ids = ids[s // 2::s, s // 2::s]
    if guide_noise > 0:
        if generator is None:
            raise ValueError("render: guide_noise > 0 needs a generator")
        guide = guide + guide_noise * torch.randn(guide.shape, generator=generator, dtype=guide.dtype)
    return DepthScene(depth[None].clamp(0, 1).float(), guide.clamp(0, 1).float(), normal.float(),
                      ids.contiguous())


def render_scene(config: DepthSceneConfig, *, generator: torch.Generator) -> DepthScene:
    """Draw and render one scene of ``config``; the same generator state gives the same scene.

    Examples
    --------
    >>> scene = render_scene(DepthSceneConfig(size=32), generator=torch.Generator().manual_seed(0))
    >>> scene.depth.shape, scene.guide.shape
    (torch.Size([1, 32, 32]), torch.Size([3, 32, 32]))
    """
    scene = sample_scene(config, generator=generator)
    return render(scene, config.shape, supersample=config.supersample, guide_noise=config.guide_noise,
                  generator=generator)


def depth_scene_batch(config: DepthSceneConfig, count: int, *,
                      generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``count`` scenes: depth (N, 1, H, W) and guide (N, 3, H, W), float32."""
    scenes = [render_scene(config, generator=generator) for _ in range(count)]
    return torch.stack([s.depth for s in scenes]), torch.stack([s.guide for s in scenes])


class DepthScenePool:
    """Random crops, flips and rotations from a fixed pool of rendered scenes.

    The pool is rendered once from ``seed``, so it is the same in every process and
    after a resume; :meth:`sample` keeps no random state of its own.

    Parameters
    ----------
    config : DepthSceneConfig
        Scene parameters.
    images : int
        Scenes in the pool.
    seed : int
        Seed of the pool.
    """

    def __init__(self, config: DepthSceneConfig, *, images: int, seed: int):
        if images < 1:
            raise ValueError(f"DepthScenePool: images must be >= 1, got {images}")
        self.config = config
        self.depth, self.guide = depth_scene_batch(config, images, generator=torch.Generator().manual_seed(seed))
        height, width = config.shape
        self.description = (f"depth scenes ({config.family}, procedural): pool of {images} scenes "
                            f"{height}x{width} (seed {seed}), random crops, flips, rotations")

    def sample(self, count: int, *, patch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``count`` crops: depth (count, 1, P, P) and guide (count, 3, P, P), augmented alike."""
        n, _, height, width = self.depth.shape
        if not 1 <= patch_size <= min(height, width):
            raise ValueError(f"DepthScenePool: patch_size must be in [1, {min(height, width)}], got {patch_size}")
        index = torch.randint(n, (count,), generator=generator)
        top = torch.randint(height - patch_size + 1, (count,), generator=generator)
        left = torch.randint(width - patch_size + 1, (count,), generator=generator)
        flips = torch.randint(2, (count,), generator=generator)
        turns = torch.randint(4, (count,), generator=generator)
        patches = []
        for i in range(count):
            rows = slice(int(top[i]), int(top[i]) + patch_size)
            cols = slice(int(left[i]), int(left[i]) + patch_size)
            patch = torch.cat([self.depth[index[i], :, rows, cols], self.guide[index[i], :, rows, cols]])
            patch = patch.flip(-1) if flips[i] else patch
            patches.append(torch.rot90(patch, int(turns[i]), dims=(-2, -1)))
        stacked = torch.stack(patches).contiguous()
        return stacked[:, :1].contiguous(), stacked[:, 1:].contiguous()


def add_depth_noise(depth: Tensor, *, sigma0: float, generator: torch.Generator, quadratic: bool = True) -> Tensor:
    """``depth + sigma * N(0, 1)`` with ``sigma = sigma0 depth^2`` (as time-of-flight and structured
    light sensors), or ``sigma = sigma0`` when ``quadratic`` is false. Not clipped."""
    if not sigma0 >= 0:
        raise ValueError(f"add_depth_noise: sigma0 must be >= 0, got {sigma0}")
    sigma = sigma0 * depth**2 if quadratic else sigma0
    return depth + sigma * torch.randn(depth.shape, generator=generator, dtype=depth.dtype)


def invalid_mask(depth: Tensor, *, fraction: float, generator: torch.Generator, edges: bool = True,
                 edge_threshold: float = 0.02, hole_radius: tuple[float, float] = (0.75, 2.5)) -> Tensor:
    """Validity mask of a depth map: ``True`` = valid.

    Random small round holes (radii ``hole_radius`` pixels) are punched until they
    cover about ``fraction`` of each map; with ``edges``, pixels whose depth differs
    from a 4-neighbour's by more than ``edge_threshold`` are invalid too, on top.

    Parameters
    ----------
    depth : Tensor, shape (..., H, W)
    fraction : float
        Share of pixels in holes, in [0, 1).

    Returns
    -------
    Tensor, bool, shape of ``depth``
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"invalid_mask: fraction must be in [0, 1), got {fraction}")
    height, width = depth.shape[-2:]
    maps = depth.reshape(-1, height, width)
    holes = torch.zeros(maps.shape, dtype=torch.bool)
    low, high = hole_radius
    mean_area = math.pi * (low**2 + low * high + high**2) / 3
    offset = torch.arange(-math.ceil(high), math.ceil(high) + 1)
    for m in range(len(maps)):
        flat, target = holes[m].view(-1), round(fraction * height * width)
        for _ in range(1000):
            covered = int(flat.sum())
            if covered >= target:
                break
            count = math.ceil((target - covered) / (mean_area * (1 - covered / (height * width))))
            cy = torch.rand(count, generator=generator, dtype=torch.float64)[:, None, None] * height
            cx = torch.rand(count, generator=generator, dtype=torch.float64)[:, None, None] * width
            r = uniform(generator, low, high, count)[:, None, None]
            rows, cols = cy.floor().long() + offset[:, None], cx.floor().long() + offset[None, :]
            inside = ((rows + 0.5 - cy) ** 2 + (cols + 0.5 - cx) ** 2 <= r**2)
            inside &= (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
            pixel = (rows.clamp(0, height - 1) * width + cols.clamp(0, width - 1)).expand_as(inside)
            flat[pixel[inside]] = True
    invalid = holes
    if edges:
        jump_y = (maps[:, 1:, :] - maps[:, :-1, :]).abs() > edge_threshold
        jump_x = (maps[:, :, 1:] - maps[:, :, :-1]).abs() > edge_threshold
        invalid = invalid.clone()
        invalid[:, 1:, :] |= jump_y
        invalid[:, :-1, :] |= jump_y
        invalid[:, :, 1:] |= jump_x
        invalid[:, :, :-1] |= jump_x
    return (~invalid).reshape(depth.shape)
