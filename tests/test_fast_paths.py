"""Every fast kernel (``cnnbook.functional._fast``) equals the reference it
replaces (``cnnbook.functional.conv``, ``.norm`` and ``.pool``), on every
backend, on random shapes and on cases chosen to reach each branch: columns
as flat runs (stride 1, junk columns included) or by strided windows, in one
block of images or in several; the image-by-image and the wide
(F·C·KH·KW > 4096) products; the input gradient as a forward correlation of
dY, by col2im of flat runs and by col2im; ``input_grad=False``; dW where the
junk columns meet an infinite input; batch norm in training (2-, 3- and 4-D,
either cache) and its fall-through in evaluation; pairwise 2×2 max-pooling
with ties, NaN and infinite gradients, and the fall-through to the reference
for every other window."""

from __future__ import annotations

import numpy as np
import pytest

import cnnbook.backend as B
import cnnbook.functional as Fn
from cnnbook.functional import _fast as fast


def _random_conv_case(seed: int):
    """A random convolution: shapes, stride, padding, dilation, bias."""
    r = np.random.default_rng(seed)
    N, C, F = (int(v) for v in r.integers(1, 4, 3))
    KH, KW = (int(v) for v in r.integers(1, 4, 2))
    stride = (int(r.integers(1, 3)), int(r.integers(1, 3)))
    dilation = (int(r.integers(1, 3)), int(r.integers(1, 3)))
    padding = (int(r.integers(0, 3)), int(r.integers(0, 3)))
    H = int(r.integers(dilation[0] * (KH - 1) + 1, 12))
    W = int(r.integers(dilation[1] * (KW - 1) + 1, 12))
    bias = bool(r.integers(0, 2))
    return (N, C, H, W), (F, C, KH, KW), stride, padding, dilation, bias


# (x shape, w shape, stride, padding, dilation, bias): the branch each reaches
BRANCH_CASES = {
    "narrow, stride 1 (flat shift)": ((2, 3, 7, 6), (4, 3, 3, 2), 1, 1, 1, True),
    "narrow, stride 2 (col2im)": ((2, 2, 9, 8), (3, 2, 3, 3), 2, 1, 1, True),
    "narrow, dilated, flat shift": ((1, 2, 9, 10), (2, 2, 3, 2), 1, 2, (2, 3), False),
    "narrow, stride (1, 2) (col2im)": ((1, 1, 9, 9), (2, 1, 5, 5), (1, 2), 2, 1, True),
    # F·C·KH·KW = 64·8·3·3 = 4608 > 4096: one wide product, as in VGG's layers
    "wide, stride 1 (flat shift)": ((2, 8, 6, 6), (64, 8, 3, 3), 1, 1, 1, True),
    "wide, stride 2 (col2im)": ((2, 8, 7, 7), (64, 8, 3, 3), 2, 1, 1, False),
    "wide, 1×1 kernel": ((2, 80, 3, 3), (64, 80, 1, 1), 1, 0, 1, True),
    # padding beyond dilation·(K − 1): dx by col2im of flat runs, not by correlation
    "narrow, stride 1, padding > K − 1 (flat shift)": (
        (2, 3, 5, 6),
        (4, 3, 3, 2),
        1,
        (3, 2),
        1,
        True,
    ),
    "wide, 1×1 kernel, padded (flat shift)": (
        (2, 80, 3, 3),
        (64, 80, 1, 1),
        1,
        1,
        1,
        False,
    ),
    # taps that read only padding (a 1-pixel image, a 3×3 kernel): zero columns
    "narrow, taps wholly in the padding": ((2, 3, 1, 2), (4, 3, 3, 3), 1, 1, 1, True),
    "narrow, stride 2, padding 2": ((1, 2, 3, 3), (3, 2, 3, 3), 2, 2, 1, False),
    # padding given as "same": symmetric for an odd kernel, so the fast path
    "narrow, 'same' (correlation)": ((2, 16, 6, 7), (4, 16, 3, 3), 1, "same", 1, True),
    # fewer than CORRELATE_MIN_C = 16 input channels: col2im of flat runs
    "narrow, 15 channels (flat shift)": ((2, 15, 5, 5), (4, 15, 3, 3), 1, 1, 1, True),
    # ResNet's stage 1 and 3 layers: dx's correlation is narrow (16·16·9) and
    # wide (64·64·9); stage 1 at its real width (28 px)
    "ResNet 16 ch 28 px (correlation)": (
        (2, 16, 28, 28),
        (16, 16, 3, 3),
        1,
        1,
        1,
        False,
    ),
    "ResNet 64 ch 7 px (correlation)": ((2, 64, 7, 7), (64, 64, 3, 3), 1, 1, 1, False),
    "narrow, dilated, uneven padding (correlation)": (
        (1, 16, 9, 9),
        (3, 16, 3, 3),
        1,
        (2, 1),
        2,
        True,
    ),
}
CONV_CASES = list(BRANCH_CASES.values()) + [_random_conv_case(s) for s in range(8)]


