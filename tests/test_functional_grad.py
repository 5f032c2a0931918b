"""Every backward pass against central finite differences, in float64.

For an operation ``y = f(x, ...)`` and a random upstream gradient ``dy`` the
scalar ``L = <dy, f(x, ...)>`` has gradient ``dL/dx = backward(dy)``; we compare
that with ``(L(x + eps e_i) - L(x - eps e_i)) / (2 eps)`` for every element
``i`` of every floating-point input. The finite differences are computed on the
same backend as the analytic gradient, so the strict stand-in device checks its
own forward pass as well.

Shapes cover stride > 1, padding, dilation, non-square images and kernels,
batch 1 and one channel. ReLU inputs stay away from 0 and max-pool windows have
no ties (gradients are not defined at kinks).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import cnnbook.functional as Fn

EPS = 1e-6
TOL = 1e-7


def rel_error(a, b) -> float:
    """||a - b|| / (||a|| + ||b||), 0 when both are 0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    den = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / den) if den > 0 else 0.0


def record(errors: dict[str, float]) -> None:
    """Append measured errors to $CNNBOOK_ERROR_LOG (JSON lines), if set.

    The numbers quoted in the project's notes come from here.
    """
    path = os.environ.get("CNNBOOK_ERROR_LOG")
    if path:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"test": test, "errors": errors}) + "\n")


def fd_check(backend, forward, backward, inputs, grads, seed=0, **kwargs):
    """Compare ``backward`` with finite differences of ``<dy, forward(...)>``.

    inputs: parameter name -> host array (or any other value, passed as is);
    grads: names of the inputs ``backward`` returns gradients for, in order.
    Returns the relative error per input.
    """

    def run(host):
        args = {
            k: backend.asarray(v) if isinstance(v, np.ndarray) else v
            for k, v in host.items()
        }
        return forward(**args, **kwargs)

    y, cache = run(inputs)
    assert backend.to_numpy(y).dtype == np.float64
    dy = np.random.default_rng(seed).standard_normal(tuple(y.shape))
    analytic = backward(backend.asarray(dy), cache)
    if not isinstance(analytic, tuple):
        analytic = (analytic,)
    assert len(analytic) == len(grads)

    def loss(host):
        return float(np.vdot(dy, backend.to_numpy(run(host)[0])))

    errors = {}
    for name, g in zip(grads, analytic, strict=True):
        if inputs[name] is None:
            assert g is None, f"gradient for absent {name} should be None"
            continue
        base = inputs[name]
        numeric = np.zeros_like(base)
        for i in np.ndindex(base.shape):
            host = dict(inputs)
            plus, minus = base.copy(), base.copy()
            plus[i] += EPS
            minus[i] -= EPS
            numeric[i] = (loss({**host, name: plus}) - loss({**host, name: minus})) / (
                2 * EPS
            )
        g = backend.to_numpy(g)
        assert g.shape == base.shape, f"d{name} shape {g.shape} != {base.shape}"
        assert g.dtype == np.float64
        errors[name] = rel_error(g, numeric)
    record(errors)
    assert all(e < TOL for e in errors.values()), errors
    return errors


def distinct(rng, shape, gap=0.1):
    """Values that differ pairwise by at least ``gap`` (no ties, no kinks)."""
    n = int(np.prod(shape))
    return (rng.permutation(n) - n / 2).reshape(shape) * gap + 0.01


def away_from_zero(rng, shape, margin=0.1):
    """Random values with |v| >= margin."""
    mag = rng.uniform(margin, 2.0, shape)
    return mag * rng.choice([-1.0, 1.0], shape)


# ----------------------------------------------------------------------------
# convolution
# ----------------------------------------------------------------------------
CONV_CASES = {
    # name: (x shape, w shape, bias, stride, padding, dilation)
    "basic": ((2, 3, 5, 6), (4, 3, 3, 3), True, 1, 0, 1),
    "stride2_pad1_nonsquare": ((2, 2, 7, 9), (3, 2, 3, 2), True, 2, 1, 1),
    "pair_stride_pair_padding": ((1, 3, 8, 6), (2, 3, 2, 3), True, (2, 1), (0, 2), 1),
    "dilation2_pad1": ((2, 2, 7, 8), (3, 2, 3, 2), True, 1, 1, 2),
    "pair_dilation_stride": ((1, 1, 9, 7), (2, 1, 2, 3), True, (1, 2), (1, 0), (2, 1)),
    "batch1_channel1_nobias": ((1, 1, 5, 5), (1, 1, 3, 3), False, 1, 0, 1),
    "kernel_fills_input": ((2, 2, 4, 3), (3, 2, 4, 3), True, 1, 0, 1),
    "1x1_kernel_stride2": ((2, 4, 3, 5), (3, 4, 1, 1), True, 2, 0, 1),
    "stride_beyond_kernel": ((1, 2, 8, 7), (2, 2, 2, 2), False, 3, 1, 1),
}


