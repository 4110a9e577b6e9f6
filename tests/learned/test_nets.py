"""Network architectures and the registry."""

from __future__ import annotations

import json

import pytest
import torch

from learnreg.learned.nets import (
    ARCHITECTURES,
    DRUNET_PRESETS,
    DnCNN,
    DnCNNConfig,
    DRUNet,
    DRUNetConfig,
    build_network,
    network_config,
)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# parameters of each preset, RGB with noise map; "full" is the paper's DRUNet (32,640,960)
PRESET_PARAMETERS = {"tiny": (0.1e6, 0.2e6), "small": (0.5e6, 0.65e6),
                     "medium": (1.8e6, 2.6e6), "full": (32_640_960, 32_640_960)}


@pytest.mark.parametrize("name", list(DRUNET_PRESETS))
def test_preset_parameter_counts(name):
    with torch.device("meta"):  # shapes only, no memory
        count = _count(DRUNet(DRUNetConfig.preset(name)))
    print(f"DRUNet {name}: {count:,} parameters")
    low, high = PRESET_PARAMETERS[name]
    assert low <= count <= high


def _tiny(**options) -> DRUNet:
    # parameters from a local generator: no global seeding
    net = DRUNet(DRUNetConfig.preset("tiny", **options))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))
    return net


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (1, 3, 13, 22), (2, 3, 7, 9), (1, 3, 1, 5)])
def test_drunet_any_size(shape):
    net = _tiny()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    assert net(x, 0.1).shape == shape
    assert net(x, torch.full((shape[0],), 0.1)).shape == shape


def test_drunet_is_bias_free_and_homogeneous():
    net = _tiny().double()
    assert all(not name.endswith("bias") for name, _ in net.named_parameters())
    x = torch.rand(2, 3, 13, 11, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert torch.equal(net(torch.zeros_like(x), 0.0), torch.zeros_like(x))  # D(0, 0) = 0 exactly
    # no biases => positively homogeneous in (x, sigma): D(a x, a sigma) = a D(x, sigma);
    # D(0, sigma) is NOT 0 for sigma > 0, the noise map is an input like any other
    torch.testing.assert_close(net(3 * x, 3 * 0.1), 3 * net(x, 0.1))
    gradient = _tiny(noise_map=False).double()
    assert torch.equal(gradient(torch.zeros_like(x)), torch.zeros_like(x))  # G(0) = 0
    torch.testing.assert_close(gradient(2.5 * x), 2.5 * gradient(x))


def test_drunet_pads_by_replication():
    # a 13 x 16 input is run as its 16 x 16 replicate-padded version, then cropped
    net = _tiny().double()
    x = torch.rand(1, 3, 13, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    padded = torch.nn.functional.pad(x, (0, 0, 0, 3), mode="replicate")
    torch.testing.assert_close(net(x, 0.1), net(padded, 0.1)[..., :13, :])


def test_sigma_forms():
    net = _tiny()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    reference = net(x, 0.2)
    for sigma in (torch.tensor(0.2), torch.full((2,), 0.2), torch.full((2, 1, 1, 1), 0.2),
                  torch.full((2, 1, 8, 8), 0.2)):
        torch.testing.assert_close(net(x, sigma), reference)
    with pytest.raises(ValueError, match="pass sigma"):
        net(x)
    with pytest.raises(ValueError, match="sigma must be"):
        net(x, torch.zeros(3))
    with pytest.raises(ValueError, match=r"x must be \(B, 3, H, W\)"):
        net(torch.zeros(1, 1, 8, 8), 0.1)


def test_dncnn_residual_learning_and_noise_map():
    config = DnCNNConfig(channels=1, depth=4, features=8)
    net = DnCNN(config)
    assert len([m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]) == 4
    x = torch.rand(2, 1, 9, 14, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(net(x, 0.3), x - net.layers(x))  # sigma ignored without a map
    mapped = DnCNN(DnCNNConfig(channels=3, depth=3, features=8, noise_map=True, batch_norm=True))
    assert mapped.layers[0].in_channels == 4
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in mapped.modules())
    assert mapped(torch.rand(1, 3, 5, 6), 0.1).shape == (1, 3, 5, 6)
    with pytest.raises(ValueError, match="pass sigma"):
        mapped(torch.rand(1, 3, 5, 6))
    with torch.device("meta"):
        print(f"DnCNN default: {_count(DnCNN(DnCNNConfig())):,} parameters")


@pytest.mark.parametrize("config", [
    {"architecture": "drunet", "channels": 1, "widths": [4, 8, 16], "blocks": 2, "noise_map": False,
     "residual": True},
    {"architecture": "dncnn", "channels": 3, "depth": 3, "features": 4, "batch_norm": True,
     "noise_map": True, "bias": False},
    {"architecture": "nett_unet", "channels": 1, "widths": [4, 8, 16], "negative_slope": 0.1,
     "residual": True, "bias": False},
    {"architecture": "umsgnet", "width": 6, "levels": 2, "lowpass_sigma": 1.5, "guide_channels": 3},
    {"architecture": "rg_pair", "denoiser": {"channels": 3, "widths": [4, 8], "blocks": 1, "noise_map": True,
                                             "residual": False},
     "gradient": {"channels": 3, "widths": [4, 8], "blocks": 0, "noise_map": False, "residual": False}},
])
def test_config_round_trip_through_json(config):
    net = build_network(config)
    saved = json.loads(json.dumps(network_config(net)))
    assert saved == config
    again = build_network(saved)
    assert type(again) is type(net) and again.config == net.config
    assert DRUNetConfig.from_dict(DRUNetConfig.preset("small").to_dict()) == DRUNetConfig.preset("small")


def test_registry_errors():
    assert set(ARCHITECTURES) == {"drunet", "dncnn", "nett_unet", "umsgnet", "rg_pair"}
    with pytest.raises(ValueError, match="unknown architecture 'unet'; valid: drunet, dncnn"):
        build_network({"architecture": "unet"})
    with pytest.raises(ValueError, match="unknown keys"):
        build_network({"architecture": "dncnn", "layers": 3})
    with pytest.raises(ValueError, match="unknown DRUNet preset 'huge'; valid: tiny, small"):
        DRUNetConfig.preset("huge")
    with pytest.raises(TypeError, match="not a registered architecture"):
        network_config(torch.nn.Conv2d(1, 1, 1))