def _dx_kind(geo) -> str:
    if geo.stride != (1, 1):
        return "col2im"
    return "correlation" if fast.full_correlation(geo) else "flat col2im"


def test_branch_cases_reach_every_convolution_branch():
    """(flat runs, image-by-image products, how dx is computed, columns kept):
    every combination the fast path takes for these shapes."""
    seen = set()
    for x_shape, w_shape, stride, padding, dilation, _bias in CONV_CASES:
        x, w = np.zeros(x_shape), np.zeros(w_shape)
        _, geo = Fn.conv.geometry("t", x, w, None, stride, padding, dilation)
        keep = fast.keep_columns(geo)
        seen.add((fast.flat_runs(geo), fast.narrow(geo), _dx_kind(geo), keep))
        if _dx_kind(geo) == "correlation":  # its own forward product
            seen.add(("dx", fast.narrow(geo._replace(F=geo.C, C=geo.F))))
    assert seen == {
        (True, True, "correlation", False), (True, True, "flat col2im", False),
        (True, False, "correlation", False), (True, False, "flat col2im", False),
        (False, True, "correlation", True), (False, True, "flat col2im", True),
        (False, True, "col2im", True), (False, False, "flat col2im", False),
        (False, False, "col2im", False),
        ("dx", True), ("dx", False),
    }  # fmt: skip


@pytest.mark.parametrize("case", list(BRANCH_CASES.values()), ids=list(BRANCH_CASES))
def test_conv_with_columns_built_again(backend, monkeypatch, case):
    """KEEP_COLS = 0: layers that keep their columns (a small W, strided
    windows) build them again in the backward pass, as the others do."""
    want = _conv_both(backend, case)[1]
    monkeypatch.setattr(fast, "KEEP_COLS", 0)
    _assert_same(_conv_both(backend, case)[0], want, 1e-11)


def _conv_both(backend, case, seed=0, dtype=np.float64, input_grad=True):
    """(fast, reference) results: y, dx, dw, db as NumPy arrays (the fast dx
    None with ``input_grad=False``). A case may end in ``groups``."""
    x_shape, w_shape, stride, padding, dilation, bias, *groups = case
    groups = groups[0] if groups else 1
    rng = np.random.default_rng(seed)
    x = backend.asarray(rng.standard_normal(x_shape), dtype)
    w = backend.asarray(rng.standard_normal(w_shape), dtype)
    b = backend.asarray(rng.standard_normal(w_shape[0]), dtype) if bias else None
    out = []

    def fast_backward(dy, cache):
        return fast.conv2d_backward(dy, cache, input_grad)

    for forward, backward in (
        (fast.conv2d_forward, fast_backward),
        (Fn.conv2d_forward, Fn.conv2d_backward),
    ):
        y, cache = forward(x, w, b, stride, padding, dilation, groups)
        dy = backend.asarray(np.random.default_rng(seed + 1).standard_normal(y.shape))
        dy = backend.asarray(backend.to_numpy(dy), dtype)
        grads = backward(dy, cache)
        out.append([None if a is None else backend.to_numpy(a) for a in (y, *grads)])
    return out


def _assert_same(got, want, tol):
    for name, a, e in zip(("y", "dx", "dw", "db"), got, want, strict=True):
        if e is None or (a is None and name == "dx"):  # input_grad=False
            assert a is None, name
        else:
            np.testing.assert_allclose(a, e, rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: str(c[:2]))
def test_fast_conv_equals_reference(backend, case):
    got, want = _conv_both(backend, case)
    _assert_same(got, want, 1e-11)


@pytest.mark.parametrize(
    "name", ["narrow, stride 1 (flat shift)", "wide, stride 2 (col2im)"]
)
def test_fast_conv_equals_reference_float32(backend, name):
    got, want = _conv_both(backend, BRANCH_CASES[name], dtype=np.float32)
    _assert_same(got, want, 2e-4)


