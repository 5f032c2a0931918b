"""The fast special cases agree with the general kernels they shortcut, on
every backend: pairwise 2×2 max-pooling against the loop over window offsets
(ties, NaN, infinite gradients, odd sizes), the stride-1 "flat shift" input
gradient of conv2d against col2im, and the ``input_grad=False`` cache flag."""

from __future__ import annotations

import numpy as np
import pytest

import cnnbook.functional as Fn
from cnnbook.functional import conv as conv_module
from cnnbook.functional import pool as pool_module


def _general_max_pool(monkeypatch, backend, x, dy):
    """The loop over window offsets, with the pairwise shortcut switched off."""
    with monkeypatch.context() as m:
        m.setattr(pool_module, "_pairwise", lambda g: False)
        y, cache = Fn.max_pool2d_forward(x, 2)
        return backend.to_numpy(y), backend.to_numpy(Fn.max_pool2d_backward(dy, cache))


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 2, 7, 9), (3, 1, 2, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_max_pool_equals_general_loop(backend, monkeypatch, shape, dtype):
    rng = np.random.default_rng(1)
    host = rng.integers(-3, 3, shape).astype(dtype)  # many ties
    dy_host = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2))
    x = backend.asarray(host, dtype)
    dy = backend.asarray(dy_host, dtype)
    y, cache = Fn.max_pool2d_forward(x, 2)
    dx = Fn.max_pool2d_backward(dy, cache)
    y_ref, dx_ref = _general_max_pool(monkeypatch, backend, x, dy)
    np.testing.assert_array_equal(backend.to_numpy(y), y_ref)
    np.testing.assert_array_equal(backend.to_numpy(dx), dx_ref)
    # each window sends its whole gradient to exactly one element
    np.testing.assert_allclose(
        backend.to_numpy(dx).sum(), dy_host.astype(dtype).sum(), rtol=1e-5
    )


@pytest.mark.parametrize(
    "window",
    [
        [[np.nan, 1.0], [2.0, 3.0]],
        [[1.0, np.nan], [np.nan, 3.0]],
        [[1.0, 2.0], [3.0, np.nan]],
        [[np.nan, np.nan], [np.nan, np.nan]],
        [[-np.inf, -np.inf], [-np.inf, -np.inf]],
        [[5.0, 5.0], [5.0, 5.0]],
    ],
)
def test_pairwise_max_pool_special_values(backend, monkeypatch, window):
    """NaN wins its window (the first NaN takes the gradient), ties go to the
    first maximum in row-major order, like PyTorch and the general loop."""
    host = np.array(window, np.float64).reshape(1, 1, 2, 2)
    x = backend.asarray(host)
    dy = backend.asarray(np.full((1, 1, 1, 1), 2.5))
    y, cache = Fn.max_pool2d_forward(x, 2)
    dx = backend.to_numpy(Fn.max_pool2d_backward(dy, cache))
    y_ref, dx_ref = _general_max_pool(monkeypatch, backend, x, dy)
    np.testing.assert_array_equal(backend.to_numpy(y), y_ref)
    np.testing.assert_array_equal(dx, dx_ref)
    assert np.count_nonzero(dx) == 1


def test_pairwise_max_pool_infinite_gradient(backend, monkeypatch):
    """An infinite upstream gradient reaches the winner only (no inf·0 = NaN)."""
    x = backend.asarray(np.arange(16.0).reshape(1, 1, 4, 4))
    dy = backend.asarray(np.array([[[[np.inf, -np.inf], [np.nan, 1.0]]]]))
    _, cache = Fn.max_pool2d_forward(x, 2)
    dx = backend.to_numpy(Fn.max_pool2d_backward(dy, cache))
    _, dx_ref = _general_max_pool(monkeypatch, backend, x, dy)
    np.testing.assert_array_equal(dx, dx_ref)
    assert np.isnan(dx).sum() == 1 and np.isinf(dx).sum() == 2


@pytest.mark.parametrize(
    "x_shape, w_shape, padding, dilation",
    [
        ((2, 3, 7, 6), (4, 3, 3, 2), 1, 1),
        ((1, 1, 9, 9), (2, 1, 5, 5), 2, 1),
        ((2, 2, 8, 7), (3, 2, 3, 3), (0, 2), 1),
        ((1, 2, 9, 10), (2, 2, 3, 2), 2, (2, 3)),
    ],
)
def test_flat_shift_input_grad_equals_col2im(
    backend, x_shape, w_shape, padding, dilation
):
    """Stride-1 dx by flat shifts equals the general col2im of Wᵀ·dY."""
    rng = np.random.default_rng(2)
    x = backend.asarray(rng.standard_normal(x_shape))
    w = backend.asarray(rng.standard_normal(w_shape))
    y, cache = Fn.conv2d_forward(x, w, None, 1, padding, dilation)
    dy = backend.asarray(rng.standard_normal(tuple(y.shape)))
    dx, _, _ = Fn.conv2d_backward(dy, cache)
    xp, g = backend.xp, cache.geometry
    dy2 = xp.reshape(xp.permute_dims(dy, (1, 0, 2, 3)), (g.F, -1))
    wt = xp.matrix_transpose(xp.reshape(w, (g.F, -1)))
    dx_ref = conv_module.col2im(xp, wt @ dy2, g)
    np.testing.assert_allclose(
        backend.to_numpy(dx), backend.to_numpy(dx_ref), rtol=1e-12, atol=1e-12
    )


