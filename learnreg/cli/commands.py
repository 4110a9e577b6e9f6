"""Subcommands. Each parses its arguments and calls library functions; no logic lives only here."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


class UserError(Exception):
    """A problem with the user's input, printed without a traceback."""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


# -- degrade -------------------------------------------------------------------
DEGRADE_EXAMPLES = """examples:
  learnreg degrade clean.png --operator blur:gaussian:2.0 --noise gaussian:0.01 --seed 0 --out y.png --spec y.json
  learnreg degrade clean.png --operator sr:4:bicubic --noise gaussian:0.01 --out y.png --spec y.json
  learnreg degrade clean.png --operator inpaint:random:0.8 --noise none --out y.png --spec y.json
  learnreg degrade depth.npy --depth --operator sr:4:box --out lr.npy --spec lr.json

Operator specs: identity | blur:gaussian:SIGMA[:SIZE] | blur:uniform:K | blur:kernel:K.npy |
  sr:FACTOR:bicubic | sr:FACTOR:box | sr:FACTOR:nearest | sr:FACTOR:gaussian:SIGMA | sr:FACTOR:kernel:K.npy |
  inpaint:random:FRACTION | inpaint:box:FRACTION | inpaint:mask:M.png
Noise specs (on the [0, 1] scale): none | gaussian:SIGMA | poisson:PEAK | poisson-gaussian:PEAK:SIGMA
Save y as .npy, .pfm or 32-bit .tif to keep negative noisy values and full precision; PNG clips to [0, 1].
Depth maps (--depth) keep their own units; noise levels are then in those units, and 16-bit PNG stores
round(depth * --depth-scale), so prefer .npy/.pfm/.tif for depth in [0, 1]."""


def _register_degrade(sub) -> None:
    p = sub.add_parser("degrade", help="simulate measurements y = A(x) + n from a clean image",
                       epilog=DEGRADE_EXAMPLES, formatter_class=_formatter)
    p.add_argument("clean", help="clean image (PNG, JPEG, TIFF, .npy, .pfm)")
    p.add_argument("--operator", required=True, metavar="SPEC", help="forward operator spec (see below)")
    p.add_argument("--noise", default="none", metavar="SPEC", help="noise spec (default: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and of random masks (default 0)")
    p.add_argument("--mode", choices=["gray", "rgb"], default=None, help="convert the clean image first")
    _add_depth_options(p)
    p.add_argument("--out", required=True, help="where to write y")
    p.add_argument("--spec", required=True, help="where to write the JSON spec (arrays are saved beside it)")
    p.add_argument("--force", action="store_true", help="replace existing outputs (never an input)")
    p.set_defaults(run=run_degrade)


def run_degrade(args) -> int:
    import torch

    from learnreg.data.io import check_output_path, read_depth, read_image, write_image
    from learnreg.physics.spec import Degradation

    protect = [args.clean]
    for path in (args.out, args.spec):
        check_output_path(path, force=args.force, protect=protect)
    if args.depth and args.mode:
        raise UserError("--mode converts images; a depth map (--depth) has one channel, drop --mode")
    if args.depth_scale is not None and not args.depth:
        raise UserError("--depth-scale applies to depth maps; add --depth or drop --depth-scale")
    x = read_depth(args.clean, scale=args.depth_scale) if args.depth else read_image(args.clean, mode=args.mode)
    degradation = Degradation.from_strings(args.operator, args.noise, shape=tuple(x.shape[1:]), seed=args.seed)
    y = degradation.apply(x, torch.Generator().manual_seed(args.seed))
    if args.depth:
        _write_depth(args.out, y, scale=args.depth_scale, force=args.force, protect=protect)
    else:
        write_image(args.out, y, bit_depth=_bit_depth(args.out), force=args.force, protect=protect)
    degradation.save(args.spec, force=args.force)
    print(f"wrote {args.out} ({tuple(y.shape[1:])}) and {args.spec}: {degradation.describe()}")
    return 0


def _bit_depth(path: str) -> int:
    return 32 if Path(path).suffix.lower() in {".tif", ".tiff"} else 8