@pytest.mark.parametrize(
    "name",
    [*BRANCH_CASES, "grouped, stride 2 (col2im)", "grouped, stride 1 (correlation)"],
)
def test_conv_in_several_blocks_of_images(backend, monkeypatch, name):
    """The columns are taken a block of about COLS_BLOCK elements at a time:
    a budget of one element makes every image a block of its own (with a
    short last block where the batch does not divide)."""
    case = BRANCH_CASES.get(name) or GROUPED_CASES[name]
    want = _conv_both(backend, case)[1]
    monkeypatch.setattr(B, "DEVICE_BLOCK", 0)  # devices too: CPU blocks
    monkeypatch.setattr(fast, "COLS_BLOCK", 1)
    _assert_same(_conv_both(backend, case)[0], want, 1e-11)
    x_shape, w_shape, stride, padding, dilation, _bias, *groups = case
    if x_shape[0] > 1:  # two images a block (three images: 2 + 1)
        x, w = np.zeros(x_shape), np.zeros(w_shape)
        _, geo = Fn.conv.geometry("t", x, w, None, stride, padding, dilation, *groups)
        per_image = geo.C * geo.KH * geo.KW * geo.OH * fast._row_width(geo)
        monkeypatch.setattr(fast, "COLS_BLOCK", 2 * per_image)
        _assert_same(_conv_both(backend, case)[0], want, 1e-11)


@pytest.mark.parametrize(
    "name, blocks", [("wide, stride 1 (flat shift)", "image_blocks"),
                     ("depthwise, stride 1", "_image_blocks")],
)  # fmt: skip
def test_blocks_on_a_device_hold_the_batch(backend, monkeypatch, name, blocks):
    """On NumPy the work goes a cache-sized block at a time; on a device (CuPy,
    and the strict stand-in) a block holds up to DEVICE_BLOCK elements, so the
    kernel launches do not multiply with the batch. With the CPU budgets at
    one element: one block per image on NumPy, one for the batch elsewhere."""
    monkeypatch.setattr(fast, "COLS_BLOCK", 1)
    monkeypatch.setattr(fast, "DEPTHWISE_BLOCK", 1)
    split, seen = getattr(fast, blocks), []

    def spy(*args):
        seen.append(split(*args))
        return seen[-1]

    monkeypatch.setattr(fast, blocks, spy)
    case = BRANCH_CASES.get(name) or GROUPED_CASES[name]
    got, want = _conv_both(backend, case)
    _assert_same(got, want, 1e-11)
    n_images, n_channels = case[0][:2]
    if backend.name == "numpy":
        per_batch = n_images * (n_channels if blocks == "_image_blocks" else 1)
    else:
        per_batch = 1
    assert seen and all(len(b) == per_batch for b in seen), seen


def _dw_of_infinite_input(backend, x, w, stride=1, groups=1):
    """(fast, reference) dW for an x holding ±inf, dY all ones."""
    x, w = backend.asarray(x), backend.asarray(w)
    out = []
    for forward, backward in (
        (fast.conv2d_forward, fast.conv2d_backward),
        (Fn.conv2d_forward, Fn.conv2d_backward),
    ):
        y, cache = forward(x, w, None, stride, 1, 1, groups)
        dy = backend.asarray(np.ones(tuple(y.shape)))
        out.append(backend.to_numpy(backward(dy, cache)[1]))
    return out


