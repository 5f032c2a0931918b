"""The fast kernels: the same numbers as the reference definitions in
:mod:`cnnbook.functional.conv` and :mod:`cnnbook.functional.pool`, computed
faster. The layers of :mod:`cnnbook.nn` and ``benchmarks/run.py`` call these;
``tests/test_fast_paths.py`` proves each equals its reference, branch by
branch, on every backend.

Why each is faster (measurements: ``/benchmarks`` and the CPU/GPU chapter):

- :func:`conv2d_forward` fills im2col's column buffer in memory reused between
  calls (:func:`cnnbook.backend.scratch`: a fresh 75 MB array costs ~12 ms of
  page faults) straight from the unpadded input (no padded copy) and, for a
  small filter matrix, multiplies image by image (OpenBLAS runs a small W
  times a very wide matrix slowly).
- :func:`conv2d_backward` orients dW's product the way BLAS prefers, skips dx
  on request (``input_grad=False``: the first layer, whose input is data) and,
  for stride 1, computes dx as the forward convolution of dY with the turned
  kernel (one product with inner dimension F·KH·KW instead of F, then no
  col2im), or, where the padding is too wide for that, folds Wᵀ·dY back with
  "flat shifts" instead of col2im.
- Depthwise convolutions (groups = C = F) skip im2col: one per-channel
  multiply-add per kernel tap, on contiguous runs of the flattened padded
  image at stride 1, a block of images and channels at a time (in cache),
  padded channel-major so each channel's run spans all the block's images
  (NumPy pays ~0.1 µs per row of a strided operation); dx, dw and db share
  one padded dy per block. Grouped ones run one batched product over the
  groups and the same dx as dense ones.
- :func:`batch_norm_forward` and :func:`batch_norm_backward` (training) take
  about half the passes over the data of the reference.
- :func:`max_pool2d_forward` and :func:`max_pool2d_backward` take 2×2 windows
  at stride 2 as two pairwise maxima and route the gradient with the winners'
  masks instead of comparing every window offset with the maximum.

Every other case falls through to the reference.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from cnnbook.backend import device_of, scratch, split_by_mask
from cnnbook.functional import _checks, conv, norm, pool
from cnnbook.functional._window import ConvGeometry, pad, window

__all__ = [
    "batch_norm_backward",
    "batch_norm_forward",
    "conv2d_backward",
    "conv2d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
]

# ---------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------

# OpenBLAS multiplies a small W (F × C·KH·KW) by a very wide matrix slowly:
# for LeNet's layers, n products of one image's columns each run 1.4-3× faster
# than one product over all N·OH·OW columns (the same arithmetic); for
# VGG-sized W the single wide product is a few per cent faster.
NARROW = 4096  # F·C·KH·KW up to which products go image by image


def narrow(geo: ConvGeometry) -> bool:
    """True when the products go image by image (see :data:`NARROW`)."""
    return geo.F * geo.C * geo.KH * geo.KW <= NARROW


def _per_image(xp: Any, cols: Any, geo: ConvGeometry) -> Any:
    """Columns (C·KH·KW, N·OH·OW) -> a (N, C·KH·KW, OH·OW) view, one block
    per image."""
    K = geo.C * geo.KH * geo.KW  # not -1: an empty batch (N = 0) is allowed
    return xp.permute_dims(xp.reshape(cols, (K, geo.N, geo.OH * geo.OW)), (1, 0, 2))


def _tap_range(size: int, out: int, stride: int, start: int) -> tuple[int, int]:
    """Outputs i0 <= i < i1 whose input index stride·i + start lies in
    [0, size): the rest read the zero padding."""
    i0 = max(0, -(start // stride))  # ceil(−start / stride)
    i1 = min(out, (size - 1 - start) // stride + 1) if size > start else 0
    return i0, max(i0, i1)


# Inputs of at least this many elements are not copied into a padded array
# first: im2col zeroes the padding strips of each tap instead (a few small
# writes per tap, which cost more than the padded copy of a small input).
PAD_IN_PLACE = 1 << 18


def im2col(xp: Any, x: Any, geo: ConvGeometry) -> Any:
    """Unpadded x (N, C, H, W) -> columns (C·KH·KW, N·OH·OW), equal to
    :func:`cnnbook.functional.im2col` of the padded input, in a reused buffer
    (:func:`cnnbook.backend.scratch`). For a large input (:data:`PAD_IN_PLACE`)
    each tap copies only the window that lies inside x and zeroes the strips
    that read the padding, so no padded copy of x is made."""
    (sh, sw), (dh, dw), (ph, pw) = geo.stride, geo.dilation, geo.padding
    cols = scratch((geo.C, geo.KH, geo.KW, geo.N, geo.OH, geo.OW), like=x)
    if (ph, pw) == (0, 0) or geo.N * geo.C * geo.H * geo.W < PAD_IN_PLACE:
        return conv.im2col(xp, pad(xp, x, ph, pw), geo, out=cols)
    for u in range(geo.KH):
        i0, i1 = _tap_range(geo.H, geo.OH, sh, u * dh - ph)
        for v in range(geo.KW):
            j0, j1 = _tap_range(geo.W, geo.OW, sw, v * dw - pw)
            tap = cols[:, u, v, ...]  # (C, N, OH, OW)
            if i1 == i0 or j1 == j0:  # the whole tap reads padding
                tap[...] = 0
                continue
            r0, c0 = sh * i0 + u * dh - ph, sw * j0 + v * dw - pw
            rows = slice(r0, r0 + sh * (i1 - i0 - 1) + 1, sh)
            columns = slice(c0, c0 + sw * (j1 - j0 - 1) + 1, sw)
            patch = xp.permute_dims(x[:, :, rows, columns], (1, 0, 2, 3))
            tap[:, :, i0:i1, j0:j1] = patch
            for strip in (  # the outputs whose window reads padding
                (slice(0, i0), slice(None)),
                (slice(i1, geo.OH), slice(None)),
                (slice(i0, i1), slice(0, j0)),
                (slice(i0, i1), slice(j1, geo.OW)),
            ):
                if strip[0].start < strip[0].stop and (
                    strip[1].start is None or strip[1].start < strip[1].stop
                ):
                    tap[(slice(None), slice(None), *strip)] = 0
    return xp.reshape(cols, (geo.C * geo.KH * geo.KW, geo.N * geo.OH * geo.OW))


def conv2d_forward(
    x: Any, w: Any, b: Any = None, stride=1, padding=0, dilation=1, groups=1
) -> tuple[Any, Any]:
    """:func:`cnnbook.functional.conv2d_forward`, faster; the same cache
    (depthwise: a :class:`DepthwiseCache`, which :func:`conv2d_backward`
    takes). Depthwise convolutions run :func:`depthwise_forward`; grouped ones
    one batched product over the groups; asymmetrically padded ones the
    reference."""
    xp, geo = conv.geometry(
        "conv2d_forward", x, w, b, stride, padding, dilation, groups
    )
    if geo.pad_end is not None:
        return conv.conv2d_forward(x, w, b, stride, padding, dilation, groups)
    if depthwise(geo):
        return depthwise_forward(xp, x, w, b, geo)
    cols = im2col(xp, x, geo)
    G = geo.groups
    if G != 1:  # (G, F/G, C/G·KH·KW) @ (G, C/G·KH·KW, N·OH·OW)
        w_g = xp.reshape(w, (G, geo.F // G, -1))
        y = xp.reshape(w_g @ conv._grouped(xp, cols, G), (geo.F, geo.N, geo.OH, geo.OW))
        y = xp.permute_dims(y, (1, 0, 2, 3))
    elif narrow(geo):  # the same product, image by image
        y = xp.reshape(w, (geo.F, -1)) @ _per_image(xp, cols, geo)  # (N, F, OH·OW)
        y = xp.reshape(y, (geo.N, geo.F, geo.OH, geo.OW))
    else:
        y = xp.reshape(w, (geo.F, -1)) @ cols  # (F, N·OH·OW): one GEMM
        y = xp.reshape(y, (geo.F, geo.N, geo.OH, geo.OW))
        y = xp.permute_dims(y, (1, 0, 2, 3))
    if b is not None:
        y += xp.reshape(b, (1, geo.F, 1, 1))
    return y, conv.Conv2dCache(cols, w, b is not None, geo)


def conv2d_backward(
    dy: Any, cache: Any, input_grad: bool = True
) -> tuple[Any, Any, Any]:
    """:func:`cnnbook.functional.conv2d_backward`, faster, for either
    forward's cache. With ``input_grad=False`` dx is not computed (returned
    as None): the most expensive product of the three, which nobody needs for
    the first layer."""
    if isinstance(cache, DepthwiseCache):
        return depthwise_backward(dy, cache, input_grad)
    cols, w, has_bias, geo = cache
    if geo.pad_end is not None:
        dx, dw, db = conv.conv2d_backward(dy, cache)
        return (dx if input_grad else None), dw, db
    xp = _checks.float_inputs("conv2d_backward", dy=dy, w=w)
    _checks.grad_shape("conv2d_backward", dy, (geo.N, geo.F, geo.OH, geo.OW))
    G = geo.groups
    db = xp.sum(dy, axis=(0, 2, 3)) if has_bias else None
    corr = geo.stride == (1, 1) and full_correlation(geo)  # dx without dy_mat
    dy_mat = None  # dY as (F, N·OH·OW): a transposed copy, made only if used
    if G != 1 or not narrow(geo) or (input_grad and not corr):
        dy_mat = xp.reshape(xp.permute_dims(dy, (1, 0, 2, 3)), (geo.F, -1))
    # dW = dY · colsᵀ, computed as (cols · dYᵀ)ᵀ: the same numbers, and the
    # orientation BLAS runs fastest for a short-and-wide dY (F ≪ N·OH·OW).
    if G != 1:  # per group: (C/G·KH·KW, N·OH·OW) @ (N·OH·OW, F/G)
        dy_g = conv._grouped(xp, dy_mat, G)
        dw_t = conv._grouped(xp, cols, G) @ xp.matrix_transpose(dy_g)
    elif narrow(geo):  # Σ over images of colsₙ · dYₙᵀ
        dy_img = xp.reshape(dy, (geo.N, geo.F, geo.OH * geo.OW))
        dw_t = xp.sum(_per_image(xp, cols, geo) @ xp.matrix_transpose(dy_img), axis=0)
    else:
        dw_t = cols @ xp.matrix_transpose(dy_mat)  # (C·KH·KW, F)
    dw = xp.reshape(xp.matrix_transpose(dw_t), w.shape)
    if not input_grad:
        return None, dw, db
    if corr:
        return input_grad_correlate(xp, dy, w, geo), dw, db
    if G != 1:  # col2im of the groups' Wᵀ·dY
        w_g = xp.reshape(w, (G, geo.F // G, -1))
        dcols = xp.matrix_transpose(w_g) @ conv._grouped(xp, dy_mat, G)
        return conv.col2im(xp, xp.reshape(dcols, (-1, dcols.shape[2])), geo), dw, db
    w_t = xp.matrix_transpose(xp.reshape(w, (geo.F, -1)))  # (C·KH·KW, F)
    if geo.stride == (1, 1):
        return input_grad_flat(xp, dy, w_t, geo), dw, db
    return conv.col2im(xp, w_t @ dy_mat, geo), dw, db


class DepthwiseCache(NamedTuple):
    """A depthwise convolution's cache: the input, not columns; unpadded for
    the flat shifts (stride 1: they pad a block at a time), else padded."""

    x: Any
    w: Any
    has_bias: bool
    geometry: ConvGeometry


def _flat_taps(geo: ConvGeometry):
    """Stride 1: kernel tap (u, v) -> its offset in the flattened padded image
    (row by row, width Wp), and the length L of the run of positions that
    covers every output (computed over the padded width, then cropped)."""
    pw, (dh, dw) = geo.padding[1], geo.dilation
    Wp = geo.W + 2 * pw
    L = (geo.OH - 1) * Wp + geo.OW
    offsets = [
        (u * geo.KW + v, u * dh * Wp + v * dw)
        for u in range(geo.KH)
        for v in range(geo.KW)
    ]
    return offsets, L, Wp


# Depthwise kernels work on blocks of about this many elements (a block of
# channels × a block of images, each image padded): the nine multiply-adds
# of a block then run in cache instead of streaming the whole batch through
# memory nine times. Measured (EPYC, 1 MiB L2, 32 MiB L3; forward + backward
# at 64 ch 28 px): 2^15 17.9 ms, 2^16 17.5, 2^18 14.9 (fewer NumPy calls; the
# 4 or 5 block buffers still sit in L3), 2^20 15.9, the whole batch 24.7.
DEPTHWISE_BLOCK = 1 << 18


def _image_blocks(N: int, C: int, per_image: int):
    """Blocks (n0, n1, c0, c1) of images and channels, each of about
    DEPTHWISE_BLOCK elements at ``per_image`` per image and channel: as many
    images as fit (the longer each channel's run, the less NumPy's per-row
    overhead counts), then as many channels; sizes balanced."""
    nb = min(N, max(1, DEPTHWISE_BLOCK // max(1, per_image)))
    nb = -(-N // -(-N // nb))  # the same number of blocks, sizes balanced
    cb = min(C, max(1, DEPTHWISE_BLOCK // max(1, nb * per_image)))
    cb = -(-C // -(-C // cb))
    return [
        (n0, min(N, n0 + nb), c0, min(C, c0 + cb))
        for n0 in range(0, N, nb)
        for c0 in range(0, C, cb)
    ]


def _padded_block(xp: Any, a: Any, block, at, grid, buf: Any, border=True) -> Any:
    """a (N, C, h, w), a block (n0, n1, c0, c1) -> the block channel-major,
    (cb, nb, Hg, Wg), with a[n, c] at rows/columns ``at`` = (top, left) of a
    zero (Hg, Wg) ``grid``; written into the front of the flat buffer ``buf``
    (``border`` False: its border still holds the zeros of the previous block
    of this shape). Channel-major makes each channel's images one run."""
    n0, n1, c0, c1 = block
    (top, left), (Hg, Wg), (h, w) = at, grid, a.shape[2:]
    out = xp.reshape(buf[: (c1 - c0) * (n1 - n0) * Hg * Wg], (c1 - c0, n1 - n0, Hg, Wg))
    if border:  # only the border: the rest is overwritten
        out[:, :, :top, :] = 0
        out[:, :, top + h :, :] = 0
        out[:, :, top : top + h, :left] = 0
        out[:, :, top : top + h, left + w :] = 0
    out[:, :, top : top + h, left : left + w] = xp.permute_dims(
        a[n0:n1, c0:c1, ...], (1, 0, 2, 3)
    )
    return out


