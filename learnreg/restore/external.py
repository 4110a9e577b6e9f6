"""Optional reference methods from other packages (installed with ``pip install learnreg[bench]``).

``bm3d`` (Dabov et al. 2007, the ``bm3d`` package by Mäkinen et al.) is under a
non-commercial licence, so it is an optional extra used by the benchmarks only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from learnreg.restore.baselines import family
from learnreg.restore.methods import Method, Problem, register


def _run_bm3d(problem: Problem, params: dict[str, Any], *, reference=None, callback=None):
    try:
        import bm3d
    except ImportError:
        raise ImportError("method bm3d needs the optional bm3d package: pip install 'learnreg[bench]'") from None
    if problem.sigma <= 0:
        raise ValueError("bm3d needs a noise level > 0 (the spec's noise)")
    outputs = []
    for image in problem.y.double().numpy():  # (C, H, W) each
        array = np.ascontiguousarray(np.moveaxis(image, 0, -1))
        if array.shape[-1] == 1:
            restored = bm3d.bm3d(array[..., 0], sigma_psd=problem.sigma)[..., None]
        else:
            restored = bm3d.bm3d_rgb(array, sigma_psd=problem.sigma)
        outputs.append(torch.from_numpy(np.moveaxis(np.asarray(restored), -1, 0).copy()))
    return torch.stack(outputs).to(problem.y.dtype), None


register(Method("bm3d", "BM3D denoising (optional extra, non-commercial licence)", _run_bm3d, {},
                lambda operator: family(operator) == "denoise", "bm3d applies to denoising (operator identity)"))