@pytest.mark.parametrize("channels", [3, 16])  # dW from x's columns; from dY's
def test_weight_grad_where_junk_columns_meet_infinity(backend, channels):
    """Flat runs read past each row's end into junk columns, which dY's zeros
    cancel, except that 0·inf is NaN: an infinite input must give the
    reference's dW (inf, or NaN only where the reference has NaN)."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, channels, 6, 6))
    x[0, 1, 2, 5] = np.inf  # last column: read by the next row's junk
    w = rng.standard_normal((4, channels, 3, 3))
    got, want = _dw_of_infinite_input(backend, x, w)
    assert np.isinf(want).any()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_gradients_where_junk_columns_of_dy_meet_infinity(backend):
    """With 16 or more input channels at stride 1, dx and dW come from one set
    of columns, dY's (padded for the correlation), whose junk columns read dY
    across its rows and meet x's zeros there: an infinite dY must give the
    reference's dx and dW (inf, or NaN only where the reference has NaN)."""
    rng = np.random.default_rng(4)
    x = backend.asarray(rng.standard_normal((2, 16, 5, 8)))  # flat runs: 10 ≤ 1.3·8
    w = backend.asarray(rng.standard_normal((3, 16, 3, 3)))
    dy = rng.standard_normal((2, 3, 5, 8))
    dy[0, 1, 2, 7], dy[1, 2, 4, 0] = np.inf, -np.inf  # at the rows' ends
    dy = backend.asarray(dy)
    _y, cache = fast.conv2d_forward(x, w, None, 1, 1)
    assert isinstance(cache, fast.ConvCache) and cache.cols is None
    got = fast.conv2d_backward(dy, cache)
    want = Fn.conv2d_backward(dy, Fn.conv2d_forward(x, w, None, 1, 1)[1])
    for name, a, e in zip(("dx", "dw"), got, want[:2], strict=False):
        a, e = backend.to_numpy(a), backend.to_numpy(e)
        assert np.isinf(e).any(), name
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg=name)
        np.testing.assert_allclose(a, e, rtol=1e-12, err_msg=name)


# Grouped and depthwise: (x, w, stride, padding, dilation, bias, groups)
GROUPED_CASES = {
    # depthwise (groups = C = F): per-tap multiply-adds, dx by correlation
    "depthwise, stride 1": ((3, 4, 7, 6), (4, 1, 3, 3), 1, 1, 1, True, 4),
    "depthwise, 5×3, dilated, 'same'": (
        (2, 3, 9, 8), (3, 1, 5, 3), 1, "same", (1, 2), False, 3,
    ),
    "depthwise, padding > K − 1 (dx by windows)": (
        (2, 3, 5, 5), (3, 1, 3, 3), 1, (3, 1), 1, True, 3,
    ),
    # stride ≠ 1: flat shifts on the phases of the padded input
    "depthwise, stride 2 (phases)": ((2, 4, 9, 8), (4, 1, 3, 3), 2, 1, 1, True, 4),
    "depthwise, stride (1, 2) (phases)": (
        (1, 3, 7, 9), (3, 1, 3, 3), (1, 2), 1, 1, False, 3,
    ),
    "depthwise, stride 2, dilation 2 (phases no tap reads)": (
        (2, 3, 9, 10), (3, 1, 3, 3), 2, 2, 2, True, 3,
    ),
    "depthwise, stride 3, 5×2 dilated, padding > K − 1 (phases)": (
        (2, 3, 11, 7), (3, 1, 5, 2), 3, (2, 3), (2, 1), False, 3,
    ),
    "depthwise, stride (3, 2), a phase without input (phases)": (
        (1, 2, 1, 4), (2, 1, 1, 3), (3, 2), (2, 1), 1, True, 2,
    ),
    # MobileNet's depthwise layer at its real width (one block at the default size)
    "depthwise, 32 ch 56 px": ((2, 32, 56, 56), (32, 1, 3, 3), 1, 1, 1, True, 32),
    # grouped: batched products over the groups
    "grouped, stride 1 (correlation)": ((2, 6, 7, 7), (4, 3, 3, 3), 1, 1, 1, True, 2),
    "grouped, stride 2 (col2im)": ((2, 6, 8, 7), (9, 2, 3, 3), 2, 1, 1, True, 3),
    "grouped, padding > K − 1 (col2im)": (
        (1, 4, 5, 5), (4, 2, 3, 3), 1, 3, 1, False, 2,
    ),
    "depthwise, 2 filters per channel (grouped)": (
        (2, 3, 6, 6), (6, 1, 3, 3), 1, 1, 1, True, 3,
    ),
    "grouped, 2 channels per filter, dilated": (
        (2, 4, 8, 8), (2, 2, 3, 3), 1, 2, 2, True, 2,
    ),
    "grouped, ResNeXt-like 8 groups": ((2, 64, 7, 7), (64, 8, 3, 3), 1, 1, 1, False, 8),
    # asymmetric padding: the reference
    "grouped, 'same' with an even kernel (reference)": (
        (2, 4, 6, 6), (4, 2, 2, 2), 1, "same", 1, True, 2,
    ),
}  # fmt: skip


