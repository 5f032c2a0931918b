"""The contract every operation shares, independent of the numbers: the exact
signatures, dtype and namespace kept (float32 and float64), stable return types;
plus the behaviour that finite differences and PyTorch cannot pin down (dropout
masks, numerical stability of the cross-entropy, the output-size helper)."""

from __future__ import annotations

import inspect

import array_api_compat
import numpy as np
import pytest

import cnnbook.functional as Fn

SIGNATURES = {
    "conv2d_forward": "(x, w, b=None, stride=1, padding=0, dilation=1, groups=1)",
    "conv2d_backward": "(dy, cache)",
    "conv2d_naive": "(x, w, b=None, stride=1, padding=0, dilation=1)",
    "max_pool2d_forward": (
        "(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False)"
    ),
    "max_pool2d_backward": "(dy, cache)",
    "avg_pool2d_forward": (
        "(x, kernel_size, stride=None, padding=0, ceil_mode=False,"
        " count_include_pad=True)"
    ),
    "avg_pool2d_backward": "(dy, cache)",
    "relu_forward": "(x)",
    "sigmoid_forward": "(x)",
    "tanh_forward": "(x)",
    "leaky_relu_forward": "(x, negative_slope=0.01)",
    "relu_backward": "(dy, cache)",
    "linear_forward": "(x, w, b=None)",
    "linear_backward": "(dy, cache)",
    "softmax_cross_entropy": (
        "(logits, targets, weight=None, ignore_index=-100, reduction='mean',"
        " label_smoothing=0.0)"
    ),
    "mse_loss": "(pred, target, reduction='mean')",
    "gelu_forward": "(x, approximate='none')",
    "softmax": "(z, dim=-1)",
    "log_softmax": "(z, dim=-1)",
    "batch_norm_forward": (
        "(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1,"
        " eps=1e-05)"
    ),
    "batch_norm_backward": "(dy, cache)",
    "dropout_forward": "(x, p, training=True, rng=None)",
    "dropout_backward": "(dy, cache)",
    "conv_output_size": "(size, kernel, stride=1, padding=0, dilation=1)",
}


@pytest.mark.parametrize("name", SIGNATURES)
def test_signature(name):
    sig = inspect.signature(getattr(Fn, name))
    plain = sig.replace(
        parameters=[p.replace(annotation=p.empty) for p in sig.parameters.values()],
        return_annotation=sig.empty,
    )
    assert str(plain) == SIGNATURES[name]
    assert name in Fn.__all__


def same_namespace(a, backend) -> bool:
    return array_api_compat.array_namespace(a).__name__ == backend.xp.__name__