def _tap_sum(xp, flat, taps, offsets, length, acc, tmp) -> None:
    """flat (cb, R), taps (cb, KH·KW): acc[:, :length] = Σ over taps k of
    flat[:, off_k : off_k + length] · taps[:, k] (acc, tmp: (cb, R) buffers;
    tmp None: no ``out=``, the portable twin)."""
    a = acc[:, :length]
    (k0, off0), rest = offsets[0], offsets[1:]
    if tmp is None:
        a[...] = flat[:, off0 : off0 + length] * taps[:, k0 : k0 + 1]
        for k, off in rest:
            a += flat[:, off : off + length] * taps[:, k : k + 1]
        return
    # NumPy: written in place, no temporaries (two passes per tap, in cache)
    t = tmp[:, :length]
    xp.multiply(flat[:, off0 : off0 + length], taps[:, k0 : k0 + 1], out=a)
    for k, off in rest:
        xp.multiply(flat[:, off : off + length], taps[:, k : k + 1], out=t)
        xp.add(a, t, out=a)


def depthwise(geo: ConvGeometry) -> bool:
    """True for the depthwise convolutions the per-tap kernels handle: one
    filter per channel (groups = C = F), symmetric padding."""
    return geo.groups == geo.C == geo.F and geo.pad_end is None