@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("name", list(GROUPED_CASES))
def test_fast_grouped_conv_equals_reference(backend, name, input_grad):
    got, want = _conv_both(backend, GROUPED_CASES[name], input_grad=input_grad)
    assert (got[1] is None) == (not input_grad)
    _assert_same(got, want, 1e-11)


def test_grouped_cases_reach_every_branch():
    seen = set()
    for (
        x_shape,
        w_shape,
        stride,
        padding,
        dilation,
        _,
        groups,
    ) in GROUPED_CASES.values():
        x, w = np.zeros(x_shape), np.zeros(w_shape)
        _, geo = Fn.conv.geometry("t", x, w, None, stride, padding, dilation, groups)
        stride_1 = geo.stride == (1, 1)
        asymmetric = geo.pad_end is not None
        fits = fast.correlation_fits if fast.depthwise(geo) else fast.full_correlation
        corr = stride_1 and not asymmetric and fits(geo)
        phases = None  # depthwise at stride ≠ 1: does every phase hold taps, input?
        if fast.depthwise(geo) and not stride_1:
            taps, _ = fast._phase_taps(geo)
            rows = [fast._phase_of(geo, a, b)[0] for a, b in taps]
            phases = (
                all(taps.values()),
                all(len(range(geo.H)[r]) * len(range(geo.W)[c]) for r, c in rows),
            )
        seen.add((fast.depthwise(geo), stride_1, corr, asymmetric, phases))
    assert seen == {
        (True, True, True, False, None), (True, True, False, False, None),
        (True, False, False, False, (True, True)),
        (True, False, False, False, (False, True)),
        (True, False, False, False, (False, False)),
        (False, True, True, False, None), (False, False, False, False, None),
        (False, True, False, False, None), (False, True, False, True, None),
    }  # fmt: skip


@pytest.mark.parametrize("block", [1, 4 * 7 * 9, 1 << 20])
def test_depthwise_in_blocks_of_images(backend, monkeypatch, block):
    """The stride-1 depthwise kernels take a block of images at a time: one
    image per block, two (the last block shorter), all three at once."""
    monkeypatch.setattr(B, "DEVICE_BLOCK", 0)  # devices too: CPU blocks
    monkeypatch.setattr(fast, "DEPTHWISE_BLOCK", block)
    got, want = _conv_both(backend, GROUPED_CASES["depthwise, stride 1"])
    _assert_same(got, want, 1e-11)


def test_fast_grouped_conv_float32(backend):
    for name in (
        "depthwise, stride 1",
        "depthwise, stride 2 (phases)",
        "grouped, stride 1 (correlation)",
    ):
        got, want = _conv_both(backend, GROUPED_CASES[name], dtype=np.float32)
        _assert_same(got, want, 2e-4)


@pytest.mark.parametrize("stride, out", [(1, 5), (2, 3)])
def test_depthwise_empty_batch(backend, stride, out):
    x = backend.asarray(np.zeros((0, 3, 5, 5)))
    w = backend.asarray(np.ones((3, 1, 3, 3)))
    y, cache = fast.conv2d_forward(x, w, None, stride, 1, 1, 3)
    assert tuple(y.shape) == (0, 3, out, out)
    dy = backend.asarray(np.zeros((0, 3, out, out)))
    dx, dw, _ = fast.conv2d_backward(dy, cache)
    assert tuple(dx.shape) == (0, 3, 5, 5)
    np.testing.assert_array_equal(backend.to_numpy(dw), 0.0)


def test_input_grad_false_skips_dx_only(backend):
    rng = np.random.default_rng(3)
    x = backend.asarray(rng.standard_normal((2, 3, 6, 6)), np.float32)
    w = backend.asarray(rng.standard_normal((4, 3, 3, 3)), np.float32)
    b = backend.asarray(rng.standard_normal(4), np.float32)
    y, cache = fast.conv2d_forward(x, w, b, 1, 1)
    dy = backend.asarray(rng.standard_normal(tuple(y.shape)), np.float32)
    dx, dw, db = fast.conv2d_backward(dy, cache)
    assert dx is not None  # the default returns dx
    none, dw2, db2 = fast.conv2d_backward(dy, cache, input_grad=False)
    assert none is None
    np.testing.assert_array_equal(backend.to_numpy(dw2), backend.to_numpy(dw))
    np.testing.assert_array_equal(backend.to_numpy(db2), backend.to_numpy(db))


