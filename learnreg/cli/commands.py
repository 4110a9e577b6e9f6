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

Operator specs: identity | blur:gaussian:SIGMA[:SIZE] | blur:uniform:K | blur:kernel:K.npy |
  sr:FACTOR:bicubic | sr:FACTOR:box | sr:FACTOR:nearest | sr:FACTOR:gaussian:SIGMA | sr:FACTOR:kernel:K.npy |
  inpaint:random:FRACTION | inpaint:box:FRACTION | inpaint:mask:M.png
Noise specs (on the [0, 1] scale): none | gaussian:SIGMA | poisson:PEAK | poisson-gaussian:PEAK:SIGMA
Save y as .npy, .pfm or 32-bit .tif to keep negative noisy values and full precision; PNG clips to [0, 1]."""


def _register_degrade(sub) -> None:
    p = sub.add_parser("degrade", help="simulate measurements y = A(x) + n from a clean image",
                       epilog=DEGRADE_EXAMPLES, formatter_class=_formatter)
    p.add_argument("clean", help="clean image (PNG, JPEG, TIFF, .npy, .pfm)")
    p.add_argument("--operator", required=True, metavar="SPEC", help="forward operator spec (see below)")
    p.add_argument("--noise", default="none", metavar="SPEC", help="noise spec (default: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and of random masks (default 0)")
    p.add_argument("--mode", choices=["gray", "rgb"], default=None, help="convert the clean image first")
    p.add_argument("--out", required=True, help="where to write y")
    p.add_argument("--spec", required=True, help="where to write the JSON spec (arrays are saved beside it)")
    p.add_argument("--force", action="store_true", help="replace existing outputs (never an input)")
    p.set_defaults(run=run_degrade)


def run_degrade(args) -> int:
    import torch

    from learnreg.data.io import check_output_path, read_image, write_image
    from learnreg.physics.spec import Degradation

    protect = [args.clean]
    for path in (args.out, args.spec):
        check_output_path(path, force=args.force, protect=protect)
    x = read_image(args.clean, mode=args.mode)
    degradation = Degradation.from_strings(args.operator, args.noise, shape=tuple(x.shape[1:]), seed=args.seed)
    y = degradation.apply(x, torch.Generator().manual_seed(args.seed))
    write_image(args.out, y, bit_depth=_bit_depth(args.out), force=args.force, protect=protect)
    degradation.save(args.spec, force=args.force)
    print(f"wrote {args.out} ({tuple(y.shape[1:])}) and {args.spec}: {degradation.describe()}")
    return 0


def _bit_depth(path: str) -> int:
    return 32 if Path(path).suffix.lower() in {".tif", ".tiff"} else 8


# -- restore -------------------------------------------------------------------
RESTORE_EXAMPLES = """examples:
  learnreg restore y.png --spec y.json --method tv --out x.png
  learnreg restore y.png --spec y.json --method tv --param weight=0.01 --param iterations=300 --out x.png
  learnreg restore y.png --spec y.json --method bicubic --out x.png --reference clean.png --compare side.png
  learnreg restore y.png --spec y.json --method tv --out x.png --reference clean.png --plot psnr.png
  learnreg restore y.png --spec y.json --method pnp-hqs --prior NAME --out x.png

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
    p.add_argument("--out", required=True, help="where to write the restored image")
    p.add_argument("--reference", help="clean image: print PSNR / SSIM (never used to pick an iterate)")
    p.add_argument("--compare", metavar="PNG", help="write a side-by-side picture (measurements, restoration, reference)")
    p.add_argument("--plot", metavar="PNG", help="write the PSNR-versus-iteration curve (needs --reference)")
    p.add_argument("--bit-depth", type=int, choices=[8, 16], default=8, help="PNG/TIFF bit depth of the output")
    p.add_argument("--force", action="store_true", help="replace existing outputs (never an input)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_restore)


def run_restore(args) -> int:
    from learnreg.data.io import check_output_path, read_image, write_image
    from learnreg.metrics import psnr, ssim
    from learnreg.physics.spec import Degradation
    from learnreg.restore import Problem, restore

    protect = [p for p in (args.measurements, args.spec, args.reference) if p]
    outputs = [p for p in (args.out, args.compare, args.plot) if p]
    for path in outputs:
        check_output_path(path, force=args.force, protect=protect)
    if args.plot and not args.reference:
        raise UserError("--plot needs --reference (the PSNR curve is measured against it)")
    params = list(args.param)
    if args.prior:
        from learnreg.restore.methods import get_method

        if "prior" not in get_method(args.method).parameters:
            raise UserError(f"--prior applies to methods with a learned prior (e.g. pnp-hqs); {args.method} has none")
        params.append(f"prior={args.prior}")
    degradation = Degradation.load(args.spec)
    operator = degradation.build_operator()
    mode = "gray" if operator.in_shape[0] == 1 else "rgb"
    y = read_image(args.measurements, mode=mode)
    reference = read_image(args.reference, mode=mode) if args.reference else None
    if reference is not None and tuple(reference.shape[1:]) != operator.in_shape:
        raise UserError(f"reference has shape {tuple(reference.shape[1:])}, the spec says {operator.in_shape}")
    problem = Problem(y, operator, sigma=degradation.sigma)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(desc=args.method, unit="it", leave=False, file=sys.stderr)

    def callback(state, history):
        if bar is not None:
            bar.update(1)
            if history.psnr:
                bar.set_postfix(psnr=f"{history.psnr[-1]:.2f}")

    result = restore(problem, args.method, params=params, reference=reference, callback=callback)
    if bar is not None:
        bar.close()
    if result.status == "diverged":
        raise UserError(f"{args.method} diverged after {result.history.iterations} iterations; "
                        "nothing written. Lower the step size or raise the regularization weight (--param)")
    write_image(args.out, result.x, bit_depth=args.bit_depth, force=args.force, protect=protect)
    line = f"{args.method}: {result.status}, {result.seconds:.2f} s"
    if result.history is not None:
        line += f", {result.history.iterations} iterations"
    if reference is not None:
        p, s = float(psnr(result.x.clamp(0, 1), reference)), float(ssim(result.x.clamp(0, 1), reference))
        line += f", PSNR {p:.2f} dB, SSIM {s:.4f}"
    print(line)
    if args.compare:
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
                       epilog="examples:\n  learnreg bench classical\n  learnreg bench classical --methods tv,tikhonov --images camera,brick\n  learnreg bench timing",
                       formatter_class=_formatter)
    p.add_argument("suite", help="suite name (classical, timing)")
    p.add_argument("--images", help="comma-separated development image names, or a folder of images")
    p.add_argument("--methods", help="comma-separated methods (default: the suite's)")
    p.add_argument("--out-dir", default="docs/benchmarks", help="report folder (default docs/benchmarks)")
    p.add_argument("--quick", action="store_true", help="one image, fewer settings: a smoke run")
    p.set_defaults(run=run_bench)


def run_bench(args) -> int:
    from learnreg.bench import run_suite

    methods = args.methods.split(",") if args.methods else None
    report = run_suite(args.suite, images=args.images, methods=methods, out_dir=args.out_dir, quick=args.quick, progress=True)
    print(report.markdown_path.read_text() if report.markdown_path else "")
    return 0


# -- train ---------------------------------------------------------------------
TRAIN_EXAMPLES = """examples:
  learnreg train recipes/denoiser-gray.yaml
  learnreg train recipes/denoiser-gray.yaml --resume        # continue a killed run, bit for bit
  learnreg train recipes/denoiser-gray.yaml --steps 200 --output-dir /tmp/try --no-ship
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
                  f"{(m.get('size') or 0)/1e6:5.1f} MB  {m.get('training_data', '')}  {m.get('quality', '')}")
    return 0


REGISTRY = [_register_degrade, _register_restore, _register_train, _register_bench, _register_demo, _register_models]
