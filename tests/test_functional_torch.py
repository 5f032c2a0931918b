"""Forward and backward passes against PyTorch on random configurations.

Each case runs the operation on the test's backend and the same computation in
PyTorch (CPU, autograd), in float64 (relative error ~1e-10) and in float32
(~1e-4), and compares outputs and every gradient. Batch norm also compares the
running statistics it updates in place; max-pool ties follow PyTorch's
first-maximum rule.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import cnnbook.functional as Fn

torch = pytest.importorskip(
    "torch", reason="PyTorch parity tests need torch (CI installs torch==2.13.0 CPU)"
)
F = torch.nn.functional

TOL = {np.float64: 1e-10, np.float32: 1e-4}
DTYPES = pytest.mark.parametrize(
    "dtype", [np.float64, np.float32], ids=["float64", "float32"]
)


def rel(a, b) -> float:
    """||a - b|| / ||b|| (b the reference), 0 when both are 0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    den = np.linalg.norm(b)
    if den == 0:
        return float(np.linalg.norm(a))
    return float(np.linalg.norm(a - b) / den)


def compare(backend, dtype, ours: dict, ref: dict) -> dict[str, float]:
    """Assert each of ``ours`` (backend arrays) matches ``ref`` (torch tensors)."""
    errors = {}
    for name, r in ref.items():
        a = ours[name]
        assert a is not None, f"{name} missing"
        a = backend.to_numpy(a)
        r = r.detach().numpy()
        assert a.shape == r.shape, f"{name}: shape {a.shape} != torch {r.shape}"
        assert a.dtype == dtype, f"{name}: dtype {a.dtype} != {np.dtype(dtype)}"
        errors[name] = rel(a, r)
    path = os.environ.get("CNNBOOK_ERROR_LOG")
    if path:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"test": test, "errors": errors}) + "\n")
    bad = {k: e for k, e in errors.items() if not e < TOL[dtype]}
    assert not bad, f"relative errors above {TOL[dtype]:g}: {bad}; all: {errors}"
    return errors


def leaf(a, dtype):
    """A torch tensor that collects its gradient."""
    return torch.tensor(np.asarray(a, dtype), requires_grad=True)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# ----------------------------------------------------------------------------