def depthwise_forward(xp: Any, x: Any, w: Any, b: Any, geo: ConvGeometry):
    """x (N, C, H, W), w (C, 1, KH, KW) -> y (N, C, OH, OW), cache: the
    depthwise convolution (groups = C = F) without im2col, one multiply-add
    per kernel tap, y += xpad[window(u, v)] · w[:, 0, u, v] (a per-channel
    broadcast). At stride 1 each window is a contiguous run of the flattened
    padded image ("flat shifts", as :func:`input_grad_flat`), taken a block
    of images and channels at a time, padded channel-major, so that the nine
    multiply-adds run in cache over long runs. The same numbers as the
    grouped reference (summed in another order)."""
    y, kept = _depthwise_apply(xp, x, w, b, geo)
    return y, DepthwiseCache(kept, w, b is not None, geo)


def _flat_shifts(geo: ConvGeometry) -> bool:
    """True where the depthwise kernels take flat shifts, a block at a time."""
    return geo.stride == (1, 1) and geo.N > 0


def _depthwise_apply(xp: Any, x: Any, w: Any, b: Any, geo: ConvGeometry):
    """x (N, C, H, W) -> y (N, C, OH, OW), and the input as the backward pass
    takes it (padded unless in flat shifts): the depthwise forward."""
    from cnnbook.backend import is_numpy

    N, C = geo.N, geo.C
    taps = xp.reshape(w, (C, geo.KH * geo.KW))
    dev = device_of(x)
    if not _flat_shifts(geo):
        xpad = pad(xp, x, *geo.padding)
        y = xp.zeros((N, C, geo.OH, geo.OW), dtype=x.dtype, device=dev)
        for u in range(geo.KH):
            for v in range(geo.KW):
                rows, columns = window(geo, u, v)
                k = xp.reshape(taps[:, u * geo.KW + v], (1, C, 1, 1))
                y += xpad[:, :, rows, columns] * k
        if b is not None:
            y += xp.reshape(b, (1, C, 1, 1))
        return y, xpad
    offsets, L, Wp = _flat_taps(geo)
    Hp = geo.H + 2 * geo.padding[0]
    blocks = _image_blocks(N, C, Hp * Wp)
    size = max((n1 - n0) * (c1 - c0) for n0, n1, c0, c1 in blocks) * Hp * Wp
    xbuf, abuf = scratch((size,), x), scratch((size,), x)
    tbuf = scratch((size,), x) if is_numpy(x) else None
    y = xp.empty((N, C, geo.OH, geo.OW), dtype=x.dtype, device=dev)
    shape = None  # the previous block's (images, channels)
    for block in blocks:
        n0, n1, c0, c1 = block
        new, shape = (n1 - n0, c1 - c0) != shape, (n1 - n0, c1 - c0)
        xb = _padded_block(xp, x, block, geo.padding, (Hp, Wp), xbuf, new)
        R = (c1 - c0, (n1 - n0) * Hp * Wp)
        acc = xp.reshape(abuf[: R[0] * R[1]], R)
        tmp = None if tbuf is None else xp.reshape(tbuf[: R[0] * R[1]], R)
        length = (n1 - n0 - 1) * Hp * Wp + L
        _tap_sum(xp, xp.reshape(xb, R), taps[c0:c1, :], offsets, length, acc, tmp)
        if b is not None:  # on the long runs: on the cropped ones it is 5x slower
            run = acc[:, :length]
            run += xp.reshape(b[c0:c1], (-1, 1))
        # crop the padded grid (its other positions hold no output) back to
        # image-major
        grid = xp.reshape(acc, (c1 - c0, n1 - n0, Hp, Wp))[:, :, : geo.OH, : geo.OW]
        y[n0:n1, c0:c1, ...] = xp.permute_dims(grid, (1, 0, 2, 3))
    return y, x