def test_input_grad_flag_skips_dx_only(backend):
    rng = np.random.default_rng(3)
    x = backend.asarray(rng.standard_normal((2, 3, 6, 6)), np.float32)
    w = backend.asarray(rng.standard_normal((4, 3, 3, 3)), np.float32)
    b = backend.asarray(rng.standard_normal(4), np.float32)
    y, cache = Fn.conv2d_forward(x, w, b, 1, 1)
    dy = backend.asarray(rng.standard_normal(tuple(y.shape)), np.float32)
    dx, dw, db = Fn.conv2d_backward(dy, cache)
    assert cache.input_grad and dx is not None  # the default returns dx
    none, dw2, db2 = Fn.conv2d_backward(dy, cache._replace(input_grad=False))
    assert none is None
    np.testing.assert_array_equal(backend.to_numpy(dw2), backend.to_numpy(dw))
    np.testing.assert_array_equal(backend.to_numpy(db2), backend.to_numpy(db))


def test_mask_multiply_matches_where(backend):
    """backend.mask_multiply: NumPy's bool-multiply fast path and the portable
    cast-then-multiply give where(mask, d, 0) for finite d, in d's dtype."""
    from cnnbook.backend import mask_multiply

    rng = np.random.default_rng(4)
    for dtype in (np.float32, np.float64):
        d = backend.asarray(rng.standard_normal((3, 5)), dtype)
        mask = backend.asarray(rng.standard_normal((3, 5))) > 0
        out = mask_multiply(d, mask)
        assert out.dtype == d.dtype
        ref = np.where(backend.to_numpy(mask), backend.to_numpy(d), 0.0)
        np.testing.assert_array_equal(backend.to_numpy(out), ref)


def test_split_by_mask_routes_into_regions(backend):
    """backend.split_by_mask: NumPy's out= fast path and the portable
    compute-then-assign write d·mask and d·(1 − mask) into two strided regions
    of one output, and leave the rest of it alone."""
    from cnnbook.backend import split_by_mask

    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        d_host = rng.standard_normal((2, 3, 4)).astype(dtype)
        mask_host = rng.standard_normal((2, 3, 4)) > 0
        d, mask = backend.asarray(d_host, dtype), backend.asarray(mask_host)
        out = backend.asarray(np.full((2, 3, 9), 7.0), dtype)
        hit, miss = (..., slice(1, 8, 2)), (..., slice(0, 8, 2))
        split_by_mask(d, mask, out, hit, miss)
        got = backend.to_numpy(out)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got[..., 1:8:2], np.where(mask_host, d_host, 0))
        np.testing.assert_array_equal(got[..., 0:8:2], np.where(mask_host, 0, d_host))
        np.testing.assert_array_equal(got[..., 8], 7.0)


def test_scratch_reuses_only_unreferenced_buffers(backend):
    """backend.scratch: im2col's column buffer (here 1.2 MB, above the pool's
    1 MiB floor) is reused by a later forward pass only once nothing refers to
    it; a cache still held keeps its columns intact."""
    rng = np.random.default_rng(6)
    w = backend.asarray(rng.standard_normal((4, 8, 3, 3)))
    xs = [backend.asarray(rng.standard_normal((2, 8, 32, 32))) for _ in range(3)]
    _, first = Fn.conv2d_forward(xs[0], w, None, 1, 1)
    kept = backend.to_numpy(first.cols).copy()
    _, second = Fn.conv2d_forward(xs[1], w, None, 1, 1)  # first still held
    np.testing.assert_array_equal(backend.to_numpy(first.cols), kept)
    assert not np.array_equal(backend.to_numpy(second.cols), kept)
    y3, _held = Fn.conv2d_forward(xs[2], w, None, 1, 1)  # its cache stays
    np.testing.assert_array_equal(backend.to_numpy(first.cols), kept)
    ref = Fn.conv2d_naive(xs[2], w, None, 1, 1)
    np.testing.assert_allclose(backend.to_numpy(y3), backend.to_numpy(ref), atol=1e-12)
    if backend.name == "numpy":  # a buffer nothing refers to is handed out again
        address = id(first.cols.base)
        del first
        _, fourth = Fn.conv2d_forward(xs[0], w, None, 1, 1)
        assert id(fourth.cols.base) == address
        np.testing.assert_array_equal(fourth.cols, kept)


def test_scratch_shape_dtype_device(backend):
    from cnnbook.backend import scratch

    for dtype in (np.float32, np.float64):
        like = backend.asarray(np.zeros(3), dtype)
        for shape in ((2, 3), (512, 1024)):  # below and above the pool's floor
            a = scratch(shape, like)
            assert tuple(a.shape) == shape and a.dtype == like.dtype
            b = like[:1] + a[:1, :1]  # same device: combining does not raise
            assert tuple(b.shape) == (1, 1)
