"""Bad input gets a ValueError or TypeError that says what is wrong.

Each message starts with the operation's name and names the offending argument
and its shape or value: never an IndexError, a broadcasting error or a wrong
answer. Integer and boolean input where floats are needed is a TypeError. NaN
and inf in the data propagate as IEEE arithmetic says.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import cnnbook.functional as Fn

BAD = (ValueError, TypeError)


def number(v) -> str:
    """A regex for the number (or word) ``v``, not part of a longer one."""
    if isinstance(v, str):
        return rf"\b{re.escape(v)}\b"
    return rf"(?<![\d.]){re.escape(str(v))}(?![\d.])"


def shape_re(shape) -> str:
    """A regex for a shape written as (2, 3, 8, 8), (2,3,8,8) or 2x3x8x8."""
    if len(shape) == 1:
        return rf"\(?{number(shape[0])},?\)?"
    return r"\(?\s*" + r"\s*[,x×]\s*".join(number(v) for v in shape) + r"\s*\)?"


def check_message(err, op, names=(), shapes=(), values=()):
    """Assert the message of ``err`` starts with ``op`` and mentions everything."""
    msg = str(err.value)
    assert re.match(rf"{re.escape(op)}\b", msg), f"should start with {op!r}: {msg!r}"
    for name in names:
        assert re.search(rf"\b{re.escape(name)}\b", msg), f"no {name!r} in {msg!r}"
    for shape in shapes:
        assert re.search(shape_re(shape), msg), f"no shape {shape} in {msg!r}"
    for v in values:  # a tuple: any one of these values
        alts = v if isinstance(v, tuple) else (v,)
        assert any(re.search(number(a), msg) for a in alts), f"no {v!r} in {msg!r}"


def expect(exc, op, call, names=(), shapes=(), values=()):
    with pytest.raises(exc) as err:
        call()
    check_message(err, op, names, shapes, values)


def randn(backend, *shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return backend.asarray(rng.standard_normal(shape), dtype)


# ----------------------------------------------------------------------------
# convolution
# ----------------------------------------------------------------------------
CONVS = [
    pytest.param(
        lambda *a, **k: Fn.conv2d_forward(*a, **k), "conv2d_forward", id="fast"
    ),
    pytest.param(lambda *a, **k: Fn.conv2d_naive(*a, **k), "conv2d_naive", id="naive"),
]


@pytest.mark.parametrize("conv, op", CONVS)
def test_conv_wrong_ndim(backend, conv, op):
    x3, x4 = randn(backend, 3, 8, 8), randn(backend, 2, 3, 8, 8)
    w3, w4 = randn(backend, 4, 3, 3), randn(backend, 4, 3, 3, 3)
    expect(ValueError, op, lambda: conv(x3, w4), ["x"], [(3, 8, 8)])
    expect(ValueError, op, lambda: conv(x4, w3), ["w"], [(4, 3, 3)])


@pytest.mark.parametrize("conv, op", CONVS)
def test_conv_channel_mismatch(backend, conv, op):
    x, w = randn(backend, 2, 3, 8, 8), randn(backend, 4, 2, 3, 3)
    expect(ValueError, op, lambda: conv(x, w), ["x", "w"], [(2, 3, 8, 8), (4, 2, 3, 3)])


@pytest.mark.parametrize("conv, op", CONVS)
def test_conv_bias_shape(backend, conv, op):
    x, w, b = randn(backend, 2, 3, 8, 8), randn(backend, 4, 3, 3, 3), randn(backend, 5)
    expect(ValueError, op, lambda: conv(x, w, b), ["b"], [(5,)])


@pytest.mark.parametrize("conv, op", CONVS)
@pytest.mark.parametrize(
    "xs, ws, padding, dilation, kernel, size",
    [
        ((1, 1, 4, 4), (1, 1, 5, 5), 0, 1, 5, 4),
        ((1, 1, 2, 6), (1, 1, 5, 3), 1, 1, 5, (4, 2)),  # padded height 4 < 5
        ((1, 1, 6, 6), (1, 1, 2, 7), 0, 1, 7, 6),  # only the width is too small
        ((1, 1, 5, 5), (1, 1, 3, 3), 0, 3, (7, 3), 5),  # dilated kernel spans 7
    ],
    ids=["kernel5_on_4", "padded_height", "width_only", "dilated"],
)
def test_conv_kernel_larger_than_padded_input(
    backend, conv, op, xs, ws, padding, dilation, kernel, size
):
    x, w = randn(backend, *xs), randn(backend, *ws)
    expect(
        ValueError,
        op,
        lambda: conv(x, w, None, 1, padding, dilation=dilation),
        values=[kernel, size],
    )


@pytest.mark.parametrize("conv, op", CONVS)
@pytest.mark.parametrize(
    "kwargs, name, value",
    [
        ({"stride": 0}, "stride", 0),
        ({"stride": -2}, "stride", -2),
        ({"stride": (1, 0)}, "stride", 0),
        ({"padding": -1}, "padding", -1),
        ({"padding": (0, -2)}, "padding", -2),
        ({"dilation": 0}, "dilation", 0),
    ],
    ids=["stride0", "stride_neg", "stride_pair0", "pad_neg", "pad_pair_neg", "dil0"],
)
def test_conv_bad_hyperparameters(backend, conv, op, kwargs, name, value):
    x, w = randn(backend, 1, 2, 6, 6), randn(backend, 3, 2, 3, 3)
    expect(ValueError, op, lambda: conv(x, w, **kwargs), [name], values=[value])


@pytest.mark.parametrize("conv, op", CONVS)
@pytest.mark.parametrize("bad", ["x", "w", "b"])
@pytest.mark.parametrize("dtype", [np.int64, np.bool_], ids=["int", "bool"])
def test_conv_integer_or_bool_input(backend, conv, op, bad, dtype):
    arrays = {
        "x": np.ones((1, 2, 5, 5)),
        "w": np.ones((3, 2, 3, 3)),
        "b": np.ones(3),
    }
    args = {
        k: backend.asarray(v, dtype if k == bad else np.float64)
        for k, v in arrays.items()
    }
    expect(TypeError, op, lambda: conv(args["x"], args["w"], args["b"]), [bad])


@pytest.mark.parametrize("conv, op", CONVS)
def test_conv_dtype_mismatch(backend, conv, op):
    x = randn(backend, 1, 2, 5, 5, dtype=np.float32)
    w = randn(backend, 3, 2, 3, 3, dtype=np.float64)
    expect(BAD, op, lambda: conv(x, w), ["x", "w"], values=["float32", "float64"])


@pytest.mark.parametrize(
    "args, name, value",
    [
        ((8, 3, 0), "stride", 0),
        ((8, 3, -1), "stride", -1),
        ((8, 0), "kernel", 0),
        ((8, 3, 1, -1), "padding", -1),
        ((8, 3, 1, 0, 0), "dilation", 0),
    ],
    ids=["stride0", "stride_neg", "kernel0", "pad_neg", "dil0"],
)
def test_conv_output_size_bad_arguments(args, name, value):
    expect(
        ValueError,
        "conv_output_size",
        lambda: Fn.conv_output_size(*args),
        [name],
        values=[value],
    )


def test_conv_output_size_kernel_too_large():
    expect(
        ValueError, "conv_output_size", lambda: Fn.conv_output_size(3, 5), values=[5, 3]
    )


def test_conv_not_an_array(backend):
    w = randn(backend, 3, 2, 3, 3)
    expect(TypeError, "conv2d_forward", lambda: Fn.conv2d_forward([[1.0]], w), ["x"])


def test_conv_backward_dy_shape(backend):
    x, w = randn(backend, 2, 3, 8, 8), randn(backend, 4, 3, 3, 3)
    y, cache = Fn.conv2d_forward(x, w, None, 1, 1)
    assert tuple(y.shape) == (2, 4, 8, 8)
    for bad in [(2, 4, 6, 6), (2, 4, 8), (1, 4, 8, 8)]:
        dy = randn(backend, *bad)
        expect(
            ValueError,
            "conv2d_backward",
            lambda dy=dy: Fn.conv2d_backward(dy, cache),
            ["dy"],
            [bad, (2, 4, 8, 8)],
        )


# ----------------------------------------------------------------------------
# pooling
# ----------------------------------------------------------------------------
POOLS = [
    pytest.param(Fn.max_pool2d_forward, Fn.max_pool2d_backward, "max_pool2d", id="max"),
    pytest.param(Fn.avg_pool2d_forward, Fn.avg_pool2d_backward, "avg_pool2d", id="avg"),
]


@pytest.mark.parametrize("forward, backward, op", POOLS)
def test_pool_wrong_ndim(backend, forward, backward, op):
    x = randn(backend, 3, 6, 6)
    expect(ValueError, f"{op}_forward", lambda: forward(x, 2), ["x"], [(3, 6, 6)])


@pytest.mark.parametrize("forward, backward, op", POOLS)
@pytest.mark.parametrize(
    "args, name, value",
    [
        ((0,), "kernel_size", 0),
        (((2, -1),), "kernel_size", -1),
        ((2, 0), "stride", 0),
        ((2, (1, -3)), "stride", -3),
        ((2, 2, -1), "padding", -1),
    ],
    ids=["kernel0", "kernel_neg", "stride0", "stride_neg", "pad_neg"],
)
def test_pool_bad_hyperparameters(backend, forward, backward, op, args, name, value):
    x = randn(backend, 1, 2, 6, 6)
    expect(
        ValueError, f"{op}_forward", lambda: forward(x, *args), [name], values=[value]
    )


@pytest.mark.parametrize("forward, backward, op", POOLS)
def test_pool_kernel_larger_than_padded_input(backend, forward, backward, op):
    x = randn(backend, 1, 2, 3, 8)
    expect(ValueError, f"{op}_forward", lambda: forward(x, 4), values=[4, 3])
    # with padding 1 the 3-row image is 5 rows high, still short of 6
    expect(ValueError, f"{op}_forward", lambda: forward(x, 6, 1, 1), values=[6, (5, 3)])


@pytest.mark.parametrize("forward, backward, op", POOLS)
@pytest.mark.parametrize("dtype", [np.int32, np.bool_], ids=["int", "bool"])
def test_pool_integer_or_bool_input(backend, forward, backward, op, dtype):
    x = backend.asarray(np.ones((1, 1, 4, 4)), dtype)
    expect(TypeError, f"{op}_forward", lambda: forward(x, 2), ["x"])


@pytest.mark.parametrize("forward, backward, op", POOLS)
def test_pool_backward_dy_shape(backend, forward, backward, op):
    _, cache = forward(randn(backend, 2, 3, 6, 8), 2)
    dy = randn(backend, 2, 3, 3, 3)
    expect(
        ValueError,
        f"{op}_backward",
        lambda: backward(dy, cache),
        ["dy"],
        [(2, 3, 3, 3), (2, 3, 3, 4)],
    )


# ----------------------------------------------------------------------------
# activations
# ----------------------------------------------------------------------------
ACTIVATIONS = [
    pytest.param(Fn.relu_forward, Fn.relu_backward, "relu", id="relu"),
    pytest.param(Fn.sigmoid_forward, Fn.sigmoid_backward, "sigmoid", id="sigmoid"),
    pytest.param(Fn.tanh_forward, Fn.tanh_backward, "tanh", id="tanh"),
    pytest.param(
        Fn.leaky_relu_forward, Fn.leaky_relu_backward, "leaky_relu", id="leaky_relu"
    ),
]


@pytest.mark.parametrize("forward, backward, op", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.int64, np.bool_], ids=["int", "bool"])
def test_activation_integer_or_bool_input(backend, forward, backward, op, dtype):
    x = backend.asarray(np.ones((2, 3)), dtype)
    expect(TypeError, f"{op}_forward", lambda: forward(x), ["x"])


@pytest.mark.parametrize("forward, backward, op", ACTIVATIONS)
def test_activation_backward_dy_shape(backend, forward, backward, op):
    _, cache = forward(randn(backend, 2, 3))
    dy = randn(backend, 3, 2)
    expect(
        ValueError,
        f"{op}_backward",
        lambda: backward(dy, cache),
        ["dy"],
        [(3, 2), (2, 3)],
    )


# ----------------------------------------------------------------------------
# linear
# ----------------------------------------------------------------------------
def test_linear_wrong_ndim(backend):
    x, w = randn(backend, 4, 5), randn(backend, 3, 5, 1)
    expect(
        ValueError,
        "linear_forward",
        lambda: Fn.linear_forward(x, w),
        ["w"],
        [(3, 5, 1)],
    )


def test_linear_feature_mismatch(backend):
    x, w = randn(backend, 4, 5), randn(backend, 3, 6)
    expect(
        ValueError,
        "linear_forward",
        lambda: Fn.linear_forward(x, w),
        ["x", "w"],
        [(4, 5), (3, 6)],
    )


def test_linear_bias_shape(backend):
    x, w, b = randn(backend, 4, 5), randn(backend, 3, 5), randn(backend, 4)
    expect(
        ValueError, "linear_forward", lambda: Fn.linear_forward(x, w, b), ["b"], [(4,)]
    )


@pytest.mark.parametrize("dtype", [np.int64, np.bool_], ids=["int", "bool"])
def test_linear_integer_or_bool_input(backend, dtype):
    x, w = backend.asarray(np.ones((4, 5)), dtype), randn(backend, 3, 5)
    expect(TypeError, "linear_forward", lambda: Fn.linear_forward(x, w), ["x"])


def test_linear_dtype_mismatch(backend):
    x, w = (
        randn(backend, 4, 5, dtype=np.float64),
        randn(backend, 3, 5, dtype=np.float32),
    )
    expect(
        BAD,
        "linear_forward",
        lambda: Fn.linear_forward(x, w),
        ["x", "w"],
        values=["float64", "float32"],
    )


def test_linear_backward_dy_shape(backend):
    _, cache = Fn.linear_forward(randn(backend, 4, 5), randn(backend, 3, 5))
    dy = randn(backend, 4, 5)
    expect(
        ValueError,
        "linear_backward",
        lambda: Fn.linear_backward(dy, cache),
        ["dy"],
        [(4, 5), (4, 3)],
    )


# ----------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------
def targets(backend, values):
    return backend.asarray(np.asarray(values, dtype=np.int64))


def test_cross_entropy_wrong_ndim(backend):
    op = "softmax_cross_entropy"
    logits = randn(backend, 5)
    expect(
        ValueError,
        op,
        lambda: Fn.softmax_cross_entropy(logits, targets(backend, [1])),
        ["logits"],
        [(5,)],
    )
    t2 = backend.asarray(np.zeros((4, 1), dtype=np.int64))
    expect(
        ValueError,
        op,
        lambda: Fn.softmax_cross_entropy(randn(backend, 4, 3), t2),
        ["targets"],
        [(4, 1)],
    )


@pytest.mark.parametrize("bad", [5, -1, 7], ids=["equal_C", "negative", "beyond"])
def test_cross_entropy_targets_out_of_range(backend, bad):
    logits = randn(backend, 4, 5)
    t = targets(backend, [0, bad, 2, 1])
    expect(
        ValueError,
        "softmax_cross_entropy",
        lambda: Fn.softmax_cross_entropy(logits, t),
        ["targets"],
        values=[bad, 5],
    )


def test_cross_entropy_targets_wrong_length(backend):
    logits = randn(backend, 4, 5)
    t = targets(backend, [0, 1, 2])
    expect(
        ValueError,
        "softmax_cross_entropy",
        lambda: Fn.softmax_cross_entropy(logits, t),
        ["targets", "logits"],
        values=[3, 4],
    )


def test_cross_entropy_float_targets(backend):
    logits = randn(backend, 4, 5)
    t = backend.asarray(np.array([0.0, 1.0, 2.0, 3.0]))
    expect(
        BAD,
        "softmax_cross_entropy",
        lambda: Fn.softmax_cross_entropy(logits, t),
        ["targets"],
    )


@pytest.mark.parametrize("dtype", [np.int64, np.bool_], ids=["int", "bool"])
def test_cross_entropy_integer_logits(backend, dtype):
    logits = backend.asarray(np.ones((4, 5)), dtype)
    expect(
        TypeError,
        "softmax_cross_entropy",
        lambda: Fn.softmax_cross_entropy(logits, targets(backend, [0, 1, 2, 3])),
        ["logits"],
    )


def test_mse_shape_mismatch(backend):
    pred, target = randn(backend, 4, 3), randn(backend, 3, 4)
    expect(
        ValueError,
        "mse_loss",
        lambda: Fn.mse_loss(pred, target),
        ["pred", "target"],
        [(4, 3), (3, 4)],
    )
    # broadcastable shapes are still an error, not a silent broadcast
    expect(
        ValueError,
        "mse_loss",
        lambda: Fn.mse_loss(randn(backend, 4, 1), randn(backend, 4)),
        ["pred", "target"],
        [(4, 1), (4,)],
    )


@pytest.mark.parametrize("dtype", [np.int64, np.bool_], ids=["int", "bool"])
def test_mse_integer_input(backend, dtype):
    pred = backend.asarray(np.ones((4, 3)), dtype)
    expect(
        TypeError, "mse_loss", lambda: Fn.mse_loss(pred, randn(backend, 4, 3)), ["pred"]
    )


# ----------------------------------------------------------------------------
# batch norm, dropout
# ----------------------------------------------------------------------------
def bn_args(backend, C=3):
    return (
        backend.asarray(np.ones(C)),
        backend.asarray(np.zeros(C)),
        backend.asarray(np.zeros(C)),
        backend.asarray(np.ones(C)),
    )


def test_batch_norm_wrong_ndim(backend):
    x = randn(backend, 4, 3, 5, 2, 2)  # (N, C, L) is allowed, as PyTorch
    expect(
        ValueError,
        "batch_norm_forward",
        lambda: Fn.batch_norm_forward(x, *bn_args(backend)),
        ["x"],
        [(4, 3, 5, 2, 2)],
    )


@pytest.mark.parametrize("position", [0, 1, 2, 3])
def test_batch_norm_parameter_shape(backend, position):
    name = ["gamma", "beta", "running_mean", "running_var"][position]
    args = list(bn_args(backend))
    args[position] = backend.asarray(np.ones(4))
    x = randn(backend, 2, 3, 4, 4)
    expect(
        ValueError,
        "batch_norm_forward",
        lambda: Fn.batch_norm_forward(x, *args),
        [name],
        [(4,)],
        values=[3],
    )


@pytest.mark.parametrize("dtype", [np.int64, np.bool_], ids=["int", "bool"])
def test_batch_norm_integer_input(backend, dtype):
    x = backend.asarray(np.ones((4, 3)), dtype)
    expect(
        TypeError,
        "batch_norm_forward",
        lambda: Fn.batch_norm_forward(x, *bn_args(backend)),
        ["x"],
    )


def test_batch_norm_backward_dy_shape(backend):
    _, cache = Fn.batch_norm_forward(randn(backend, 4, 3), *bn_args(backend))
    dy = randn(backend, 4, 2)
    expect(
        ValueError,
        "batch_norm_backward",
        lambda: Fn.batch_norm_backward(dy, cache),
        ["dy"],
        [(4, 2), (4, 3)],
    )


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_bad_probability(backend, p):
    x = randn(backend, 4, 3)
    expect(
        ValueError,
        "dropout_forward",
        lambda: Fn.dropout_forward(x, p),
        ["p"],
        values=[p],
    )


@pytest.mark.parametrize("dtype", [np.int64, np.bool_], ids=["int", "bool"])
def test_dropout_integer_input(backend, dtype):
    x = backend.asarray(np.ones((4, 3)), dtype)
    expect(TypeError, "dropout_forward", lambda: Fn.dropout_forward(x, 0.5), ["x"])


def test_dropout_backward_dy_shape(backend):
    _, cache = Fn.dropout_forward(
        randn(backend, 4, 3), 0.5, rng=np.random.default_rng(0)
    )
    dy = randn(backend, 3, 4)
    expect(
        ValueError,
        "dropout_backward",
        lambda: Fn.dropout_backward(dy, cache),
        ["dy"],
        [(3, 4), (4, 3)],
    )


# ----------------------------------------------------------------------------
# NaN and inf propagate (nothing is silently clipped)
# ----------------------------------------------------------------------------
SPECIAL = np.array([np.nan, np.inf, -np.inf, 2.0, -2.0])


@pytest.mark.parametrize(
    "forward, expected",
    [
        (Fn.relu_forward, [np.nan, np.inf, 0.0, 2.0, 0.0]),
        (Fn.leaky_relu_forward, [np.nan, np.inf, -np.inf, 2.0, -0.02]),
        (Fn.sigmoid_forward, [np.nan, 1.0, 0.0, 1 / (1 + np.exp(-2.0)), None]),
        (Fn.tanh_forward, [np.nan, 1.0, -1.0, np.tanh(2.0), np.tanh(-2.0)]),
    ],
    ids=["relu", "leaky_relu", "sigmoid", "tanh"],
)
def test_activations_nan_inf(backend, forward, expected):
    y, _ = forward(backend.asarray(SPECIAL))
    y = backend.to_numpy(y)
    for got, want in zip(y, expected, strict=True):
        if want is None:
            continue
        if np.isnan(want):
            assert np.isnan(got), y
        else:
            assert got == pytest.approx(want, rel=1e-12), y


def test_conv_nan_stays_in_its_receptive_field(backend):
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 7))
    x[0, 1, 2, 3] = np.nan
    w = np.random.default_rng(1).standard_normal((3, 2, 3, 3))
    y, _ = Fn.conv2d_forward(backend.asarray(x), backend.asarray(w), None, 1, 1)
    nan = np.isnan(backend.to_numpy(y))
    expected = np.zeros(nan.shape, bool)
    expected[0, :, 1:4, 2:5] = True  # outputs whose 3x3 window holds x[0, 1, 2, 3]
    np.testing.assert_array_equal(nan, expected)


def test_conv_inf(backend):
    x = np.ones((1, 1, 4, 4))
    x[0, 0, 0, 0] = np.inf
    y, _ = Fn.conv2d_forward(
        backend.asarray(x), backend.asarray(np.ones((1, 1, 2, 2))), None, 2
    )
    np.testing.assert_array_equal(
        backend.to_numpy(y)[0, 0], [[np.inf, 4.0], [4.0, 4.0]]
    )


@pytest.mark.parametrize(
    "forward", [Fn.max_pool2d_forward, Fn.avg_pool2d_forward], ids=["max", "avg"]
)
def test_pool_nan_inf(backend, forward):
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0], x[0, 0, 3, 3] = np.nan, np.inf
    y = backend.to_numpy(forward(backend.asarray(x), 2)[0])[0, 0]
    assert np.isnan(y[0, 0]) and y[1, 1] == np.inf
    assert np.isfinite(y[0, 1]) and np.isfinite(y[1, 0])


def test_linear_nan_row(backend):
    x = np.ones((3, 4))
    x[1, 2] = np.nan
    y, _ = Fn.linear_forward(backend.asarray(x), backend.asarray(np.ones((2, 4))))
    nan = np.isnan(backend.to_numpy(y))
    np.testing.assert_array_equal(nan, [[False, False], [True, True], [False, False]])


def test_losses_nan_inf(backend):
    t = targets(backend, [0, 1])
    logits = np.zeros((2, 3))
    logits[1, 2] = np.nan
    loss, _ = Fn.softmax_cross_entropy(backend.asarray(logits), t)
    assert np.isnan(backend.to_numpy(loss))
    pred = np.zeros((2, 3))
    pred[0, 0] = np.inf
    loss, _ = Fn.mse_loss(backend.asarray(pred), backend.asarray(np.zeros((2, 3))))
    assert backend.to_numpy(loss) == np.inf


def test_batch_norm_nan_stays_in_its_channel(backend):
    x = np.random.default_rng(0).standard_normal((4, 2, 3, 3))
    x[1, 0, 2, 2] = np.nan
    y, _ = Fn.batch_norm_forward(backend.asarray(x), *bn_args(backend, 2))
    y = backend.to_numpy(y)
    assert np.isnan(y[:, 0]).all() and np.isfinite(y[:, 1]).all()
