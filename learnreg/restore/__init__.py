"""Restoration methods by name: the one entry point the CLI, the benchmarks and users share.

>>> from learnreg.restore import Problem, restore
>>> result = restore(problem, "tv")             # doctest: +SKIP
>>> result.x, result.history.status              # doctest: +SKIP
"""

from learnreg.restore.methods import METHODS, Method, Problem, Restoration, describe_methods, parse_params, restore

__all__ = ["METHODS", "Method", "Problem", "Restoration", "describe_methods", "parse_params", "restore"]
