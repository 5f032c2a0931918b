"""The gradient-checking helpers themselves: they must pass correct backward
passes and, just as important, catch wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

import cnnbook.functional as Fn
from cnnbook.gradcheck import check, check_loss, numerical_gradient, rel_error


def randn(backend, *shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return backend.asarray(rng.standard_normal(shape), dtype)


# ----------------------------------------------------------------------------
# rel_error
# ----------------------------------------------------------------------------
def test_rel_error_values(backend):
    a = backend.asarray(np.array([1.0, 0.0]))
    b = backend.asarray(np.array([0.0, 1.0]))
    zero = backend.asarray(np.zeros(2))
    assert rel_error(a, a) == 0.0
    assert rel_error(a, b) == pytest.approx(np.sqrt(2) / 2, rel=1e-15)
    assert rel_error(a, zero) == 1.0
    assert rel_error(a, -a) == 1.0
    assert rel_error(zero, zero) == 0.0  # tiny denominator: no 0/0
    assert rel_error(a, b) == rel_error(b, a)
    assert isinstance(rel_error(a, b), float)


def test_rel_error_is_normwise():
    """A tiny entry dominated by rounding does not decide the error."""
    a = np.array([1e6, 1e-12])
    b = np.array([1e6, 2e-12])
    assert rel_error(a, b) < 1e-17


def test_rel_error_shape_mismatch():
    with pytest.raises(ValueError, match="rel_error"):
        rel_error(np.zeros(3), np.zeros(4))


# ----------------------------------------------------------------------------
# numerical_gradient
# ----------------------------------------------------------------------------
def test_numerical_gradient_of_cubic(backend):
    x_host = np.random.default_rng(1).standard_normal((3, 4))
    x = backend.asarray(x_host)
    xp = backend.xp

    def f(v):
        return xp.sum(v**3)

    g = numerical_gradient(f, x)
    assert isinstance(g, np.ndarray) and g.dtype == np.float64 and g.shape == (3, 4)
    # central differences are exact up to O(eps²) = 1e-12 for a cubic
    np.testing.assert_allclose(g, 3 * x_host**2, rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(backend.to_numpy(x), x_host)  # x left unchanged


def test_numerical_gradient_calls_f_on_the_same_backend(backend):
    x = backend.asarray(np.arange(3.0))
    seen = []

    def f(v):
        seen.append((type(v), backend.xp.isdtype(v.dtype, "real floating")))
        assert str(v.device) == str(x.device)
        return backend.xp.sum(v * v)

    np.testing.assert_allclose(numerical_gradient(f, x), [0.0, 2.0, 4.0], atol=1e-8)
    assert len(seen) == 6  # two evaluations per element
    assert all(t is type(x) and floating for t, floating in seen)


def test_numerical_gradient_eps():
    """A huge eps is visibly wrong for a cubic: the eps argument is used."""
    x = np.array([1.0])
    exact = numerical_gradient(lambda v: float((v**3).sum()), x)
    coarse = numerical_gradient(lambda v: float((v**3).sum()), x, eps=0.5)
    assert exact[0] == pytest.approx(3.0, rel=1e-9)
    assert coarse[0] == pytest.approx(3.0 + 0.25, rel=1e-12)  # 3x² + eps²


# ----------------------------------------------------------------------------
# check: correct backward passes pass
# ----------------------------------------------------------------------------
def test_check_conv_keys_and_errors(backend):
    x, w, b = randn(backend, 2, 3, 5, 4), randn(backend, 4, 3, 3, 2, seed=1), None
    errors = check(Fn.conv2d_forward, Fn.conv2d_backward, x, w, b, stride=2, padding=1)
    assert set(errors) == {"x", "w"}
    b = randn(backend, 4, seed=2)
    errors = check(Fn.conv2d_forward, Fn.conv2d_backward, x, w, b, dilation=(2, 1))
    assert set(errors) == {"x", "w", "b"}
    assert all(e < 1e-7 for e in errors.values()), errors
    assert all(isinstance(e, float) for e in errors.values())


def test_check_keyword_arrays(backend):
    """Arrays passed by keyword are checked too, named as the forward names them."""
    x, w = randn(backend, 3, 4), randn(backend, 2, 4, seed=1)
    errors = check(Fn.linear_forward, Fn.linear_backward, x, w=w, b=randn(backend, 2))
    assert set(errors) == {"x", "w", "b"}
    assert max(errors.values()) < 1e-7


def test_check_single_gradient_and_float32(backend):
    """A backward returning one array; float32 input is checked in float64."""
    x = backend.asarray(np.array([[0.5, -1.0, 2.0], [-0.3, 0.7, -2.0]]), np.float32)
    errors = check(Fn.tanh_forward, Fn.tanh_backward, x)
    assert set(errors) == {"x"} and errors["x"] < 1e-7
    assert backend.to_numpy(x).dtype == np.float32  # the caller's array untouched


def test_check_batch_norm_skips_running_stats(backend):
    C = 3
    # x must not be drawn like check's dy (default_rng(0).normal): dy = x gives
    # dx = (γ/σ)(dy − mean dy − x̂·mean(dy x̂)) = 0, all rounding, no signal
    x = randn(backend, 8, C, seed=5)
    gamma, beta = randn(backend, C, seed=1), randn(backend, C, seed=2)
    rm, rv = backend.asarray(np.zeros(C)), backend.asarray(np.ones(C))
    errors = check(
        Fn.batch_norm_forward, Fn.batch_norm_backward, x, gamma, beta, rm, rv
    )
    assert set(errors) == {"x", "gamma", "beta"}
    assert max(errors.values()) < 1e-7
    # the caller's running statistics are not touched by the many evaluations
    np.testing.assert_array_equal(backend.to_numpy(rm), np.zeros(C))


def test_check_passes_keywords_to_forward(backend):
    """Every keyword goes to the forward pass, ``eps`` included (batch norm's
    own argument): check's signature is (forward, backward, *args, seed, **kwargs).
    """
    seen = {}

    def forward(x, eps=1e-5, momentum=0.1):
        seen.update(eps=eps, momentum=momentum)
        return Fn.relu_forward(x)

    check(forward, Fn.relu_backward, randn(backend, 3), eps=0.25, momentum=0.5)
    assert seen == {"eps": 0.25, "momentum": 0.5}


def test_check_seed(backend):
    x = randn(backend, 3, 4)
    a = check(Fn.sigmoid_forward, Fn.sigmoid_backward, x, seed=3)
    b = check(Fn.sigmoid_forward, Fn.sigmoid_backward, x, seed=3)
    assert a == b


# ----------------------------------------------------------------------------
# check: wrong backward passes are caught
# ----------------------------------------------------------------------------
def test_check_catches_scaled_gradient(backend):
    def relu_backward_doubled(dy, cache):
        return 2 * Fn.relu_backward(dy, cache)

    x = backend.asarray(np.array([[0.5, -1.0, 2.0], [-0.3, 0.7, 1.5]]))
    errors = check(Fn.relu_forward, relu_backward_doubled, x)
    assert errors["x"] == pytest.approx(1 / 3, rel=1e-6)  # |2g - g| / (|2g| + |g|)


def test_check_catches_the_wrong_argument(backend):
    """Only the broken gradient is flagged, under its argument's name."""

    def conv_backward_no_bias(dy, cache):
        dx, dw, db = Fn.conv2d_backward(dy, cache)
        return dx, dw, 0 * db + 1.0

    def conv_backward_flipped_w(dy, cache):
        dx, dw, db = Fn.conv2d_backward(dy, cache)
        return dx, backend.xp.flip(dw, axis=(2, 3)), db

    x, w, b = randn(backend, 2, 2, 5, 5), randn(backend, 3, 2, 3, 3, seed=1), None
    b = randn(backend, 3, seed=2)
    errors = check(Fn.conv2d_forward, conv_backward_no_bias, x, w, b)
    assert errors["x"] < 1e-7 and errors["w"] < 1e-7 and errors["b"] > 0.1
    errors = check(Fn.conv2d_forward, conv_backward_flipped_w, x, w, b)
    assert errors["x"] < 1e-7 and errors["w"] > 0.1 and errors["b"] < 1e-7


