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
from cnnbook.functional._window import ConvGeometry, pad_sides, window

__all__ = [
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool2d_forward",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "global_avg_pool2d_backward",
    "global_avg_pool2d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "max_pool2d_indices",
]


def geometry(
    op: str, x: Any, kernel_size, stride, padding, dilation=1, ceil_mode=False
) -> tuple[Any, ConvGeometry]:
    """Check the arguments of a pooling -> (array namespace, geometry).

    With ``ceil_mode`` OH = ⌈(H + 2p − d(KH − 1) − 1) / s⌉ + 1, less one if
    the last window would start beyond the input and left padding (PyTorch's
    rule); the windows that reach past the padded input get extra padding at
    the bottom/right (``geometry.pad_end``), which never counts."""
    xp = _checks.float_inputs(op, x=x)
    _checks.ndim(op, "x", x, (4,), "4-D (N, C, H, W)")
    N, C, H, W = x.shape
    k = _checks.pair(op, "kernel_size", kernel_size, 1)
    s = k if stride is None else _checks.pair(op, "stride", stride, 1)
    p = _checks.pair(op, "padding", padding, 0)
    d = _checks.pair(op, "dilation", dilation, 1)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(
            f"{op}: padding {padding!r} must be at most half the kernel size "
            f"{kernel_size!r} (else a window could hold only padding)"
        )
    OH = _checks.output_size(op, H, k[0], s[0], p[0], d[0])
    OW = _checks.output_size(op, W, k[1], s[1], p[1], d[1])
    end = None
    if ceil_mode:
        sizes = []
        for size, kk, ss, pp, dd in zip((H, W), k, s, p, d, strict=True):
            span = dd * (kk - 1) + 1
            out = -(-(size + 2 * pp - span) // ss) + 1
            if (out - 1) * ss >= size + pp:
                out -= 1
            sizes.append(out)
        OH, OW = sizes
        extra_h = max(0, (OH - 1) * s[0] + d[0] * (k[0] - 1) + 1 - (H + 2 * p[0]))
        extra_w = max(0, (OW - 1) * s[1] + d[1] * (k[1] - 1) + 1 - (W + 2 * p[1]))
        if extra_h or extra_w:
            end = (p[0] + extra_h, p[1] + extra_w)
    return xp, ConvGeometry(N, C, H, W, C, k[0], k[1], OH, OW, s, p, d, 1, end)


def _taps(geo: ConvGeometry):
    """Window offsets (u, v) in row-major order, with the slices they read."""
    for u in range(geo.KH):
        for v in range(geo.KW):
            yield window(geo, u, v)


class PoolCache(NamedTuple):
    """What the pooling backward passes need from the forward pass."""

    xpad: Any  # padded input (max pooling) or None (average pooling)
    y: Any  # output (max pooling), or the divisors (average pooling)
    geometry: ConvGeometry


def max_pool2d_forward(
    x: Any, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False
):
    """x (N, C, H, W) -> y (N, C, OH, OW), cache; y is the maximum of each
    window (``dilation``: taps d apart; ``ceil_mode``: see :func:`geometry`).
    :func:`max_pool2d_indices` gives PyTorch's ``return_indices``.

    >>> import numpy as np
    >>> x = np.array([[[[1., 2., 5., 0.], [3., 4., 1., 1.]]]])
    >>> max_pool2d_forward(x, 2)[0]
    array([[[[4., 5.]]]])
    """
    xp, geo = geometry(
        "max_pool2d_forward", x, kernel_size, stride, padding, dilation, ceil_mode
    )
    xpad = pad_sides(xp, x, *geo.pads, fill=-float("inf"))
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


def max_pool2d_indices(cache: PoolCache) -> Any:
    """The cache of :func:`max_pool2d_forward` -> indices (N, C, OH, OW), int64:
    where each window's first maximum lies, as row·W + column of the
    unpadded input (PyTorch's ``return_indices``)."""
    xpad, y, geo = cache
    xp = _checks.float_inputs("max_pool2d_indices", y=y)
    dev = device_of(y)
    (sh, sw), (ph, pw), (dh, dw) = geo.stride, geo.padding, geo.dilation
    i = xp.reshape(xp.arange(geo.OH, device=dev), (geo.OH, 1))
    j = xp.reshape(xp.arange(geo.OW, device=dev), (1, geo.OW))
    idx = xp.full(y.shape, -1, dtype=xp.int64, device=dev)
    for u in range(geo.KH):
        for v in range(geo.KW):
            rows, cols = window(geo, u, v)
            tap = xpad[:, :, rows, cols]
            flat = (i * sh - ph + u * dh) * geo.W + (j * sw - pw + v * dw)
            hit = ((tap == y) | xp.isnan(tap)) & (idx < 0)
            idx = xp.where(hit, xp.astype(flat, xp.int64), idx)
    return idx


def avg_pool2d_forward(
    x: Any,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
):
    """x (N, C, H, W) -> y (N, C, OH, OW), cache; y is the mean of each window.

    Zero padding counts in the mean (``count_include_pad=True``, PyTorch's
    default) or not; the extra cells of ``ceil_mode`` never count. The
    divisor of each window is itself a pooling: the sum of a 0/1 map.

    >>> import numpy as np
    >>> x = np.array([[[[1., 2., 5., 0.], [3., 4., 1., 1.]]]])
    >>> avg_pool2d_forward(x, 2)[0]
    array([[[[2.5 , 1.75]]]])
    """
    xp, geo = geometry(
        "avg_pool2d_forward", x, kernel_size, stride, padding, 1, ceil_mode
    )
    xpad = pad_sides(xp, x, *geo.pads)
    total = None
    for rows, cols in _taps(geo):
        tap = xpad[:, :, rows, cols]
        total = tap if total is None else total + tap
    divisor = _divisors(xp, geo, x.dtype, device_of(x), count_include_pad)
    return total / divisor, PoolCache(None, divisor, geo)


def _divisors(xp: Any, geo: ConvGeometry, dtype, dev, count_include_pad) -> Any:
    """(1, 1, OH, OW) or a number: how many cells each window averages."""
    _top, bottom, _left, right = geo.pads
    if geo.pad_end is None and (count_include_pad or geo.padding == (0, 0)):
        return float(geo.KH * geo.KW)
    ph, pw = geo.padding
    ones = xp.ones((1, 1, geo.H, geo.W), dtype=dtype, device=dev)
    fill = 1.0 if count_include_pad else 0.0
    counted = pad_sides(xp, ones, ph, ph, pw, pw, fill=fill)
    counted = pad_sides(xp, counted, 0, bottom - ph, 0, right - pw, fill=0.0)
    divisor = None
    for rows, cols in _taps(geo):
        tap = counted[:, :, rows, cols]
        divisor = tap if divisor is None else divisor + tap
    return divisor


def avg_pool2d_backward(dy: Any, cache: PoolCache) -> Any:
    """dy (N, C, OH, OW) -> dx (N, C, H, W): each window shares its gradient
    equally among the cells its mean divides by."""
    geo, divisor = cache.geometry, cache.y
    op = "avg_pool2d_backward"
    xp = _checks.float_inputs(op, dy=dy)
    _checks.grad_shape(op, dy, (geo.N, geo.C, geo.OH, geo.OW))
    if divisor is None:  # a cache of an older version
        divisor = float(geo.KH * geo.KW)
    top, bottom, left, right = geo.pads
    share = dy / divisor
    dxpad = xp.zeros(
        (geo.N, geo.C, geo.H + top + bottom, geo.W + left + right),
        dtype=dy.dtype,
        device=device_of(dy),
    )
    for rows, cols in _taps(geo):
        dxpad[:, :, rows, cols] += share
    return dxpad[:, :, top : top + geo.H, left : left + geo.W]


def adaptive_avg_pool2d_forward(x: Any, output_size) -> tuple[Any, Any]:
    """x (N, C, H, W) -> y (N, C, OH, OW), cache: output cell (i, j) is the
    mean of rows ⌊iH/OH⌋ … ⌈(i+1)H/OH⌉ − 1 and the columns likewise, as
    PyTorch's ``adaptive_avg_pool2d`` (``output_size`` 1 is a global pool)."""
    op = "adaptive_avg_pool2d_forward"
    xp = _checks.float_inputs(op, x=x)
    _checks.ndim(op, "x", x, (4,), "4-D (N, C, H, W)")
    _N, _C, H, W = x.shape
    OH, OW = _checks.pair(op, "output_size", output_size, 1)
    rows = [(i * H // OH, -(-(i + 1) * H // OH)) for i in range(OH)]
    cols = [(j * W // OW, -(-(j + 1) * W // OW)) for j in range(OW)]
    out = [
        xp.stack(
            [xp.mean(x[:, :, r0:r1, c0:c1], axis=(2, 3)) for c0, c1 in cols], axis=-1
        )
        for r0, r1 in rows
    ]
    return xp.stack(out, axis=-2), (tuple(x.shape), rows, cols)


def adaptive_avg_pool2d_backward(dy: Any, cache: Any) -> Any:
    """dy (N, C, OH, OW) -> dx (N, C, H, W): each cell's gradient shared
    equally among the inputs of its bin (bins may overlap)."""
    op = "adaptive_avg_pool2d_backward"
    xp = _checks.float_inputs(op, dy=dy)
    shape, rows, cols = cache
    N, C, _H, _W = shape
    _checks.grad_shape(op, dy, (N, C, len(rows), len(cols)))
    dx = xp.zeros(shape, dtype=dy.dtype, device=device_of(dy))
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            share = dy[:, :, i : i + 1, j : j + 1] / ((r1 - r0) * (c1 - c0))
            dx[:, :, r0:r1, c0:c1] += share
    return dx


def global_avg_pool2d_forward(x: Any, keepdim: bool = False):
    """x (N, C, H, W) -> y (N, C), or (N, C, 1, 1) with ``keepdim``, cache:
    the mean of each feature map."""
    op = "global_avg_pool2d_forward"
    xp = _checks.float_inputs(op, x=x)
    _checks.ndim(op, "x", x, (4,), "4-D (N, C, H, W)")
    return xp.mean(x, axis=(2, 3), keepdims=bool(keepdim)), tuple(x.shape)


def global_avg_pool2d_backward(dy: Any, cache: tuple[int, ...]) -> Any:
    """dy (N, C) or (N, C, 1, 1) -> dx (N, C, H, W), each pixel getting
    dy / (H·W)."""
    op = "global_avg_pool2d_backward"
    xp = _checks.float_inputs(op, dy=dy)
    N, C, H, W = cache
    _checks.grad_shape(op, dy, (N, C, 1, 1) if dy.ndim == 4 else (N, C))
    share = xp.reshape(dy / (H * W), (N, C, 1, 1))
    return xp.broadcast_to(share, (N, C, H, W)) * 1