def _add_depth_options(p) -> None:
    p.add_argument("--depth", action="store_true",
                   help="files are depth maps in their own units (one channel; .npy, .pfm, .tif, 16-bit .png)")
    p.add_argument("--depth-scale", type=float, default=None, metavar="S",
                   help="16-bit PNG depth holds depth * S (e.g. 1000 for millimetres read as metres); default 1")


def _write_depth(path: str, depth, *, scale: float | None, force: bool, protect: list[str]) -> None:
    """``write_depth``, refusing a 16-bit PNG whose integer steps would flatten the depth map."""
    from learnreg.data.io import write_depth

    if Path(path).suffix.lower() == ".png":
        finite = depth[depth.isfinite()]
        span = float(finite.max() - finite.min()) if finite.numel() else 0.0
        levels = (span if span > 0 else float(finite.abs().max()) if finite.numel() else 0.0) * (scale or 1.0)
        if levels < 256:
            raise UserError(f"a 16-bit PNG stores round(depth * {scale or 1:g}), only {levels:.0f} levels for this "
                            "depth map; write .npy, .pfm or .tif instead, or pass --depth-scale (e.g. 10000)")
    write_depth(path, depth, scale=scale, force=force, protect=protect)


# -- restore -------------------------------------------------------------------
RESTORE_EXAMPLES = """examples:
  learnreg restore y.png --spec y.json --method tv --out x.png
  learnreg restore y.png --spec y.json --method tv --param weight=0.01 --param iterations=300 --out x.png
  learnreg restore y.png --spec y.json --method bicubic --out x.png --reference clean.png --compare side.png
  learnreg restore y.png --spec y.json --method tv --out x.png --reference clean.png --plot psnr.png
  learnreg restore y.png --spec y.json --method pnp-hqs --prior NAME --out x.png
  learnreg restore lr.npy --depth --spec lr.json --method guided-filter --guide rgb.png --out hr.npy
  learnreg restore lr.npy --depth --spec lr.json --method tv --out hr.npy --reference depth.npy --compare side.png

methods:
"""


