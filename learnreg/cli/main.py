"""``learnreg`` command line: thin subcommands over library functions."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from learnreg.cli import commands

EPILOG = """examples:
  learnreg demo
  learnreg degrade clean.png --operator blur:gaussian:2.0 --noise gaussian:0.01 --seed 0 --out y.png --spec y.json
  learnreg restore y.png --spec y.json --method tv --out x.png --reference clean.png --compare side.png
  learnreg bench classical
  learnreg models
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="learnreg",
        description="Restore images and depth maps with learned regularizers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch (default: all cores)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in commands.REGISTRY:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:  # the reader went away (`learnreg models | head`): not an error of ours
        # point stdout at devnull so that the interpreter's final flush does not fail again (Python docs, signal)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is no file (captured)
            pass
        return 0
    except (commands.UserError, ValueError, OSError, NotImplementedError) as error:
        # Library errors name the problem and the fix; show them without a traceback (-v shows it).
        if args.verbose:
            raise
        print(f"learnreg {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