def randn(backend, *shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return backend.asarray(rng.standard_normal(shape), dtype)


def cases(backend, dtype):
    """name -> (forward(), backward or None): small calls of every operation."""

    def r(*shape, seed=0):
        return randn(backend, *shape, dtype=dtype, seed=seed)

    def bn(training):
        return lambda: Fn.batch_norm_forward(
            r(4, 3, 2, 2), r(3, seed=1), r(3, seed=2), r(3, seed=3),
            backend.asarray(np.ones(3), dtype), training=training,
        )  # fmt: skip

    return {
        "conv2d": (
            lambda: Fn.conv2d_forward(r(2, 3, 6, 5), r(4, 3, 3, 2), r(4), 2, 1),
            Fn.conv2d_backward,
        ),
        "conv2d_nobias": (
            lambda: Fn.conv2d_forward(r(1, 1, 4, 4), r(2, 1, 2, 2)),
            Fn.conv2d_backward,
        ),
        "max_pool2d": (
            lambda: Fn.max_pool2d_forward(r(2, 3, 6, 6), 2),
            Fn.max_pool2d_backward,
        ),
        "avg_pool2d": (
            lambda: Fn.avg_pool2d_forward(r(2, 3, 6, 6), 3, 1, 1),
            Fn.avg_pool2d_backward,
        ),
        "relu": (lambda: Fn.relu_forward(r(3, 4)), Fn.relu_backward),
        "sigmoid": (lambda: Fn.sigmoid_forward(r(3, 4)), Fn.sigmoid_backward),
        "tanh": (lambda: Fn.tanh_forward(r(3, 4)), Fn.tanh_backward),
        "leaky_relu": (lambda: Fn.leaky_relu_forward(r(3, 4)), Fn.leaky_relu_backward),
        "linear": (
            lambda: Fn.linear_forward(r(3, 4), r(2, 4), r(2)),
            Fn.linear_backward,
        ),
        "linear_nobias": (
            lambda: Fn.linear_forward(r(3, 4), r(2, 4)),
            Fn.linear_backward,
        ),
        "batch_norm_train": (bn(True), Fn.batch_norm_backward),
        "batch_norm_eval": (bn(False), Fn.batch_norm_backward),
        "dropout": (
            lambda: Fn.dropout_forward(r(3, 4), 0.5, rng=0),
            Fn.dropout_backward,
        ),
        "dropout_eval": (
            lambda: Fn.dropout_forward(r(3, 4), 0.5, training=False),
            Fn.dropout_backward,
        ),
    }


OPS = list(cases(None, None))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("op", OPS)
def test_dtype_and_namespace_kept(backend, op, dtype):
    forward, backward = cases(backend, dtype)[op]
    y, cache = forward()
    assert same_namespace(y, backend) and backend.to_numpy(y).dtype == dtype
    dy = randn(backend, *y.shape, dtype=dtype, seed=9)
    grads = backward(dy, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for g in grads:
        if op.endswith("nobias") and g is grads[-1]:
            assert g is None  # db is None when b is None
            continue
        assert same_namespace(g, backend) and backend.to_numpy(g).dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_losses_return_0d_arrays(backend, dtype):
    logits = randn(backend, 4, 3, dtype=dtype)
    t = backend.asarray(np.array([0, 2, 1, 2]))
    for loss, grad in [
        Fn.softmax_cross_entropy(logits, t),
        Fn.mse_loss(logits, randn(backend, 4, 3, dtype=dtype, seed=1)),
    ]:
        assert tuple(loss.shape) == () and same_namespace(loss, backend)
        assert backend.to_numpy(loss).dtype == dtype
        assert backend.to_numpy(grad).dtype == dtype and tuple(grad.shape) == (4, 3)
        float(backend.to_numpy(loss))


def test_cross_entropy_values(backend):
    logits = np.array([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0]])
    t = np.array([0, 2])
    loss, grad = Fn.softmax_cross_entropy(backend.asarray(logits), backend.asarray(t))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = -np.log(p[[0, 1], t]).mean()
    assert float(backend.to_numpy(loss)) == pytest.approx(expected, rel=1e-14)
    onehot = np.eye(3)[t]
    np.testing.assert_allclose(backend.to_numpy(grad), (p - onehot) / 2, rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_cross_entropy_stable_for_huge_logits(backend, dtype):
    """log-sum-exp: finite and correct for logits of ±1e4."""
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]])
    t = np.array([1, 2, 0])
    loss, grad = Fn.softmax_cross_entropy(
        backend.asarray(logits, dtype), backend.asarray(t)
    )
    loss, grad = backend.to_numpy(loss), backend.to_numpy(grad)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    # sample 0: 2e4 nats; sample 1: 0; sample 2: log 2
    assert float(loss) == pytest.approx((2e4 + 0 + np.log(2)) / 3, rel=1e-6)
    np.testing.assert_allclose(
        grad,
        np.array([[1, -1, 0], [0, 0, 0], [-0.5, 0.5, 0]]) / 3,
        atol=1e-7,
    )


def test_mse_values(backend):
    pred, target = (
        np.array([[1.0, 2.0], [3.0, 5.0]]),
        np.array([[0.0, 2.0], [3.0, 3.0]]),
    )
    loss, grad = Fn.mse_loss(backend.asarray(pred), backend.asarray(target))
    assert float(backend.to_numpy(loss)) == pytest.approx(5 / 4)
    np.testing.assert_allclose(backend.to_numpy(grad), 2 * (pred - target) / 4)