def test_fast_backward_takes_the_reference_cache(backend):
    """The reference forward's cache (its columns) works with the fast
    backward, as with its own."""
    rng = np.random.default_rng(4)
    x = backend.asarray(rng.standard_normal((2, 3, 6, 6)))
    w = backend.asarray(rng.standard_normal((4, 3, 3, 3)))
    y, ref_cache = Fn.conv2d_forward(x, w, None, 2, 1)
    dy = backend.asarray(rng.standard_normal(tuple(y.shape)))
    for input_grad in (True, False):
        got = fast.conv2d_backward(dy, ref_cache, input_grad)
        want = Fn.conv2d_backward(dy, ref_cache)
        assert (got[0] is None) == (not input_grad)
        for a, b in zip(got, want, strict=True):
            if a is not None and b is not None:
                np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))


def _max_pool_both(backend, x, dy, kernel_size=2, stride=None, padding=0):
    out = []
    for forward, backward in (
        (fast.max_pool2d_forward, fast.max_pool2d_backward),
        (Fn.max_pool2d_forward, Fn.max_pool2d_backward),
    ):
        y, cache = forward(x, kernel_size, stride, padding)
        out.append((backend.to_numpy(y), backend.to_numpy(backward(dy, cache))))
    return out


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 2, 7, 9), (3, 1, 2, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_max_pool_equals_reference(backend, shape, dtype):
    rng = np.random.default_rng(1)
    host = rng.integers(-3, 3, shape).astype(dtype)  # many ties
    dy_host = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2))
    x = backend.asarray(host, dtype)
    dy = backend.asarray(dy_host, dtype)
    (y, dx), (y_ref, dx_ref) = _max_pool_both(backend, x, dy)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx, dx_ref)
    # each window sends its whole gradient to exactly one element
    np.testing.assert_allclose(dx.sum(), dy_host.astype(dtype).sum(), rtol=1e-5)


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
def test_pairwise_max_pool_special_values(backend, window):
    """NaN wins its window (the first NaN takes the gradient), ties go to the
    first maximum in row-major order, like PyTorch and the reference loop."""
    x = backend.asarray(np.array(window, np.float64).reshape(1, 1, 2, 2))
    dy = backend.asarray(np.full((1, 1, 1, 1), 2.5))
    (y, dx), (y_ref, dx_ref) = _max_pool_both(backend, x, dy)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx, dx_ref)
    assert np.count_nonzero(dx) == 1


def test_pairwise_max_pool_infinite_gradient(backend):
    """An infinite upstream gradient reaches the winner only (no inf·0 = NaN)."""
    x = backend.asarray(np.arange(16.0).reshape(1, 1, 4, 4))
    dy = backend.asarray(np.array([[[[np.inf, -np.inf], [np.nan, 1.0]]]]))
    (_, dx), (_, dx_ref) = _max_pool_both(backend, x, dy)
    np.testing.assert_array_equal(dx, dx_ref)
    assert np.isnan(dx).sum() == 1 and np.isinf(dx).sum() == 2


@pytest.mark.parametrize(
    "kernel_size, stride, padding", [(3, 2, 1), (2, 1, 0), ((2, 3), None, 1), (1, 1, 0)]
)
def test_other_max_pool_windows_fall_through_to_reference(
    backend, kernel_size, stride, padding
):
    rng = np.random.default_rng(2)
    x = backend.asarray(rng.standard_normal((2, 3, 7, 8)))
    y, cache = fast.max_pool2d_forward(x, kernel_size, stride, padding)
    assert not isinstance(cache, fast.PairwiseCache)
    dy = backend.asarray(rng.standard_normal(tuple(y.shape)))
    (y, dx), (y_ref, dx_ref) = _max_pool_both(
        backend, x, dy, kernel_size, stride, padding
    )
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx, dx_ref)


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