def _register_restore(sub) -> None:
    from learnreg.restore import describe_methods

    p = sub.add_parser("restore", help="restore x from measurements y and their spec",
                       epilog=RESTORE_EXAMPLES + describe_methods(), formatter_class=_formatter)
    p.add_argument("measurements", help="measured image y")
    p.add_argument("--spec", required=True, help="JSON spec written by `learnreg degrade` (or by hand)")
    p.add_argument("--method", default="tv", help="restoration method (default tv; see below)")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="method parameter (repeatable)")
    p.add_argument("--prior", metavar="NAME", help="learned denoiser for pnp-hqs, pnp-admm, pnp-fb, red "
                                                   "(a name from `learnreg models`; default: auto)")
    p.add_argument("--guide", metavar="IMAGE", help="aligned high-resolution RGB guide of the restored size "
                                                     "(e.g. for guided-filter depth upsampling)")
    _add_depth_options(p)
    p.add_argument("--out", required=True, help="where to write the restored image")
    p.add_argument("--reference", help="clean image: print PSNR / SSIM, or RMSE_d / RMSE_v with --depth "
                                       "(never used to pick an iterate)")
    p.add_argument("--compare", metavar="PNG",
                   help="write a side-by-side picture (measurements, restoration, reference; "
                        "depth maps with their renderings under --depth)")
    p.add_argument("--plot", metavar="PNG",
                   help="write the PSNR-versus-iteration curve (needs --reference; images only)")
    p.add_argument("--bit-depth", type=int, choices=[8, 16], default=8, help="PNG/TIFF bit depth of the output")
    p.add_argument("--force", action="store_true", help="replace existing outputs (never an input)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_restore)


def run_restore(args) -> int:
    from learnreg.data.io import check_output_path, read_depth, read_image, write_image
    from learnreg.metrics import psnr, ssim
    from learnreg.physics.spec import Degradation
    from learnreg.restore import Problem, restore

    protect = [p for p in (args.measurements, args.spec, args.reference, args.guide) if p]
    outputs = [p for p in (args.out, args.compare, args.plot) if p]
    for path in outputs:
        check_output_path(path, force=args.force, protect=protect)
    if args.plot and not args.reference:
        raise UserError("--plot needs --reference (the PSNR curve is measured against it)")
    if args.plot and args.depth:
        raise UserError("--plot draws PSNR curves of images; it does not apply to depth maps (--depth), drop --plot")
    if args.depth_scale is not None and not args.depth:
        raise UserError("--depth-scale applies to depth maps; add --depth or drop --depth-scale")
    params = list(args.param)
    if args.prior:
        from learnreg.restore.methods import get_method

        if "prior" not in get_method(args.method).parameters:
            raise UserError(f"--prior applies to methods with a learned prior (e.g. pnp-hqs); {args.method} has none")
        params.append(f"prior={args.prior}")
    degradation = Degradation.load(args.spec)
    operator = degradation.build_operator()
    if args.depth:
        if operator.in_shape[0] != 1:
            raise UserError(f"--depth needs a one-channel spec, {args.spec} is for {operator.in_shape[0]} channels; "
                            "make it with `learnreg degrade DEPTH --depth`")
        y = read_depth(args.measurements, scale=args.depth_scale)
        reference = read_depth(args.reference, scale=args.depth_scale) if args.reference else None
    else:
        mode = "gray" if operator.in_shape[0] == 1 else "rgb"
        y = read_image(args.measurements, mode=mode)
        reference = read_image(args.reference, mode=mode) if args.reference else None
    if reference is not None and tuple(reference.shape[1:]) != operator.in_shape:
        raise UserError(f"reference has shape {tuple(reference.shape[1:])}, the spec says {operator.in_shape}")
    guide = read_image(args.guide, mode="rgb") if args.guide else None
    if guide is not None and tuple(guide.shape[2:]) != operator.in_shape[1:]:
        height, width = operator.in_shape[1:]
        raise UserError(f"--guide {args.guide} is {guide.shape[2]}x{guide.shape[3]} but the restored image is "
                        f"{height}x{width} (the spec's input size); "
                        f"pass --guide with an image of size {height}x{width}")
    problem = Problem(y, operator, sigma=degradation.sigma, guide=guide)
    bars: list = []  # the progress bar opens at the first iteration, so errors raised before it print cleanly

    def callback(state, history):
        if args.quiet:
            return
        if not bars:
            from tqdm import tqdm

            bars.append(tqdm(desc=args.method, unit="it", leave=False, file=sys.stderr))
        bars[0].update(1)
        if history.psnr:
            bars[0].set_postfix(psnr=f"{history.psnr[-1]:.2f}")

    # the PSNR history is an image metric: depth runs record none
    try:
        result = restore(problem, args.method, params=params, reference=None if args.depth else reference,
                         callback=callback)
    finally:
        for bar in bars:
            bar.close()
    if result.status == "diverged":
        raise UserError(f"{args.method} diverged after {result.history.iterations} iterations; "
                        "nothing written. Lower the step size or raise the regularization weight (--param)")
    if args.depth:
        _write_depth(args.out, result.x, scale=args.depth_scale, force=args.force, protect=protect)
    else:
        write_image(args.out, result.x, bit_depth=args.bit_depth, force=args.force, protect=protect)
    line = f"{args.method}: {result.status}, {result.seconds:.2f} s"
    if result.history is not None:
        line += f", {result.history.iterations} iterations"
    if reference is not None and args.depth:
        from learnreg.metrics.depth import rmse, rmse_v

        error, shape = float(rmse(result.x, reference)), float(rmse_v(result.x, reference))
        line += f", RMSE_d {error:.4g} (depth units), RMSE_v {shape:.2f} (grey levels, pixel size 1/W)"
    elif reference is not None:
        p, s = float(psnr(result.x.clamp(0, 1), reference)), float(ssim(result.x.clamp(0, 1), reference))
        line += f", PSNR {p:.2f} dB, SSIM {s:.4f}"
    print(line)
    if args.compare and args.depth:
        from learnreg.restore.baselines import upsample_for_display
        from learnreg.viz import depth_panel

        panels = [("measurements", upsample_for_display(y, operator, clamp=False)), (args.method, result.x)]
        if reference is not None:  # first: it sets the colour range
            panels = [("reference", reference), panels[0], (f"{args.method} RMSE_d {error:.3g}", result.x)]
        depth_panel(args.compare, panels)
    elif args.compare:
        from learnreg.restore.baselines import upsample_for_display
        from learnreg.viz import side_by_side

        panels = [("measurements", upsample_for_display(y, operator)), (args.method, result.x.clamp(0, 1))]
        if reference is not None:
            panels[1] = (f"{args.method} {p:.2f} dB", panels[1][1])
            panels.append(("reference", reference))
        side_by_side(args.compare, panels)
    if args.plot:
        from learnreg.viz import psnr_curves

        if result.history is None or not result.history.psnr:
            raise UserError(f"method {args.method} is not iterative; there is no PSNR curve to plot")
        psnr_curves(args.plot, {args.method: (list(range(1, len(result.history.psnr) + 1)), result.history.psnr)})
    return 0


# -- bench ---------------------------------------------------------------------
def _register_bench(sub) -> None:
    p = sub.add_parser("bench", help="run a benchmark suite and write docs/benchmarks/SUITE.{md,json,png}",
                       epilog="examples:\n  learnreg bench classical\n  learnreg bench classical --methods tv,tikhonov --images camera,brick\n  learnreg bench timing\n  learnreg bench dsrnett --quick     # depth SR with NETT: Table 1 and baselines\n  learnreg bench rg                  # regularizing gradients: Willingham et al. Tables 1-2, acceleration",
                       formatter_class=_formatter)
    p.add_argument("suite", help="suite name (classical, denoising, pnp, timing, dsrnett, rg)")
    p.add_argument("--images", help="comma-separated development image names, or a folder of images")
    p.add_argument("--methods", help="comma-separated methods (default: the suite's)")
    p.add_argument("--out-dir", default="docs/benchmarks", help="report folder (default docs/benchmarks)")
    p.add_argument("--quick", action="store_true", help="one image, fewer settings: a smoke run")
    p.set_defaults(run=run_bench)


def run_bench(args) -> int:
    from learnreg.bench import run_suite

    if args.suite == "dsrnett":
        if args.images or args.methods:
            raise UserError("dsrnett renders its own test scenes and runs fixed methods; drop --images/--methods "
                            "(see python -m learnreg.bench.depth --help for its options)")
        from learnreg.bench.depth import main as run_dsrnett

        return run_dsrnett(["--out-dir", args.out_dir] + (["--quick"] if args.quick else []))
    if args.suite == "rg":
        if args.methods:
            raise UserError("rg runs the paper's fixed methods; drop --methods (see python -m learnreg.bench.rg --help)")
        from learnreg.bench.rg import main as run_rg

        quick_default = args.quick and args.out_dir == "docs/benchmarks"  # a smoke run never overwrites the report
        return run_rg(([] if quick_default else ["--out-dir", args.out_dir])
                      + (["--images", args.images] if args.images else []) + (["--quick"] if args.quick else []))

    methods = args.methods.split(",") if args.methods else None
    report = run_suite(args.suite, images=args.images, methods=methods, out_dir=args.out_dir, quick=args.quick, progress=True)
    print(report.markdown_path.read_text() if report.markdown_path else "")
    return 0


# -- train ---------------------------------------------------------------------
TRAIN_EXAMPLES = """examples:
  learnreg train recipes/denoiser-gray.yaml
  learnreg train recipes/denoiser-gray.yaml --resume        # continue a killed run, bit for bit
  learnreg train recipes/denoiser-gray.yaml --steps 200 --output-dir /tmp/try   # a trial: ships nothing
  torchrun --nproc_per_node=2 -m learnreg.training recipes/denoiser-gray.yaml   # data-parallel"""


def _register_train(sub) -> None:
    from learnreg.training.__main__ import build_parser

    template = build_parser()
    p = sub.add_parser("train", help="train a network from a recipe (YAML)", epilog=TRAIN_EXAMPLES,
                       formatter_class=_formatter, description=template.description)
    for action in template._actions:  # reuse the training entry point's options exactly
        if action.dest != "help":
            p._add_action(action)
    p.set_defaults(run=run_train)


def run_train(args) -> int:
    from learnreg.training.__main__ import main as train_main

    argv = [args.recipe] + (["--resume"] if args.resume else []) + (["--no-ship"] if args.no_ship else [])
    argv += ["--ship"] if args.ship else []
    argv += ["--quiet"] if args.quiet else []
    for flag, value in (("--steps", args.steps), ("--output-dir", args.output_dir), ("--device", args.device)):
        if value is not None:
            argv += [flag, str(value)]
    return train_main(argv)


# -- demo ----------------------------------------------------------------------
def _register_demo(sub) -> None:
    p = sub.add_parser("demo", help="degrade a bundled image, restore it with the best shipped method, write a picture",
                       epilog="examples:\n  learnreg demo\n  learnreg demo --image brick --out-dir /tmp/demo",
                       formatter_class=_formatter)
    p.add_argument("--image", default="camera", help="bundled development image (default camera)")
    p.add_argument("--out-dir", default="out/demo", help="output folder (default out/demo)")
    p.set_defaults(run=run_demo)


def run_demo(args) -> int:
    from learnreg.bench.demo import run_demo as demo

    for line in demo(image=args.image, out_dir=args.out_dir):
        print(line)
    return 0


# -- models --------------------------------------------------------------------
def _register_models(sub) -> None:
    p = sub.add_parser("models", help="list the shipped learned priors")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run_models)