# ----------------------------------------------------------------------------
# dropout
# ----------------------------------------------------------------------------
def test_dropout_inverted_scaling(backend):
    p = 0.3
    x = np.random.default_rng(0).uniform(1, 2, (50, 40))
    y, cache = Fn.dropout_forward(backend.asarray(x), p, rng=np.random.default_rng(1))
    y = backend.to_numpy(y)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-15)
    assert abs(kept.mean() - (1 - p)) < 0.03  # 2000 draws: 4.6 standard errors
    dy = np.random.default_rng(2).standard_normal(x.shape)
    dx = backend.to_numpy(Fn.dropout_backward(backend.asarray(dy), cache))
    np.testing.assert_allclose(dx, np.where(kept, dy / (1 - p), 0.0), rtol=1e-15)


def test_dropout_seeded_and_same_mask_on_every_backend(backend):
    x = np.ones((6, 7))
    a = backend.to_numpy(Fn.dropout_forward(backend.asarray(x), 0.5, rng=3)[0])
    b = backend.to_numpy(
        Fn.dropout_forward(backend.asarray(x), 0.5, rng=np.random.default_rng(3))[0]
    )
    ref = Fn.dropout_forward(x, 0.5, rng=3)[0]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, ref)


@pytest.mark.parametrize("p, training", [(0.5, False), (0.0, True)], ids=str)
def test_dropout_identity(backend, p, training):
    x = np.random.default_rng(0).standard_normal((3, 4))
    y, cache = Fn.dropout_forward(backend.asarray(x), p, training=training)
    np.testing.assert_array_equal(backend.to_numpy(y), x)
    dy = np.random.default_rng(1).standard_normal((3, 4))
    dx = Fn.dropout_backward(backend.asarray(dy), cache)
    np.testing.assert_array_equal(backend.to_numpy(dx), dy)


# ----------------------------------------------------------------------------
# batch norm modes, pooling defaults, the output-size helper
# ----------------------------------------------------------------------------
def test_batch_norm_eval_leaves_running_stats(backend):
    rm, rv = (
        backend.asarray(np.array([0.5, -1.0])),
        backend.asarray(np.array([2.0, 0.5])),
    )
    x = np.random.default_rng(0).standard_normal((5, 2))
    y, _ = Fn.batch_norm_forward(
        backend.asarray(x),
        backend.asarray(np.ones(2)),
        backend.asarray(np.zeros(2)),
        rm,
        rv,
        training=False,
    )
    np.testing.assert_array_equal(backend.to_numpy(rm), [0.5, -1.0])
    np.testing.assert_array_equal(backend.to_numpy(rv), [2.0, 0.5])
    expected = (x - [0.5, -1.0]) / np.sqrt(np.array([2.0, 0.5]) + 1e-5)
    np.testing.assert_allclose(backend.to_numpy(y), expected, rtol=1e-14)


def test_pool_stride_defaults_to_kernel(backend):
    x = backend.asarray(np.arange(36.0).reshape(1, 1, 6, 6))
    y, _ = Fn.max_pool2d_forward(x, 3)
    np.testing.assert_array_equal(backend.to_numpy(y)[0, 0], [[14, 17], [32, 35]])
    y, _ = Fn.avg_pool2d_forward(x, (2, 3))
    assert tuple(y.shape) == (1, 1, 3, 2)


@pytest.mark.parametrize(
    "args, expected",
    [
        ((32, 3), 30),
        ((32, 3, 1, 1), 32),
        ((32, 3, 2, 1), 16),
        ((7, 3, 2, 0), 3),
        ((28, 5, 1, 2, 2), 28 + 4 - 8 - 1 + 1),
        ((5, 5), 1),
    ],
)
def test_conv_output_size(args, expected):
    assert Fn.conv_output_size(*args) == expected
    assert type(Fn.conv_output_size(*args)) is int
