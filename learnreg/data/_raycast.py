"""Orthographic ray casting of analytic surfaces, vectorised over rays.

Every ray starts on the camera plane at ``(x, y, 0)`` and runs along ``+z``, so
the ray parameter ``t`` of a hit is its depth. Each ``raycast_*`` function takes
ray origins ``x, y`` (tensors of one shape, any shape) and returns ``(t, normal)``:
``t`` has the shape of ``x``, the first hit with ``t > 0`` (``inf`` where the ray
misses), and ``normal`` has shape ``(*x.shape, 3)``, the unit surface normal at the
hit turned to face the camera (``normal[..., 2] <= 0``; where a ray starts inside a
solid its first hit is the exit surface, whose outward normal is flipped). Work is
in float64. Solids are placed by ``centre`` and a ``rotation`` whose columns are
their local axes in world coordinates (``local = rotation.T @ (point - centre)``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["pixel_grid", "rotation_matrix", "raycast_heightfield", "raycast_plane", "raycast_sphere",
           "raycast_box", "raycast_cylinder", "raycast_torus"]

_TINY = 1e-12


def pixel_grid(height: int, width: int) -> tuple[Tensor, Tensor]:
    """Ray origins of an ``height x width`` map of the unit square: pixel centres.

    Returns
    -------
    x, y : Tensor, shape (H, W), float64
        ``x = (j + 0.5) / W`` and ``y = (i + 0.5) / H`` at row ``i``, column ``j``.
    """
    y = (torch.arange(height, dtype=torch.float64) + 0.5) / height
    x = (torch.arange(width, dtype=torch.float64) + 0.5) / width
    return x[None, :].expand(height, width), y[:, None].expand(height, width)


def rotation_matrix(angles: Sequence[float] | Tensor) -> Tensor:
    """Rotation ``Rz(c) @ Ry(b) @ Rx(a)`` for ``angles = (a, b, c)`` in radians, float64 (3, 3)."""
    a, b, c = (float(angle) for angle in angles)
    rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]],
                      dtype=torch.float64)
    ry = torch.tensor([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]],
                      dtype=torch.float64)
    rz = torch.tensor([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]],
                      dtype=torch.float64)
    return rz @ ry @ rx


def _vector(value: Sequence[float] | Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=torch.float64).reshape(3)


def _rotation(rotation: Tensor | None) -> Tensor:
    if rotation is None:
        return torch.eye(3, dtype=torch.float64)
    return torch.as_tensor(rotation, dtype=torch.float64)


def _local_rays(x: Tensor, y: Tensor, centre: Tensor, rotation: Tensor) -> tuple[Tensor, Tensor]:
    """Ray origins (..., 3) and the (shared) direction (3,) in a solid's local frame."""
    origin = torch.stack([x - centre[0], y - centre[1], torch.full_like(x, -float(centre[2]))], dim=-1)
    return origin @ rotation, rotation[2].clone()  # rotation.T @ e_z is the third row


def _facing(normal: Tensor) -> Tensor:
    """Turn normals (..., 3) towards the camera (negative z)."""
    return torch.where(normal[..., 2:] > 0, -normal, normal)


def _miss(t: Tensor, hit: Tensor) -> Tensor:
    return torch.where(hit, t, torch.full_like(t, math.inf))


def raycast_heightfield(x: Tensor, y: Tensor, *, offset: float, slope_x: float = 0.0, slope_y: float = 0.0,
                        bumps: Tensor | None = None, half_plane: Sequence[float] | None = None
                        ) -> tuple[Tensor, Tensor]:
    """Surface ``z = offset + slope_x x + slope_y y + sum_k a_k exp(-|p - m_k|^2 / (2 s_k^2))``.

    Parameters
    ----------
    x, y : Tensor
        Ray origins.
    offset, slope_x, slope_y : float
        The plane part.
    bumps : Tensor, shape (K, 4), optional
        Gaussian bumps as rows ``(m_x, m_y, s, a)``; negative ``a`` comes towards the camera.
    half_plane : (u_x, u_y, e), optional
        Keep only the part where ``u_x x + u_y y >= e`` (a surface with a straight edge).

    Returns
    -------
    t, normal : Tensor
        Depth (``inf`` off the half plane or where ``z <= 0``) and camera-facing normal.
    """
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    z = offset + slope_x * x + slope_y * y
    gx, gy = torch.full_like(x, slope_x), torch.full_like(x, slope_y)
    if bumps is not None and len(bumps):
        m_x, m_y, s, a = (torch.as_tensor(bumps, dtype=torch.float64)[:, k] for k in range(4))
        dx, dy = x[..., None] - m_x, y[..., None] - m_y
        g = a * torch.exp(-(dx**2 + dy**2) / (2 * s**2))
        z = z + g.sum(-1)
        gx = gx - (g * dx / s**2).sum(-1)
        gy = gy - (g * dy / s**2).sum(-1)
    normal = torch.stack([gx, gy, -torch.ones_like(x)], dim=-1)
    normal = normal / normal.norm(dim=-1, keepdim=True)
    hit = z > 0
    if half_plane is not None:
        u_x, u_y, e = (float(value) for value in half_plane)
        hit = hit & (u_x * x + u_y * y >= e)
    return _miss(z, hit), normal