def test_check_catches_an_off_by_one_in_a_custom_op(backend):
    """A hand-written op with a classic mistake: d(x*w)/dw taken as x + 1."""

    def scale_forward(x, w):
        return x * w, (x, w)

    def scale_backward(dy, cache):
        x, w = cache
        return dy * w, dy * (x + 1.0)

    x, w = randn(backend, 4, 3), randn(backend, 4, 3, seed=1)
    errors = check(scale_forward, scale_backward, x, w)
    assert errors["x"] < 1e-9 and errors["w"] > 0.1


# ----------------------------------------------------------------------------
# check_loss
# ----------------------------------------------------------------------------
def test_check_loss_correct(backend):
    logits = randn(backend, 5, 4)
    targets = backend.asarray(np.array([0, 3, 1, 1, 2], dtype=np.int64))
    assert check_loss(Fn.softmax_cross_entropy, logits, targets) < 1e-7
    pred, target = randn(backend, 3, 2, 2), randn(backend, 3, 2, 2, seed=1)
    assert check_loss(Fn.mse_loss, pred, target) < 1e-7
    pred32 = randn(backend, 4, 3, dtype=np.float32)
    target32 = randn(backend, 4, 3, dtype=np.float32, seed=1)
    assert check_loss(Fn.mse_loss, pred32, target32) < 1e-7


def test_check_loss_catches_sum_instead_of_mean(backend):
    def mse_sum_grad(pred, target):
        loss, grad = Fn.mse_loss(pred, target)
        return loss, grad * pred.shape[0]  # gradient of the sum over the batch

    pred, target = randn(backend, 4, 3), randn(backend, 4, 3, seed=1)
    err = check_loss(mse_sum_grad, pred, target)
    assert err == pytest.approx(3 / 5, rel=1e-6)  # |4g - g| / (|4g| + |g|)
