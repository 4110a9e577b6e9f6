"""Shipped network weights: ``learnreg.hub.load(name)``, ``list_models()``, ``read_record``, ``save_weights``.

A thin re-export of :mod:`learnreg.learned.hub`, where the documentation lives.
"""

from learnreg.learned.hub import list_models, load, read_record, save_weights

__all__ = ["list_models", "load", "read_record", "save_weights"]