# convolution: random configurations
# ----------------------------------------------------------------------------
def conv_configs(count, seed=0):
    """Random valid (x shape, w shape, bias, stride, padding, dilation)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        N, C, F_ = rng.integers(1, 4), rng.integers(1, 5), rng.integers(1, 5)
        H, W = rng.integers(1, 11, 2)
        KH, KW = rng.integers(1, 5, 2)
        s = [int(v) for v in rng.integers(1, 4, 2)]
        p = [int(v) for v in rng.integers(0, 3, 2)]
        d = [int(v) for v in rng.integers(1, 3, 2)]
        if d[0] * (KH - 1) + 1 > H + 2 * p[0] or d[1] * (KW - 1) + 1 > W + 2 * p[1]:
            continue
        # half the cases with int arguments, half with pairs
        if len(out) % 2 == 0:
            s, p, d = s[0], p[0], d[0]
            if d * (KW - 1) + 1 > W + 2 * p:
                continue
        else:
            s, p, d = tuple(s), tuple(p), tuple(d)
        xs = tuple(int(v) for v in (N, C, H, W))
        ws = tuple(int(v) for v in (F_, C, KH, KW))
        out.append((xs, ws, bool(rng.integers(2)), s, p, d))
    return out


CONV = conv_configs(16)


@DTYPES
@pytest.mark.parametrize("case", range(len(CONV)), ids=lambda i: f"conv{i}")
def test_conv2d(backend, dtype, case):
    xs, ws, bias, stride, padding, dilation = CONV[case]
    rng = np.random.default_rng(case)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[0]) if bias else None

    y, cache = Fn.conv2d_forward(
        backend.asarray(x, dtype),
        backend.asarray(w, dtype),
        None if b is None else backend.asarray(b, dtype),
        stride,
        padding,
        dilation=dilation,
    )
    dy = rng.standard_normal(tuple(y.shape))
    dx, dw, db = Fn.conv2d_backward(backend.asarray(dy, dtype), cache)

    tx, tw = leaf(x, dtype), leaf(w, dtype)
    tb = None if b is None else leaf(b, dtype)
    ty = F.conv2d(
        tx, tw, tb, stride=pair(stride), padding=pair(padding), dilation=pair(dilation)
    )
    ty.backward(torch.tensor(np.asarray(dy, dtype)))
    ours = {"y": y, "dx": dx, "dw": dw}
    ref = {"y": ty, "dx": tx.grad, "dw": tw.grad}
    if b is None:
        assert db is None
    else:
        ours["db"], ref["db"] = db, tb.grad
    compare(backend, dtype, ours, ref)


def test_conv2d_naive_matches_torch(backend):
    rng = np.random.default_rng(11)
    x, w, b = (
        rng.standard_normal((2, 3, 6, 7)),
        rng.standard_normal((4, 3, 3, 2)),
        rng.standard_normal(4),
    )
    y = Fn.conv2d_naive(
        backend.asarray(x),
        backend.asarray(w),
        backend.asarray(b),
        (2, 1),
        (1, 0),
        dilation=(1, 2),
    )
    ty = F.conv2d(
        torch.tensor(x),
        torch.tensor(w),
        torch.tensor(b),
        stride=(2, 1),
        padding=(1, 0),
        dilation=(1, 2),
    )
    compare(backend, np.float64, {"y": y}, {"y": ty})


# ----------------------------------------------------------------------------
# pooling
# ----------------------------------------------------------------------------
def pool_configs(count, seed=1):
    """Random valid (x shape, kernel_size, stride, padding); PyTorch needs
    padding <= kernel_size / 2."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        N, C = (int(v) for v in rng.integers(1, 4, 2))
        H, W = (int(v) for v in rng.integers(1, 11, 2))
        k = [int(v) for v in rng.integers(1, 5, 2)]
        s = [int(v) for v in rng.integers(1, 4, 2)]
        p = [int(rng.integers(0, kk // 2 + 1)) for kk in k]
        if k[0] > H + 2 * p[0] or k[1] > W + 2 * p[1]:
            continue
        mode = len(out) % 3
        if mode == 0:  # ints, stride defaulting to the kernel size
            if k[0] > W + 2 * p[0]:
                continue
            k, s, p = k[0], None, p[0]
        elif mode == 1:
            k, s, p = tuple(k), tuple(s), tuple(p)
        else:
            k, s, p = tuple(k), s[0], tuple(p)
        out.append(((N, C, H, W), k, s, p))
    return out


POOL = pool_configs(12)
POOL_IDS = [f"pool{i}" for i in range(len(POOL))]


def run_pool(backend, dtype, x, config, ours_fwd, ours_bwd, torch_fn, seed=0):
    _, k, s, p = config
    y, cache = ours_fwd(backend.asarray(x, dtype), k, s, p)
    dy = np.random.default_rng(seed).standard_normal(tuple(y.shape))
    dx = ours_bwd(backend.asarray(dy, dtype), cache)
    tx = leaf(x, dtype)
    ty = torch_fn(tx, k, s if s is not None else k, p)
    ty.backward(torch.tensor(np.asarray(dy, dtype)))
    return compare(backend, dtype, {"y": y, "dx": dx}, {"y": ty, "dx": tx.grad})


@DTYPES
@pytest.mark.parametrize("config", POOL, ids=POOL_IDS)
def test_max_pool2d(backend, dtype, config):
    x = np.random.default_rng(12).standard_normal(config[0])
    run_pool(
        backend,
        dtype,
        x,
        config,
        Fn.max_pool2d_forward,
        Fn.max_pool2d_backward,
        F.max_pool2d,
    )


@DTYPES
@pytest.mark.parametrize("config", POOL, ids=POOL_IDS)
def test_max_pool2d_ties_first_maximum(backend, dtype, config):
    """Integer-valued data has many ties; the gradient of each window goes to
    its first maximum in row-major order, as in PyTorch."""
    x = np.random.default_rng(13).integers(0, 3, config[0]).astype(np.float64)
    run_pool(
        backend,
        dtype,
        x,
        config,
        Fn.max_pool2d_forward,
        Fn.max_pool2d_backward,
        F.max_pool2d,
    )


def test_max_pool2d_constant_window(backend):
    """All four elements equal: the whole gradient goes to the top-left one."""
    x = backend.asarray(np.ones((1, 1, 2, 2)))
    _, cache = Fn.max_pool2d_forward(x, 2)
    dx = Fn.max_pool2d_backward(backend.asarray(np.full((1, 1, 1, 1), 3.0)), cache)
    np.testing.assert_array_equal(backend.to_numpy(dx)[0, 0], [[3.0, 0.0], [0.0, 0.0]])


@DTYPES
@pytest.mark.parametrize("config", POOL, ids=POOL_IDS)
def test_avg_pool2d(backend, dtype, config):
    x = np.random.default_rng(14).standard_normal(config[0])
    run_pool(
        backend,
        dtype,
        x,
        config,
        Fn.avg_pool2d_forward,
        Fn.avg_pool2d_backward,
        F.avg_pool2d,
    )


# ----------------------------------------------------------------------------
# activations, linear
# ----------------------------------------------------------------------------
ACTIVATIONS = {
    "relu": (Fn.relu_forward, Fn.relu_backward, {}, F.relu),
    "sigmoid": (Fn.sigmoid_forward, Fn.sigmoid_backward, {}, torch.sigmoid),
    "tanh": (Fn.tanh_forward, Fn.tanh_backward, {}, torch.tanh),
    "leaky_relu": (Fn.leaky_relu_forward, Fn.leaky_relu_backward, {}, F.leaky_relu),
    "leaky_relu_0.3": (
        Fn.leaky_relu_forward,
        Fn.leaky_relu_backward,
        {"negative_slope": 0.3},
        lambda t: F.leaky_relu(t, 0.3),
    ),
}


@DTYPES
@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 4, 5)], ids=["2d", "4d"])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation(backend, dtype, name, shape):
    forward, backward, kwargs, torch_fn = ACTIVATIONS[name]
    rng = np.random.default_rng(15)
    x = rng.standard_normal(shape) * 3
    y, cache = forward(backend.asarray(x, dtype), **kwargs)
    dy = rng.standard_normal(shape)
    dx = backward(backend.asarray(dy, dtype), cache)
    tx = leaf(x, dtype)
    ty = torch_fn(tx)
    ty.backward(torch.tensor(np.asarray(dy, dtype)))
    compare(backend, dtype, {"y": y, "dx": dx}, {"y": ty, "dx": tx.grad})