def depthwise_backward(dy: Any, cache: DepthwiseCache, input_grad: bool = True):
    """dy (N, C, OH, OW) -> dx (N, C, H, W) or None, dw (C, 1, KH, KW), db.

    dw[c, u, v] = Σ dy · xpad[window(u, v)] over N, OH, OW: at stride 1 one
    dot product per channel over a contiguous run, a block of images and
    channels at a time (padded channel-major, as the forward). dx at stride
    1 is the depthwise forward pass of dy with the kernel turned by 180° (as
    :func:`input_grad_correlate`), on the same blocks; otherwise dy · w[c, u,
    v] is added into each tap's window of a padded zero array."""
    x, w, has_bias, geo = cache
    xp = _checks.float_inputs("conv2d_backward", dy=dy, w=w)
    _checks.grad_shape("conv2d_backward", dy, (geo.N, geo.F, geo.OH, geo.OW))
    N, C = geo.N, geo.C
    ph, pw = geo.padding
    dev = device_of(dy)
    dx = None
    if _flat_shifts(geo):
        correlate = input_grad and correlation_fits(geo)
        dx, dw, db = _depthwise_backward_flat(xp, dy, x, w, geo, correlate)
        db = db if has_bias else None
    else:
        db = xp.sum(dy, axis=(0, 2, 3)) if has_bias else None
        xpad = x  # padded by the forward pass
        dw_cols = []
        for u in range(geo.KH):
            for v in range(geo.KW):
                rows, columns = window(geo, u, v)
                patch = xpad[:, :, rows, columns]
                dw_cols.append(xp.sum(dy * patch, axis=(0, 2, 3)))
        dw = xp.reshape(xp.stack(dw_cols, axis=1), w.shape)
    if not input_grad or dx is not None:
        return dx, dw, db
    taps = xp.reshape(w, (C, geo.KH * geo.KW))
    dxpad = xp.zeros((N, C, geo.H + 2 * ph, geo.W + 2 * pw), dtype=dy.dtype, device=dev)
    for u in range(geo.KH):
        for v in range(geo.KW):
            rows, columns = window(geo, u, v)
            k = xp.reshape(taps[:, u * geo.KW + v], (1, C, 1, 1))
            dxpad[:, :, rows, columns] += dy * k
    return dxpad[:, :, ph : ph + geo.H, pw : pw + geo.W], dw, db


