"""``python -m learnreg.training RECIPE.yaml [--resume] [--steps N] [--output-dir D]``.

Also the entry point of data-parallel runs::

    torchrun --nproc_per_node=2 -m learnreg.training RECIPE.yaml

Every process parses the same arguments and calls :func:`learnreg.training.train`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from learnreg.training.config import ConfigError, load_config
from learnreg.training.loop import train


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (shared with ``learnreg train``)."""
    parser = argparse.ArgumentParser(
        prog="python -m learnreg.training",
        description="Train a network from a recipe (see recipes/README.md).",
    )
    parser.add_argument("recipe", help="the recipe, a YAML or JSON file")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in the output directory")
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's steps")
    parser.add_argument("--output-dir", default=None, help="override the recipe's output_dir")
    parser.add_argument("--device", default=None, help="override the recipe's device (cpu, cuda, auto)")
    parser.add_argument("--no-ship", action="store_true", help="do not export the final weights")
    parser.add_argument("--ship", action="store_true",
                        help="export the final weights even when --steps changes the recipe's step count "
                             "(such a run is otherwise a trial and leaves shipped weights alone)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    arguments = build_parser().parse_args(argv)
    rank = int(os.environ.get("RANK", "0") or 0)
    quiet = arguments.quiet or rank != 0
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    try:
        config = load_config(arguments.recipe)
        overrides = {key: value for key, value in (("steps", arguments.steps),
                                                   ("output_dir", arguments.output_dir),
                                                   ("device", arguments.device)) if value is not None}
        if arguments.no_ship and arguments.ship:
            raise ConfigError("--ship and --no-ship contradict each other; pass one of them")
        if arguments.no_ship:
            overrides["ship"] = None
        elif (config.ship and arguments.steps is not None and arguments.steps != config.steps
              and not arguments.ship):
            # a shortened (or lengthened) run is a trial: never replace the recipe's weights by surprise
            overrides["ship"] = None
            if rank == 0:
                print(f"note: --steps {arguments.steps} differs from the recipe's {config.steps}, so the weights "
                      f"{config.ship!r} are not replaced; pass --ship to export them anyway", file=sys.stderr)
        if overrides:
            config = dataclasses.replace(config, **overrides)
    except (ConfigError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        result = train(config, resume=arguments.resume, progress=not quiet,
                       recipe=arguments.recipe)
    except (ConfigError, FileExistsError, FloatingPointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if rank == 0 and not arguments.quiet:
        scores = ", ".join(f"{name} {value:.3f}" for name, value in result.metrics.items())
        print(f"done: step {result.step}, {result.patches_per_s:.1f} patches/s, {scores}; "
              f"log {result.log_path}" + (f"; weights {result.shipped}" if result.shipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
