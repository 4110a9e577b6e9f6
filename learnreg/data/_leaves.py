"""Shapes of the dead-leaves model and their painting on an index canvas (:mod:`learnreg.data.deadleaves`).

Each canvas pixel holds the index of the first shape, in drawing order, that covers its centre
(:data:`UNCOVERED` until one does); the generator then gathers colours and textures per index.
Disks (optionally with a rough outline) and convex polygons come in batches
(:func:`sample_shapes`) and are painted vectorised by size buckets (:func:`paint`); thin straight
strokes are painted on top (:func:`paint_strokes`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

UNCOVERED = torch.iinfo(torch.int64).max
LARGEST_BUCKET = 32  # canvas half-size above which a shape is painted on its own
_CANDIDATES_PER_BATCH = 8192  # centres drawn per batch, before discarding misses
_MAX_VERTICES = 8
_BLOCK = 8  # canvas pixels per side of the coverage blocks that prune hidden shapes
_HARMONICS = 8  # of a rough outline
ROUGHNESS = 0.15  # a rough outline's radius lies in [r (1 - 2 ROUGHNESS), r]


@dataclass
class Shapes:
    """Shapes in canvas pixel units; ``vertices`` (n, 8, 2) as (dy, dx), counter-clockwise."""

    cy: Tensor
    cx: Tensor
    r: Tensor
    polygon: Tensor
    vertices: Tensor
    harmonics: Tensor | None = None  # (n, 8, 3): order, amplitude, phase of a rough outline (0 amplitude: smooth)


def sample_shapes(height: int, width: int, *, r_min: float, r_max: float, alpha: float,
                   polygons: float, generator: torch.Generator, rough: float = 0.0) -> Shapes:
    """One batch of shapes that reach the ``height x width`` canvas, in drawing order."""
    n = _CANDIDATES_PER_BATCH
    e = 1.0 - alpha
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    r = (r_min**e - u * (r_min**e - r_max**e)) ** (1.0 / e)
    cy = torch.rand(n, generator=generator, dtype=torch.float64) * (height + 2 * r_max) - r_max
    cx = torch.rand(n, generator=generator, dtype=torch.float64) * (width + 2 * r_max) - r_max
    # keep the shapes whose disk reaches the canvas rectangle
    dy = torch.clamp(torch.maximum(-cy, cy - height), min=0)
    dx = torch.clamp(torch.maximum(-cx, cx - width), min=0)
    keep = dy**2 + dx**2 < r**2
    r, cy, cx = r[keep].float(), cy[keep].float(), cx[keep].float()
    count = len(r)
    if polygons == 0:
        shapes = Shapes(cy, cx, r, torch.zeros(count, dtype=torch.bool), torch.zeros(count, _MAX_VERTICES, 2))
        return _roughen(shapes, rough, generator)
    polygon = torch.rand(count, generator=generator) < polygons
    vertex_count = torch.randint(3, _MAX_VERTICES + 1, (count,), generator=generator)
    angles, _ = torch.sort(torch.rand(count, _MAX_VERTICES, generator=generator) * (2 * math.pi), dim=1)
    # pad with copies of the last real vertex: zero-length edges pass the half-plane test
    last = angles.gather(1, (vertex_count - 1)[:, None])
    angles = torch.where(torch.arange(_MAX_VERTICES)[None, :] < vertex_count[:, None], angles, last)
    vertices = torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1) * r[:, None, None]
    return _roughen(Shapes(cy, cx, r, polygon, vertices), rough, generator)


def _roughen(shapes: Shapes, rough: float, generator: torch.Generator) -> Shapes:
    """Give a fraction ``rough`` of the disks a rough outline (no random draw when ``rough = 0``)."""
    if rough == 0:
        return shapes
    count = len(shapes.r)
    chosen = (torch.rand(count, generator=generator) < rough) & ~shapes.polygon
    order = torch.randint(3, 49, (count, _HARMONICS), generator=generator).float()
    amplitude = torch.rand(count, _HARMONICS, generator=generator) / order
    amplitude = amplitude / amplitude.sum(dim=1, keepdim=True) * chosen[:, None]  # sum 1: profile in [-1, 1]
    phase = torch.rand(count, _HARMONICS, generator=generator) * (2 * math.pi)
    shapes.harmonics = torch.stack([order, amplitude, phase], dim=-1)
    return shapes


def covers(dy: Tensor, dx: Tensor, r: Tensor, harmonics: Tensor | None) -> Tensor:
    """``dy^2 + dx^2 <= rho^2`` with ``rho = r (1 - 0.15 (1 + profile(theta)))`` on rough outlines, else ``r``.

    ``dy``, ``dx``, ``r`` broadcast to (n, S, S); ``harmonics`` (n, 8, 3) or None.
    """
    distance = dy**2 + dx**2
    if harmonics is None or not bool((harmonics[..., 1] > 0).any()):
        return distance <= r**2
    theta = torch.atan2(dy, dx).expand(distance.shape)[..., None]  # (n, S, S, 1)
    order, amplitude, phase = (harmonics[:, None, None, :, k] for k in range(3))
    profile = (amplitude * torch.sin(order * theta + phase)).sum(-1)
    rough = harmonics[:, None, None, :, 1].sum(-1) > 0
    radius = torch.where(rough, r * (1 - ROUGHNESS * (1 + profile)), r)
    return distance <= radius**2


def in_polygon(dy: Tensor, dx: Tensor, vertices: Tensor) -> Tensor:
    """Whether offsets ``dy`` (n, S, 1), ``dx`` (n, 1, S) lie in polygons ``vertices`` (n, 8, 2).

    Returns a mask of shape (n, S, S).
    """
    edge = torch.roll(vertices, -1, dims=1) - vertices  # (n, 8, 2)
    # counter-clockwise in (x, y): inside iff on the left of every edge, i.e.
    # e_x (dy - v_y) - e_y (dx - v_x) >= 0, written a dy + b dx >= -c per edge
    a, b = edge[..., 1], -edge[..., 0]
    c = -(a * vertices[..., 0] + b * vertices[..., 1])
    cross = (dy[..., None] * a[:, None, None]) + (dx[..., None] * b[:, None, None])
    return (cross >= -c[:, None, None]).all(dim=-1)


def _visible(shapes: Shapes, uncovered: Tensor) -> Tensor:
    """Mask of shapes whose bounding box meets a block with an uncovered pixel, shape (n,)."""
    height, width = uncovered.shape
    block = _BLOCK
    padded = F.pad(uncovered, (0, -width % block, 0, -height % block))
    rows, cols = padded.shape[0] // block, padded.shape[1] // block
    free = padded.view(rows, block, cols, block).any(dim=3).any(dim=1).long()  # (rows, cols)
    table = F.pad(free.cumsum(0).cumsum(1), (1, 0, 1, 0))  # summed-area table
    top = ((shapes.cy - shapes.r) // block).long().clamp(0, rows - 1)
    bottom = ((shapes.cy + shapes.r) // block).long().clamp(0, rows - 1) + 1
    left = ((shapes.cx - shapes.r) // block).long().clamp(0, cols - 1)
    right = ((shapes.cx + shapes.r) // block).long().clamp(0, cols - 1) + 1
    return (table[bottom, right] - table[top, right] - table[bottom, left] + table[top, left]) > 0


def paint(index: Tensor, shapes: Shapes, base: int) -> None:
    """Lower ``index`` (Hc, Wc) to ``base + i`` wherever shape i covers the pixel centre."""
    height, width = index.shape
    flat = index.view(-1)
    half = torch.ceil(shapes.r).long()
    active = _visible(shapes, index >= base) if base > 0 else torch.ones_like(half, dtype=torch.bool)
    lower = 0
    level = 1
    while lower < LARGEST_BUCKET:
        ids = (active & (half > lower) & (half <= level)).nonzero(as_tuple=True)[0]
        lower, level = level, level * 2
        if len(ids) == 0:
            continue
        offset = torch.arange(-lower, lower + 1)
        cy, cx, r = shapes.cy[ids, None, None], shapes.cx[ids, None, None], shapes.r[ids, None, None]
        rows = cy.floor().long() + offset[None, :, None]  # (n, S, 1)
        cols = cx.floor().long() + offset[None, None, :]  # (n, 1, S)
        dy, dx = rows + 0.5 - cy, cols + 0.5 - cx
        inside = covers(dy, dx, r, None if shapes.harmonics is None else shapes.harmonics[ids])
        polygon = shapes.polygon[ids].nonzero(as_tuple=True)[0]
        if len(polygon):
            inside[polygon] &= in_polygon(dy[polygon], dx[polygon], shapes.vertices[ids[polygon]])
        on_canvas = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        # points off the canvas or outside the shape do nothing: an index of UNCOVERED
        # cannot lower any entry; off-canvas ones are clamped to a valid pixel
        pixel = (rows.clamp(0, height - 1) * width + cols.clamp(0, width - 1)).expand_as(inside)
        value = torch.where(inside & on_canvas, ids[:, None, None] + base, UNCOVERED)
        flat.scatter_reduce_(0, pixel.reshape(-1), value.reshape(-1), reduce="amin")
    for i in (active & (half > lower)).nonzero(as_tuple=True)[0].tolist():
        cy, cx, r = float(shapes.cy[i]), float(shapes.cx[i]), float(shapes.r[i])
        y0, y1 = max(0, math.floor(cy - r)), min(height, math.ceil(cy + r) + 1)
        x0, x1 = max(0, math.floor(cx - r)), min(width, math.ceil(cx + r) + 1)
        region = index[y0:y1, x0:x1]
        if y0 >= y1 or x0 >= x1 or not bool((region >= base).any()):
            continue
        dy = (torch.arange(y0, y1) + 0.5 - cy)[:, None]
        dx = (torch.arange(x0, x1) + 0.5 - cx)[None, :]
        inside = covers(dy[None], dx[None], torch.tensor(r).view(1, 1, 1),
                         None if shapes.harmonics is None else shapes.harmonics[i:i + 1])[0]
        if bool(shapes.polygon[i]):
            inside &= in_polygon(dy[None], dx[None], shapes.vertices[i:i + 1])[0]
        region.masked_fill_(inside & (region > base + i), base + i)


def paint_strokes(index: Tensor, first: int, size: int, supersample: int,
                  generator: torch.Generator, max_width: float = 4.0,
                  spacing: tuple[float, float] = (6.0, 40.0)) -> int:
    """Set ``index`` (Hc, Wc) to ``first + k`` on the pixels of stroke group k; returns the group count.

    A group is one stroke or 3 to 12 parallel, equally spaced ones, of one width
    (0.7 to ``max_width`` output pixels), length (0.3 to 1.5 ``size``) and centre-to-centre
    spacing (uniform in the range ``spacing``, output pixels, widened to leave a gap of >= 2 px);
    a third of the groups is axis-aligned. Groups painted later lie on top.
    """
    height, width = index.shape
    s = float(supersample)
    y = (torch.arange(height, dtype=torch.float32) + 0.5)[:, None]
    x = (torch.arange(width, dtype=torch.float32) + 0.5)[None, :]
    groups = int(torch.randint(1, 5, (1,), generator=generator))
    for k in range(groups):
        u = torch.rand(8, generator=generator).tolist()
        angle = u[0] * math.pi
        if u[1] < 1 / 3:
            angle = round(angle / (math.pi / 2)) * (math.pi / 2)
        ty, tx = math.sin(angle), math.cos(angle)  # along the strokes
        ny, nx = tx, -ty  # across
        half_width = 0.5 * (0.7 + (max_width - 0.7) * u[2]) * s
        half_length = 0.5 * (0.3 + 1.2 * u[3]) * size * s
        cy, cx = u[4] * height, u[5] * width
        count = 1 if u[6] < 0.5 else int(torch.randint(3, 13, (1,), generator=generator))
        step = max((spacing[0] + (spacing[1] - spacing[0]) * u[7]) * s, 2 * half_width + 2 * s)  # a gap >= 2 px
        along = (y - cy) * ty + (x - cx) * tx
        across = (y - cy) * ny + (x - cx) * nx + 0.5 * (count - 1) * step
        # distance to the nearest stroke centre line of the family, and which one it is
        line = torch.round(across / step).clamp(0, count - 1)
        mask = ((across - line * step).abs() <= half_width) & (along.abs() <= half_length)
        index.masked_fill_(mask, first + k)
    return groups
