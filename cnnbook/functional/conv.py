"""2-D convolution layers as deep learning defines them: cross-correlation.

Notation: x (N, C, H, W) input; w (F, C, KH, KW) filters; b (F,) biases;
stride s, padding p, dilation d; output y (N, F, OH, OW) with

    OH = (H + 2·p − d·(KH − 1) − 1) // s + 1      (OW likewise)

    y[n, f, i, j] = b[f] + Σ_c Σ_u Σ_v w[f, c, u, v] · xp[n, c, s·i + d·u, s·j + d·v]

where xp is x zero-padded by p. No kernel flip: a CNN "convolution" layer
computes a cross-correlation (the flip would not matter: the kernel is learned).

The fast path is im2col + one matrix multiply, with a "K-major" column buffer
(C, KH, KW, N, OH, OW) filled by KH·KW strided slice copies, so each copy moves
whole image rows; the backward pass scatters columns back with KH·KW slice-adds
(col2im). Both use only array-API slicing and ``@``: they run unchanged on
NumPy, CuPy and the strict stand-in device.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from cnnbook.backend import device_of, scratch
from cnnbook.functional import _common as _checks
from cnnbook.functional._common import ConvGeometry, pad, window

__all__ = [
    "col2im",
    "conv2d_backward",
    "conv2d_forward",
    "conv2d_naive",
    "conv_output_size",
    "im2col",
]

OP = "conv2d_forward"


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Output length along one axis: (size + 2p − d(k − 1) − 1) // s + 1.

    >>> conv_output_size(28, 5, padding=2)
    28
    >>> conv_output_size(32, 3, stride=2, padding=1)
    16
    """
    return _checks.output_size(
        "conv_output_size", size, kernel, stride, padding, dilation
    )


def _geometry(op: str, x: Any, w: Any, b: Any, stride, padding, dilation):
    xp = _checks.float_inputs(op, x=x, w=w, b=b)
    _checks.ndim(op, "x", x, (4,), "4-D (N, C, H, W)")
    _checks.ndim(op, "w", w, (4,), "4-D (F, C, KH, KW)")
    N, C, H, W = x.shape
    F, Cw, KH, KW = w.shape
    if C != Cw:
        raise ValueError(
            f"{op}: x has {C} channels (x shape {tuple(x.shape)}) but w expects "
            f"{Cw} (w shape {tuple(w.shape)})"
        )
    if b is not None and tuple(b.shape) != (F,):
        raise ValueError(
            f"{op}: b must have shape ({F},) to match w {tuple(w.shape)}, "
            f"got {tuple(b.shape)}"
        )
    s = _checks.pair(op, "stride", stride, 1)
    p = _checks.pair(op, "padding", padding, 0)
    d = _checks.pair(op, "dilation", dilation, 1)
    if KH < 1 or KW < 1:
        raise ValueError(f"{op}: kernel size must be positive, w shape {w.shape}")
    OH = _checks.output_size(op, H, KH, s[0], p[0], d[0])
    OW = _checks.output_size(op, W, KW, s[1], p[1], d[1])
    return xp, ConvGeometry(N, C, H, W, F, KH, KW, OH, OW, s, p, d)


def im2col(xp: Any, xpad: Any, g: ConvGeometry) -> Any:
    """Padded input (N, C, Hp, Wp) -> columns (C·KH·KW, N·OH·OW), K-major."""
    cols = scratch((g.C, g.KH, g.KW, g.N, g.OH, g.OW), like=xpad)  # xp.empty
    for u in range(g.KH):
        for v in range(g.KW):
            rows, columns = window(g, u, v)
            patch = xpad[:, :, rows, columns]  # (N, C, OH, OW)
            cols[:, u, v, ...] = xp.permute_dims(patch, (1, 0, 2, 3))
    return xp.reshape(cols, (g.C * g.KH * g.KW, g.N * g.OH * g.OW))


def col2im(xp: Any, cols: Any, g: ConvGeometry) -> Any:
    """Columns (C·KH·KW, N·OH·OW) -> input gradient (N, C, H, W): the adjoint
    of :func:`im2col`, summing every column entry back where it was read."""
    (ph, pw) = g.padding
    cols = xp.reshape(cols, (g.C, g.KH, g.KW, g.N, g.OH, g.OW))
    dxpad = xp.zeros(
        (g.N, g.C, g.H + 2 * ph, g.W + 2 * pw), dtype=cols.dtype, device=device_of(cols)
    )
    for u in range(g.KH):
        for v in range(g.KW):
            rows, columns = window(g, u, v)
            dxpad[:, :, rows, columns] += xp.permute_dims(
                cols[:, u, v, ...], (1, 0, 2, 3)
            )
    return dxpad[:, :, ph : ph + g.H, pw : pw + g.W]


