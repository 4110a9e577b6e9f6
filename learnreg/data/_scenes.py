"""Scene descriptions (surfaces, albedos, light) and the random recipes of the scene families.

Private helper of :mod:`learnreg.data.depthscenes`, which documents the families.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from learnreg.data._raycast import rotation_matrix

TEXTURES = ("stripes", "checkerboard", "disks", "noise")
_DISKS = 24  # disks per dead-leaves texture
_WAVES = 16  # sinusoids per noise texture


@dataclass
class Albedo:
    """Surface colour as a function of the surface point in the surface's own frame.

    ``kind`` is ``"flat"`` (``colours[0]``) or one of :data:`TEXTURES`, evaluated at
    ``q = local @ transform``: stripes of period ``scale`` along ``q_x``; a 3-D checkerboard
    of cell ``scale``; ``extra`` disks ``(c_x, c_y, radius, r, g, b)`` in the ``(q_x, q_y)``
    plane, the first covering one winning, ``colours[0]`` outside all; noise
    ``sum_k a_k sin(w_k . q + phase_k)`` from ``extra`` rows ``(w_x, w_y, w_z, phase, a)``
    mixing ``colours[0]`` and ``colours[1]``.
    """

    kind: str = "flat"
    colours: Tensor = field(default_factory=lambda: torch.full((2, 3), 0.5, dtype=torch.float64))
    transform: Tensor = field(default_factory=lambda: torch.eye(3, dtype=torch.float64))
    scale: float = 0.1
    extra: Tensor | None = None

    def __call__(self, local: Tensor) -> Tensor:
        """Colours (P, 3) at surface points ``local`` (P, 3)."""
        first, second = self.colours[0], self.colours[1]
        if self.kind == "flat":
            return first.expand(len(local), 3)
        q = local @ self.transform
        if self.kind == "disks":
            disks = self.extra
            inside = ((q[:, None, 0] - disks[:, 0]) ** 2 + (q[:, None, 1] - disks[:, 1]) ** 2) <= disks[:, 2] ** 2
            covered = inside.any(dim=1)
            colour = disks[inside.to(torch.uint8).argmax(dim=1), 3:]
            return torch.where(covered[:, None], colour, first)
        if self.kind == "stripes":
            mix = torch.floor(q[:, 0] / self.scale).remainder(2)
        elif self.kind == "checkerboard":
            mix = torch.floor(q / self.scale).sum(dim=1).remainder(2)
        elif self.kind == "noise":
            waves = self.extra
            value = torch.sin(q @ waves[:, :3].T + waves[:, 3]) @ waves[:, 4]
            mix = (0.5 + 0.35 * value / torch.sqrt((waves[:, 4] ** 2).sum() / 2)).clamp(0, 1)
        else:
            raise ValueError(f"Albedo: kind must be 'flat' or one of {list(TEXTURES)}, got {self.kind!r}")
        return first + mix[:, None] * (second - first)


@dataclass
class SceneObject:
    """A surface: ``kind`` is a ray caster (``"heightfield"``, ``"sphere"``, ``"box"``,
    ``"cylinder"``, ``"torus"``) and ``parameters`` its keyword arguments."""

    kind: str
    parameters: dict[str, Any]
    albedo: Albedo = field(default_factory=Albedo)

    def bound(self) -> tuple[Tensor, float] | None:
        """Bounding sphere ``(centre, radius)``, or ``None`` for unbounded surfaces."""
        p = self.parameters
        radius = {"sphere": lambda: p["radius"],
                  "box": lambda: float(torch.as_tensor(p["half_extents"], dtype=torch.float64).norm()),
                  "cylinder": lambda: math.hypot(p["radius"], p["half_length"]),
                  "torus": lambda: p["major_radius"] + p["minor_radius"]}.get(self.kind)
        return None if radius is None else (torch.as_tensor(p["centre"], dtype=torch.float64), float(radius()))

    def local(self, points: Tensor) -> Tensor:
        """Points (P, 3) in the object's frame (the unit cube's centre for surfaces without one)."""
        centre = torch.as_tensor(self.parameters.get("centre", (0.5, 0.5, 0.5)), dtype=torch.float64)
        rotation = self.parameters.get("rotation")
        return (points - centre) if rotation is None else (points - centre) @ rotation


@dataclass
class Scene:
    """Surfaces, light direction (unit, towards the light, ``z < 0``) and ambient share."""

    background: SceneObject
    objects: list[SceneObject]
    light: Tensor
    ambient: float = 0.3


def uniform(generator: torch.Generator, low: float, high: float, count: int | None = None) -> Any:
    value = low + (high - low) * torch.rand(1 if count is None else count, generator=generator,
                                            dtype=torch.float64)
    return float(value) if count is None else value


def integer(generator: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in ``[low, high]``, both included."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _random_rotation(generator: torch.Generator) -> Tensor:
    return rotation_matrix(uniform(generator, -math.pi, math.pi, 3))


def random_albedo(generator: torch.Generator, textured_fraction: float, extent: float) -> Albedo:
    """A flat colour or, with probability ``textured_fraction``, a texture; ``extent`` ~ object radius."""
    colours = uniform(generator, 0.05, 0.95, 6).reshape(2, 3)
    if uniform(generator, 0, 1) >= textured_fraction:
        return Albedo("flat", colours)
    kind = TEXTURES[integer(generator, 0, len(TEXTURES) - 1)]
    transform, scale, extra = _random_rotation(generator), uniform(generator, 0.03, 0.15), None
    if kind == "disks":
        centres = uniform(generator, -extent, extent, 2 * _DISKS).reshape(_DISKS, 2)
        radii = extent * uniform(generator, 0.05, 0.4, _DISKS)[:, None]
        extra = torch.cat([centres, radii, uniform(generator, 0.05, 0.95, 3 * _DISKS).reshape(_DISKS, 3)], dim=1)
    elif kind == "noise":  # log-uniform wavelengths 0.01..0.5, amplitude ~ wavelength (a 1/f spectrum)
        wavelength = torch.exp(uniform(generator, math.log(0.01), math.log(0.5), _WAVES))
        direction = torch.randn(_WAVES, 3, generator=generator, dtype=torch.float64)
        direction = direction / direction.norm(dim=1, keepdim=True)
        extra = torch.cat([direction * (2 * math.pi / wavelength[:, None]),
                           uniform(generator, 0, 2 * math.pi, _WAVES)[:, None], wavelength[:, None]], dim=1)
    return Albedo(kind, colours, transform, scale, extra)


def _solid(kind: str, generator: torch.Generator, textured_fraction: float, *, centre: Tensor,
           extent: float, **parameters: Any) -> SceneObject:
    if kind != "sphere":
        parameters["rotation"] = _random_rotation(generator)
    return SceneObject(kind, {"centre": centre, **parameters}, random_albedo(generator, textured_fraction, extent))


def _centre(generator: torch.Generator, low: tuple[float, float, float],
            high: tuple[float, float, float]) -> Tensor:
    return torch.tensor([uniform(generator, a, b) for a, b in zip(low, high)], dtype=torch.float64)


def _box(generator: torch.Generator, textured_fraction: float, edges: tuple[float, float],
         low: tuple[float, float, float], high: tuple[float, float, float]) -> SceneObject:
    half = uniform(generator, *edges, 3) / 2
    return _solid("box", generator, textured_fraction, centre=_centre(generator, low, high),
                  extent=float(half.norm()), half_extents=half)


def _sphere(generator: torch.Generator, textured_fraction: float, radii: tuple[float, float],
            low: tuple[float, float, float], high: tuple[float, float, float]) -> SceneObject:
    radius = uniform(generator, *radii)
    return _solid("sphere", generator, textured_fraction, centre=_centre(generator, low, high),
                  extent=radius, radius=radius)


def _cylinder(generator: torch.Generator, textured_fraction: float, radii: tuple[float, float],
              lengths: tuple[float, float], low: tuple[float, float, float],
              high: tuple[float, float, float]) -> SceneObject:
    radius, half_length = uniform(generator, *radii), uniform(generator, *lengths)
    return _solid("cylinder", generator, textured_fraction, centre=_centre(generator, low, high),
                  extent=math.hypot(radius, half_length), radius=radius, half_length=half_length)


def gdsr_objects(generator: torch.Generator, textured: float) -> list[SceneObject]:
    objects = [_box(generator, textured, (0.01, 0.6), (0, 0, 0.2), (1, 1, 1))
               for _ in range(integer(generator, 16, 32))]
    objects += [_sphere(generator, textured, (0.1, 0.3), (0.1, 0.1, 0.1), (0.8, 0.8, 1.5))
                for _ in range(integer(generator, 0, 4))]
    for _ in range(integer(generator, 0, 2)):  # slanted half plane through an anchor point
        anchor_x, anchor_y = uniform(generator, 0.2, 0.8), uniform(generator, 0.2, 0.8)
        anchor_z = uniform(generator, 0.35, 0.95)
        slope_x, slope_y, angle = uniform(generator, -0.4, 0.4), uniform(generator, -0.4, 0.4), \
            uniform(generator, -math.pi, math.pi)
        u_x, u_y = math.cos(angle), math.sin(angle)
        edge = u_x * anchor_x + u_y * anchor_y - uniform(generator, 0, 0.3)
        objects.append(SceneObject("heightfield", {
            "offset": anchor_z - slope_x * anchor_x - slope_y * anchor_y, "slope_x": slope_x,
            "slope_y": slope_y, "half_plane": (u_x, u_y, edge)}, random_albedo(generator, textured, 0.7)))
    return objects


def heldout_objects(generator: torch.Generator, textured: float) -> list[SceneObject]:
    objects = [_cylinder(generator, textured, (0.03, 0.15), (0.05, 0.3), (0, 0, 0.2), (1, 1, 0.9))
               for _ in range(integer(generator, 2, 6))]
    for _ in range(integer(generator, 1, 3)):
        major = uniform(generator, 0.08, 0.2)
        minor = major * uniform(generator, 0.15, 0.5)
        centre = _centre(generator, (0, 0, major + minor + 0.02), (1, 1, 0.9))
        objects.append(_solid("torus", generator, textured, centre=centre, extent=major + minor,
                              major_radius=major, minor_radius=minor))
    for _ in range(integer(generator, 2, 6)):  # thin rods
        if uniform(generator, 0, 1) < 0.5:
            objects.append(_cylinder(generator, textured, (0.004, 0.015), (0.15, 0.45), (0, 0, 0.2), (1, 1, 0.9)))
        else:
            thickness = uniform(generator, 0.008, 0.03)
            objects.append(_solid("box", generator, textured, centre=_centre(generator, (0, 0, 0.2), (1, 1, 0.9)),
                                  extent=0.3, half_extents=torch.tensor(
                                      [thickness / 2, thickness / 2, uniform(generator, 0.15, 0.45)])))
    for _ in range(integer(generator, 20, 60)):  # clutter
        kind, low, high = integer(generator, 0, 2), (0, 0, 0.3), (1, 1, 0.95)
        objects.append(_box(generator, textured, (0.01, 0.06), low, high) if kind == 0 else
                       _sphere(generator, textured, (0.01, 0.04), low, high) if kind == 1 else
                       _cylinder(generator, textured, (0.005, 0.03), (0.01, 0.04), low, high))
    objects += [_box(generator, textured, (0.02, 0.4), (0, 0, 0.2), (1, 1, 0.9))
                for _ in range(integer(generator, 3, 8))]
    objects += [_sphere(generator, textured, (0.05, 0.2), (0.1, 0.1, 0.2), (0.9, 0.9, 1.2))
                for _ in range(integer(generator, 0, 3))]
    return objects


def heldout_background(generator: torch.Generator, textured: float) -> SceneObject:
    """``z = 1 - ramp - bumps``: a ramp of drop <= 0.25 over the square, bumps summing to <= 0.2."""
    angle, drop = uniform(generator, -math.pi, math.pi), uniform(generator, 0, 0.25)
    u_x, u_y = math.cos(angle), math.sin(angle)
    slope = drop / (abs(u_x) + abs(u_y))
    lowest = min(u_x * a + u_y * b for a in (0, 1) for b in (0, 1))
    count = integer(generator, 2, 6)
    amplitude = uniform(generator, 0.02, 0.08, count)
    amplitude = amplitude * min(1.0, 0.2 / float(amplitude.sum()))
    bumps = torch.stack([uniform(generator, 0, 1, count), uniform(generator, 0, 1, count),
                         uniform(generator, 0.05, 0.2, count), -amplitude], dim=1)
    return SceneObject("heightfield", {"offset": 1 + slope * lowest, "slope_x": -slope * u_x,
                                       "slope_y": -slope * u_y, "bumps": bumps},
                       random_albedo(generator, textured, 0.75))