def test_workspace_reuses_its_memory_within_a_thread(backend):
    """backend.workspace: a request for the same name gets the same memory
    (NumPy: a view of one buffer per thread, name and dtype; grown when a
    larger one is asked for); another name or thread other memory."""
    import threading

    from cnnbook.backend import workspace

    like = backend.asarray(np.zeros(3), np.float32)
    a = workspace("test a", (4, 5), like)
    assert tuple(a.shape) == (4, 5) and a.dtype == like.dtype
    b = workspace("test b", (4, 5), like)
    _ = like[:1] + a[:1, 0] + b[:1, 0]  # same device: combining does not raise
    if backend.name != "numpy":  # other libraries allocate each time
        return
    assert not np.shares_memory(a, b)
    assert np.shares_memory(a, workspace("test a", (2, 3), like))  # smaller: a view
    big = workspace("test a", (40, 50), like)  # larger: grown
    assert tuple(big.shape) == (40, 50)
    assert np.shares_memory(big, workspace("test a", (4, 5), like))
    other = []
    thread = threading.Thread(
        target=lambda: other.append(workspace("test a", (4, 5), like))
    )
    thread.start()
    thread.join()
    assert not np.shares_memory(other[0], big)
    assert workspace("test a", (4, 5), backend.asarray(np.zeros(3))).dtype == np.float64


# ---------------------------------------------------------------------------
# batch normalization
# ---------------------------------------------------------------------------
def _bn_args(backend, C, dtype, seed=0):
    r = np.random.default_rng(seed)
    gamma, beta = r.standard_normal(C), r.standard_normal(C)
    mean, var = r.standard_normal(C), r.uniform(0.5, 2.0, C)
    return [backend.asarray(a, dtype) for a in (gamma, beta, mean, var)]


@pytest.mark.parametrize(
    "shape", [(5, 3), (4, 3, 7), (2, 4, 5, 6), (64, 16, 28, 28)], ids=str
)
@pytest.mark.parametrize("training", [True, False])
def test_fast_batch_norm_equals_reference(backend, shape, training):
    """Training (the fast path; the last shape is ResNet's first stage) and
    evaluation (the reference): y, the running statistics, dx, dγ, dβ; and
    each backward accepts the other forward's cache."""
    dtype = np.float64
    rng = np.random.default_rng(1)
    x = backend.asarray(3 + 2 * rng.standard_normal(shape), dtype)
    dy = backend.asarray(rng.standard_normal(shape), dtype)
    runs = []
    for forward in (fast.batch_norm_forward, Fn.batch_norm_forward):
        gamma, beta, mean, var = _bn_args(backend, shape[1], dtype)
        y, cache = forward(x, gamma, beta, mean, var, training, 0.1, 1e-5)
        runs.append((y, mean, var, cache))
    (y, mean, var, _), (y_ref, mean_ref, var_ref, _) = runs
    for a, e in ((y, y_ref), (mean, mean_ref), (var, var_ref)):
        np.testing.assert_allclose(
            backend.to_numpy(a), backend.to_numpy(e), rtol=1e-11, atol=1e-11
        )
    want = Fn.batch_norm_backward(dy, runs[1][3])
    for backward in (fast.batch_norm_backward, Fn.batch_norm_backward):
        for _, _, _, cache in runs:
            for a, e in zip(backward(dy, cache), want, strict=True):
                np.testing.assert_allclose(
                    backend.to_numpy(a), backend.to_numpy(e), rtol=1e-10, atol=1e-10
                )


def test_fast_batch_norm_float32(backend):
    rng = np.random.default_rng(2)
    x = backend.asarray(rng.standard_normal((8, 4, 5, 5)), np.float32)
    dy = backend.asarray(rng.standard_normal((8, 4, 5, 5)), np.float32)
    got, want = [], []
    for forward, backward, out in (
        (fast.batch_norm_forward, fast.batch_norm_backward, got),
        (Fn.batch_norm_forward, Fn.batch_norm_backward, want),
    ):
        y, cache = forward(x, *_bn_args(backend, 4, np.float32))
        out += [y, *backward(dy, cache)]
    for a, e in zip(got, want, strict=True):
        assert a.dtype == e.dtype
        np.testing.assert_allclose(
            backend.to_numpy(a), backend.to_numpy(e), rtol=1e-4, atol=1e-4
        )


@pytest.mark.parametrize(
    "shape, C, momentum, eps",
    [((1, 3), 3, 0.1, 1e-5), ((4, 3, 2), 2, 0.1, 1e-5), ((4, 3), 3, 2.0, 1e-5),
     ((4, 3), 3, 0.1, 0.0), ((0, 3, 2, 2), 3, 0.1, 1e-5)],
)  # fmt: skip
def test_fast_batch_norm_bad_arguments_as_reference(backend, shape, C, momentum, eps):
    """Arguments the reference refuses (one value per channel, wrong parameter
    shape, momentum or eps out of range) raise its error; an empty batch
    gives its empty output."""
    x = backend.asarray(np.ones(shape), np.float64)
    results = []
    for forward in (fast.batch_norm_forward, Fn.batch_norm_forward):
        args = _bn_args(backend, C, np.float64)
        try:
            y, _ = forward(x, *args, True, momentum, eps)
            results.append(("ok", tuple(y.shape)))
        except ValueError as err:
            results.append(("error", str(err)))
    assert results[0] == results[1]


