"""Figures for people who would rather look than read.

* :func:`side_by_side`: a row of images with titles (e.g. degraded,
  restorations, reference, with PSNR in the titles);
* :func:`psnr_curves`: PSNR against iterations or network evaluations;
* :func:`depth_panel`: depth maps as colour maps and as Lambertian renderings
  (:func:`learnreg.metrics.render_depth`), where shape errors show.

Matplotlib is imported lazily and used through :class:`matplotlib.figure.Figure`
with the Agg canvas only, so no global pyplot state or backend changes leak
into the caller. Every figure is written atomically as PNG
(:func:`learnreg.data.io.atomic_path`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from learnreg.data.io import PathLike, atomic_path
from learnreg.metrics.depth import render_depth

logger = logging.getLogger(__name__)

_PANEL_INCHES = 3.0


def _new_figure(rows: int, columns: int, *, panel: float = _PANEL_INCHES) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(panel * columns, panel * rows + 0.4), layout="constrained")


def _png_target(path: PathLike) -> Path:
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ValueError(f"figures are written as PNG; give a path ending in .png, got {target}")
    return target


def _save(figure: Any, target: Path, *, dpi: int = 100) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    with atomic_path(target) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi)
    logger.debug("wrote figure %s", target)
    return target


def _as_display(image: Tensor, title: str) -> np.ndarray:
    """(1, C, H, W), (C, H, W) or (H, W) tensor -> (H, W) or (H, W, 3) array."""
    if not isinstance(image, Tensor):
        raise TypeError(f"image {title!r}: expected a torch.Tensor, got {type(image).__name__}")
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"image {title!r}: pass one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.dim() == 2:
        image = image[None]
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(
            f"image {title!r}: expected (1, C, H, W), (C, H, W) or (H, W) with C = 1 or 3, "
            f"got {tuple(image.shape)}"
        )
    array = image.detach().to("cpu", torch.float32).numpy().transpose(1, 2, 0)
    return array[..., 0] if array.shape[-1] == 1 else array


def _crop(array: np.ndarray, crop: tuple[int, int, int, int] | None) -> np.ndarray:
    if crop is None:
        return array
    top, left, height, width = crop
    if top < 0 or left < 0 or top + height > array.shape[0] or left + width > array.shape[1]:
        raise ValueError(
            f"crop (top={top}, left={left}, height={height}, width={width}) leaves an image "
            f"of size {array.shape[0]} x {array.shape[1]}"
        )
    return array[top:top + height, left:left + width]


def _grid(count: int, columns: int | None) -> tuple[int, int]:
    columns = min(count, columns or count)
    return math.ceil(count / columns), columns


def side_by_side(path: PathLike, images: Sequence[tuple[str, Tensor]], *,
                 crop: tuple[int, int, int, int] | None = None,
                 columns: int | None = None) -> Path:
    """Write images side by side with titles, as PNG.

    Parameters
    ----------
    path : str or PathLike
        Output ``.png``; written atomically, overwritten if it exists.
    images : sequence of (str, Tensor or None)
        Titles and images (``None`` leaves the cell blank), each ``(1, C, H, W)``, ``(C, H, W)`` or ``(H, W)``
        with ``C`` = 1 or 3, values in ``[0, 1]`` (clipped for display).
        Put metrics in the titles, e.g. ``f"TV, {psnr:.2f} dB"``.
    crop : (top, left, height, width), optional
        Show the same window of every image (a zoom on details).
    columns : int, optional
        Images per row; all in one row by default.

    Returns
    -------
    Path
        The written file.
    """
    target = _png_target(path)
    if not images:
        raise ValueError("side_by_side: no images given")
    rows, columns = _grid(len(images), columns)
    figure = _new_figure(rows, columns)
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.set_axis_off()
        if index >= len(images) or images[index][1] is None:
            continue  # (title, None) leaves a blank cell, e.g. to align rows of a grid
        title, image = images[index]
        array = np.clip(_crop(_as_display(image, title), crop), 0.0, 1.0)
        axis.imshow(array, cmap="gray" if array.ndim == 2 else None, vmin=0.0, vmax=1.0,
                    interpolation="nearest")
        axis.set_title(title, fontsize=10)
    return _save(figure, target)


def psnr_curves(path: PathLike, curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
                xlabel: str = "iteration", title: str | None = None) -> Path:
    """Plot PSNR curves, e.g. against iterations or network evaluations.

    Parameters
    ----------
    path : str or PathLike
        Output ``.png``; written atomically, overwritten if it exists.
    curves : mapping of str to (x values, PSNR values)
        One line per method; PSNR in dB. Non-finite points (an exact match's
        ``inf``, a diverged run's ``nan``) are left out of the line.
    xlabel : str, optional
        Label of the horizontal axis.
    title : str, optional
        Figure title.

    Returns
    -------
    Path
        The written file.
    """
    target = _png_target(path)
    if not curves:
        raise ValueError("psnr_curves: no curves given")
    figure = _new_figure(1, 1, panel=4.5)
    figure.set_size_inches(7.5, 4.9)  # room for the legend below the axes
    axis = figure.subplots()
    for name, (x_values, psnr_values) in curves.items():
        x_array = np.asarray(x_values, dtype=np.float64)
        y_array = np.asarray(psnr_values, dtype=np.float64)
        if x_array.shape != y_array.shape or x_array.ndim != 1:
            raise ValueError(
                f"psnr_curves: curve {name!r} has {x_array.shape} x values and "
                f"{y_array.shape} PSNR values; give two equal-length sequences"
            )
        finite = np.isfinite(x_array) & np.isfinite(y_array)
        axis.plot(x_array[finite], y_array[finite], label=name)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("PSNR (dB)")
    axis.grid(True, alpha=0.3)
    # below the axes, so long labels neither cover the curves nor get cut
    axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize=8, frameon=False)
    if title:
        axis.set_title(title)
    return _save(figure, target)


def depth_panel(path: PathLike, depths: Sequence[tuple[str, Tensor]], *,
                pixel_size: float | None = None) -> Path:
    """Show depth maps as colour maps (top row) and renderings (bottom row).

    Parameters
    ----------
    path : str or PathLike
        Output ``.png``; written atomically, overwritten if it exists.
    depths : sequence of (str, Tensor)
        Titles and depth maps ``(1, 1, H, W)`` or ``(H, W)``, in one unit. The
        colour range is the first map's finite range (put the ground truth
        first); non-finite pixels show blank.
    pixel_size : float, optional
        Pixel pitch for :func:`learnreg.metrics.render_depth`, ``1 / W`` by default.

    Returns
    -------
    Path
        The written file.
    """
    target = _png_target(path)
    if not depths:
        raise ValueError("depth_panel: no depth maps given")
    figure = _new_figure(2, len(depths))
    axes = figure.subplots(2, len(depths), squeeze=False)
    low = high = None
    for column, (title, depth) in enumerate(depths):
        single = isinstance(depth, Tensor) and (
            depth.dim() == 2 or (depth.dim() == 4 and depth.shape[:2] == (1, 1)))
        if not single:
            shape = tuple(depth.shape) if isinstance(depth, Tensor) else type(depth).__name__
            raise ValueError(f"depth {title!r}: expected (1, 1, H, W) or (H, W), got {shape}")
        depth = depth.detach().to("cpu", torch.float32).reshape(1, 1, *depth.shape[-2:])
        array = depth[0, 0].numpy().copy()
        finite = np.isfinite(array)
        array[~finite] = np.nan
        if low is None and finite.any():
            low, high = float(array[finite].min()), float(array[finite].max())
        image = axes[0, column].imshow(array, cmap="viridis", vmin=low, vmax=high,
                                       interpolation="nearest")
        axes[0, column].set_title(title, fontsize=10)
        shading = render_depth(depth, pixel_size=pixel_size)[0, 0].numpy()
        axes[1, column].imshow(shading, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        for axis in axes[:, column]:
            axis.set_axis_off()
    figure.colorbar(image, ax=axes[0, :].tolist(), shrink=0.8)
    return _save(figure, target)


def objective_curves(path: PathLike, panels: Mapping[str, Mapping[str, Sequence[float]]], *,
                     columns: int = 3, title: str | None = None) -> Path:
    """Error against objective along iterations, one panel per run (NETT's Fig. 5).

    Parameters
    ----------
    path : str or PathLike
        Output ``.png``; written atomically, overwritten if it exists.
    panels : mapping of str to mapping
        Panel title -> ``{"objective": [...], "rmse_d": [...], "rmse_v": [...]}``, one
        value per iteration (iteration 0 first). The objective is the horizontal axis
        (log scale), RMSE_d the left axis (blue), RMSE_v the right axis (orange); the
        start is marked with a circle.
    columns : int
        Panels per row.
    title : str, optional
        Figure title.

    Returns
    -------
    Path
        The written file.
    """
    target = _png_target(path)
    if not panels:
        raise ValueError("objective_curves: no panels given")
    rows, columns = _grid(len(panels), columns)
    figure = _new_figure(rows, columns, panel=3.4)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, (name, curves) in zip(axes, panels.items()):
        objective = np.asarray(curves["objective"], dtype=np.float64)
        for key, colour, side in (("rmse_d", "tab:blue", axis), ("rmse_v", "tab:orange", axis.twinx())):
            values = np.asarray(curves[key], dtype=np.float64)
            if values.shape != objective.shape:
                raise ValueError(f"objective_curves: panel {name!r} has {objective.shape} objective values "
                                 f"and {values.shape} {key} values; give one per iteration")
            side.plot(objective, values, color=colour, linewidth=1.2)
            side.plot(objective[:1], values[:1], "o", color=colour, markersize=4)
            side.set_ylabel(key.replace("_", " ").upper().replace("RMSE ", "RMSE_"), color=colour, fontsize=8)
            side.tick_params(axis="y", labelsize=7, colors=colour)
        if np.all(objective > 0):
            axis.set_xscale("log")
        axis.set_xlabel("objective", fontsize=8)
        axis.tick_params(axis="x", labelsize=7)
        axis.set_title(name, fontsize=9)
    for axis in axes[len(panels):]:
        axis.set_axis_off()
    if title:
        figure.suptitle(title)
    return _save(figure, target)


def band_bars(path: PathLike, panels: Mapping[str, Mapping[str, Sequence[float]]], bands: Sequence[str], *,
              title: str | None = None, ylabel: str = "MSE per pixel") -> Path:
    """Grouped bars of an error split by frequency band (:func:`learnreg.metrics.band_errors`), log scale.

    Parameters
    ----------
    path : str or PathLike
        Output ``.png``; written atomically, overwritten if it exists.
    panels : mapping of str to mapping
        Panel title -> ``{series label: one value per band}``.
    bands : sequence of str
        The band labels, along the horizontal axis.
    title : str, optional
        Figure title.
    ylabel : str
        Label of the vertical axis.

    Returns
    -------
    Path
        The written file.
    """
    target = _png_target(path)
    if not panels:
        raise ValueError("band_bars: no panels given")
    figure = _new_figure(1, len(panels), panel=4.0)
    axes = figure.subplots(1, len(panels), squeeze=False).ravel()
    positions = np.arange(len(bands))
    for axis, (name, series) in zip(axes, panels.items()):
        width = 0.8 / max(len(series), 1)
        for index, (label, values) in enumerate(series.items()):
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (len(bands),):
                raise ValueError(f"band_bars: series {label!r} of panel {name!r} has {values.size} values "
                                 f"for {len(bands)} bands")
            axis.bar(positions + (index - (len(series) - 1) / 2) * width, np.maximum(values, 1e-12), width,
                     label=label)
        axis.set_yscale("log")
        low, high = axis.get_ylim()
        axis.set_ylim(low, high * (high / low) ** 0.35)  # headroom for the legend above the bars
        axis.set_xticks(positions, list(bands), fontsize=7)
        axis.tick_params(axis="y", labelsize=7)
        axis.set_xlabel("band of max(|f_y|, |f_x|), cycles per pixel", fontsize=8)
        axis.set_ylabel(ylabel, fontsize=8)
        axis.set_title(name, fontsize=9)
        axis.legend(fontsize=7, loc="upper left")
    if title:
        figure.suptitle(title)
    return _save(figure, target)