def _depthwise_backward_flat(xp, dy, x, w, geo: ConvGeometry, correlate: bool):
    """Stride 1, x unpadded -> dx (or None unless ``correlate``), dw, db by
    flat shifts, a block of images and channels at a time: each block pads x
    and dy channel-major; dx is the block's forward pass of dy padded by
    d·(K − 1) − p with the kernel turned; dw and db are dot products and
    sums over each channel's run of dy, on the padded dy itself where it has
    the padded input's shape ('same' padding), else on dy at (0, 0) of a
    zero grid of that shape."""
    from cnnbook.backend import is_numpy

    N, C, KK = geo.N, geo.C, geo.KH * geo.KW
    (ph, pw), (dil_h, dil_w) = geo.padding, geo.dilation
    dev = device_of(dy)
    offsets, L, Wp = _flat_taps(geo)
    Hp = geo.H + 2 * ph
    S = Hp * Wp  # a padded image's elements
    dx = None
    if correlate:
        dpad = (dil_h * (geo.KH - 1) - ph, dil_w * (geo.KW - 1) - pw)
        turned = xp.reshape(xp.flip(w, axis=(2, 3)), (C, KK))
        _, dgeo = conv.geometry(
            "conv2d_backward", dy, w, None, 1, dpad, geo.dilation, C
        )
        d_offsets, d_L, Wd = _flat_taps(dgeo)
        Hd = geo.OH + 2 * dpad[0]
        Sd = Hd * Wd
        dx = xp.empty((N, C, geo.H, geo.W), dtype=dy.dtype, device=dev)
    shared = correlate and (Hd, Wd) == (Hp, Wp)
    start = dpad[0] * Wp + dpad[1] if shared else 0  # dy's first run in its grid
    blocks = _image_blocks(N, C, max(S, Sd) if correlate else S)
    most = max((n1 - n0) * (c1 - c0) for n0, n1, c0, c1 in blocks)
    xbuf = scratch((most * S,), dy)
    gbuf = None if shared else scratch((most * S,), dy)
    if correlate:
        dbuf, abuf = scratch((most * Sd,), dy), scratch((most * Sd,), dy)
        tbuf = scratch((most * Sd,), dy) if is_numpy(dy) else None
    parts = []  # (c0, c1, (cb, KK + 1): dw's taps then db)
    shape = None  # the previous block's (images, channels)
    for block in blocks:
        n0, n1, c0, c1 = block
        new, shape = (n1 - n0, c1 - c0) != shape, (n1 - n0, c1 - c0)
        xb = _padded_block(xp, x, block, (ph, pw), (Hp, Wp), xbuf, new)
        x_flat = xp.reshape(xb, (c1 - c0, -1))
        length = (n1 - n0 - 1) * S + L
        if correlate:
            d_flat = xp.reshape(
                _padded_block(xp, dy, block, dpad, (Hd, Wd), dbuf, new), (c1 - c0, -1)
            )
            R = tuple(d_flat.shape)
            acc = xp.reshape(abuf[: R[0] * R[1]], R)
            tmp = None if tbuf is None else xp.reshape(tbuf[: R[0] * R[1]], R)
            d_length = (n1 - n0 - 1) * Sd + d_L
            _tap_sum(xp, d_flat, turned[c0:c1, :], d_offsets, d_length, acc, tmp)
            grid = xp.reshape(acc, (c1 - c0, n1 - n0, Hd, Wd))[:, :, : geo.H, : geo.W]
            dx[n0:n1, c0:c1, ...] = xp.permute_dims(grid, (1, 0, 2, 3))
        if shared:
            g_flat = d_flat
        else:
            gb = _padded_block(xp, dy, block, (0, 0), (Hp, Wp), gbuf, new)
            g_flat = xp.reshape(gb, (c1 - c0, -1))
        g_run = g_flat[:, start : start + length]
        sums = [
            xp.vecdot(g_run, x_flat[:, off : off + length], axis=-1)
            for _, off in offsets
        ]
        sums.append(xp.sum(g_flat, axis=-1))  # db (the grid's other entries: 0)
        parts.append((c0, c1, xp.stack(sums, axis=1)))
    dw_db = xp.zeros((C, KK + 1), dtype=dy.dtype, device=dev)
    for c0, c1, part in parts:
        dw_db[c0:c1, :] += part
    return dx, xp.reshape(dw_db[:, :KK], w.shape), dw_db[:, KK]


