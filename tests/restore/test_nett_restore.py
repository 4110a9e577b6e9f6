"""The nett and nett-network methods: weights records, schemes, guides, solvers, errors."""

import pytest
import torch

from learnreg.learned.hub import save_weights
from learnreg.learned.nets import NETTUNet, NETTUNetConfig, UMSGNet, UMSGNetConfig, network_config
from learnreg.physics.superres import SuperResolution
from learnreg.restore.methods import Problem, restore


def _ship(tmp_path, net, name, scheme, approximation="box-pinv"):
    metadata = {"training_config": {"task": {"name": "nett", "options": {"scheme": scheme,
                                                                        "approximation": approximation}}}}
    return str(save_weights(net, tmp_path, name, config=network_config(net), metadata=metadata))


def _problem(guide=False, size=16):
    generator = torch.Generator().manual_seed(0)
    depth = 0.5 + 0.3 * torch.rand(1, 1, size, size, generator=generator)
    operator = SuperResolution("box", 4, (1, size, size))
    return depth, Problem(operator(depth), operator, 0.0,
                          torch.rand(1, 3, size, size, generator=generator) if guide else None)


def test_network_alone_follows_the_scheme(tmp_path):
    torch.manual_seed(0)
    net = NETTUNet(NETTUNetConfig(widths=(4, 8)))
    residual = _ship(tmp_path, net, "residual", "residual")
    identity = _ship(tmp_path, net, "identity", "identity")
    depth, problem = _problem()
    x0 = problem.y.repeat_interleave(4, 2).repeat_interleave(4, 3)  # box pseudo-inverse = replication
    with torch.no_grad():
        out = net(x0 / problem.y.max()) * problem.y.max()
    got = restore(problem, "nett-network", params={"prior": residual}).x
    assert torch.allclose(got, x0 - out, atol=1e-6)
    got = restore(problem, "nett-network", params={"prior": identity}).x
    assert torch.allclose(got, out, atol=1e-6)


def test_nett_with_zero_weight_is_data_consistent_and_solvers_run(tmp_path):
    torch.manual_seed(0)
    prior = _ship(tmp_path, NETTUNet(NETTUNetConfig(widths=(4, 8))), "tiny", "identity", "bilinear")
    depth, problem = _problem()
    result = restore(problem, "nett", params={"prior": prior, "alpha": 0.0, "iterations": 3})
    assert torch.allclose(problem.operator(result.x), problem.y, atol=1e-5)  # step 1/||F||^2 projects
    for solver in ("incremental", "gd", "adam"):
        result = restore(problem, "nett", params={"prior": prior, "solver": solver, "iterations": 4,
                                                  "alpha": 1e-3, "depth_scale": 1.0})
        assert result.x.shape == depth.shape and result.status != "diverged"
    with pytest.raises(ValueError, match="unknown solver 'lbfgs'"):
        restore(problem, "nett", params={"prior": prior, "solver": "lbfgs"})


def test_guided_prior_needs_the_guide_and_other_models_are_refused(tmp_path):
    torch.manual_seed(0)
    prior = _ship(tmp_path, UMSGNet(UMSGNetConfig(width=4, levels=2)), "guided", "identity", "bicubic")
    _, problem = _problem(guide=True)
    assert restore(problem, "nett", params={"prior": prior, "iterations": 2}).x.shape == (1, 1, 16, 16)
    _, unguided = _problem(guide=False)
    with pytest.raises(ValueError, match="pass the RGB guide"):
        restore(unguided, "nett", params={"prior": prior})
    with pytest.raises(ValueError, match="is not a NETT depth prior"):
        restore(unguided, "nett", params={"prior": "drunet-gray"})
