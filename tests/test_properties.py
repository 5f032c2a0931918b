"""Properties of convolution and pooling, checked on random configurations.

Hypothesis draws shapes, strides, paddings and dilations (and a seed for the
data); each property is an identity the mathematics guarantees:

- conv is linear in x and in w (without bias);
- stride-1 conv commutes with translation, away from the borders;
- the backward pass is the adjoint: <conv(x), y> = <x, dx> = <w, dw> for dy = y;
- output sizes follow OH = (H + 2·pad − dilation·(KH − 1) − 1) // stride + 1;
- max-pool (avg-pool) is the maximum (mean) over each window;
- conv2d_forward equals the loop reference conv2d_naive.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnbook.functional as Fn

# The backend fixture does not change between examples, so reusing it is safe.
# No example database: failures print a @reproduce_failure blob instead.
PROPERTY = settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    print_blob=True,
)


def out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def close(a, b, scale, rtol=1e-12) -> bool:
    """max |a - b| within rtol of ``scale`` (a bound on the terms' magnitude)."""
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)), initial=0.0)) <= rtol * (
        scale + 1e-300
    )


@st.composite
def conv_config(draw, stride_one=False, interior=0):
    """(x shape, w shape, stride, padding, dilation, seed) of a valid conv.

    ``interior``: the image is at least that much larger than the kernel.
    """
    N, C, F = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    sh, sw = (
        (1, 1) if stride_one else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    )
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    ekh, ekw = dh * (KH - 1) + 1, dw * (KW - 1) + 1
    low_h = ekh + interior if interior else max(1, ekh - 2 * ph)
    low_w = ekw + interior if interior else max(1, ekw - 2 * pw)
    H, W = draw(st.integers(low_h, low_h + 6)), draw(st.integers(low_w, low_w + 6))
    seed = draw(st.integers(0, 2**32 - 1))
    return (N, C, H, W), (F, C, KH, KW), (sh, sw), (ph, pw), (dh, dw), seed


@st.composite
def pool_config(draw):
    """(x shape, kernel_size, stride, padding, seed); padding <= kernel / 2."""
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    H = draw(st.integers(max(1, kh - 2 * ph), 9))
    W = draw(st.integers(max(1, kw - 2 * pw), 9))
    seed = draw(st.integers(0, 2**32 - 1))
    return (N, C, H, W), (kh, kw), (sh, sw), (ph, pw), seed


def conv(backend, x, w, b=None, stride=1, padding=0, dilation=1):
    y, _ = Fn.conv2d_forward(
        backend.asarray(x),
        backend.asarray(w),
        None if b is None else backend.asarray(b),
        stride,
        padding,
        dilation=dilation,
    )
    return backend.to_numpy(y)


@PROPERTY
@given(cfg=conv_config(), a=st.floats(-3, 3), c=st.floats(-3, 3))
def test_conv_linear_in_x(backend, cfg, a, c):
    xs, ws, s, p, d, seed = cfg
    rng = np.random.default_rng(seed)
    x1, x2, w = (
        rng.standard_normal(xs),
        rng.standard_normal(xs),
        rng.standard_normal(ws),
    )
    y1, y2 = conv(backend, x1, w, None, s, p, d), conv(backend, x2, w, None, s, p, d)
    y = conv(backend, a * x1 + c * x2, w, None, s, p, d)
    scale = (
        (abs(a) + abs(c)) * np.abs(w).sum() * max(np.abs(x1).max(), np.abs(x2).max())
    )
    assert close(y, a * y1 + c * y2, scale)


@PROPERTY
@given(cfg=conv_config(), a=st.floats(-3, 3), c=st.floats(-3, 3))
def test_conv_linear_in_w(backend, cfg, a, c):
    xs, ws, s, p, d, seed = cfg
    rng = np.random.default_rng(seed)
    x, w1, w2 = (
        rng.standard_normal(xs),
        rng.standard_normal(ws),
        rng.standard_normal(ws),
    )
    y1, y2 = conv(backend, x, w1, None, s, p, d), conv(backend, x, w2, None, s, p, d)
    y = conv(backend, x, a * w1 + c * w2, None, s, p, d)
    scale = (abs(a) * np.abs(w1).sum() + abs(c) * np.abs(w2).sum()) * np.abs(x).max()
    assert close(y, a * y1 + c * y2, scale)


@PROPERTY
@given(
    cfg=conv_config(stride_one=True, interior=3),
    shift=st.tuples(st.integers(0, 3), st.integers(0, 3)),
)
def test_conv_translation_equivariant(backend, cfg, shift):
    """Crop two images from one larger image, offset by ``shift``: away from the
    padded borders, the outputs are the same numbers offset by ``shift``."""
    xs, ws, _, p, d, seed = cfg
    (N, C, H, W), (s0, s1) = xs, shift
    rng = np.random.default_rng(seed)
    big = rng.standard_normal((N, C, H + s0, W + s1))
    w, b = rng.standard_normal(ws), rng.standard_normal(ws[0])
    x1, x2 = big[:, :, :H, :W], big[:, :, s0 : s0 + H, s1 : s1 + W]
    y1 = conv(backend, x1, w, b, 1, p, d)
    y2 = conv(backend, x2, w, b, 1, p, d)
    ekh, ekw = d[0] * (ws[2] - 1) + 1, d[1] * (ws[3] - 1) + 1
    # output rows i of y2 (and i + s0 of y1) whose windows lie inside the images
    rows = slice(p[0], H - ekh + p[0] - s0 + 1)
    cols = slice(p[1], W - ekw + p[1] - s1 + 1)
    inner2 = y2[:, :, rows, cols]
    inner1 = y1[
        :, :, rows.start + s0 : rows.stop + s0, cols.start + s1 : cols.stop + s1
    ]
    assert inner1.shape == inner2.shape and inner1.size > 0
    # equal up to rounding (a GEMM may sum one window in another order elsewhere)
    assert close(inner1, inner2, np.abs(w).sum() * np.abs(big).max() + np.abs(b).max())