# OpenBLAS multiplies a small W (F × C·KH·KW) by a very wide matrix slowly:
# for LeNet's layers, n products of one image's columns each run 1.4-3× faster
# than one product over all N·OH·OW columns (the same arithmetic); for
# VGG-sized W the single wide product is a few per cent faster.
_NARROW = 4096  # F·C·KH·KW up to which products go image by image


def _narrow(g: ConvGeometry) -> bool:
    return g.F * g.C * g.KH * g.KW <= _NARROW


def _per_image(xp: Any, cols: Any, g: ConvGeometry) -> Any:
    """Columns (C·KH·KW, N·OH·OW) -> a (N, C·KH·KW, OH·OW) view, one block
    per image."""
    return xp.permute_dims(xp.reshape(cols, (-1, g.N, g.OH * g.OW)), (1, 0, 2))


class Conv2dCache(NamedTuple):
    """What :func:`conv2d_backward` needs. A layer whose input needs no
    gradient (the first layer) may set ``input_grad=False`` with
    ``cache._replace(input_grad=False)``: backward then returns dx = None and
    skips the most expensive third of its work."""

    cols: Any  # (C·KH·KW, N·OH·OW) columns of the padded input
    w: Any  # (F, C, KH, KW)
    has_bias: bool
    geometry: ConvGeometry
    input_grad: bool = True


def conv2d_forward(
    x: Any, w: Any, b: Any = None, stride=1, padding=0, dilation=1
) -> tuple[Any, Conv2dCache]:
    """x (N, C, H, W), w (F, C, KH, KW), b (F,) or None -> y (N, F, OH, OW), cache.

    OH = (H + 2·padding − dilation·(KH − 1) − 1) // stride + 1; stride, padding
    and dilation are ints or (height, width) pairs. Computes cross-correlation,
    as every deep learning library's "conv2d" does.

    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 2, 2))
    >>> conv2d_forward(x, w)[0][0, 0]
    array([[10., 14., 18.],
           [26., 30., 34.],
           [42., 46., 50.]])
    """
    xp, g = _geometry(OP, x, w, b, stride, padding, dilation)
    cols = im2col(xp, pad(xp, x, *g.padding), g)
    wm = xp.reshape(w, (g.F, -1))  # (F, C·KH·KW)
    if _narrow(g):  # the same product, image by image: faster for small W
        y = xp.reshape(wm @ _per_image(xp, cols, g), (g.N, g.F, g.OH, g.OW))
    else:
        y = wm @ cols  # (F, N·OH·OW): one GEMM
        y = xp.permute_dims(xp.reshape(y, (g.F, g.N, g.OH, g.OW)), (1, 0, 2, 3))
    if b is not None:
        y += xp.reshape(b, (1, g.F, 1, 1))
    return y, Conv2dCache(cols, w, b is not None, g)


def conv2d_backward(dy: Any, cache: Conv2dCache) -> tuple[Any, Any, Any]:
    """dy (N, F, OH, OW) -> dx (N, C, H, W), dw (F, C, KH, KW), db (F,) or None.

    dw = dY ⋆ x (cross-correlation of the input with the output gradient),
    dx = dY * rot180(w) (full convolution), db = Σ dY over N, OH, OW.
    """
    cols, w, has_bias, g, input_grad = cache
    op = "conv2d_backward"
    xp = _checks.float_inputs(op, dy=dy, w=w)
    _checks.grad_shape(op, dy, (g.N, g.F, g.OH, g.OW))
    dy2 = xp.reshape(xp.permute_dims(dy, (1, 0, 2, 3)), (g.F, -1))  # (F, N·OH·OW)
    # dW = dY · colsᵀ, computed as (cols · dYᵀ)ᵀ: the same numbers, and the
    # orientation BLAS runs fastest for a short-and-wide dY (F ≪ N·OH·OW).
    if _narrow(g):  # Σ over images of colsₙ · dYₙᵀ (see _NARROW)
        dy3 = xp.reshape(dy, (g.N, g.F, g.OH * g.OW))
        dw = xp.sum(_per_image(xp, cols, g) @ xp.matrix_transpose(dy3), axis=0)
    else:
        dw = cols @ xp.matrix_transpose(dy2)  # (C·KH·KW, F)
    dw = xp.reshape(xp.matrix_transpose(dw), w.shape)
    db = xp.sum(dy2, axis=1) if has_bias else None
    if not input_grad:
        return None, dw, db
    wt = xp.matrix_transpose(xp.reshape(w, (g.F, -1)))  # (C·KH·KW, F)
    if g.stride == (1, 1):
        return _input_grad_flat(xp, dy, wt, g), dw, db
    return col2im(xp, wt @ dy2, g), dw, db