def random_conv_cases(count, seed=123):
    """Small random valid configurations, pairs for every hyperparameter."""
    rng = np.random.default_rng(seed)
    cases = {}
    while len(cases) < count:
        N, C, F = (int(v) for v in rng.integers(1, 3, 3))
        KH, KW = (int(v) for v in rng.integers(1, 4, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        p = tuple(int(v) for v in rng.integers(0, 3, 2))
        d = tuple(int(v) for v in rng.integers(1, 3, 2))
        H, W = (int(v) for v in rng.integers(1, 8, 2))
        if d[0] * (KH - 1) + 1 > H + 2 * p[0] or d[1] * (KW - 1) + 1 > W + 2 * p[1]:
            continue
        bias = bool(rng.integers(2))
        cases[f"random{len(cases)}"] = ((N, C, H, W), (F, C, KH, KW), bias, s, p, d)
    return cases


CONV_CASES.update(random_conv_cases(4))


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d(backend, case):
    xs, ws, bias, stride, padding, dilation = CONV_CASES[case]
    rng = np.random.default_rng(1)
    inputs = {
        "x": rng.standard_normal(xs),
        "w": rng.standard_normal(ws),
        "b": rng.standard_normal(ws[0]) if bias else None,
    }
    fd_check(
        backend,
        Fn.conv2d_forward,
        Fn.conv2d_backward,
        inputs,
        ("x", "w", "b"),
        stride=stride,
        padding=padding,
        dilation=dilation,
    )


# ----------------------------------------------------------------------------
# pooling
# ----------------------------------------------------------------------------
POOL_CASES = {
    # name: (x shape, kernel_size, stride, padding)
    "k2_default_stride": ((2, 3, 6, 8), 2, None, 0),
    "k3_s2_p1_nonsquare": ((1, 2, 7, 9), 3, 2, 1),
    "pair_kernel_stride_padding": ((2, 1, 5, 7), (2, 3), (1, 2), (1, 1)),
    "overlapping_k3_s1": ((1, 2, 5, 6), 3, 1, 0),
    "stride_beyond_kernel": ((2, 2, 8, 7), 2, 3, 0),
    "batch1_channel1": ((1, 1, 4, 6), (2, 3), None, 0),
}


def random_pool_cases(count, seed=321):
    rng = np.random.default_rng(seed)
    cases = {}
    while len(cases) < count:
        N, C = (int(v) for v in rng.integers(1, 3, 2))
        k = tuple(int(v) for v in rng.integers(1, 4, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
        H, W = (int(v) for v in rng.integers(1, 9, 2))
        if k[0] > H + 2 * p[0] or k[1] > W + 2 * p[1]:
            continue
        cases[f"random{len(cases)}"] = ((N, C, H, W), k, s, p)
    return cases


POOL_CASES.update(random_pool_cases(3))


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool2d(backend, case):
    xs, k, s, p = POOL_CASES[case]
    x = distinct(np.random.default_rng(2), xs)
    fd_check(
        backend,
        Fn.max_pool2d_forward,
        Fn.max_pool2d_backward,
        {"x": x},
        ("x",),
        kernel_size=k,
        stride=s,
        padding=p,
    )


@pytest.mark.parametrize("case", POOL_CASES)
def test_avg_pool2d(backend, case):
    xs, k, s, p = POOL_CASES[case]
    x = np.random.default_rng(3).standard_normal(xs)
    fd_check(
        backend,
        Fn.avg_pool2d_forward,
        Fn.avg_pool2d_backward,
        {"x": x},
        ("x",),
        kernel_size=k,
        stride=s,
        padding=p,
    )


# ----------------------------------------------------------------------------
# activations
# ----------------------------------------------------------------------------
ACTIVATIONS = {
    "relu": (Fn.relu_forward, Fn.relu_backward, {}),
    "sigmoid": (Fn.sigmoid_forward, Fn.sigmoid_backward, {}),
    "tanh": (Fn.tanh_forward, Fn.tanh_backward, {}),
    "leaky_relu": (Fn.leaky_relu_forward, Fn.leaky_relu_backward, {}),
    "leaky_relu_0.2": (
        Fn.leaky_relu_forward,
        Fn.leaky_relu_backward,
        {"negative_slope": 0.2},
    ),
}


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4, 5)], ids=["2d", "4d"])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation(backend, name, shape):
    forward, backward, kwargs = ACTIVATIONS[name]
    x = away_from_zero(np.random.default_rng(4), shape)
    fd_check(backend, forward, backward, {"x": x}, ("x",), **kwargs)


# ----------------------------------------------------------------------------
# linear
# ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, fin, fout, bias",
    [(5, 4, 3, True), (1, 6, 2, False), (3, 1, 1, True)],
    ids=["basic", "batch1_nobias", "one_feature"],
)
def test_linear(backend, n, fin, fout, bias):
    rng = np.random.default_rng(5)
    inputs = {
        "x": rng.standard_normal((n, fin)),
        "w": rng.standard_normal((fout, fin)),
        "b": rng.standard_normal(fout) if bias else None,
    }
    fd_check(backend, Fn.linear_forward, Fn.linear_backward, inputs, ("x", "w", "b"))