@PROPERTY
@given(cfg=conv_config())
def test_conv_backward_is_adjoint(backend, cfg):
    """<conv(x), y> = <x, dx> = <w, dw> where (dx, dw) = backward(dy = y)."""
    xs, ws, s, p, d, seed = cfg
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    out, cache = Fn.conv2d_forward(
        backend.asarray(x), backend.asarray(w), None, s, p, dilation=d
    )
    out = backend.to_numpy(out)
    y = rng.standard_normal(out.shape)
    dx, dw, db = Fn.conv2d_backward(backend.asarray(y), cache)
    assert db is None
    dx, dw = backend.to_numpy(dx), backend.to_numpy(dw)
    lhs = float(np.vdot(out, y))
    scale = float(np.abs(y).sum() * np.abs(w).sum() * np.abs(x).max())
    assert abs(lhs - float(np.vdot(x, dx))) <= 1e-13 * scale
    assert abs(lhs - float(np.vdot(w, dw))) <= 1e-13 * scale


@settings(max_examples=200, deadline=None, database=None)
@given(
    size=st.integers(1, 64),
    kernel=st.integers(1, 9),
    stride=st.integers(1, 5),
    padding=st.integers(0, 4),
    dilation=st.integers(1, 3),
)
def test_conv_output_size_formula(size, kernel, stride, padding, dilation):
    expected = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if expected < 1:  # kernel larger than the padded input: no formula to check
        return
    assert Fn.conv_output_size(size, kernel, stride, padding, dilation) == expected
    if kernel <= size:  # the defaults: stride 1, no padding, no dilation
        assert Fn.conv_output_size(size, kernel) == size - kernel + 1


@PROPERTY
@given(cfg=conv_config())
def test_conv_output_shape(backend, cfg):
    xs, ws, s, p, d, seed = cfg
    rng = np.random.default_rng(seed)
    y = conv(backend, rng.standard_normal(xs), rng.standard_normal(ws), None, s, p, d)
    OH = Fn.conv_output_size(xs[2], ws[2], s[0], p[0], d[0])
    OW = Fn.conv_output_size(xs[3], ws[3], s[1], p[1], d[1])
    assert y.shape == (xs[0], ws[0], OH, OW)
    assert (OH, OW) == tuple(
        out_size(xs[i], ws[i], s[i - 2], p[i - 2], d[i - 2]) for i in (2, 3)
    )


def windows(x, k, s, p, fill):
    """(N, C, OH, OW, KH*KW) array of the pooling windows, by explicit loops."""
    N, C, H, W = x.shape
    xp = np.full((N, C, H + 2 * p[0], W + 2 * p[1]), fill)
    xp[:, :, p[0] : p[0] + H, p[1] : p[1] + W] = x
    OH, OW = out_size(H, k[0], s[0], p[0], 1), out_size(W, k[1], s[1], p[1], 1)
    out = np.empty((N, C, OH, OW, k[0] * k[1]))
    for i in range(OH):
        for j in range(OW):
            win = xp[:, :, i * s[0] : i * s[0] + k[0], j * s[1] : j * s[1] + k[1]]
            out[:, :, i, j] = win.reshape(N, C, -1)
    return out


@PROPERTY
@given(cfg=pool_config())
def test_max_pool_is_window_maximum(backend, cfg):
    xs, k, s, p, seed = cfg
    x = np.random.default_rng(seed).standard_normal(xs)
    y, _ = Fn.max_pool2d_forward(backend.asarray(x), k, s, p)
    expected = windows(x, k, s, p, -np.inf).max(axis=-1)
    np.testing.assert_array_equal(backend.to_numpy(y), expected)


@PROPERTY
@given(cfg=pool_config())
def test_avg_pool_is_window_mean(backend, cfg):
    """Zero padding counts in the average (PyTorch's count_include_pad=True)."""
    xs, k, s, p, seed = cfg
    x = np.random.default_rng(seed).standard_normal(xs)
    y, _ = Fn.avg_pool2d_forward(backend.asarray(x), k, s, p)
    expected = windows(x, k, s, p, 0.0).mean(axis=-1)
    assert close(backend.to_numpy(y), expected, np.abs(x).max())


@PROPERTY
@given(cfg=conv_config(), bias=st.booleans())
def test_conv_forward_equals_naive(backend, cfg, bias):
    xs, ws, s, p, d, seed = cfg
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[0]) if bias else None
    fast = conv(backend, x, w, b, s, p, d)
    naive = Fn.conv2d_naive(
        backend.asarray(x),
        backend.asarray(w),
        None if b is None else backend.asarray(b),
        s,
        p,
        dilation=d,
    )
    naive = backend.to_numpy(naive)
    assert naive.shape == fast.shape
    scale = np.abs(w).sum() * np.abs(x).max() + (np.abs(b).max() if bias else 0.0)
    assert close(fast, naive, scale)