@DTYPES
@pytest.mark.parametrize(
    "n, fin, fout, bias",
    [(8, 5, 3, True), (1, 7, 4, False), (16, 32, 10, True)],
    ids=["basic", "batch1_nobias", "wide"],
)
def test_linear(backend, dtype, n, fin, fout, bias):
    rng = np.random.default_rng(16)
    x, w = rng.standard_normal((n, fin)), rng.standard_normal((fout, fin))
    b = rng.standard_normal(fout) if bias else None
    y, cache = Fn.linear_forward(
        backend.asarray(x, dtype),
        backend.asarray(w, dtype),
        None if b is None else backend.asarray(b, dtype),
    )
    dy = rng.standard_normal((n, fout))
    dx, dw, db = Fn.linear_backward(backend.asarray(dy, dtype), cache)
    tx, tw = leaf(x, dtype), leaf(w, dtype)
    tb = None if b is None else leaf(b, dtype)
    ty = F.linear(tx, tw, tb)
    ty.backward(torch.tensor(np.asarray(dy, dtype)))
    ours = {"y": y, "dx": dx, "dw": dw}
    ref = {"y": ty, "dx": tx.grad, "dw": tw.grad}
    if b is None:
        assert db is None
    else:
        ours["db"], ref["db"] = db, tb.grad
    compare(backend, dtype, ours, ref)


# ----------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------
@DTYPES
@pytest.mark.parametrize(
    "n, classes, scale",
    [(8, 5, 1.0), (1, 3, 1.0), (6, 10, 30.0), (4, 4, 1e4)],
    ids=["basic", "batch1", "large", "huge_1e4"],
)
def test_softmax_cross_entropy(backend, dtype, n, classes, scale):
    rng = np.random.default_rng(17)
    logits = rng.standard_normal((n, classes)) * scale
    targets = rng.integers(0, classes, n)
    loss, grad = Fn.softmax_cross_entropy(
        backend.asarray(logits, dtype), backend.asarray(targets)
    )
    assert tuple(loss.shape) == ()
    assert (
        np.isfinite(backend.to_numpy(loss))
        and np.isfinite(backend.to_numpy(grad)).all()
    )
    tl = leaf(logits, dtype)
    tloss = F.cross_entropy(tl, torch.tensor(targets))
    tloss.backward()
    compare(
        backend, dtype, {"loss": loss, "grad": grad}, {"loss": tloss, "grad": tl.grad}
    )


@DTYPES
@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 4), (1,)], ids=["2d", "4d", "1d"])
def test_mse_loss(backend, dtype, shape):
    rng = np.random.default_rng(18)
    pred, target = rng.standard_normal(shape), rng.standard_normal(shape)
    loss, grad = Fn.mse_loss(
        backend.asarray(pred, dtype), backend.asarray(target, dtype)
    )
    assert tuple(loss.shape) == ()
    tp = leaf(pred, dtype)
    tloss = F.mse_loss(tp, torch.tensor(np.asarray(target, dtype)))
    tloss.backward()
    compare(
        backend, dtype, {"loss": loss, "grad": grad}, {"loss": tloss, "grad": tp.grad}
    )