@pytest.mark.parametrize("block", [100, 2 * 72, 2 * 3 * 72])
def test_depthwise_in_blocks_of_images_and_channels(backend, monkeypatch, block):
    """Blocks split the channels too: one image and one channel per block;
    two images (the last block shorter) and one channel; all three images
    and two channels (72: one padded 9 × 8 image)."""
    monkeypatch.setattr(B, "DEVICE_BLOCK", 0)  # devices too: CPU blocks
    monkeypatch.setattr(fast, "DEPTHWISE_BLOCK", block)
    got, want = _conv_both(backend, GROUPED_CASES["depthwise, stride 1"])
    _assert_same(got, want, 1e-11)


@pytest.mark.parametrize(
    "case",
    [((2, 3, 7, 6), (3, 1, 3, 3), 1, 0, 1, True, 3),
     ((2, 3, 9, 6), (3, 1, 3, 2), 1, (1, 0), (2, 1), False, 3)],
)  # fmt: skip
@pytest.mark.parametrize("block", [1, 1 << 20])
def test_depthwise_dx_grid_unlike_the_input_grid(backend, monkeypatch, case, block):
    """Padding other than 'same': dy padded for dx has another shape than the
    padded input, so dw takes dy on a grid of its own."""
    monkeypatch.setattr(B, "DEVICE_BLOCK", 0)  # devices too: CPU blocks
    monkeypatch.setattr(fast, "DEPTHWISE_BLOCK", block)
    got, want = _conv_both(backend, case)
    _assert_same(got, want, 1e-11)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-11), (np.float32, 2e-4)])
def test_depthwise_mobilenet_width_in_several_blocks(backend, monkeypatch, dtype, tol):
    """MobileNet's 32-channel 56 px layer fits one block of the default size
    with two images; at 2^14 elements it takes 16 blocks of two channels."""
    monkeypatch.setattr(B, "DEVICE_BLOCK", 0)  # devices too: CPU blocks
    monkeypatch.setattr(fast, "DEPTHWISE_BLOCK", 1 << 14)
    case = GROUPED_CASES["depthwise, 32 ch 56 px"]
    got, want = _conv_both(backend, case, dtype=dtype)
    _assert_same(got, want, tol)


@pytest.mark.parametrize("block", [1, 300, 1000, 1 << 20])
@pytest.mark.parametrize(
    "name",
    [
        "depthwise, stride 2 (phases)",
        "depthwise, stride 3, 5×2 dilated, padding > K − 1 (phases)",
    ],
)
def test_depthwise_phases_in_blocks(backend, monkeypatch, name, block):
    """At stride ≠ 1 a block holds every phase of its images and channels
    (stride 2: 4 phases of 6 × 5 forward, 7 × 6 backward, per image and
    channel): one image and channel per block; both images, one channel
    (forward); both images, channels 2 + 2 or 2 + 1 (backward: the last block
    of another shape); everything at once."""
    monkeypatch.setattr(B, "DEVICE_BLOCK", 0)  # devices too: CPU blocks
    monkeypatch.setattr(fast, "DEPTHWISE_BLOCK", block)
    got, want = _conv_both(backend, GROUPED_CASES[name])
    _assert_same(got, want, 1e-11)


@pytest.mark.parametrize("stride", [1, 2, (1, 2)])
def test_depthwise_weight_grad_where_junk_meets_infinity(backend, stride):
    """The depthwise runs read junk positions too (dy's zeros there), and 0·inf
    is NaN: an infinite input must give the reference's dw (inf where a
    window holds it, NaN only where the reference has NaN)."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 6, 6))
    x[0, 1, 2, 5] = np.inf  # last column: junk for the left taps' runs
    x[1, 0, 5, 0] = -np.inf  # last row, first column
    w = rng.standard_normal((3, 1, 3, 3))
    got, want = _dw_of_infinite_input(backend, x, w, stride, groups=3)
    assert np.isinf(want).any() and np.isfinite(want).any()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-12)
