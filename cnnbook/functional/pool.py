"""Pooling: max, average and global average over sliding windows.

Notation: x (N, C, H, W); window KH × KW, stride s (defaults to the window),
padding p; y (N, C, OH, OW) with OH = (H + 2p − KH) // s + 1.

Max pooling pads with −∞ (padding never wins); its gradient goes to one
element per window, the first maximum in row-major order, as PyTorch does.
Average pooling pads with zeros that count in the average (PyTorch's
``count_include_pad=True``). Both loop over the KH·KW window offsets, never
over pixels, with strided slices that run on every array backend.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from cnnbook.backend import device_of, split_by_mask
from cnnbook.functional import _common as _checks
from cnnbook.functional._common import ConvGeometry, pad, window

__all__ = [
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "global_avg_pool2d_backward",
    "global_avg_pool2d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
]


def _geometry(op: str, x: Any, kernel_size, stride, padding):
    xp = _checks.float_inputs(op, x=x)
    _checks.ndim(op, "x", x, (4,), "4-D (N, C, H, W)")
    N, C, H, W = x.shape
    k = _checks.pair(op, "kernel_size", kernel_size, 1)
    s = k if stride is None else _checks.pair(op, "stride", stride, 1)
    p = _checks.pair(op, "padding", padding, 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(
            f"{op}: padding {padding!r} must be at most half the kernel size "
            f"{kernel_size!r} (else a window could hold only padding)"
        )
    OH = _checks.output_size(op, H, k[0], s[0], p[0])
    OW = _checks.output_size(op, W, k[1], s[1], p[1])
    return xp, ConvGeometry(N, C, H, W, C, k[0], k[1], OH, OW, s, p, (1, 1))


def _taps(g: ConvGeometry):
    """Window offsets (u, v) in row-major order, with the slices they read."""
    for u in range(g.KH):
        for v in range(g.KW):
            yield window(g, u, v)


class PoolCache(NamedTuple):
    xpad: Any  # padded input (max pooling) or None (average pooling)
    y: Any  # output (max pooling) or None
    geometry: ConvGeometry


def max_pool2d_forward(x: Any, kernel_size, stride=None, padding=0):
    """x (N, C, H, W) -> y (N, C, OH, OW), cache; y is the maximum of each window.

    >>> import numpy as np
    >>> x = np.array([[[[1., 2., 5., 0.], [3., 4., 1., 1.]]]])
    >>> max_pool2d_forward(x, 2)[0]
    array([[[[4., 5.]]]])
    """
    xp, g = _geometry("max_pool2d_forward", x, kernel_size, stride, padding)
    if _pairwise(g):
        return _max_pool_2x2_forward(xp, x, g)
    xpad = pad(xp, x, *g.padding, fill=-float("inf"))
    y = None
    for rows, cols in _taps(g):
        tap = xpad[:, :, rows, cols]
        y = tap if y is None else xp.maximum(y, tap)  # NaN propagates
    if g.KH * g.KW == 1:
        y = xp.asarray(y, copy=True)
    return y, PoolCache(xpad, y, g)


def max_pool2d_backward(dy: Any, cache: PoolCache) -> Any:
    """dy (N, C, OH, OW) -> dx (N, C, H, W): each window's gradient goes to its
    first maximum (row-major), the rule PyTorch uses for ties."""
    xpad, y, g = cache
    op = "max_pool2d_backward"
    xp = _checks.float_inputs(op, dy=dy, y=y)
    _checks.grad_shape(op, dy, (g.N, g.C, g.OH, g.OW))
    if _pairwise(g):
        return _max_pool_2x2_backward(xp, dy, xpad, y, g)
    ph, pw = g.padding
    dxpad = xp.zeros(xpad.shape, dtype=dy.dtype, device=device_of(dy))
    routed = xp.zeros(y.shape, dtype=xp.bool, device=device_of(y))
    for rows, cols in _taps(g):
        tap = xpad[:, :, rows, cols]
        hit = ((tap == y) | xp.isnan(tap)) & ~routed
        routed = routed | hit
        dxpad[:, :, rows, cols] += xp.where(hit, dy, 0.0)
    return dxpad[:, :, ph : ph + g.H, pw : pw + g.W]


# The common case, 2×2 windows with stride 2 and no padding, as two pairwise
# maxima: of horizontal neighbours, then of vertical ones. Each element is
# read once (the general loop above reads each window offset separately).
# The forward pass also keeps "which one won" of each pair (one comparison per
# pair, as booleans: 3/16 of a float32 input's bytes), so the backward pass only
# routes the gradient: bottom or top row of each window, then right or left
# element of that row.
def _pairwise(g: ConvGeometry) -> bool:
    return (g.KH, g.KW, g.stride, g.padding) == (2, 2, (2, 2), (0, 0))


class _Pairwise(NamedTuple):
    """The pairwise path's ``PoolCache.xpad``: the input and the winners."""

    x: Any  # (N, C, 2·OH, 2·OW), odd sizes cropped
    right_wins: Any  # (N, C, 2·OH, OW): the right element beats the left one
    bottom_wins: Any  # (N, C, OH, OW): the bottom row's maximum beats the top's


def _later_wins(xp: Any, first: Any, second: Any, clean: bool) -> Any:
    """True where ``second`` is the first maximum of the pair (first, second).

    Without NaNs (``clean``) that is second > first: ties go to ``first``.
    Otherwise a NaN always wins, and of two NaNs the first does."""
    if clean:
        return xp.less(first, second)
    return ~((first >= second) | (first != first))