def raycast_plane(x: Tensor, y: Tensor, *, offset: float, slope_x: float = 0.0, slope_y: float = 0.0,
                  half_plane: Sequence[float] | None = None) -> tuple[Tensor, Tensor]:
    """Plane ``z = offset + slope_x x + slope_y y``; see :func:`raycast_heightfield`."""
    return raycast_heightfield(x, y, offset=offset, slope_x=slope_x, slope_y=slope_y, half_plane=half_plane)


def raycast_sphere(x: Tensor, y: Tensor, *, centre: Sequence[float] | Tensor, radius: float
                   ) -> tuple[Tensor, Tensor]:
    """Sphere of ``radius`` about ``centre``: depth ``c_z - sqrt(r^2 - (x - c_x)^2 - (y - c_y)^2)``."""
    c = _vector(centre)
    dx, dy = x - c[0], y - c[1]
    square = radius**2 - dx**2 - dy**2
    root = torch.sqrt(square.clamp(min=0))
    near, far = c[2] - root, c[2] + root
    t = torch.where(near > 0, near, far)
    normal = torch.stack([dx, dy, t - c[2]], dim=-1) / radius
    return _miss(t, (square >= 0) & (t > 0)), _facing(normal)


def raycast_box(x: Tensor, y: Tensor, *, centre: Sequence[float] | Tensor, half_extents: Sequence[float] | Tensor,
                rotation: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Box ``|local_k| <= half_extents[k]`` (slab method)."""
    c, h, r = _vector(centre), _vector(half_extents), _rotation(rotation)
    origin, direction = _local_rays(x, y, c, r)
    direction = torch.where(direction.abs() < _TINY, torch.full_like(direction, _TINY), direction)
    t1, t2 = (-h - origin) / direction, (h - origin) / direction
    t_near, axis_near = torch.minimum(t1, t2).max(dim=-1)
    t_far, axis_far = torch.maximum(t1, t2).min(dim=-1)
    entry = t_near > 0
    t = torch.where(entry, t_near, t_far)
    axis = torch.where(entry, axis_near, axis_far)
    # the face crossed on axis k faces the camera when its normal is -sign(d_k) e_k
    local = -torch.sign(direction)[axis][..., None] * torch.nn.functional.one_hot(axis, 3).to(torch.float64)
    return _miss(t, (t_far >= t_near) & (t_far > 0)), local @ r.T


def raycast_cylinder(x: Tensor, y: Tensor, *, centre: Sequence[float] | Tensor, radius: float, half_length: float,
                     rotation: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Closed cylinder about the local z axis: ``local_x^2 + local_y^2 <= radius^2``,
    ``|local_z| <= half_length``."""
    c, r = _vector(centre), _rotation(rotation)
    o, d = _local_rays(x, y, c, r)
    inf = torch.full_like(x, math.inf)
    a = float(d[0] ** 2 + d[1] ** 2)
    if a > _TINY:  # side wall: |o_xy + t d_xy|^2 = radius^2
        half_b = o[..., 0] * d[0] + o[..., 1] * d[1]
        disc = half_b**2 - a * (o[..., 0] ** 2 + o[..., 1] ** 2 - radius**2)
        root = torch.sqrt(disc.clamp(min=0))
        side = torch.stack([(-half_b - root) / a, (-half_b + root) / a], dim=-1)
        ok = (disc[..., None] >= 0) & ((o[..., 2:] + side * d[2]).abs() <= half_length)
        side = torch.where(ok, side, inf[..., None])
    else:
        side = torch.stack([inf, inf], dim=-1)
    if abs(float(d[2])) > _TINY:  # caps
        caps = torch.stack([(-half_length - o[..., 2]) / d[2], (half_length - o[..., 2]) / d[2]], dim=-1)
        ok = (o[..., :1] + caps * d[0]) ** 2 + (o[..., 1:2] + caps * d[1]) ** 2 <= radius**2
        caps = torch.where(ok, caps, inf[..., None])
    else:
        caps = torch.stack([inf, inf], dim=-1)
    candidates = torch.cat([side, caps], dim=-1)
    candidates = torch.where(candidates > 0, candidates, math.inf)
    t, which = candidates.min(dim=-1)
    point = o + torch.where(torch.isfinite(t), t, 0)[..., None] * d
    on_side = which < 2
    local = torch.where(on_side[..., None],
                        torch.stack([point[..., 0], point[..., 1], torch.zeros_like(t)], dim=-1) / radius,
                        torch.stack([torch.zeros_like(t), torch.zeros_like(t), torch.sign(point[..., 2])], dim=-1))
    return t, _facing(local @ r.T)


def _torus_distance(p: Tensor, major: float, minor: float) -> tuple[Tensor, Tensor]:
    """Signed distance to a torus about the z axis and its gradient (unit), for points (N, 3)."""
    rho = torch.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2).clamp(min=_TINY)
    q = torch.stack([rho - major, p[:, 2]], dim=-1)
    length = q.norm(dim=-1).clamp(min=_TINY)
    radial = q[:, 0] / length / rho
    gradient = torch.stack([radial * p[:, 0], radial * p[:, 1], q[:, 1] / length], dim=-1)
    return length - minor, gradient


