"""Benchmark suites: (task, setting, method) on a named image set.

Settings follow the seed papers' tables (Willingham et al. 2024, Tables 1 and 2;
DeepAM Table 2 for the denoising levels). Images are development images only
(``learnreg.data.samples.DEVELOPMENT_IMAGES``); the regularization weights used by
the methods were tuned on them and then fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Setting:
    """One degradation: operator and noise specs (CLI syntax) on gray or RGB images."""

    task: str
    label: str
    operator: str
    noise: str
    mode: str  # "gray" or "rgb"
    methods: tuple[str, ...]
    draws: int = 1  # noise (and mask) draws per image; the tables report the mean over all of them

    @property
    def factor(self) -> int:
        return int(self.operator.split(":")[1]) if self.operator.startswith("sr:") else 1


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    settings: tuple[Setting, ...]
    gray_images: tuple[str, ...]
    rgb_images: tuple[str, ...]
    size: int = 256
    seed: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


GRAY_DEV = ("camera", "brick", "grass", "gravel", "moon", "coins", "clock")
RGB_DEV = ("motorcycle_right", "retina")

_DENOISE = ("tv", "tikhonov", "bm3d")
_BLUR = ("tv", "tikhonov")
_SR = ("tv", "tikhonov", "bicubic", "backprojection")
_INPAINT = ("tv", "tikhonov", "harmonic")


def _classical_settings() -> tuple[Setting, ...]:
    settings = [Setting("denoising", f"sigma {s}/255", "identity", f"gaussian:{s / 255:.6f}", "gray", _DENOISE)
                for s in (15, 25, 50)]
    settings += [Setting("deblurring", f"gaussian sigma_b {b}, noise 0.01", f"blur:gaussian:{b}:25", "gaussian:0.01",
                         "rgb", _BLUR) for b in (1.6, 2.0)]
    for factor in (2, 3):
        for kernel, kernel_label in (("bicubic", "bicubic"), ("gaussian:0.5", "gaussian 0.5")):
            for noise in ("none", "gaussian:0.01"):
                noise_label = "0" if noise == "none" else "0.01"
                settings.append(Setting("super-resolution", f"x{factor} {kernel_label}, noise {noise_label}",
                                        f"sr:{factor}:{kernel}", noise, "rgb", _SR))
    settings += [Setting("inpainting", f"{int(p * 100)}% missing", f"inpaint:random:{p}", "none", "rgb", _INPAINT)
                 for p in (0.8, 0.9)]
    return tuple(settings)


# The gray margins over BM3D are hundredths of a dB at sigma 15, while one noise draw moves a 7-image mean by up
# to +-0.04 dB: the gray denoising rows average 4 draws per image.
GRAY_DENOISING_DRAWS = 4


def _learned_denoising_settings() -> tuple[Setting, ...]:
    return tuple(Setting("denoising", f"sigma {s}/255{' RGB' if mode == 'rgb' else ''}", "identity",
                         f"gaussian:{s / 255:.6f}", mode,
                         ("denoiser", "denoiser:ensemble=8", "denoiser@drunet-gray-wide",
                          "denoiser@drunet-gray-wide-ft:ensemble=4;precision=bfloat16",
                          "denoiser@drunet-gray-wide-ft:ensemble=8;precision=bfloat16", "denoiser@drunet-rgb", "bm3d",
                          "tv") if mode == "rgb"
                         else ("denoiser", "denoiser:ensemble=8", "denoiser@drunet-gray-wide",
                               "denoiser@drunet-gray-wide-ft",
                               "denoiser@drunet-gray-wide-ft:ensemble=4;precision=bfloat16",
                               "denoiser@drunet-gray-wide-ft:ensemble=8;precision=bfloat16", "bm3d", "tv"),
                         draws=GRAY_DENOISING_DRAWS if mode == "gray" else 1)
                 for mode in ("gray", "rgb") for s in (15, 25, 50))


# pnp-hqs with the denoiser fine-tuned inside unrolled HQS (recipes/denoiser-gray-wide-unrolled.yaml): its trained
# schedule (5 iterations, lambda 0.1, last level max(sigma_n, 0.02), the last two by drunet-gray-wide-ft), every
# call averaged over the 8 symmetries: 40 evaluations.
UNROLLED_PNP = "pnp-hqs@drunet-gray-wide-unrolled:ensemble=8;precision=bfloat16"


def _pnp_settings() -> tuple[Setting, ...]:
    pnp = ("tv", "pnp-hqs", "pnp-admm", "pnp-fb", UNROLLED_PNP)
    return tuple(Setting(s.task, s.label, s.operator, s.noise, s.mode, pnp) for s in _classical_settings()
                 if s.task != "denoising")


SUITES: dict[str, Suite] = {
    "classical": Suite(
        "classical",
        "Classical variational restoration on the settings of the seed papers' tables.",
        _classical_settings(),
        GRAY_DEV,
        RGB_DEV,
        notes=(
            "Gray settings use camera, brick, grass, gravel, moon, coins, clock; RGB settings the retina and "
            "motorcycle_right crops. 256x256 centre crops (255x255 for x3 SR so that the factor divides the size).",
            "PSNR/SSIM of the last iterate, clipped to [0, 1]; noise and masks seeded (seed 0 + image index).",
            "Regularization weights: per-family constants x noise level, tuned on these development images, fixed.",
        ),
    ),
    "denoising": Suite(
        "denoising",
        "The shipped learned Gaussian denoisers against BM3D (CBM3D for RGB) and TV on the development images.",
        _learned_denoising_settings(),
        GRAY_DEV,
        RGB_DEV,
        notes=("Gray development images camera, brick, grass, gravel, moon, coins, clock; RGB: the retina and "
               "motorcycle_right crops; 256x256 centre crops.",
               "`denoiser` = the default shipped prior (`auto`: drunet-gray, on RGB through the opponent "
               "transform) applied once at the true noise level; `denoiser:ensemble=8` = the same averaged over the "
               "8 rotations / reflections of the image; `denoiser@drunet-gray-wide` = the larger variant (1.3 M "
               "parameters, 82 min on 2 cores); `denoiser@drunet-gray-wide-ft` = the same fine-tuned 7,000 more steps "
               "with low noise levels drawn more often (14 min); `precision=bfloat16` = its convolutions in "
               "bfloat16 autocast on the rounded input (learnreg.learned.precision); `denoiser@drunet-rgb` = the "
               "RGB-trained prior.",
               "Seconds per image on 2 threads; BM3D is the `bm3d` package (optional extra).",
               "Published context (different images): on Set12, DRUNet (32.6 M parameters, trained on ~8,800 "
               "photographs) is reported 0.88 / 0.97 / 1.18 dB above BM3D at sigma 15 / 25 / 50 (33.25 / 30.94 / "
               "27.90 vs 32.37 / 29.97 / 26.72 dB; Zhang et al., DPIR, TPAMI 2021). Ours is 56x smaller, trained "
               "under an hour on 2 CPU cores on dead leaves only; compare its margin over BM3D here with those."),
    ),
    "pnp": Suite(
        "pnp",
        "Plug-and-play restoration with the shipped learned denoiser against TV, on the classical settings.",
        _pnp_settings(),
        GRAY_DEV,
        RGB_DEV,
        notes=("RGB development crops motorcycle_right and retina, 256x256 (255x255 for x3 SR).",
               "Prior `auto`: drunet-gray through an orthonormal opponent colour transform (it beats drunet-rgb "
               "by 1.2-1.4 dB on RGB denoising of these crops, see denoising.md).",
               "PSNR/SSIM of the last iterate; pnp-hqs (with DPIR's periodic geometric self-ensemble, its default) "
               "has lambda and iterations tuned per task family on 128x128 "
               "centre crops of the development images (HQS_TUNED in learnreg/restore/pnp_defaults.py, "
               "tuning-pnp-hqs.json); pnp-admm's denoiser level and weight tuned the same way (40 iterations, "
               "ADMM_TUNED, tuning-pnp-admm.json); pnp-fb's denoiser level and step likewise (40 iterations, "
               "FB_TUNED, tuning-pnp-fb.json). Noise-free settings "
               "end with one exact-data step (consistency 1e4, no network call).",
               f"`{UNROLLED_PNP}`: pnp-hqs with `drunet-gray-wide-unrolled`, the wide denoiser fine-tuned end to "
               "end inside 5 unrolled HQS iterations on random dead-leaves problems (deblurring, SR x1/x2/x4, "
               "completion; never x3, never these images), run with the schedule it was trained with (5 iterations, "
               "lambda 0.1, last level max(sigma_n, 0.02), the last two iterations by the Gaussian drunet-gray-wide-ft), "
               "each call averaged over the 8 rotations / reflections (40 evaluations), bfloat16. The finishing step "
               "and the last level were chosen from probes of a pilot network on the x3 bicubic, noise 0.01 setting "
               "of these crops (docs/pnp-x3-bicubic.md); nothing else was tuned on these settings."),
    ),
}


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; valid suites: {', '.join(sorted(SUITES))}, timing, dsrnett, rg")
    return SUITES[name]