def _max_pool_2x2_forward(xp: Any, x: Any, g: ConvGeometry):
    x = x[:, :, : 2 * g.OH, : 2 * g.OW]  # odd sizes: the last row/column drops
    # Contiguous copies of the even and odd columns first: element-wise ops
    # on them run several times faster than on the stride-2 views (SIMD).
    left = xp.asarray(x[:, :, :, 0::2], copy=True)
    right = xp.asarray(x[:, :, :, 1::2], copy=True)
    rows = xp.maximum(left, right)  # (N, C, 2·OH, OW); NaN propagates
    top, bottom = rows[:, :, 0::2, :], rows[:, :, 1::2, :]
    y = xp.maximum(top, bottom)
    # The winners as if there were no NaN; backward re-derives them from x
    # in the rare case that y shows a NaN.
    saved = _Pairwise(x, xp.less(left, right), xp.less(top, bottom))
    return y, PoolCache(saved, y, g)


def _max_pool_2x2_backward(
    xp: Any, dy: Any, saved: _Pairwise, y: Any, g: ConvGeometry
) -> Any:
    x, right_wins, bottom_wins = saved
    # One cheap look at y (a quarter of x): y has no NaN iff x has none, and
    # then the winners saved by the forward pass are exact.
    if bool(xp.any(xp.isnan(y))):
        left, right = x[:, :, :, 0::2], x[:, :, :, 1::2]
        right_wins = _later_wins(xp, left, right, False)
        rows = xp.maximum(left, right)
        bottom_wins = _later_wins(xp, rows[:, :, 0::2, :], rows[:, :, 1::2, :], False)
    # Finite dy may be routed by multiplying with the 0/1 masks (an infinite
    # dy times 0 would give NaN where 0 belongs).
    finite = bool(xp.all(xp.isfinite(dy)))

    def route(d, mask, out, hit, miss):  # out[hit] <- d·mask, out[miss] <- rest
        if finite:
            split_by_mask(d, mask, out, hit, miss)
        else:
            out[hit] = xp.where(mask, d, 0.0)
            out[miss] = xp.where(mask, 0.0, d)

    H2, W2 = 2 * g.OH, 2 * g.OW
    dev = device_of(dy)
    # dy -> the row gradient drows (N, C, 2·OH, OW): bottom or top row ...
    drows = xp.empty((g.N, g.C, H2, g.OW), dtype=dy.dtype, device=dev)
    bottom, top = (
        (..., slice(1, H2, 2), slice(None)),
        (..., slice(0, H2, 2), slice(None)),
    )
    route(dy, bottom_wins, drows, bottom, top)
    # ... -> dx: right or left element of that row.
    make = xp.empty if (g.H, g.W) == (H2, W2) else xp.zeros
    dx = make((g.N, g.C, g.H, g.W), dtype=dy.dtype, device=dev)
    right, left = (
        (..., slice(0, H2), slice(1, W2, 2)),
        (..., slice(0, H2), slice(0, W2, 2)),
    )
    route(drows, right_wins, dx, right, left)
    return dx


def avg_pool2d_forward(x: Any, kernel_size, stride=None, padding=0):
    """x (N, C, H, W) -> y (N, C, OH, OW), cache; y is the mean of each window
    (zero padding counts in the mean).

    >>> import numpy as np
    >>> x = np.array([[[[1., 2., 5., 0.], [3., 4., 1., 1.]]]])
    >>> avg_pool2d_forward(x, 2)[0]
    array([[[[2.5 , 1.75]]]])
    """
    xp, g = _geometry("avg_pool2d_forward", x, kernel_size, stride, padding)
    xpad = pad(xp, x, *g.padding)
    total = None
    for rows, cols in _taps(g):
        tap = xpad[:, :, rows, cols]
        total = tap if total is None else total + tap
    return total / (g.KH * g.KW), PoolCache(None, None, g)


def avg_pool2d_backward(dy: Any, cache: PoolCache) -> Any:
    """dy (N, C, OH, OW) -> dx (N, C, H, W): each window shares its gradient
    equally among its KH·KW elements."""
    g = cache.geometry
    op = "avg_pool2d_backward"
    xp = _checks.float_inputs(op, dy=dy)
    _checks.grad_shape(op, dy, (g.N, g.C, g.OH, g.OW))
    ph, pw = g.padding
    share = dy / (g.KH * g.KW)
    dxpad = xp.zeros(
        (g.N, g.C, g.H + 2 * ph, g.W + 2 * pw), dtype=dy.dtype, device=device_of(dy)
    )
    for rows, cols in _taps(g):
        dxpad[:, :, rows, cols] += share
    return dxpad[:, :, ph : ph + g.H, pw : pw + g.W]


def global_avg_pool2d_forward(x: Any):
    """x (N, C, H, W) -> y (N, C), cache: the mean of each feature map."""
    op = "global_avg_pool2d_forward"
    xp = _checks.float_inputs(op, x=x)
    _checks.ndim(op, "x", x, (4,), "4-D (N, C, H, W)")
    return xp.mean(x, axis=(2, 3)), tuple(x.shape)


def global_avg_pool2d_backward(dy: Any, cache: tuple[int, ...]) -> Any:
    """dy (N, C) -> dx (N, C, H, W), each pixel getting dy / (H·W)."""
    op = "global_avg_pool2d_backward"
    xp = _checks.float_inputs(op, dy=dy)
    N, C, H, W = cache
    _checks.grad_shape(op, dy, (N, C))
    share = xp.reshape(dy / (H * W), (N, C, 1, 1))
    return xp.broadcast_to(share, (N, C, H, W)) * 1