# ----------------------------------------------------------------------------
# batch norm (running statistics are fresh for every evaluation)
# ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, training",
    [
        ((6, 3), True),
        ((2, 3, 4, 5), True),
        ((1, 2, 3, 4), True),
        ((6, 3), False),
        ((2, 3, 4, 5), False),
    ],
    ids=["2d_train", "4d_train", "4d_batch1_train", "2d_eval", "4d_eval"],
)
def test_batch_norm(backend, shape, training):
    rng = np.random.default_rng(6)
    C = shape[1]
    running_mean = rng.standard_normal(C)
    running_var = rng.uniform(0.5, 2.0, C)

    def forward(x, gamma, beta):
        return Fn.batch_norm_forward(
            x,
            gamma,
            beta,
            backend.asarray(running_mean.copy()),
            backend.asarray(running_var.copy()),
            training=training,
            momentum=0.1,
            eps=1e-5,
        )

    inputs = {
        "x": rng.standard_normal(shape) * 2.0 + 0.5,
        "gamma": rng.uniform(0.5, 1.5, C),
        "beta": rng.standard_normal(C),
    }
    fd_check(backend, forward, Fn.batch_norm_backward, inputs, ("x", "gamma", "beta"))


# ----------------------------------------------------------------------------
# dropout (the same mask for every evaluation: a fresh generator, same seed)
# ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "p, training", [(0.3, True), (0.0, True), (0.5, False)], ids=str
)
def test_dropout(backend, p, training):
    def forward(x):
        rng = np.random.default_rng(7)
        return Fn.dropout_forward(x, p, training=training, rng=rng)

    x = np.random.default_rng(8).standard_normal((4, 3, 2, 5))
    fd_check(backend, forward, Fn.dropout_backward, {"x": x}, ("x",))


# ----------------------------------------------------------------------------
# losses: the returned gradient against finite differences of the loss
# ----------------------------------------------------------------------------
def loss_fd_check(backend, loss_fn, pred, target):
    target_b = backend.asarray(target)
    loss, grad = loss_fn(backend.asarray(pred), target_b)
    assert tuple(loss.shape) == ()
    grad = backend.to_numpy(grad)
    assert grad.shape == pred.shape and grad.dtype == np.float64
    numeric = np.zeros_like(pred)
    for i in np.ndindex(pred.shape):
        plus, minus = pred.copy(), pred.copy()
        plus[i] += EPS
        minus[i] -= EPS
        lp = backend.to_numpy(loss_fn(backend.asarray(plus), target_b)[0])
        lm = backend.to_numpy(loss_fn(backend.asarray(minus), target_b)[0])
        numeric[i] = (float(lp) - float(lm)) / (2 * EPS)
    err = rel_error(grad, numeric)
    record({"pred": err})
    assert err < TOL
    return err


@pytest.mark.parametrize(
    "n, classes, scale",
    [(5, 4, 1.0), (1, 3, 1.0), (4, 6, 20.0), (3, 1, 1.0)],
    ids=["basic", "batch1", "large_logits", "one_class"],
)
def test_softmax_cross_entropy(backend, n, classes, scale):
    rng = np.random.default_rng(9)
    logits = rng.standard_normal((n, classes)) * scale
    targets = rng.integers(0, classes, n)
    loss_fd_check(backend, Fn.softmax_cross_entropy, logits, targets)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2), (1,)], ids=["2d", "4d", "1d"])
def test_mse_loss(backend, shape):
    rng = np.random.default_rng(10)
    pred, target = rng.standard_normal(shape), rng.standard_normal(shape)
    loss_fd_check(backend, Fn.mse_loss, pred, target)
