"""Saving and loading shipped weights."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

import learnreg.hub
from learnreg.data.io import OverwriteError
from learnreg.learned import hub
from learnreg.learned.nets import DRUNet, DRUNetConfig, build_network, network_config

METADATA = {"recipe": "recipes/test.yaml", "training_data": "dead leaves 32^2",
            "quality": {"psnr": {"sigma25": 30.0}}}


def _network(seed: int = 0) -> DRUNet:
    net = DRUNet(DRUNetConfig(channels=1, widths=(4, 8), blocks=1))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
    return net


def test_round_trip_gives_identical_outputs(tmp_path):
    net = _network()
    record_path = hub.save_weights(net, tmp_path, "toy", config=network_config(net), metadata=METADATA)
    assert record_path == tmp_path / "toy.json"
    record = json.loads(record_path.read_text())
    data = (tmp_path / "toy.safetensors").read_bytes()
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["file_size"] == len(data)
    assert record["parameters"] == sum(p.numel() for p in net.parameters())
    assert record["recipe"] == "recipes/test.yaml"
    assert not data.startswith(b"\x80")  # not a pickle

    x = torch.rand(2, 1, 9, 7, generator=torch.Generator().manual_seed(1))
    for source in ("toy", tmp_path / "toy.json", tmp_path / "toy.safetensors", str(tmp_path / "toy")):
        loaded = hub.load(source, directory=tmp_path)
        assert not loaded.training
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values()))
        with torch.no_grad():  # channels-last on CPU: equal up to float rounding
            assert torch.allclose(loaded(x, 0.1), net(x, 0.1), rtol=1e-5, atol=1e-6)
    assert learnreg.hub.load is hub.load

    (models,) = hub.list_models(directory=tmp_path)
    assert models["name"] == "toy" and models["architecture"] == "drunet"
    assert models["parameters"] == record["parameters"] and models["size"] == len(data)
    assert models["training_data"] == "dead leaves 32^2" and models["quality"] == METADATA["quality"]


def test_corrupt_file_is_refused(tmp_path):
    net = _network()
    hub.save_weights(net, tmp_path, "toy", config=network_config(net), metadata=METADATA)
    path = tmp_path / "toy.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(hub.WeightsError,
                       match=r"weights file .*toy.safetensors is corrupt \(sha256 [0-9a-f]{64}, expected "
                             r"[0-9a-f]{64}\); reinstall or retrain with `learnreg train recipes/test.yaml`"):
        hub.load("toy", directory=tmp_path)


def test_unknown_names_and_bad_saves(tmp_path):
    net = _network()
    hub.save_weights(net, tmp_path, "alpha", config=network_config(net), metadata={})
    hub.save_weights(net, tmp_path, "beta", config=network_config(net), metadata={})
    with pytest.raises(ValueError, match=r"unknown model 'gamma'; available in .*: alpha, beta"):
        hub.load("gamma", directory=tmp_path)
    with pytest.raises(ValueError, match="unknown model 'gamma'"):
        learnreg.hub.load("gamma")
    with pytest.raises(FileNotFoundError, match="no weights record"):
        hub.load(tmp_path / "missing.json")
    with pytest.raises(OverwriteError, match="already exists"):
        hub.save_weights(net, tmp_path, "alpha", config=network_config(net), metadata={})
    hub.save_weights(net, tmp_path, "alpha", config=network_config(net), metadata={}, force=True)
    other = network_config(build_network({"architecture": "dncnn", "channels": 1, "depth": 3, "features": 4}))
    with pytest.raises(hub.WeightsError, match="does not match config"):
        hub.save_weights(net, tmp_path, "gamma", config=other, metadata={})
    with pytest.raises(ValueError, match=r"metadata keys \['sha256'\] are computed"):
        hub.save_weights(net, tmp_path, "gamma", config=network_config(net), metadata={"sha256": "x"})
    with pytest.raises(ValueError, match="name '../up'"):
        hub.save_weights(net, tmp_path, "../up", config=network_config(net), metadata={})
    assert not (tmp_path / "gamma.json").exists() and not (tmp_path / "gamma.safetensors").exists()


def test_package_directory_lists_shipped_models():
    models = learnreg.hub.list_models()
    assert all({"name", "architecture", "parameters", "size", "training_data", "quality"} <= set(m)
               for m in models)
