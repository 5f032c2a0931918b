"""The operators added for PyTorch users: each checked against finite
differences in float64, against PyTorch where it is installed, and on every
backend (NumPy and the strict stand-in device)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnbook.backend as B
import cnnbook.functional as F
from cnnbook import gradcheck, nn


def _x(backend, *shape, seed=0, low=None):
    a = np.random.default_rng(seed).normal(size=shape)
    if low is not None:
        a = np.where(np.abs(a) < low, low, a)  # away from kinks
    return backend.asarray(a, np.float64)


def _torch():
    return pytest.importorskip("torch")


# -- activations ---------------------------------------------------------------
ACTS = {
    "gelu": (F.gelu_forward, F.gelu_backward, {}, "gelu", {}),
    "gelu_tanh": (
        F.gelu_forward,
        F.gelu_backward,
        {"approximate": "tanh"},
        "gelu",
        {"approximate": "tanh"},
    ),
    "silu": (F.silu_forward, F.silu_backward, {}, "silu", {}),
    "elu": (F.elu_forward, F.elu_backward, {"alpha": 0.7}, "elu", {"alpha": 0.7}),
}


@pytest.mark.parametrize("name", sorted(ACTS))
def test_activation_gradients(backend, name):
    fwd, bwd, kw, _, _ = ACTS[name]
    x = _x(backend, 3, 4, 5, low=0.05)
    errors = gradcheck.check(fwd, bwd, x, **kw)
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("name", sorted(ACTS))
def test_activation_matches_pytorch(name):
    torch = _torch()
    fwd, bwd, kw, tname, tkw = ACTS[name]
    x = np.random.default_rng(1).normal(size=(4, 7)) * 3
    dy = np.random.default_rng(2).normal(size=(4, 7))
    y, cache = fwd(x, **kw)
    t = torch.tensor(x, requires_grad=True)
    out = getattr(torch.nn.functional, tname)(t, **tkw)
    out.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(bwd(dy, cache), t.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_activation_layers(backend):
    x = _x(backend, 2, 3)
    for layer, ref in [
        (nn.GELU(), F.gelu_forward(x)[0]),
        (nn.GELU(approximate="tanh"), F.gelu_forward(x, "tanh")[0]),
        (nn.SiLU(), F.silu_forward(x)[0]),
        (nn.ELU(0.5), F.elu_forward(x, 0.5)[0]),
    ]:
        np.testing.assert_array_equal(B.to_numpy(layer(x)), B.to_numpy(ref))
        assert tuple(layer.backward(x).shape) == (2, 3)
    with pytest.raises(ValueError, match="GELU: approximate"):
        nn.GELU("exact")


def test_softmax_along_any_dim(backend):
    x = _x(backend, 2, 3, 4)
    for dim in (0, 1, -1):
        s = B.to_numpy(F.softmax(x, dim=dim))
        np.testing.assert_allclose(s.sum(axis=dim), 1.0)
        np.testing.assert_allclose(np.log(s), B.to_numpy(F.log_softmax(x, dim)))
    with pytest.raises(ValueError, match="softmax: dim=3"):
        F.log_softmax(x, dim=3)


# -- losses --------------------------------------------------------------------
CE = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.2},
    {"ignore_index": 1},
    {"weight": True},
    {"weight": True, "label_smoothing": 0.1, "ignore_index": 2},
    {"weight": True, "reduction": "sum", "label_smoothing": 0.3},
    {"weight": True, "reduction": "none", "ignore_index": 0},
]


def _ce_case(backend, kw, spatial):
    shape = (4, 3, 2, 3) if spatial else (6, 3)
    z = _x(backend, *shape, seed=3)
    tshape = (shape[0], *shape[2:])
    t = np.random.default_rng(4).integers(0, 3, size=tshape)
    kw = dict(kw)
    if kw.get("weight"):
        kw["weight"] = backend.asarray(np.array([0.5, 2.0, 1.5]), np.float64)
    return z, backend.asarray(t), kw


@pytest.mark.parametrize("spatial", [False, True], ids=["NC", "NCHW"])
@pytest.mark.parametrize("kw", CE, ids=lambda k: ",".join(sorted(k)) or "plain")
def test_cross_entropy_gradient(backend, kw, spatial):
    z, t, kw = _ce_case(backend, kw, spatial)
    _, d = F.softmax_cross_entropy(z, t, **kw)

    def total(v):
        xp = B.namespace("t", v=v)
        return xp.sum(F.softmax_cross_entropy(v, t, **kw)[0])

    numeric = gradcheck.numerical_gradient(total, z)
    assert gradcheck.rel_error(d, numeric) < 1e-7


@pytest.mark.parametrize("spatial", [False, True], ids=["NC", "NCHW"])
@pytest.mark.parametrize("kw", CE, ids=lambda k: ",".join(sorted(k)) or "plain")
def test_cross_entropy_matches_pytorch(kw, spatial):
    torch = _torch()

    class H:
        name = "numpy"

        @staticmethod
        def asarray(a, dtype=None):
            return np.asarray(a, dtype=dtype)

    z, t, kw = _ce_case(H, kw, spatial)
    loss, d = F.softmax_cross_entropy(z, t, **kw)
    tz = torch.tensor(z, requires_grad=True)
    tkw = dict(kw)
    if "weight" in tkw:
        tkw["weight"] = torch.tensor(tkw["weight"])
    out = torch.nn.functional.cross_entropy(tz, torch.tensor(t), **tkw)
    out.sum().backward()
    np.testing.assert_allclose(loss, out.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(d, tz.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_cross_entropy_layer_and_upstream_gradient(backend):
    z = _x(backend, 4, 3)
    t = backend.asarray(np.array([0, 1, 2, 1]))
    crit = nn.CrossEntropyLoss(reduction="none")
    per = crit(z, t)
    assert tuple(per.shape) == (4,)
    up = backend.asarray(np.array([1.0, 0.0, 2.0, 0.5]), np.float64)
    d = B.to_numpy(crit.backward(up))
    full = B.to_numpy(F.softmax_cross_entropy(z, t, reduction="none")[1])
    np.testing.assert_allclose(d, full * B.to_numpy(up)[:, None])
    with pytest.raises(ValueError, match="CrossEntropyLoss: reduction"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: weight must have"):
        F.softmax_cross_entropy(z, t, weight=backend.asarray(np.ones(2), np.float64))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_reduction(backend, reduction):
    p, y = _x(backend, 3, 4), _x(backend, 3, 4, seed=1)
    loss, d = F.mse_loss(p, y, reduction)

    def total(v):
        xp = B.namespace("t", v=v)
        return xp.sum(F.mse_loss(v, y, reduction)[0])

    assert gradcheck.rel_error(d, gradcheck.numerical_gradient(total, p)) < 1e-7
    hp, hy = B.to_numpy(p), B.to_numpy(y)
    want = {"mean": ((hp - hy) ** 2).mean(), "sum": ((hp - hy) ** 2).sum()}
    want["none"] = (hp - hy) ** 2
    np.testing.assert_allclose(B.to_numpy(loss), want[reduction])
    assert nn.MSELoss(reduction).reduction == reduction


# -- normalisation and dense layers ---------------------------------------------
def test_linear_on_any_leading_dims(backend):
    x, w, b = _x(backend, 2, 3, 5), _x(backend, 4, 5, seed=1), _x(backend, 4, seed=2)
    errors = gradcheck.check(F.linear_forward, F.linear_backward, x, w, b)
    assert max(errors.values()) < 1e-7, errors
    y = F.linear_forward(x, w, b)[0]
    assert tuple(y.shape) == (2, 3, 4)
    v = _x(backend, 5)
    assert tuple(F.linear_forward(v, w)[0].shape) == (4,)
    lin = nn.Linear(5, 4).to(dtype=np.float64)
    assert tuple(lin(x).shape) == (2, 3, 4)
    assert tuple(lin.backward(y).shape) == (2, 3, 5)


def test_batch_norm_on_sequences(backend):
    x = _x(backend, 4, 3, 6)
    rm, rv = backend.asarray(np.zeros(3), np.float64), backend.asarray(np.ones(3))
    g, b = _x(backend, 3, seed=1), _x(backend, 3, seed=2)
    errors = gradcheck.check(
        F.batch_norm_forward, F.batch_norm_backward, x, g, b, rm, rv, True
    )
    assert max(errors.values()) < 1e-6, errors
    bn = nn.BatchNorm1d(3).to(dtype=np.float64)
    y = B.to_numpy(bn(x))
    np.testing.assert_allclose(y.mean(axis=(0, 2)), 0, atol=1e-12)
    hx = B.to_numpy(x)
    np.testing.assert_allclose(
        B.to_numpy(bn.running_var), 0.9 + 0.1 * hx.var(axis=(0, 2), ddof=1)
    )


NORMS = [
    ("layer", (2, 3, 4), {"normalized_shape": (4,)}),
    ("layer", (2, 3, 4), {"normalized_shape": (3, 4)}),
    ("group", (2, 6, 3, 2), {"num_groups": 3}),
    ("group", (2, 4, 5), {"num_groups": 1}),
]


def _norm_call(kind, backend, shape, kw, affine=True):
    x = _x(backend, *shape, seed=5)
    pshape = kw["normalized_shape"] if kind == "layer" else (shape[1],)
    w = _x(backend, *pshape, seed=6) if affine else None
    b = _x(backend, *pshape, seed=7) if affine else None
    arg = kw.get("normalized_shape", kw.get("num_groups"))
    fwd = F.layer_norm_forward if kind == "layer" else F.group_norm_forward
    bwd = F.layer_norm_backward if kind == "layer" else F.group_norm_backward
    return fwd, bwd, x, arg, w, b


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("kind, shape, kw", NORMS)
def test_layer_and_group_norm_gradients(backend, kind, shape, kw, affine):
    fwd, bwd, x, arg, w, b = _norm_call(kind, backend, shape, kw, affine)
    errors = gradcheck.check(fwd, bwd, x, arg, w, b)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("kind, shape, kw", NORMS)
def test_layer_and_group_norm_match_pytorch(kind, shape, kw):
    torch = _torch()

    class H:
        @staticmethod
        def asarray(a, dtype=None):
            return np.asarray(a, dtype=dtype)

    fwd, bwd, x, arg, w, b = _norm_call(kind, H, shape, kw)
    y, cache = fwd(x, arg, w, b)
    dy = np.random.default_rng(9).normal(size=y.shape)
    grads = bwd(dy, cache)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    f = (
        torch.nn.functional.layer_norm
        if kind == "layer"
        else torch.nn.functional.group_norm
    )
    out = f(tx, arg, tw, tb)
    out.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, t in zip(grads, (tx, tw, tb), strict=True):
        np.testing.assert_allclose(ours, t.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_norm_layers(backend):
    x = _x(backend, 2, 4, 3)
    ln = nn.LayerNorm(3).to(dtype=np.float64)
    gn = nn.GroupNorm(2, 4).to(dtype=np.float64)
    for layer in (ln, gn):
        y = layer(x)
        assert tuple(layer.backward(y).shape) == (2, 4, 3)
        assert layer.weight.grad is not None
    with pytest.raises(ValueError, match="GroupNorm: num_groups 3 must divide"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match=r"group_norm_forward: num_groups"):
        F.group_norm_forward(x, 3)
    with pytest.raises(ValueError, match=r"layer_norm_forward: x of shape"):
        F.layer_norm_forward(x, (4,))


# -- convolution: groups, dilation, padding forms ----------------------------------
CONV = [
    ((2, 4, 7, 6), (6, 2, 3, 3), {"groups": 2}),
    ((2, 4, 7, 6), (4, 1, 3, 3), {"groups": 4, "padding": 1}),  # depthwise
    ((2, 4, 7, 6), (8, 1, 3, 2), {"groups": 4, "stride": 2}),  # multiplier 2
    ((2, 4, 9, 8), (4, 1, 3, 2), {"groups": 4, "stride": 2, "padding": 1}),
    ((2, 4, 9, 8), (4, 1, 3, 3), {"groups": 4, "dilation": (2, 1), "padding": 2}),
    ((0, 4, 9, 8), (4, 1, 3, 3), {"groups": 4, "padding": 1}),  # empty batch
    ((1, 3, 9, 8), (2, 3, 3, 3), {"dilation": 2, "padding": 2}),
    ((1, 3, 7, 6), (2, 3, 3, 2), {"padding": "same"}),
    ((1, 3, 7, 6), (2, 3, 2, 4), {"padding": "same", "dilation": (2, 1)}),
    ((1, 3, 7, 6), (2, 3, 3, 3), {"padding": "valid"}),
    ((1, 3, 7, 6), (2, 3, 3, 3), {"padding": (1, 0, 2, 1)}),
    ((2, 6, 8, 8), (6, 2, 3, 3), {"groups": 3, "padding": (0, 2, 1, 0), "stride": 2}),
]


@pytest.mark.parametrize("xs, ws, kw", CONV)
def test_conv_options_gradients(backend, xs, ws, kw):
    x, w, b = _x(backend, *xs), _x(backend, *ws, seed=1), _x(backend, ws[0], seed=2)
    errors = gradcheck.check(F.conv2d_forward, F.conv2d_backward, x, w, b, **kw)
    assert max(errors.values()) < 1e-7, errors
    from cnnbook.functional import _fast

    y, cache = F.conv2d_forward(x, w, b, **kw)
    yf, cf = _fast.conv2d_forward(x, w, b, **kw)
    # atol: rounding in a sum is absolute (K·eps·Σ|w·x|), and the two sum in
    # other orders (cuBLAS against the reference on a GPU: 1.7e-16 apart where
    # 9 products of O(1) cancel to 1.6e-4); a wrong kernel is off by O(1)
    np.testing.assert_allclose(B.to_numpy(yf), B.to_numpy(y), rtol=1e-12, atol=1e-12)
    for a, r in zip(
        _fast.conv2d_backward(y, cf), F.conv2d_backward(y, cache), strict=True
    ):
        np.testing.assert_allclose(B.to_numpy(a), B.to_numpy(r), rtol=1e-11, atol=1e-12)


def _torch_pad(kw):
    """Our (top, bottom, left, right) padding as an explicit torch pad."""
    kw = dict(kw)
    p = kw.get("padding")
    if isinstance(p, tuple) and len(p) == 4:
        kw["padding"] = 0
        return kw, (p[2], p[3], p[0], p[1])
    return kw, None


@pytest.mark.parametrize("xs, ws, kw", CONV)
def test_conv_options_match_pytorch(xs, ws, kw):
    torch = _torch()
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=xs), rng.normal(size=ws), rng.normal(size=ws[0])
    y, cache = F.conv2d_forward(x, w, b, **kw)
    dy = rng.normal(size=y.shape)
    dx, dw, db = F.conv2d_backward(dy, cache)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    tkw, tpad = _torch_pad(kw)
    inp = torch.nn.functional.pad(tx, tpad) if tpad else tx
    out = torch.nn.functional.conv2d(inp, tw, tb, **tkw)
    out.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, t in zip((dx, dw, db), (tx, tw, tb), strict=True):
        np.testing.assert_allclose(ours, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_conv_layer_options(backend):
    x = _x(backend, 2, 4, 8, 8)
    dw = nn.Conv2d(4, 4, 3, padding="same", groups=4).to(dtype=np.float64)
    assert dw.weight.shape == (4, 1, 3, 3)
    y = dw(x)
    assert tuple(y.shape) == (2, 4, 8, 8)
    assert tuple(dw.backward(y).shape) == (2, 4, 8, 8)
    dil = nn.Conv2d(4, 2, 3, dilation=2).to(dtype=np.float64)
    assert tuple(dil(x).shape) == (2, 2, 4, 4)
    assert "dilation=2" in repr(dil) and "groups=4" in repr(dw)
    with pytest.raises(ValueError, match="Conv2d: groups=3 must divide"):
        nn.Conv2d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="Conv2d: padding='same' needs stride 1"):
        nn.Conv2d(4, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="conv2d_forward: groups=3 must divide"):
        F.conv2d_forward(x, _x(backend, 3, 1, 3, 3), groups=3)
    with pytest.raises(ValueError, match="conv2d_forward: padding must be"):
        F.conv2d_forward(x, _x(backend, 3, 4, 3, 3), padding="full")


# -- pooling options -----------------------------------------------------------
POOLS = [
    ("max", (2, 3, 7, 7), {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    ("max", (2, 3, 9, 8), {"kernel_size": 2, "dilation": 2}),
    ("max", (1, 2, 8, 7), {"kernel_size": 3, "padding": 1, "dilation": (2, 1)}),
    ("max", (1, 2, 6, 6), {"kernel_size": 2, "ceil_mode": True, "stride": 2}),
    ("avg", (2, 3, 7, 7), {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    ("avg", (2, 3, 7, 6), {"kernel_size": 3, "padding": 1, "count_include_pad": False}),
    (
        "avg",
        (1, 2, 8, 7),
        {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
    ),
    (
        "avg",
        (1, 2, 8, 7),
        {
            "kernel_size": 3,
            "stride": 2,
            "padding": 1,
            "ceil_mode": True,
            "count_include_pad": False,
        },
    ),
]


def _pool_fns(kind):
    if kind == "max":
        return F.max_pool2d_forward, F.max_pool2d_backward
    return F.avg_pool2d_forward, F.avg_pool2d_backward


@pytest.mark.parametrize("kind, shape, kw", POOLS)
def test_pool_options_gradients(backend, kind, shape, kw):
    x = backend.asarray(
        np.random.default_rng(0).permutation(np.prod(shape)).reshape(shape) / 7.0,
        np.float64,
    )  # no ties
    fwd, bwd = _pool_fns(kind)
    errors = gradcheck.check(fwd, bwd, x, **kw)
    assert max(errors.values()) < 1e-7, errors
    from cnnbook.functional import _fast

    if kind == "max":
        y, _cache = _fast.max_pool2d_forward(x, **kw)
        np.testing.assert_array_equal(B.to_numpy(y), B.to_numpy(fwd(x, **kw)[0]))


@pytest.mark.parametrize("kind, shape, kw", POOLS)
def test_pool_options_match_pytorch(kind, shape, kw):
    torch = _torch()
    x = np.random.default_rng(0).permutation(np.prod(shape)).reshape(shape) / 7.0
    fwd, bwd = _pool_fns(kind)
    y, cache = fwd(x, **kw)
    dy = np.random.default_rng(1).normal(size=y.shape)
    dx = bwd(dy, cache)
    tx = torch.tensor(x, requires_grad=True)
    if kind == "max":
        out, idx = torch.nn.functional.max_pool2d(tx, **kw, return_indices=True)
        np.testing.assert_array_equal(F.max_pool2d_indices(cache), idx.numpy())
    else:
        out = torch.nn.functional.avg_pool2d(tx, **kw)
    out.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("size", [(1, 1), (3, 3), (2, 5), 4])
def test_adaptive_avg_pool(backend, size):
    x = _x(backend, 2, 3, 7, 9)
    errors = gradcheck.check(
        F.adaptive_avg_pool2d_forward, F.adaptive_avg_pool2d_backward, x, size
    )
    assert max(errors.values()) < 1e-7, errors
    layer = nn.AdaptiveAvgPool2d(size)
    y = layer(x)
    assert tuple(layer.backward(y).shape) == (2, 3, 7, 9)
    torch = pytest.importorskip("torch")
    want = torch.nn.functional.adaptive_avg_pool2d(torch.tensor(B.to_numpy(x)), size)
    np.testing.assert_allclose(B.to_numpy(y), want.numpy(), rtol=1e-12)


def test_pool_layers(backend):
    x = _x(backend, 2, 3, 6, 6)
    gap = nn.GlobalAvgPool2d(keepdim=True)
    y = gap(x)
    assert tuple(y.shape) == (2, 3, 1, 1)
    assert tuple(gap.backward(y).shape) == (2, 3, 6, 6)
    for mp in (
        nn.MaxPool2d(2, return_indices=True),
        nn.MaxPool2d(3, 2, 1, return_indices=True),
    ):
        y, idx = mp(x)
        _ref, cache = F.max_pool2d_forward(x, mp.kernel_size, mp.stride, mp.padding)
        np.testing.assert_array_equal(
            B.to_numpy(idx), B.to_numpy(F.max_pool2d_indices(cache))
        )
        assert tuple(mp.backward(y).shape) == (2, 3, 6, 6)
    ap = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
    assert "count_include_pad=False" in repr(ap) and tuple(ap(x).shape) == (2, 3, 4, 4)


# -- transposed convolution -------------------------------------------------------
TRANSPOSED = [
    ((2, 3, 4, 5), (3, 2, 3, 3), {}),
    ((2, 3, 4, 5), (3, 2, 3, 2), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((1, 2, 3, 3), (2, 4, 2, 2), {"stride": 2}),
    ((1, 2, 4, 3), (2, 3, 3, 3), {"dilation": 2, "padding": (1, 2)}),
    # groups: w (C_in, C_out/groups, KH, KW)
    ((2, 4, 4, 5), (4, 3, 3, 3), {"groups": 2}),
    ((2, 6, 3, 4), (6, 1, 3, 2), {"groups": 3, "stride": 2, "output_padding": 1}),
    ((1, 3, 4, 4), (3, 2, 3, 3), {"groups": 3, "padding": 1, "dilation": 2}),
]


def _c_out(ws, kw):
    return ws[1] * kw.get("groups", 1)


@pytest.mark.parametrize("xs, ws, kw", TRANSPOSED)
def test_conv_transpose_gradients(backend, xs, ws, kw):
    x, w = _x(backend, *xs), _x(backend, *ws, seed=1)
    b = _x(backend, _c_out(ws, kw), seed=2)
    errors = gradcheck.check(
        F.conv_transpose2d_forward, F.conv_transpose2d_backward, x, w, b, **kw
    )
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("xs, ws, kw", TRANSPOSED)
def test_conv_transpose_matches_pytorch(xs, ws, kw):
    torch = _torch()
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=xs), rng.normal(size=ws)
    b = rng.normal(size=_c_out(ws, kw))
    y, cache = F.conv_transpose2d_forward(x, w, b, **kw)
    dy = rng.normal(size=y.shape)
    grads = F.conv_transpose2d_backward(dy, cache)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    out = torch.nn.functional.conv_transpose2d(tx, tw, tb, **kw)
    out.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, t in zip(grads, (tx, tw, tb), strict=True):
        np.testing.assert_allclose(ours, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_conv_transpose_is_the_adjoint_of_conv(backend):
    x, w = _x(backend, 2, 4, 5, 5), _x(backend, 4, 3, 3, 3, seed=1)
    _y, cache = F.conv2d_forward(_x(backend, 2, 3, 11, 11), w, stride=2)
    dx = F.conv2d_backward(x, cache)[0]  # x plays dy, shaped like y
    t = F.conv_transpose2d_forward(x, w, stride=2)[0]
    np.testing.assert_allclose(B.to_numpy(t), B.to_numpy(dx), rtol=1e-12)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_grouped_conv_transpose_is_the_adjoint_of_grouped_conv(backend, groups):
    """With groups, conv_transpose2d is still conv2d's dx: the same weight
    read as (C_in, C_out/groups) in one and (F, C/groups) in the other."""
    x, w = _x(backend, 2, 4, 5, 5), _x(backend, 4, 8 // groups, 3, 3, seed=1)
    _y, cache = F.conv2d_forward(_x(backend, 2, 8, 11, 11), w, stride=2, groups=groups)
    dx = F.conv2d_backward(x, cache)[0]
    t = F.conv_transpose2d_forward(x, w, stride=2, groups=groups)[0]
    np.testing.assert_allclose(B.to_numpy(t), B.to_numpy(dx), rtol=1e-12)


def test_grouped_conv_transpose_layer_matches_pytorch():
    torch = _torch()
    ours = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, groups=2, rng=0)
    ours.to(dtype=np.float64)
    theirs = torch.nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, groups=2)
    theirs = theirs.double()
    assert tuple(theirs.weight.shape) == ours.weight.shape == (6, 2, 3, 3)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(B.to_numpy(ours.weight.data)))
        theirs.bias.copy_(torch.from_numpy(B.to_numpy(ours.bias.data)))
    x = np.random.default_rng(3).normal(size=(2, 6, 4, 5))
    tx = torch.tensor(x, requires_grad=True)
    out = theirs(tx)
    y = ours(x)
    np.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-10, atol=1e-12)
    dy = np.random.default_rng(4).normal(size=y.shape)
    out.backward(torch.tensor(dy))
    dx = ours.backward(dy)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(
        ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-10, atol=1e-12
    )


def test_grouped_conv_transpose_layer(backend):
    up = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
    up.to(dtype=np.float64)
    assert up.weight.shape == (4, 3, 3, 3) and up.bias.shape == (6,)
    assert "groups=2" in repr(up)
    # PyTorch's default bound: 1/√(fan_in), fan_in = C_out/groups·KH·KW = 27
    assert float(np.abs(B.to_numpy(up.weight.data)).max()) <= 1 / np.sqrt(27)
    x = _x(backend, 2, 4, 5, 5)
    y = up(x)
    assert tuple(y.shape) == (2, 6, 10, 10)
    assert tuple(up.backward(y).shape) == (2, 4, 5, 5)
    with pytest.raises(ValueError, match="groups=3 must divide"):
        nn.ConvTranspose2d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="groups=3 must divide"):
        F.conv_transpose2d_forward(
            _x(backend, 1, 4, 3, 3), _x(backend, 4, 2, 3, 3), groups=3
        )
    with pytest.raises(ValueError, match="groups must be a positive int"):
        F.conv_transpose2d_forward(
            _x(backend, 1, 4, 3, 3), _x(backend, 4, 2, 3, 3), groups=0
        )


def test_conv_transpose_layer(backend):
    up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
    up.to(dtype=np.float64)
    assert up.weight.shape == (4, 2, 3, 3) and up.bias.shape == (2,)
    x = _x(backend, 2, 4, 5, 5)
    y = up(x)
    assert tuple(y.shape) == (2, 2, 10, 10)
    assert tuple(up.backward(y).shape) == (2, 4, 5, 5)
    with pytest.raises(ValueError, match="conv_transpose2d_forward: output_padding"):
        F.conv_transpose2d_forward(x, _x(backend, 4, 2, 3, 3), output_padding=1)