# ----------------------------------------------------------------------------
# batch norm, running statistics included
# ----------------------------------------------------------------------------
@DTYPES
@pytest.mark.parametrize(
    "shape, training, momentum, eps",
    [
        ((8, 4), True, 0.1, 1e-5),
        ((2, 3, 5, 4), True, 0.1, 1e-5),
        ((1, 2, 3, 3), True, 0.3, 1e-3),
        ((5, 3), True, 1.0, 1e-5),
        ((8, 4), False, 0.1, 1e-5),
        ((3, 2, 4, 5), False, 0.1, 1e-2),
    ],
    ids=["2d_train", "4d_train", "4d_batch1_train", "momentum1", "2d_eval", "4d_eval"],
)
def test_batch_norm(backend, dtype, shape, training, momentum, eps):
    rng = np.random.default_rng(19)
    C = shape[1]
    x = rng.standard_normal(shape) * 3 + 1
    gamma, beta = rng.uniform(0.5, 1.5, C), rng.standard_normal(C)
    rm, rv = rng.standard_normal(C), rng.uniform(0.5, 2.0, C)
    t_rm = torch.tensor(np.asarray(rm, dtype))  # copies, before ours update
    t_rv = torch.tensor(np.asarray(rv, dtype))
    ours_rm, ours_rv = backend.asarray(rm, dtype), backend.asarray(rv, dtype)
    y, cache = Fn.batch_norm_forward(
        backend.asarray(x, dtype),
        backend.asarray(gamma, dtype),
        backend.asarray(beta, dtype),
        ours_rm,
        ours_rv,
        training=training,
        momentum=momentum,
        eps=eps,
    )
    dy = rng.standard_normal(shape)
    dx, dgamma, dbeta = Fn.batch_norm_backward(backend.asarray(dy, dtype), cache)

    tx, tg, tb = leaf(x, dtype), leaf(gamma, dtype), leaf(beta, dtype)
    ty = F.batch_norm(tx, t_rm, t_rv, tg, tb, training, momentum, eps)
    ty.backward(torch.tensor(np.asarray(dy, dtype)))
    compare(
        backend,
        dtype,
        {
            "y": y,
            "dx": dx,
            "dgamma": dgamma,
            "dbeta": dbeta,
            "running_mean": ours_rm,
            "running_var": ours_rv,
        },
        {
            "y": ty,
            "dx": tx.grad,
            "dgamma": tg.grad,
            "dbeta": tb.grad,
            "running_mean": t_rm,
            "running_var": t_rv,
        },
    )


def test_batch_norm_running_stats_over_steps(backend):
    """Five training steps update the running statistics exactly as PyTorch."""
    rng = np.random.default_rng(20)
    C = 3
    gamma, beta = backend.asarray(np.ones(C)), backend.asarray(np.zeros(C))
    rm, rv = backend.asarray(np.zeros(C)), backend.asarray(np.ones(C))
    t_rm, t_rv = torch.zeros(C, dtype=torch.float64), torch.ones(C, dtype=torch.float64)
    for _ in range(5):
        x = rng.standard_normal((4, C, 2, 3)) * 2 + 3
        Fn.batch_norm_forward(backend.asarray(x), gamma, beta, rm, rv, training=True)
        F.batch_norm(torch.tensor(x), t_rm, t_rv, training=True)
    compare(
        backend,
        np.float64,
        {"running_mean": rm, "running_var": rv},
        {"running_mean": t_rm, "running_var": t_rv},
    )


# ----------------------------------------------------------------------------
# dropout: same law as PyTorch's (inverted scaling), masks are not comparable
# ----------------------------------------------------------------------------
@DTYPES
def test_dropout_scaling_like_torch(backend, dtype):
    p = 0.25
    torch.manual_seed(0)
    x = np.random.default_rng(21).uniform(1.0, 2.0, (64, 64))
    y, _ = Fn.dropout_forward(
        backend.asarray(x, dtype), p, rng=np.random.default_rng(0)
    )
    y = backend.to_numpy(y)
    ty = F.dropout(torch.tensor(np.asarray(x, dtype)), p, training=True).numpy()
    # the kept values are x / (1 - p) in both
    kept, tkept = y != 0, ty != 0
    np.testing.assert_allclose(y[kept], (x / (1 - p))[kept], rtol=TOL[dtype])
    np.testing.assert_allclose(ty[tkept], (x / (1 - p))[tkept], rtol=TOL[dtype])
    assert abs(kept.mean() - (1 - p)) < 0.03