def raycast_torus(x: Tensor, y: Tensor, *, centre: Sequence[float] | Tensor, major_radius: float,
                  minor_radius: float, rotation: Tensor | None = None, steps: int = 256,
                  tolerance: float = 1e-7) -> tuple[Tensor, Tensor]:
    """Torus about the local z axis, by sphere tracing its exact signed distance function.

    Rays start at the entry of the bounding sphere (they must start outside the
    torus). Sphere tracing stops within ``tolerance`` of the surface; rays left
    within 1e-4 after ``steps`` steps (grazing ones) count as hits. Two Newton steps
    then polish every hit that is not grazing, so depth is accurate to far below 1e-4.
    """
    c, r = _vector(centre), _rotation(rotation)
    origin, direction = _local_rays(x, y, c, r)
    shape = x.shape
    origin = origin.reshape(-1, 3)
    # bounding sphere of radius R + r about the centre
    bound = major_radius + minor_radius
    half_b = origin @ direction
    disc = half_b**2 - ((origin**2).sum(-1) - bound**2)
    root = torch.sqrt(disc.clamp(min=0))
    start, stop = (-half_b - root).clamp(min=0), -half_b + root
    t_all = torch.full((origin.shape[0],), math.inf, dtype=torch.float64)
    normal_all = torch.zeros(origin.shape[0], 3, dtype=torch.float64)
    index = ((disc > 0) & (stop > 0)).nonzero(as_tuple=True)[0]
    t, stop = start[index], stop[index]
    active = torch.arange(len(index))
    distance = torch.full((len(index),), math.inf, dtype=torch.float64)
    for _ in range(steps):
        if len(active) == 0:
            break
        d, _ = _torus_distance(origin[index[active]] + t[active, None] * direction, major_radius, minor_radius)
        distance[active] = d
        t[active] += d
        active = active[(d > tolerance) & (t[active] < stop[active])]
    hit = (distance < 1e-4) & (t < stop)
    index, t = index[hit], t[hit]
    for _ in range(2):  # Newton on f(t) = sdf(o + t d), where the ray is not grazing
        d, gradient = _torus_distance(origin[index] + t[:, None] * direction, major_radius, minor_radius)
        slope = gradient @ direction
        t = torch.where(slope < -0.05, t - d / slope.clamp(max=-0.05), t)
    _, gradient = _torus_distance(origin[index] + t[:, None] * direction, major_radius, minor_radius)
    t_all[index], normal_all[index] = t, gradient
    return t_all.reshape(shape), _facing(normal_all @ r.T).reshape(*shape, 3)