_BLOCK = 1 << 22  # elements of Wᵀ·dY computed at once by _input_grad_flat


def _input_grad_flat(xp: Any, dy: Any, wt: Any, g: ConvGeometry) -> Any:
    """dx for stride 1 by "flat shifts": lay dY out on the padded grid
    (F, N·Hp·Wp), zero where no output exists; then kernel tap (u, v) sends
    row block (c, u, v) of Wᵀ·dY to one contiguous 1-D slice of the flattened
    padded input, shifted by u·dh·Wp + v·dw. The KH·KW slice-adds move long
    contiguous runs instead of OW-element rows (col2im), at the price of a
    GEMM over Hp·Wp instead of OH·OW positions."""
    (ph, pw), (dh, dw_) = g.padding, g.dilation
    Hp, Wp = g.H + 2 * ph, g.W + 2 * pw
    L = g.N * Hp * Wp
    dev = device_of(dy)
    dypad = xp.zeros((g.F, g.N, Hp, Wp), dtype=dy.dtype, device=dev)
    dypad[:, :, : g.OH, : g.OW] = xp.permute_dims(dy, (1, 0, 2, 3))
    dypad = xp.reshape(dypad, (g.F, L))
    tail = (g.KH - 1) * dh * Wp + (g.KW - 1) * dw_  # reach of the last tap
    dxflat = xp.zeros((g.C, L + tail), dtype=dy.dtype, device=dev)
    taps = g.KH * g.KW
    # Channels in blocks of about _BLOCK elements of Wᵀ·dY: the same work,
    # without holding all C·KH·KW × N·Hp·Wp of it at once (peak memory).
    step = max(1, _BLOCK // (taps * L))
    for c0 in range(0, g.C, step):
        c1 = min(g.C, c0 + step)
        dcols = wt[c0 * taps : c1 * taps, :] @ dypad  # ((c1−c0)·KH·KW, L)
        dcols = xp.reshape(dcols, (c1 - c0, g.KH, g.KW, L))
        for u in range(g.KH):
            for v in range(g.KW):
                shift = u * dh * Wp + v * dw_
                dxflat[c0:c1, shift : shift + L] += dcols[:, u, v, :]
    dxpad = xp.reshape(dxflat[:, :L], (g.C, g.N, Hp, Wp))
    dx = dxpad[:, :, ph : ph + g.H, pw : pw + g.W]
    return xp.permute_dims(dx, (1, 0, 2, 3))  # (N, C, H, W)


def conv2d_naive(x: Any, w: Any, b: Any = None, stride=1, padding=0, dilation=1):
    """The definition, with explicit loops: the reference the fast kernel is
    tested against. Same shapes and arguments as :func:`conv2d_forward`.

    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> float(conv2d_naive(x, np.ones((1, 1, 2, 2)))[0, 0, 0, 0])
    10.0
    """
    xp, g = _geometry("conv2d_naive", x, w, b, stride, padding, dilation)
    xpad = pad(xp, x, *g.padding)
    (sh, sw), (dh, dw) = g.stride, g.dilation
    y = xp.zeros((g.N, g.F, g.OH, g.OW), dtype=x.dtype, device=device_of(x))
    for n in range(g.N):
        for f in range(g.F):
            for i in range(g.OH):
                for j in range(g.OW):
                    patch = xpad[
                        n,
                        :,
                        sh * i : sh * i + dh * (g.KH - 1) + 1 : dh,
                        sw * j : sw * j + dw * (g.KW - 1) + 1 : dw,
                    ]
                    y[n, f, i, j] = xp.sum(patch * w[f, ...])
            if b is not None:
                y[n, f, ...] += b[f]
    return y
