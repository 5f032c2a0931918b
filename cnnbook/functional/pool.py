"""Pooling: max, average and global average over sliding windows.

Notation: x (N, C, H, W); window KH × KW, stride s (defaults to the window),
padding p; y (N, C, OH, OW) with OH = (H + 2p − KH) // s + 1.

Max pooling pads with −∞ (padding never wins); its gradient goes to one
element per window, the first maximum in row-major order, as PyTorch does.
Average pooling pads with zeros that count in the average (PyTorch's
``count_include_pad=True``). Both loop over the KH·KW window offsets, never
over pixels, with strided slices that run on every array backend. These are
the definitions the pooling chapter shows; the layers of :mod:`cnnbook.nn` run
a faster 2×2 kernel that gives the same numbers
(``cnnbook.functional._fast``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from cnnbook.backend import device_of
from cnnbook.functional import _checks
from cnnbook.functional._window import ConvGeometry, pad, window

__all__ = [
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "global_avg_pool2d_backward",
    "global_avg_pool2d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
]


def geometry(op: str, x: Any, kernel_size, stride, padding) -> tuple[Any, ConvGeometry]:
    """Check the arguments of a pooling -> (array namespace, geometry)."""
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


def _taps(geo: ConvGeometry):
    """Window offsets (u, v) in row-major order, with the slices they read."""
    for u in range(geo.KH):
        for v in range(geo.KW):
            yield window(geo, u, v)


class PoolCache(NamedTuple):
    """What the pooling backward passes need from the forward pass."""

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
    xp, geo = geometry("max_pool2d_forward", x, kernel_size, stride, padding)
    xpad = pad(xp, x, *geo.padding, fill=-float("inf"))
    y = None
    for rows, cols in _taps(geo):
        tap = xpad[:, :, rows, cols]
        y = tap if y is None else xp.maximum(y, tap)  # NaN propagates
    if geo.KH * geo.KW == 1:
        y = xp.asarray(y, copy=True)
    return y, PoolCache(xpad, y, geo)


def max_pool2d_backward(dy: Any, cache: PoolCache) -> Any:
    """dy (N, C, OH, OW) -> dx (N, C, H, W): each window's gradient goes to its
    first maximum (row-major), the rule PyTorch uses for ties."""
    xpad, y, geo = cache
    op = "max_pool2d_backward"
    xp = _checks.float_inputs(op, dy=dy, y=y)
    _checks.grad_shape(op, dy, (geo.N, geo.C, geo.OH, geo.OW))
    ph, pw = geo.padding
    dxpad = xp.zeros(xpad.shape, dtype=dy.dtype, device=device_of(dy))
    routed = xp.zeros(y.shape, dtype=xp.bool, device=device_of(y))
    for rows, cols in _taps(geo):
        tap = xpad[:, :, rows, cols]
        hit = ((tap == y) | xp.isnan(tap)) & ~routed
        routed = routed | hit
        dxpad[:, :, rows, cols] += xp.where(hit, dy, 0.0)
    return dxpad[:, :, ph : ph + geo.H, pw : pw + geo.W]


def avg_pool2d_forward(x: Any, kernel_size, stride=None, padding=0):
    """x (N, C, H, W) -> y (N, C, OH, OW), cache; y is the mean of each window
    (zero padding counts in the mean).

    >>> import numpy as np
    >>> x = np.array([[[[1., 2., 5., 0.], [3., 4., 1., 1.]]]])
    >>> avg_pool2d_forward(x, 2)[0]
    array([[[[2.5 , 1.75]]]])
    """
    xp, geo = geometry("avg_pool2d_forward", x, kernel_size, stride, padding)
    xpad = pad(xp, x, *geo.padding)
    total = None
    for rows, cols in _taps(geo):
        tap = xpad[:, :, rows, cols]
        total = tap if total is None else total + tap
    return total / (geo.KH * geo.KW), PoolCache(None, None, geo)


def avg_pool2d_backward(dy: Any, cache: PoolCache) -> Any:
    """dy (N, C, OH, OW) -> dx (N, C, H, W): each window shares its gradient
    equally among its KH·KW elements."""
    geo = cache.geometry
    op = "avg_pool2d_backward"
    xp = _checks.float_inputs(op, dy=dy)
    _checks.grad_shape(op, dy, (geo.N, geo.C, geo.OH, geo.OW))
    ph, pw = geo.padding
    share = dy / (geo.KH * geo.KW)
    dxpad = xp.zeros(
        (geo.N, geo.C, geo.H + 2 * ph, geo.W + 2 * pw),
        dtype=dy.dtype,
        device=device_of(dy),
    )
    for rows, cols in _taps(geo):
        dxpad[:, :, rows, cols] += share
    return dxpad[:, :, ph : ph + geo.H, pw : pw + geo.W]


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
