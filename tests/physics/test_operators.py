"""Operator conformance (adjoint, prox, norm, Fourier normal) and closed forms against direct implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import torch
from skimage.transform import downscale_local_mean

from learnreg.physics import (
    Blur,
    Identity,
    Inpaint,
    LinearFromCallables,
    Pointwise,
    ResponseCurve,
    ShapeError,
    SuperResolution,
    bicubic_kernel,
    box_kernel,
    box_mask,
    check_adjoint,
    gaussian_kernel,
    load_kernel,
    load_mask,
    random_mask,
    uniform_kernel,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_kernel(shape: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) + 0.05


def _width_matrix(width_in: int, width_out: int) -> LinearFromCallables:
    matrix = torch.randn(width_in, width_out, generator=_generator(7), dtype=torch.float64)
    return LinearFromCallables(lambda x: x @ matrix.to(x), lambda y: y @ matrix.T.to(y),
                               (1, 5, width_in), (1, 5, width_out), check=True, name="width-matrix")


BLUR_SHAPE = (2, 17, 23)
_MASK = random_mask(BLUR_SHAPE[1:], 0.6, _generator(3))

CASES = {
    "identity": lambda: Identity((2, 5, 7)),
    "blur-gaussian": lambda: Blur(gaussian_kernel(1.2), BLUR_SHAPE),
    "blur-uniform-even": lambda: Blur(uniform_kernel(4), BLUR_SHAPE),
    "blur-asymmetric-4x7": lambda: Blur(_random_kernel((4, 7), 1), BLUR_SHAPE),
    "inpaint-random": lambda: Inpaint(_MASK, BLUR_SHAPE),
    "inpaint-box": lambda: Inpaint(box_mask(BLUR_SHAPE[1:], 0.33), BLUR_SHAPE),
    "blur@inpaint": lambda: Blur(gaussian_kernel(1.0), BLUR_SHAPE) @ Inpaint(_MASK, BLUR_SHAPE),
    "inpaint@blur": lambda: Inpaint(_MASK, BLUR_SHAPE) @ Blur(uniform_kernel(3), BLUR_SHAPE),
    "scaled-blur": lambda: 2.5 * Blur(gaussian_kernel(0.8), BLUR_SHAPE),
    "blur+identity": lambda: Blur(gaussian_kernel(0.8), BLUR_SHAPE) + Identity(BLUR_SHAPE),
    "sr@blur": lambda: SuperResolution("nearest", 2, (1, 14, 18)) @ Blur(_random_kernel((3, 2), 4), (1, 14, 18)),
    "sr-adjoint": lambda: SuperResolution("bicubic", 2, (1, 14, 18)).T,
    "callables": lambda: _width_matrix(9, 4),
}
for _factor in (2, 3, 4):
    _shape = (3, 7 * _factor, 9 * _factor)
    CASES[f"sr{_factor}-bicubic"] = lambda f=_factor, s=_shape: SuperResolution("bicubic", f, s)
    CASES[f"sr{_factor}-box"] = lambda f=_factor, s=_shape: SuperResolution("box", f, s)
    CASES[f"sr{_factor}-gaussian"] = lambda f=_factor, s=_shape: SuperResolution("gaussian", f, s, sigma=0.9)
    CASES[f"sr{_factor}-nearest"] = lambda f=_factor, s=_shape: SuperResolution("nearest", f, s)
    CASES[f"sr{_factor}-array-offset"] = lambda f=_factor, s=_shape: SuperResolution(
        _random_kernel((5, 4), f), f, s, offset=(f - 1, 1 % f))


@pytest.fixture(params=sorted(CASES), scope="module")
def operator(request):
    return CASES[request.param]()


def _dense(op) -> torch.Tensor:
    """The matrix of ``op``, shape (out_numel, in_numel), built from basis vectors on the smaller side."""
    n_in, n_out = math.prod(op.in_shape), math.prod(op.out_shape)
    if n_out <= n_in:
        basis = torch.eye(n_out, dtype=torch.float64).view(n_out, *op.out_shape)
        return op.adjoint(basis).reshape(n_out, n_in)
    basis = torch.eye(n_in, dtype=torch.float64).view(n_in, *op.in_shape)
    return op.forward(basis).reshape(n_in, n_out).T


def _random(shape, seed, dtype=torch.float64, batch=2):
    return torch.randn((batch, *shape), generator=_generator(seed), dtype=dtype)


def test_adjoint_is_exact_in_float64(operator):
    assert check_adjoint(operator) < 1e-6
    assert check_adjoint(operator, batch=1, generator=_generator(9)) < 1e-6


def test_float32_matches_float64(operator):
    x = _random(operator.in_shape, 1)
    y64 = operator(x)
    y32 = operator(x.float())
    assert y32.dtype == torch.float32 and y64.dtype == torch.float64
    assert float((y32.double() - y64).norm() / y64.norm()) < 1e-5
    z = _random(operator.out_shape, 2)
    assert operator.adjoint(z.float()).dtype == torch.float32


def test_prox_solves_its_optimality_condition_and_matches_cg(operator):
    v, y = _random(operator.in_shape, 3), _random(operator.out_shape, 4)
    for tau in (0.7, torch.tensor([0.3, 5.0], dtype=torch.float64)):
        x = operator.prox_data(v, y, tau)
        t = tau.view(-1, 1, 1, 1) if isinstance(tau, torch.Tensor) else tau
        # optimality of argmin_x tau/2 ||Ax - y||^2 + 1/2 ||x - v||^2
        residual = (x - v) + t * operator.adjoint(operator(x) - y)
        assert float(residual.norm() / v.norm()) < 1e-8
        if operator.prox_data_closed_form:
            reference = operator.prox_data_cg(v, y, tau, max_iter=2000, tol=1e-13)
            assert float((x - reference).norm() / reference.norm()) < 1e-5


def test_norm_matches_largest_singular_value(operator):
    expected = float(torch.linalg.matrix_norm(_dense(operator), ord=2))
    # exact for the closed forms; power iteration (stops when ||A||^2 changes by < 1e-6 per step,
    # which can be before convergence when the top eigenvalues cluster) otherwise
    assert operator.norm() == pytest.approx(expected, rel=1e-10 if operator.prox_data_closed_form else 5e-3)
    assert operator.norm() <= expected * (1 + 1e-10)


def test_normal_fourier_agrees_with_the_normal_operator(operator):
    eigenvalues = operator.normal_fourier()
    if eigenvalues is None:
        assert not isinstance(operator, (Identity, Blur))
        return
    _, height, width = operator.in_shape
    assert eigenvalues.shape in {(1, height, width // 2 + 1), (operator.in_shape[0], height, width // 2 + 1)}
    x = _random(operator.in_shape, 5)
    via_fourier = torch.fft.irfft2(eigenvalues * torch.fft.rfft2(x), s=(height, width))
    torch.testing.assert_close(via_fourier, operator.normal(x), rtol=0, atol=1e-12)


def test_dense_adjoint_is_the_transpose(operator):
    n_in, n_out = math.prod(operator.in_shape), math.prod(operator.out_shape)
    if max(n_in, n_out) > 1000:
        pytest.skip("dense check on the small cases only (check_adjoint covers the others)")
    forward = operator(torch.eye(n_in, dtype=torch.float64).view(n_in, *operator.in_shape)).reshape(n_in, n_out)
    adjoint = operator.adjoint(torch.eye(n_out, dtype=torch.float64).view(n_out, *operator.out_shape))
    torch.testing.assert_close(adjoint.reshape(n_out, n_in), forward.T, rtol=0, atol=1e-12)


# -- closed forms against independent implementations ------------------------------
@pytest.mark.parametrize("kernel_shape", [(3, 5), (4, 6), (1, 4)])
def test_blur_is_scipy_wrap_convolution(kernel_shape):
    x = np.random.default_rng(0).random((2, 9, 11))
    kernel = _random_kernel(kernel_shape, 2)
    y = Blur(kernel, (2, 9, 11))(torch.from_numpy(x)[None])[0].numpy()
    expected = np.stack([scipy.ndimage.convolve(channel, kernel, mode="wrap") for channel in x])
    np.testing.assert_allclose(y, expected, atol=1e-12)


def _keys(t: np.ndarray) -> np.ndarray:
    t = np.abs(t)
    return np.where(t <= 1, 1.5 * t**3 - 2.5 * t**2 + 1, np.where(t < 2, -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2, 0.0))


def _imresize_matrix(length: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB imresize's ``contributions`` (antialiased cubic, scale 1/factor), 1-based maths.

    Returns the (out, in) weight matrix and which outputs are interior (no boundary handling).
    """
    scale = 1.0 / factor
    width = 4.0 / scale
    outputs = np.arange(1, length // factor + 1)
    u = outputs / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    weights = scale * _keys(scale * (u[:, None] - indices))
    weights /= weights.sum(axis=1, keepdims=True)
    inside = ((indices >= 1) | (weights == 0)).all(1) & ((indices <= length) | (weights == 0)).all(1)
    matrix = np.zeros((outputs.size, length))
    for row in range(outputs.size):
        for index, weight in zip(indices[row], weights[row]):
            if 1 <= index <= length:
                matrix[row, int(index) - 1] += weight
    return matrix, inside


@pytest.mark.parametrize("factor,size", [(2, (24, 30)), (3, (27, 33)), (4, (48, 56))])
def test_bicubic_sr_matches_matlab_imresize_in_the_interior(factor, size):
    rows, columns = np.meshgrid(np.arange(size[0]), np.arange(size[1]), indexing="ij")
    x = np.sin(0.31 * rows) * np.cos(0.17 * columns) + 0.02 * rows
    y = SuperResolution("bicubic", factor, (1, *size))(torch.from_numpy(x)[None, None])[0, 0].numpy()
    row_matrix, row_inside = _imresize_matrix(size[0], factor)
    column_matrix, column_inside = _imresize_matrix(size[1], factor)
    expected = row_matrix @ x @ column_matrix.T
    assert row_inside.sum() >= 2 and column_inside.sum() >= 2
    np.testing.assert_allclose(y[np.ix_(row_inside, column_inside)], expected[np.ix_(row_inside, column_inside)],
                               atol=1e-12)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_box_sr_is_block_average_and_nearest_is_plain_decimation(factor):
    x = np.random.default_rng(factor).random((3, 5 * factor, 7 * factor))
    box = SuperResolution("box", factor, x.shape)(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(box, downscale_local_mean(x, (1, factor, factor)), atol=1e-12)
    nearest = SuperResolution("nearest", factor, x.shape)(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(nearest, x[:, ::factor, ::factor], atol=1e-12)
    assert SuperResolution(box_kernel(factor), factor, x.shape).offset == ((factor - 1) // 2,) * 2


def test_kernels_are_normalised_and_shaped():
    assert gaussian_kernel(2.0).shape == (13, 13) and gaussian_kernel(2.0, 25).shape == (25, 25)
    for kernel in (gaussian_kernel(1.3), gaussian_kernel(2.0, 8), uniform_kernel(5), bicubic_kernel(3),
                   bicubic_kernel(4), box_kernel(3)):
        assert kernel.dtype == np.float64 and kernel.sum() == pytest.approx(1.0, abs=1e-14)
        np.testing.assert_allclose(kernel, kernel.T)
    even = gaussian_kernel(1.0, 6)
    np.testing.assert_allclose(even, even[::-1, ::-1])  # symmetric about the geometric centre
    assert bicubic_kernel(4).shape == (16, 16) and bicubic_kernel(3).shape == (12, 12)
    assert not bicubic_kernel(3)[0].any() and gaussian_kernel(0).tolist() == [[1.0]]


def test_load_kernel_and_mask_formats_and_errors(tmp_path):
    from PIL import Image

    np.save(tmp_path / "k.npy", 2 * gaussian_kernel(1.0))
    assert load_kernel(tmp_path / "k.npy").sum() == pytest.approx(1.0)
    np.savetxt(tmp_path / "k.txt", uniform_kernel(3))
    np.testing.assert_allclose(load_kernel(tmp_path / "k.txt"), uniform_kernel(3))
    np.save(tmp_path / "bad.npy", np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="2-D"):
        load_kernel(tmp_path / "bad.npy")
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="NaN"):
        load_kernel(tmp_path / "nan.npy")
    np.save(tmp_path / "negative.npy", -np.ones((3, 3)))
    with pytest.raises(ValueError, match="positive sum"):
        load_kernel(tmp_path / "negative.npy")
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        load_kernel(tmp_path / "missing.npy")
    picture = np.zeros((6, 8), dtype=np.uint8)
    picture[:, :3] = 255
    Image.fromarray(picture).save(tmp_path / "m.png")
    mask = load_mask(tmp_path / "m.png")
    assert mask.dtype == torch.bool and mask.shape == (6, 8) and int(mask.sum()) == 18


def test_masks():
    mask = random_mask((10, 20), 0.8, _generator(0))
    assert mask.dtype == torch.bool and int((~mask).sum()) == 160
    assert torch.equal(mask, random_mask((10, 20), 0.8, _generator(0)))
    assert not torch.equal(mask, random_mask((10, 20), 0.8, _generator(1)))
    box = box_mask((30, 60), 0.33)
    assert int((~box).sum()) == 10 * 20 and not box[15, 30] and box[0, 0]
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        random_mask((4, 4), 1.5, _generator(0))
    with pytest.raises(ValueError, match="0 or 1"):
        Inpaint(np.full((4, 4), 0.5), (1, 4, 4))
    with pytest.raises(ValueError, match=r"\(4, 5\)"):
        Inpaint(np.ones((5, 4)), (1, 4, 5))


# -- nonlinear operators -------------------------------------------------------------
@pytest.mark.parametrize("op", [
    ResponseCurve((2, 3, 4)),
    ResponseCurve((2, 3, 4), gamma=1.8, saturation=0.7) @ Blur(uniform_kernel(3), (2, 3, 4)),
    Pointwise(lambda x: x + 0.3 * torch.sin(3 * x), (2, 3, 4), name="wiggle"),
])
def test_nonlinear_data_grad_matches_finite_differences(op):
    x = torch.rand((1, *op.in_shape), generator=_generator(0), dtype=torch.float64) * 1.4 - 0.2
    y = torch.rand((1, *op.out_shape), generator=_generator(1), dtype=torch.float64)
    gradient = op.data_grad(x, y)
    direction = torch.randn(x.shape, generator=_generator(2), dtype=torch.float64)
    step = 1e-6
    numeric = (op.data_value(x + step * direction, y) - op.data_value(x - step * direction, y)) / (2 * step)
    assert float((gradient * direction).sum()) == pytest.approx(float(numeric), rel=1e-6)


def test_response_curve_is_monotone_smooth_and_saturates():
    curve = ResponseCurve((1, 1, 401), gamma=2.2, saturation=1.0)
    x = torch.linspace(-0.5, 4.0, 401, dtype=torch.float64).view(1, 1, 1, -1)
    y = curve(x)
    assert bool((y.diff(dim=-1) > 0).all()) and float(y.max()) < 1.0
    # the slope at the junction 0, where autograd must take the gamma branch's derivative
    point = ResponseCurve((1, 1, 1), gamma=2.2)
    slope = point.data_grad(torch.zeros(1, 1, 1, 1, dtype=torch.float64), -torch.ones(1, 1, 1, 1, dtype=torch.float64))
    assert float(slope) == pytest.approx(point.epsilon ** (1 / 2.2 - 1) / 2.2, rel=1e-12)
    with pytest.raises(ValueError, match="gamma"):
        ResponseCurve((1, 2, 2), gamma=0)
    assert not curve.linear


# -- errors at the boundary -------------------------------------------------------------
def test_errors_name_the_problem():
    blur = Blur(gaussian_kernel(1.0), (3, 20, 24))
    with pytest.raises(ShapeError, match=r"\(B, 3, 20, 24\)"):
        blur(torch.zeros(1, 3, 20, 25))
    message = "kernel 31x31 is larger than the image 20x20; crop less or use a smaller kernel"
    with pytest.raises(ValueError, match=message):
        Blur(uniform_kernel(31), (1, 20, 20))
    with pytest.raises(ValueError, match="crop the image to 252x252, a multiple of 4"):
        SuperResolution("bicubic", 4, (3, 254, 255))
    with pytest.raises(ValueError, match="does not divide"):
        SuperResolution("nearest", 3, (1, 9, 10))
    with pytest.raises(ValueError, match="NaN"):
        Blur(np.array([[0.5, np.nan]]), (1, 8, 8))
    with pytest.raises(ValueError, match="valid kernels: bicubic, box, gaussian, nearest"):
        SuperResolution("lanczos", 2, (1, 8, 8))
    with pytest.raises(ValueError, match='sigma applies to the "gaussian" SR kernel only'):
        SuperResolution(gaussian_kernel(1.0), 2, (1, 8, 8), sigma=1.0)
    with pytest.raises(ValueError, match="needs sigma"):
        SuperResolution("gaussian", 2, (1, 8, 8))
    with pytest.raises(ValueError, match=r"offset .* \[0, 2\)"):
        SuperResolution("nearest", 2, (1, 8, 8), offset=2)
    with pytest.raises(ValueError, match="adjoint does not match"):
        LinearFromCallables(lambda x: 2 * x, lambda y: y, (1, 3, 3), (1, 3, 3), check=True)
    broken = LinearFromCallables(lambda x: x[..., :2], lambda y: y, (1, 3, 3), (1, 3, 3))
    with pytest.raises(ValueError, match="forward returned"):
        broken(torch.zeros(1, 1, 3, 3))


def test_spectra_are_cached_per_dtype():
    blur = Blur(gaussian_kernel(1.0), (1, 8, 8))
    x = torch.rand(1, 1, 8, 8)
    blur(x), blur(x.double()), blur(x)
    assert len(blur._buffers._casts) == 2
