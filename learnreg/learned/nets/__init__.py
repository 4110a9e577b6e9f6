"""Network architectures, one self-contained file each, and a registry by name.

A network's configuration is a plain dict ``{"architecture": NAME, **fields}``
(:func:`network_config`), stored beside its weights; :func:`build_network`
turns it back into a module.

Examples
--------
>>> net = build_network({"architecture": "dncnn", "channels": 1, "depth": 5, "features": 8})
>>> network_config(net)["architecture"]
'dncnn'
"""

from __future__ import annotations

from typing import Any

from torch import nn

from learnreg.learned.nets.dncnn import DnCNN, DnCNNConfig
from learnreg.learned.nets.drunet import DRUNET_PRESETS, DRUNet, DRUNetConfig
from learnreg.learned.nets.msgnet import UMSGNet, UMSGNetConfig
from learnreg.learned.nets.nett_unet import NETTUNet, NETTUNetConfig
from learnreg.learned.nets.pair import RegularizerPair, RegularizerPairConfig

__all__ = [
    "ARCHITECTURES", "build_network", "network_config",
    "DRUNET_PRESETS", "DRUNet", "DRUNetConfig", "DnCNN", "DnCNNConfig",
    "NETTUNet", "NETTUNetConfig", "RegularizerPair", "RegularizerPairConfig", "UMSGNet", "UMSGNetConfig",
]

# name -> (config dataclass, module class)
ARCHITECTURES: dict[str, tuple[type, type[nn.Module]]] = {
    "drunet": (DRUNetConfig, DRUNet),
    "dncnn": (DnCNNConfig, DnCNN),
    "nett_unet": (NETTUNetConfig, NETTUNet),
    "umsgnet": (UMSGNetConfig, UMSGNet),
    "rg_pair": (RegularizerPairConfig, RegularizerPair),
}


def build_network(config: dict[str, Any]) -> nn.Module:
    """Build a network from ``{"architecture": NAME, **config fields}``.

    Raises
    ------
    ValueError
        A missing or unknown architecture (the message lists the valid ones),
        or unknown configuration keys.
    """
    fields = dict(config)
    name = fields.pop("architecture", None)
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; valid: {', '.join(ARCHITECTURES)} "
                         "(give it as config['architecture'])")
    config_class, module_class = ARCHITECTURES[name]
    return module_class(config_class.from_dict(fields))


def network_config(module: nn.Module) -> dict[str, Any]:
    """The JSON-safe dict that :func:`build_network` turns back into ``module``'s architecture."""
    for name, (_, module_class) in ARCHITECTURES.items():
        if type(module) is module_class:
            return {"architecture": name, **module.config.to_dict()}
    raise TypeError(f"{type(module).__name__} is not a registered architecture; "
                    f"registered: {', '.join(ARCHITECTURES)}")