def run_models(args) -> int:
    try:
        from learnreg.hub import list_models
    except ImportError:
        list_models = lambda: []  # noqa: E731  (no learned priors in this build)
    models = list_models()
    if args.json:
        print(json.dumps(models, indent=2))
    elif not models:
        print("no learned priors shipped yet; classical methods: see `learnreg restore --help`")
    else:
        for m in models:
            print(f"{m['name']:24s} {m.get('architecture', '?'):10s} {(m.get('parameters') or 0)/1e6:5.2f}M  "
                  f"{(m.get('size') or 0)/1e6:5.1f} MB  {m.get('recipe') or '(no recipe)'}")
            print(f"    trained on: {m.get('training_data') or 'unknown'}")
            quality = "; ".join(q for q in (_regression_text(m.get("regression")),
                                            _validation_text(m.get("quality"))) if q)
            print(f"    quality: {quality or 'not recorded'}")
            if m.get("training"):
                print(f"    training: {_training_text(m['training'])}")
    return 0


def _training_text(training: dict) -> str:
    """Steps, wall time and throughput of the run that produced the weights, in words."""
    processes = training.get("processes") or 1
    where = f"{training.get('device', '?')}, {processes} process{'es' if processes > 1 else ''}"
    return (f"{training.get('steps', 0):,} steps in {training.get('wall_s', 0) / 60:.1f} min ({where}), "
            f"{training.get('patches_per_s', 0):.1f} patches/s")


