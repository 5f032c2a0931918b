"""2-D convolution layers as deep learning defines them: cross-correlation.

Notation: x (N, C, H, W) input; w (F, C, KH, KW) filters; b (F,) biases;
stride s, padding p, dilation d; output y (N, F, OH, OW) with

    OH = (H + 2·p − d·(KH − 1) − 1) // s + 1      (OW likewise)

    y[n, f, i, j] = b[f] + Σ_c Σ_u Σ_v w[f, c, u, v] · xpad[n, c, s·i + d·u, s·j + d·v]

where xpad is x zero-padded by p. With ``groups`` G the C channels and F
filters split into G groups, filter f seeing only its group's C/G channels
(w is (F, C/G, KH, KW); depthwise: G = C); each product below becomes G
products, one per group (a batched ``@``). ``padding`` may be an int, a pair,
(top, bottom, left, right), or "valid" (0) / "same" (output size = input
size at stride 1; the odd extra pixel goes bottom/right, as PyTorch). No
kernel flip: a CNN "convolution" layer
computes a cross-correlation (the flip would not matter: the kernel is learned).

The functions below are the definitions the convolution chapter derives, in
its order: the output size, the loops of the definition, im2col (every window
as one column), the forward pass as one matrix product Y = W·cols + b, and the
backward pass dW = dY·colsᵀ, db = Σ dY, dcols = Wᵀ·dY folded back by col2im
(the adjoint of im2col). They use only array-API slicing and ``@``, so they
run unchanged on NumPy, CuPy and the strict stand-in device. The layers of
:mod:`cnnbook.nn` run faster kernels that compute the same numbers
(``cnnbook.functional._fast``, tested against these).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from cnnbook.backend import device_of
from cnnbook.functional import _checks
from cnnbook.functional._window import ConvGeometry, pad_sides, window

__all__ = [
    "col2im",
    "conv2d_backward",
    "conv2d_forward",
    "conv2d_naive",
    "conv_output_size",
    "conv_transpose2d_backward",
    "conv_transpose2d_forward",
    "im2col",
]


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


def resolve_padding(
    op: str, padding: Any, kernel: tuple[int, int], dilation, stride
) -> tuple[int, int, int, int]:
    """padding (int, pair, (top, bottom, left, right), "valid" or "same")
    -> (top, bottom, left, right)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding != "same":
            raise ValueError(
                f"{op}: padding must be an int, a pair, (top, bottom, left, right), "
                f"'valid' or 'same', got {padding!r}"
            )
        if tuple(stride) != (1, 1):
            raise ValueError(f"{op}: padding='same' needs stride 1, got {stride!r}")
        total = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        return (
            total[0] // 2,
            total[0] - total[0] // 2,
            total[1] // 2,
            (total[1] - total[1] // 2),
        )
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        for v in padding:
            if isinstance(v, bool) or not hasattr(v, "__index__") or v < 0:
                raise ValueError(
                    f"{op}: padding (top, bottom, left, right) must be non-negative "
                    f"ints, got {padding!r}"
                )
        return tuple(int(v) for v in padding)  # type: ignore[return-value]
    ph, pw = _checks.pair(op, "padding", padding, 0)
    return ph, ph, pw, pw


def geometry(
    op: str, x: Any, w: Any, b: Any, stride, padding, dilation, groups=1
) -> tuple[Any, ConvGeometry]:
    """Check the arguments of a convolution -> (array namespace, geometry)."""
    xp, G = _checks.conv_inputs(
        op, x, w, b, groups, "4-D (N, C, H, W)", "4-D (F, C/groups, KH, KW)"
    )
    N, C, H, W = x.shape
    F, Cw, KH, KW = w.shape
    if C % G or F % G:
        raise ValueError(
            f"{op}: groups={G} must divide the {C} input channels (x shape "
            f"{tuple(x.shape)}) and the {F} filters (w shape {tuple(w.shape)})"
        )
    _checks.channels(op, x, w, Cw * G, f"groups={G}")
    _checks.bias(op, b, F, w)
    s = _checks.pair(op, "stride", stride, 1)
    d = _checks.pair(op, "dilation", dilation, 1)
    if KH < 1 or KW < 1:
        raise ValueError(f"{op}: kernel size must be positive, w shape {w.shape}")
    top, bottom, left, right = resolve_padding(op, padding, (KH, KW), d, s)
    # output_size takes symmetric padding: pass the mean, exact for the sum
    OH = _checks.output_size(op, H + top + bottom, KH, s[0], 0, d[0])
    OW = _checks.output_size(op, W + left + right, KW, s[1], 0, d[1])
    end = None if (top, left) == (bottom, right) else (bottom, right)
    geo = ConvGeometry(N, C, H, W, F, KH, KW, OH, OW, s, (top, left), d, G, end)
    return xp, geo


def conv2d_naive(x: Any, w: Any, b: Any = None, stride=1, padding=0, dilation=1):
    """The definition, with explicit loops: the reference the fast kernel is
    tested against. Same shapes and arguments as :func:`conv2d_forward`.

    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> float(conv2d_naive(x, np.ones((1, 1, 2, 2)))[0, 0, 0, 0])
    10.0
    """
    xp, geo = geometry("conv2d_naive", x, w, b, stride, padding, dilation)
    if geo.groups != 1:
        raise ValueError("conv2d_naive: groups other than 1 are not looped here")
    xpad = pad_sides(xp, x, *geo.pads)
    (sh, sw), (dil_h, dil_w) = geo.stride, geo.dilation
    y = xp.zeros((geo.N, geo.F, geo.OH, geo.OW), dtype=x.dtype, device=device_of(x))
    for n in range(geo.N):
        for f in range(geo.F):
            for i in range(geo.OH):
                for j in range(geo.OW):
                    patch = xpad[
                        n,
                        :,
                        sh * i : sh * i + dil_h * (geo.KH - 1) + 1 : dil_h,
                        sw * j : sw * j + dil_w * (geo.KW - 1) + 1 : dil_w,
                    ]
                    y[n, f, i, j] = xp.sum(patch * w[f, ...])
            if b is not None:
                y[n, f, ...] += b[f]
    return y


def im2col(xp: Any, xpad: Any, geo: ConvGeometry, out: Any = None) -> Any:
    """Padded input (N, C, Hp, Wp) -> columns (C·KH·KW, N·OH·OW).

    Row (c, u, v) holds, for every output position (n, i, j), the input value
    that kernel tap (u, v) of channel c meets there: one strided slice of the
    padded input per tap. ``out``: an array (C, KH, KW, N, OH, OW) to fill
    instead of a new one (the fast kernels pass a buffer they reuse).
    """
    cols = out
    if cols is None:
        cols = xp.empty(
            (geo.C, geo.KH, geo.KW, geo.N, geo.OH, geo.OW),
            dtype=xpad.dtype,
            device=device_of(xpad),
        )
    for u in range(geo.KH):
        for v in range(geo.KW):
            rows, columns = window(geo, u, v)
            patch = xpad[:, :, rows, columns]  # (N, C, OH, OW)
            cols[:, u, v, ...] = xp.permute_dims(patch, (1, 0, 2, 3))
    return xp.reshape(cols, (geo.C * geo.KH * geo.KW, geo.N * geo.OH * geo.OW))


class Conv2dCache(NamedTuple):
    """What :func:`conv2d_backward` needs from the forward pass."""

    cols: Any  # (C·KH·KW, N·OH·OW) columns of the padded input
    w: Any  # (F, C, KH, KW)
    has_bias: bool
    geometry: ConvGeometry


def _grouped(xp: Any, a: Any, G: int) -> Any:
    """A matrix (G·R, P) -> a stack (G, R, P) of the groups' blocks."""
    return xp.reshape(a, (G, a.shape[0] // G, a.shape[1]))


def conv2d_forward(
    x: Any, w: Any, b: Any = None, stride=1, padding=0, dilation=1, groups=1
) -> tuple[Any, Conv2dCache]:
    """x (N, C, H, W), w (F, C/groups, KH, KW), b (F,) or None
    -> y (N, F, OH, OW), cache.

    Y = W·cols + b: one matrix product of the filters (F, C·KH·KW) with the
    columns of :func:`im2col`. OH = (H + 2·padding − dilation·(KH − 1) − 1) //
    stride + 1; stride, padding and dilation are ints or (height, width) pairs.

    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 2, 2))
    >>> conv2d_forward(x, w)[0][0, 0]
    array([[10., 14., 18.],
           [26., 30., 34.],
           [42., 46., 50.]])
    """
    xp, geo = geometry("conv2d_forward", x, w, b, stride, padding, dilation, groups)
    cols = im2col(xp, pad_sides(xp, x, *geo.pads), geo)
    G = geo.groups
    if G == 1:
        y = xp.reshape(w, (geo.F, -1)) @ cols  # (F, N·OH·OW)
    else:  # group g: its F/G filters times its C/G channels' rows of cols
        w_g = xp.reshape(w, (G, geo.F // G, -1))
        y = xp.reshape(w_g @ _grouped(xp, cols, G), (geo.F, -1))
    y = xp.permute_dims(xp.reshape(y, (geo.F, geo.N, geo.OH, geo.OW)), (1, 0, 2, 3))
    if b is not None:
        y = y + xp.reshape(b, (1, geo.F, 1, 1))
    return y, Conv2dCache(cols, w, b is not None, geo)


def conv2d_backward(dy: Any, cache: Conv2dCache) -> tuple[Any, Any, Any]:
    """dy (N, F, OH, OW) -> dx (N, C, H, W), dw (F, C, KH, KW), db (F,) or None.

    With dY the output gradient as a matrix (F, N·OH·OW):
    dW = dY · colsᵀ (the cross-correlation of the input with dY),
    db = Σ dY over N, OH, OW, and dx = col2im(Wᵀ · dY), which is the full
    convolution of dY with the flipped kernel.
    """
    cols, w, has_bias, geo = cache
    xp = _checks.float_inputs("conv2d_backward", dy=dy, w=w)
    _checks.grad_shape("conv2d_backward", dy, (geo.N, geo.F, geo.OH, geo.OW))
    dy_mat = xp.reshape(xp.permute_dims(dy, (1, 0, 2, 3)), (geo.F, -1))
    db = xp.sum(dy_mat, axis=1) if has_bias else None
    G = geo.groups
    if G == 1:
        w_mat = xp.reshape(w, (geo.F, -1))  # (F, C·KH·KW)
        dw = xp.reshape(dy_mat @ xp.matrix_transpose(cols), w.shape)
        dx = col2im(xp, xp.matrix_transpose(w_mat) @ dy_mat, geo)
        return dx, dw, db
    dy_g, cols_g = _grouped(xp, dy_mat, G), _grouped(xp, cols, G)
    w_g = xp.reshape(w, (G, geo.F // G, -1))
    dw = xp.reshape(dy_g @ xp.matrix_transpose(cols_g), w.shape)
    dcols = xp.matrix_transpose(w_g) @ dy_g  # (G, C/G·KH·KW, N·OH·OW)
    dx = col2im(xp, xp.reshape(dcols, (geo.C * geo.KH * geo.KW, -1)), geo)
    return dx, dw, db


def col2im(xp: Any, cols: Any, geo: ConvGeometry) -> Any:
    """Columns (C·KH·KW, N·OH·OW) -> input gradient (N, C, H, W): the adjoint
    of :func:`im2col`, adding every column entry back where it was read."""
    top, bottom, left, right = geo.pads
    cols = xp.reshape(cols, (geo.C, geo.KH, geo.KW, geo.N, geo.OH, geo.OW))
    dxpad = xp.zeros(
        (geo.N, geo.C, geo.H + top + bottom, geo.W + left + right),
        dtype=cols.dtype,
        device=device_of(cols),
    )
    for u in range(geo.KH):
        for v in range(geo.KW):
            rows, columns = window(geo, u, v)
            dxpad[:, :, rows, columns] += xp.permute_dims(
                cols[:, u, v, ...], (1, 0, 2, 3)
            )
    return dxpad[:, :, top : top + geo.H, left : left + geo.W]


# ---------------------------------------------------------------------------
# transposed convolution: the adjoint of the convolution, x -> dX of a conv
# ---------------------------------------------------------------------------
class ConvTranspose2dCache(NamedTuple):
    x: Any  # (N, C_in, H, W)
    w: Any  # (C_in, C_out/groups, KH, KW)
    has_bias: bool
    geometry: ConvGeometry  # of the convolution whose adjoint this is


def conv_transpose2d_forward(
    x: Any,
    w: Any,
    b: Any = None,
    stride=1,
    padding=0,
    output_padding=0,
    dilation=1,
    groups=1,
) -> tuple[Any, ConvTranspose2dCache]:
    """x (N, C_in, H, W), w (C_in, C_out/groups, KH, KW), b (C_out,) or None
    -> y (N, C_out, OH, OW), cache, with

        OH = (H − 1)·s − 2p + d·(KH − 1) + output_padding + 1

    y is what :func:`conv2d_backward` returns as dx for dy = x and filters w
    (the convolution from C_out to C_in channels, with the same ``groups``):
    cols = Wᵀ·x (per group) folded back by :func:`col2im`. As PyTorch's
    ``conv_transpose2d`` (weight layout (C_in, C_out/groups, KH, KW)).
    """
    op = "conv_transpose2d_forward"
    xp, G = _checks.conv_inputs(
        op, x, w, b, groups, "4-D (N, C_in, H, W)", "4-D (C_in, C_out/groups, KH, KW)"
    )
    N, C_in, H, W = x.shape
    Cw, C_out_g, KH, KW = w.shape
    C_out = C_out_g * G
    _checks.channels(op, x, w, Cw, "(C_in, C_out/groups, KH, KW)")
    if C_in % G:
        raise ValueError(
            f"{op}: groups={G} must divide the {C_in} input channels (x shape "
            f"{tuple(x.shape)})"
        )
    _checks.bias(op, b, C_out, w)
    s = _checks.pair(op, "stride", stride, 1)
    p = _checks.pair(op, "padding", padding, 0)
    d = _checks.pair(op, "dilation", dilation, 1)
    op_ = _checks.pair(op, "output_padding", output_padding, 0)
    for k in (0, 1):
        if op_[k] >= max(s[k], d[k]):
            raise ValueError(
                f"{op}: output_padding {output_padding!r} must be smaller than the "
                f"stride {stride!r} or the dilation {dilation!r}"
            )
    OH = (H - 1) * s[0] - 2 * p[0] + d[0] * (KH - 1) + op_[0] + 1
    OW = (W - 1) * s[1] - 2 * p[1] + d[1] * (KW - 1) + op_[1] + 1
    if OH < 1 or OW < 1:
        raise ValueError(
            f"{op}: the output would be {OH}×{OW} for x {tuple(x.shape)}, kernel "
            f"{KH}×{KW}, stride {stride!r}, padding {padding!r}"
        )
    geo = ConvGeometry(N, C_out, OH, OW, C_in, KH, KW, H, W, s, p, d, G)
    x_mat = xp.reshape(xp.permute_dims(x, (1, 0, 2, 3)), (C_in, -1))
    # group g: its C_out/G·KH·KW rows of cols from its C_in/G input channels
    w_g = xp.reshape(w, (G, C_in // G, -1))
    cols = xp.matrix_transpose(w_g) @ _grouped(xp, x_mat, G)
    y = col2im(xp, xp.reshape(cols, (C_out * KH * KW, -1)), geo)
    if b is not None:
        y = y + xp.reshape(b, (1, C_out, 1, 1))
    return y, ConvTranspose2dCache(x, w, b is not None, geo)


def conv_transpose2d_backward(
    dy: Any, cache: ConvTranspose2dCache
) -> tuple[Any, Any, Any]:
    """dy (N, C_out, OH, OW) -> dx (N, C_in, H, W), dw, db (C_out,) or None:
    dx is the convolution of dy with w (its forward pass), dw = x·colsᵀ with
    cols = im2col(dy) (both per group)."""
    x, w, has_bias, geo = cache
    op = "conv_transpose2d_backward"
    xp = _checks.float_inputs(op, dy=dy, w=w)
    _checks.grad_shape(op, dy, (geo.N, geo.C, geo.H, geo.W))
    cols = im2col(xp, pad_sides(xp, dy, *geo.pads), geo)  # (C_out·KH·KW, N·H·W)
    G = geo.groups
    cols_g = _grouped(xp, cols, G)  # (G, C_out/G·KH·KW, N·H·W)
    w_g = xp.reshape(w, (G, geo.F // G, -1))
    dx = xp.reshape(w_g @ cols_g, (geo.F, geo.N, geo.OH, geo.OW))
    dx = xp.permute_dims(dx, (1, 0, 2, 3))
    x_mat = xp.reshape(xp.permute_dims(x, (1, 0, 2, 3)), (geo.F, -1))
    dw = _grouped(xp, x_mat, G) @ xp.matrix_transpose(cols_g)
    dw = xp.reshape(dw, w.shape)
    db = xp.sum(dy, axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db
