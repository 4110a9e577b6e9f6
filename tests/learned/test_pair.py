"""The regularizer pair (rg_pair): config round trips, registry, hub save and load."""

import json

import pytest
import torch

from learnreg.learned import hub
from learnreg.learned.nets import (
    ARCHITECTURES,
    DRUNet,
    DRUNetConfig,
    RegularizerPair,
    RegularizerPairConfig,
    build_network,
    network_config,
)

TINY = {"channels": 1, "widths": [4, 8], "blocks": 1}


def _pair(seed=0):
    generator = torch.Generator().manual_seed(seed)
    pair = RegularizerPair(RegularizerPairConfig.from_dict({"denoiser": TINY, "gradient": TINY}))
    with torch.no_grad():
        for parameter in pair.parameters():
            parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
    return pair


def test_config_fills_the_noise_maps_and_round_trips_through_json():
    config = RegularizerPairConfig.from_dict({"denoiser": TINY, "gradient": TINY})
    assert config.denoiser.noise_map and not config.gradient.noise_map and config.channels == 1
    data = json.loads(json.dumps(config.to_dict()))
    assert data["gradient"] == {**TINY, "noise_map": False, "residual": False}
    assert RegularizerPairConfig.from_dict(data) == config
    assert ARCHITECTURES["rg_pair"] == (RegularizerPairConfig, RegularizerPair)


def test_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="missing.*gradient"):
        RegularizerPairConfig.from_dict({"denoiser": TINY})
    with pytest.raises(ValueError, match="gradient G.x. takes no noise map; set noise_map: false"):
        RegularizerPairConfig.from_dict({"denoiser": TINY, "gradient": {**TINY, "noise_map": True}})
    with pytest.raises(ValueError, match="1 channels and the gradient 3"):
        RegularizerPairConfig.from_dict({"denoiser": TINY, "gradient": {**TINY, "channels": 3}})
    with pytest.raises(ValueError, match="unknown keys"):
        RegularizerPairConfig.from_dict({"denoiser": TINY, "gradient": TINY, "extra": 1})
    with pytest.raises(ValueError, match="denoiser.*unknown keys.*depth"):
        RegularizerPairConfig.from_dict({"denoiser": {**TINY, "depth": 3}, "gradient": TINY})


def test_forward_is_the_denoiser_and_the_halves_are_drunets():
    pair = _pair()
    x = torch.rand(2, 1, 12, 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(pair(x, 0.1), pair.denoiser(x, 0.1))
    assert pair.gradient(x).shape == x.shape
    assert isinstance(pair.gradient, DRUNet) and pair.gradient.config == DRUNetConfig(**{**TINY, "noise_map": False})


def test_build_network_and_hub_round_trip(tmp_path):
    pair = _pair()
    config = network_config(pair)
    assert config["architecture"] == "rg_pair"
    rebuilt = build_network(json.loads(json.dumps(config)))
    assert isinstance(rebuilt, RegularizerPair) and network_config(rebuilt) == config

    record = hub.save_weights(pair, tmp_path, "tiny-pair", config=config, metadata={"recipe": "test"})
    assert hub.read_record(record)["config"] == config
    loaded = hub.load(record)
    x = torch.rand(2, 1, 9, 11, generator=torch.Generator().manual_seed(2))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), pair.state_dict().values()))
    with torch.no_grad():  # hub.load makes CPU convolutions channels-last: equal up to float rounding
        assert torch.allclose(loaded(x, 0.2), pair(x, 0.2), rtol=1e-5, atol=1e-6)
        assert torch.allclose(loaded.gradient(x), pair.gradient(x), rtol=1e-5, atol=1e-5)
    assert [model["architecture"] for model in hub.list_models(directory=tmp_path)] == ["rg_pair"]