# The correlation's product has C rows: below this many input channels it
# runs slower than flat shifts (LeNet: C = 1 and 6, 2-4× slower; ResNet's
# C = 16 layers: ~1.4× faster).
CORRELATE_MIN_C = 16


def correlation_fits(geo: ConvGeometry) -> bool:
    """True when dx can be written as a forward convolution of dY: padding at
    most dilation·(K − 1) on each axis (see :func:`input_grad_correlate`)."""
    (ph, pw), (dil_h, dil_w) = geo.padding, geo.dilation
    return ph <= dil_h * (geo.KH - 1) and pw <= dil_w * (geo.KW - 1)


def full_correlation(geo: ConvGeometry) -> bool:
    """True when dense and grouped layers compute dx (at stride 1) as a
    forward convolution of dY: it fits, and there are at least
    :data:`CORRELATE_MIN_C` input channels."""
    return geo.C >= CORRELATE_MIN_C and correlation_fits(geo)


def input_grad_correlate(xp: Any, dy: Any, w: Any, geo: ConvGeometry) -> Any:
    """dY (N, F, OH, OW) -> dx (N, C, H, W) at stride 1, equal to
    col2im(Wᵀ·dY): the forward convolution of dY with the kernel turned by
    180° and its channel axes swapped, padded by d·(K − 1) − p.

    Why it holds: at stride 1, dx[n, c, h, w] = Σ_f,u,v dY[n, f, h + p − d·u,
    w + p' − d·v] · W[f, c, u, v]; with u' = KH − 1 − u that is a
    cross-correlation of dY, zero-padded by d·(KH − 1) − p, with W'[c, f, u',
    v'] = W[f, c, KH − 1 − u', KW − 1 − v'] (with groups: within each group).
    So the fast forward kernel runs it: one product with inner dimension
    F·KH·KW (col2im's product has inner dimension F, then KH·KW slice-adds
    over the whole padded input).
    """
    (ph, pw), (dil_h, dil_w) = geo.padding, geo.dilation
    G, KH, KW = geo.groups, geo.KH, geo.KW
    # per group g: W'[g's C/G, g's F/G] = W[g's F/G, g's C/G] turned
    w_g = xp.reshape(w, (G, geo.F // G, geo.C // G, KH, KW))
    w_rot = xp.flip(xp.permute_dims(w_g, (0, 2, 1, 3, 4)), axis=(3, 4))
    w_rot = xp.reshape(w_rot, (geo.C, geo.F // G, KH, KW))
    padding = (dil_h * (KH - 1) - ph, dil_w * (KW - 1) - pw)
    dx, _ = conv2d_forward(dy, w_rot, None, 1, padding, geo.dilation, G)
    return dx


BLOCK = 1 << 22  # elements of Wᵀ·dY computed at once by input_grad_flat


def input_grad_flat(xp: Any, dy: Any, w_t: Any, geo: ConvGeometry) -> Any:
    """dx for stride 1 by "flat shifts", equal to col2im(Wᵀ·dY).

    Why it holds: at stride 1, output (i, j) and kernel tap (u, v) read padded
    input (i + dil_h·u, j + dil_w·v). Flatten the padded grid (Hp, Wp) row by
    row; then position (i, j) is i·Wp + j and the tap adds the constant
    u·dil_h·Wp + v·dil_w. So lay dY out on the padded grid (F, N·Hp·Wp), zero
    where no output exists; multiply by Wᵀ once; and add row block (c, u, v)
    of the product into one contiguous 1-D slice of the flattened dx, shifted
    by that constant. The zeros make the positions outside the output add
    nothing, so the sum is col2im's. The KH·KW slice-adds move long contiguous
    runs instead of OW-element rows, at the price of a product over Hp·Wp
    instead of OH·OW positions.
    """
    (ph, pw), (dil_h, dil_w) = geo.padding, geo.dilation
    Hp, Wp = geo.H + 2 * ph, geo.W + 2 * pw
    L = geo.N * Hp * Wp
    dev = device_of(dy)
    dy_grid = xp.zeros((geo.F, geo.N, Hp, Wp), dtype=dy.dtype, device=dev)
    dy_grid[:, :, : geo.OH, : geo.OW] = xp.permute_dims(dy, (1, 0, 2, 3))
    dy_grid = xp.reshape(dy_grid, (geo.F, L))
    tail = (geo.KH - 1) * dil_h * Wp + (geo.KW - 1) * dil_w  # reach of the last tap
    dx_flat = xp.zeros((geo.C, L + tail), dtype=dy.dtype, device=dev)
    taps = geo.KH * geo.KW
    # Channels in blocks of about BLOCK elements of Wᵀ·dY: the same work,
    # without holding all C·KH·KW × N·Hp·Wp of it at once (peak memory).
    step = max(1, BLOCK // max(1, taps * L))  # L = 0: an empty batch
    for c0 in range(0, geo.C, step):
        c1 = min(geo.C, c0 + step)
        dcols = w_t[c0 * taps : c1 * taps, :] @ dy_grid  # ((c1−c0)·KH·KW, L)
        dcols = xp.reshape(dcols, (c1 - c0, geo.KH, geo.KW, L))
        for u in range(geo.KH):
            for v in range(geo.KW):
                offset = u * dil_h * Wp + v * dil_w
                dx_flat[c0:c1, offset : offset + L] += dcols[:, u, v, :]
    dxpad = xp.reshape(dx_flat[:, :L], (geo.C, geo.N, Hp, Wp))
    dx = dxpad[:, :, ph : ph + geo.H, pw : pw + geo.W]
    return xp.permute_dims(dx, (1, 0, 2, 3))  # (N, C, H, W)


# ---------------------------------------------------------------------------
# batch normalization in training
# ---------------------------------------------------------------------------
# The reference computes x − μ twice and builds a temporary per operator
# (about ten passes over x forward, a dozen backward). Here the forward pass
# centres once and scales in place; the backward pass uses Σ dx̂ = γ·Σ dy and
# Σ dx̂·x̂ = γ·Σ dy·x̂ (the sums dβ and dγ already are), so dx is one
# per-channel affine combination dx = a·dy + b·x̂ + c.


def batch_norm_forward(
    x: Any,
    gamma: Any,
    beta: Any,
    running_mean: Any,
    running_var: Any,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Any, norm.BatchNormCache]:
    """:func:`cnnbook.functional.batch_norm_forward`, faster in training; the
    same cache. Evaluation and bad arguments go to the reference."""
    args = (x, gamma, beta, running_mean, running_var, training, momentum, eps)
    shape = tuple(getattr(x, "shape", ()))
    if not training or len(shape) not in (2, 3, 4) or shape[0] == 0:
        return norm.batch_norm_forward(*args)
    xp = _checks.float_inputs(
        "batch_norm_forward", x=x, gamma=gamma, beta=beta,
        running_mean=running_mean, running_var=running_var,
    )  # fmt: skip
    C, m = shape[1], x.size // shape[1]
    params = (gamma, beta, running_mean, running_var)
    if m < 2 or not eps > 0 or not 0 <= momentum <= 1:
        return norm.batch_norm_forward(*args)  # it raises, and says why
    if any(tuple(v.shape) != (C,) for v in params):
        return norm.batch_norm_forward(*args)
    axes = (0, *range(2, x.ndim))
    view = (1, C) + (1,) * (x.ndim - 2)
    mean = xp.mean(x, axis=axes)
    xhat = x - xp.reshape(mean, view)  # centred, then scaled in place
    var = xp.mean(xhat * xhat, axis=axes)
    running_mean[...] = (1 - momentum) * running_mean + momentum * mean
    running_var[...] = (1 - momentum) * running_var + momentum * var * (m / (m - 1))
    inv_std = xp.reshape(1 / xp.sqrt(var + eps), view)
    xhat *= inv_std
    gamma_view = xp.reshape(gamma, view)
    y = xhat * gamma_view
    y += xp.reshape(beta, view)
    return y, norm.BatchNormCache(xhat, inv_std, gamma_view, axes, True)


def batch_norm_backward(dy: Any, cache: norm.BatchNormCache) -> tuple[Any, Any, Any]:
    """:func:`cnnbook.functional.batch_norm_backward`, faster in training,
    for either forward's cache."""
    xhat, inv_std, gamma_view, axes, training = cache
    if not training:
        return norm.batch_norm_backward(dy, cache)
    op = "batch_norm_backward"
    xp = _checks.float_inputs(op, dy=dy, xhat=xhat)
    _checks.grad_shape(op, dy, xhat.shape)
    m = xhat.size // xhat.shape[1]
    dbeta = xp.sum(dy, axis=axes)
    dgamma = xp.sum(dy * xhat, axis=axes)
    view = tuple(inv_std.shape)
    a = gamma_view * inv_std  # ∂y/∂x with the statistics held fixed
    dx = dy * a
    dx += xhat * (-a / m * xp.reshape(dgamma, view))
    dx += -a / m * xp.reshape(dbeta, view)
    return dx, dgamma, dbeta


# ---------------------------------------------------------------------------
# max pooling, 2×2 windows at stride 2
# ---------------------------------------------------------------------------
# Two pairwise maxima: of horizontal neighbours, then of vertical ones. Each
# element is read once (the reference loop reads each window offset
# separately). The forward pass also keeps "which one won" of each pair (one
# comparison per pair, as booleans: 3/16 of a float32 input's bytes), so the
# backward pass only routes the gradient: bottom or top row of each window,
# then right or left element of that row.


def pairwise(geo: ConvGeometry) -> bool:
    """True for the shape the pairwise kernels handle: 2×2, stride 2, no pad."""
    shape = (geo.KH, geo.KW, geo.stride, geo.padding, geo.dilation, geo.pad_end)
    return shape == (2, 2, (2, 2), (0, 0), (1, 1), None)


class PairwiseCache(NamedTuple):
    """The cache of the pairwise path: the input and the winners."""

    x: Any  # (N, C, 2·OH, 2·OW), odd sizes cropped
    y: Any  # (N, C, OH, OW)
    right_wins: Any  # (N, C, 2·OH, OW): the right element beats the left one
    bottom_wins: Any  # (N, C, OH, OW): the bottom row's maximum beats the top's
    geometry: ConvGeometry


def max_pool2d_forward(
    x: Any, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False
):
    """:func:`cnnbook.functional.max_pool2d_forward`, faster for 2×2 windows
    at stride 2; the reference for every other shape."""
    xp, geo = pool.geometry(
        "max_pool2d_forward", x, kernel_size, stride, padding, dilation, ceil_mode
    )
    if not pairwise(geo):
        return pool.max_pool2d_forward(
            x, kernel_size, stride, padding, dilation, ceil_mode
        )
    x = x[:, :, : 2 * geo.OH, : 2 * geo.OW]  # odd sizes: the last row/column drops
    # Contiguous copies of the even and odd columns first: element-wise ops
    # on them run several times faster than on the stride-2 views (SIMD).
    left = xp.asarray(x[:, :, :, 0::2], copy=True)
    right = xp.asarray(x[:, :, :, 1::2], copy=True)
    rows = xp.maximum(left, right)  # (N, C, 2·OH, OW); NaN propagates
    top, bottom = rows[:, :, 0::2, :], rows[:, :, 1::2, :]
    y = xp.maximum(top, bottom)
    # The winners as if there were no NaN; backward re-derives them from x
    # in the rare case that y shows a NaN.
    return y, PairwiseCache(x, y, xp.less(left, right), xp.less(top, bottom), geo)


def _later_wins(xp: Any, first: Any, second: Any) -> Any:
    """True where ``second`` is the first maximum of the pair (first, second),
    NaN counting as the largest value: a NaN wins, and of two NaNs the first."""
    return ~((first >= second) | (first != first))


def max_pool2d_backward(dy: Any, cache: Any) -> Any:
    """:func:`cnnbook.functional.max_pool2d_backward`, for either forward's
    cache."""
    if not isinstance(cache, PairwiseCache):
        return pool.max_pool2d_backward(dy, cache)
    x, y, right_wins, bottom_wins, geo = cache
    xp = _checks.float_inputs("max_pool2d_backward", dy=dy, y=y)
    _checks.grad_shape("max_pool2d_backward", dy, (geo.N, geo.C, geo.OH, geo.OW))
    # One cheap look at y (a quarter of x): y has no NaN iff x has none, and
    # then the winners saved by the forward pass are exact.
    if bool(xp.any(xp.isnan(y))):
        left, right = x[:, :, :, 0::2], x[:, :, :, 1::2]
        right_wins = _later_wins(xp, left, right)
        rows = xp.maximum(left, right)
        bottom_wins = _later_wins(xp, rows[:, :, 0::2, :], rows[:, :, 1::2, :])
    # Finite dy may be routed by multiplying with the 0/1 masks (an infinite
    # dy times 0 would give NaN where 0 belongs).
    finite = bool(xp.all(xp.isfinite(dy)))

    def route(d, mask, out, hit, miss):  # out[hit] <- d·mask, out[miss] <- rest
        if finite:
            split_by_mask(d, mask, out, hit, miss)
        else:
            out[hit] = xp.where(mask, d, 0.0)
            out[miss] = xp.where(mask, 0.0, d)

    H2, W2 = 2 * geo.OH, 2 * geo.OW
    dev = device_of(dy)
    # dy -> the row gradient d_rows (N, C, 2·OH, OW): bottom or top row ...
    d_rows = xp.empty((geo.N, geo.C, H2, geo.OW), dtype=dy.dtype, device=dev)
    bottom = (..., slice(1, H2, 2), slice(None))
    top = (..., slice(0, H2, 2), slice(None))
    route(dy, bottom_wins, d_rows, bottom, top)
    # ... -> dx: right or left element of that row.
    make = xp.empty if (geo.H, geo.W) == (H2, W2) else xp.zeros
    dx = make((geo.N, geo.C, geo.H, geo.W), dtype=dy.dtype, device=dev)
    right = (..., slice(0, H2), slice(1, W2, 2))
    left = (..., slice(0, H2), slice(0, W2, 2))
    route(d_rows, right_wins, dx, right, left)
    return dx