def _regression_text(record: dict | None) -> str:
    """The fixed case a test checks the weights against, in words."""
    if not record:
        return ""
    if "psnr" in record and record.get("kind") == "pnp":
        return (f"pnp-hqs on {record['operator']}, {record['image']} {record['size']}x{record['size']}, noise "
                f"{record['sigma']:g}: {record['psnr']:.2f} dB (regression-tested)")
    if "psnr" in record:
        return (f"{record['image']} {record['size']}x{record['size']}, noise {record['sigma'] * 255:.0f}/255: "
                f"{record['psnr']:.2f} dB (regression-tested)")
    if "rmse_d" in record:
        return (f"{record['family']} scenes {record['size']}x{record['size']}, {record['iterations']} iterations: "
                f"RMSE_d {record['rmse_d']:.4f} (regression-tested)")
    return ""


def _validation_text(quality: dict | None) -> str:
    """The headline validation metric of training (``psnr`` or ``rmse_network``)."""
    validation = (quality or {}).get("validation") or {}
    for name, unit, digits in (("psnr", " dB", 2), ("rmse_network", "", 4)):
        if isinstance(validation.get(name), (int, float)):
            return f"validation {name} {validation[name]:.{digits}f}{unit}"
    return ""


REGISTRY = [_register_degrade, _register_restore, _register_train, _register_bench, _register_demo, _register_models]
