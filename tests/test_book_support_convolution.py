"""cnnbook_book.convolution: the chapter's kernels, the flip, convolution as a
matrix and through the FFT, and the explorers' static counterparts."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")


import numpy as np
import pytest
from cnnbook_book import convolution as C

from cnnbook.functional import conv2d_naive

GEOMETRIES = [
    dict(stride=1, padding=0, dilation=1),
    dict(stride=2, padding=1, dilation=1),
    dict(stride=1, padding=2, dilation=2),
    dict(stride=3, padding=1, dilation=2),
]


def _loops(x, k, stride, padding, dilation):
    """Cross-correlation straight from the definition, in plain Python."""
    xpad = np.pad(x, padding)
    KH, KW = k.shape
    OH = (xpad.shape[0] - dilation * (KH - 1) - 1) // stride + 1
    OW = (xpad.shape[1] - dilation * (KW - 1) - 1) // stride + 1
    y = np.zeros((OH, OW))
    for i in range(OH):
        for j in range(OW):
            for u in range(KH):
                for v in range(KW):
                    r, c = stride * i + dilation * u, stride * j + dilation * v
                    y[i, j] += k[u, v] * xpad[r, c]
    return y


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_correlate2d_is_the_definition(backend, rng, geometry):
    x, k = rng.normal(size=(9, 8)), rng.normal(size=(3, 2))
    y = C.correlate2d(backend.asarray(x), backend.asarray(k), **geometry)
    np.testing.assert_allclose(
        backend.to_numpy(y), _loops(x, k, **geometry), atol=1e-12
    )


def test_convolve2d_flips_the_kernel(backend, rng):
    x, k = rng.normal(size=(7, 6)), rng.normal(size=(3, 3))
    xb, kb = backend.asarray(x), backend.asarray(k)
    full = backend.to_numpy(C.convolve2d(xb, kb, "full"))
    np.testing.assert_allclose(full, C.fft_convolve2d(x, k), atol=1e-12)
    valid = backend.to_numpy(C.convolve2d(xb, kb, "valid"))
    np.testing.assert_allclose(valid, _loops(x, k[::-1, ::-1], 1, 0, 1), atol=1e-12)
    same = backend.to_numpy(C.convolve2d(xb, kb, "same"))
    np.testing.assert_allclose(same, full[1:-1, 1:-1], atol=1e-12)
    assert backend.to_numpy(C.flip(C.flip(kb))).tolist() == k.tolist()


def test_convolve2d_rejects_bad_modes():
    with pytest.raises(ValueError, match="odd kernel"):
        C.convolve2d(np.ones((4, 4)), np.ones((2, 2)), "same")
    with pytest.raises(ValueError, match="full, valid or same"):
        C.convolve2d(np.ones((4, 4)), np.ones((3, 3)), "circular")


def test_1d_definition_and_commutativity(rng):
    f, g = rng.normal(size=7), rng.normal(size=4)
    by_definition = C.convolve1d_definition(f, g)
    np.testing.assert_allclose(by_definition, np.convolve(f, g), atol=1e-12)
    np.testing.assert_allclose(by_definition, C.convolve1d_definition(g, f), atol=1e-12)
    package = C.convolve2d(f[None, :], g[None, :], "full")[0]
    np.testing.assert_allclose(package, by_definition, atol=1e-12)


def test_2d_definition_is_scipy_and_the_package(rng):
    from scipy.signal import convolve2d as scipy_convolve2d

    x, k = rng.normal(size=(6, 5)), rng.normal(size=(3, 2))
    by_definition = C.convolve2d_definition(x, k)
    np.testing.assert_allclose(by_definition, scipy_convolve2d(x, k), atol=1e-12)
    np.testing.assert_allclose(by_definition, C.convolve2d(x, k), atol=1e-12)
    valid = by_definition[2:6, 1:5]
    np.testing.assert_allclose(valid, C.convolve2d(x, k, "valid"), atol=1e-12)


def test_2d_convolution_commutes_and_correlation_reverses(rng):
    x, k = rng.normal(size=(5, 6)), rng.normal(size=(3, 4))
    np.testing.assert_allclose(C.convolve2d(x, k), C.convolve2d(k, x), atol=1e-12)
    xk = C.correlate2d(x, k, padding=(2, 3))
    kx = C.correlate2d(k, x, padding=(4, 5))
    np.testing.assert_allclose(xk, kx[::-1, ::-1], atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_dilation_is_a_kernel_with_holes(backend, rng, d):
    x, k = rng.normal(size=(12, 11)), rng.normal(size=(3, 2))
    xb, kb = backend.asarray(x), backend.asarray(k)
    holes = C.dilate_kernel(kb, d)
    assert tuple(holes.shape) == (2 * d + 1, d + 1)
    a = C.correlate2d(xb, kb, padding=1, dilation=d)
    b = C.correlate2d(xb, holes, padding=1)
    np.testing.assert_allclose(backend.to_numpy(a), backend.to_numpy(b), atol=1e-12)
    with pytest.raises(ValueError, match="positive"):
        C.dilate_kernel(kb, 0)


def test_shift_and_equivariance(backend, rng):
    x = rng.normal(size=(2, 10, 12))
    xb = backend.asarray(x)
    moved = backend.to_numpy(C.shift(xb, 2, -3))
    np.testing.assert_array_equal(moved[:, 2:, :9], x[:, :8, 3:])
    assert not moved[:, :2].any() and not moved[:, :, 9:].any()
    assert not backend.to_numpy(C.shift(xb, 10, 0)).any()
    # convolution commutes with translation away from the borders
    img, k = rng.normal(size=(16, 16)), rng.normal(size=(3, 3))
    a = C.correlate2d(C.shift(img, 2, 1), k, padding=1)
    b = C.shift(C.correlate2d(img, k, padding=1), 2, 1)
    np.testing.assert_allclose(a[4:-4, 4:-4], b[4:-4, 4:-4], atol=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_conv_matrix_times_x_is_the_convolution(rng, geometry):
    x, k = rng.normal(size=(8, 9)), rng.normal(size=(3, 2))
    M = C.conv_matrix(k, 8, 9, **geometry)
    y = conv2d_naive(x[None, None], k[None, None], None, **geometry)[0, 0]
    assert M.shape == (y.size, x.size)
    np.testing.assert_allclose(M @ x.ravel(), y.ravel(), atol=1e-12)


def test_conv_matrix_is_doubly_block_toeplitz(rng):
    k = rng.normal(size=(3, 3))
    H, W = 6, 7
    OH, OW = H - 2, W - 2
    blocks = C.conv_matrix(k, H, W).reshape(OH, OW, H, W).transpose(0, 2, 1, 3)
    for i in range(OH):
        for r in range(H):
            block = blocks[i, r]
            expected = C.conv_matrix(k[r - i][None, :], 1, W) if 0 <= r - i < 3 else 0
            np.testing.assert_array_equal(block, expected)


def test_kernels_and_their_text(rng):
    assert C.KERNELS["box blur 5×5"].sum() == pytest.approx(1.0)
    assert C.KERNELS["Gaussian 5×5, σ=1"].sum() == pytest.approx(1.0)
    for name in ("Sobel x", "Sobel y", "Laplacian"):
        assert C.KERNELS[name].sum() == 0.0
    assert C.KERNELS["sharpen"].sum() == 1.0
    for k in C.KERNELS.values():
        np.testing.assert_allclose(C.parse_kernel(C.kernel_text(k)), k, rtol=1e-3)
    with pytest.raises(ValueError, match="not a number"):
        C.parse_kernel("1 x")
    with pytest.raises(ValueError, match="empty"):
        C.parse_kernel(" ;\n")
    with pytest.raises(ValueError, match="odd"):
        C.gaussian_kernel(4, 1.0)


def test_figures_and_animations(rng):
    import matplotlib.pyplot as plt

    image = rng.random((20, 24))
    fig = C.explorer_figure(image, C.KERNELS["Sobel x"], stride=2, padding=1)
    assert "(20 + 2·1 − 1·(3−1) − 1) // 2 + 1 = 10" in fig.axes[2].get_xlabel()
    assert fig.axes[2].images[0].get_array().shape == (10, 12)
    plt.close(fig)
    fig = C.settings_figure(
        image, [dict(kernel="sharpen"), dict(kernel=np.ones((2, 2)), stride=2)]
    )
    inp, sharp, custom = fig.axes[:3]
    assert inp.get_title() == "input 20×24"
    assert sharp.get_title() == "sharpen\ns=1 p=0 d=1: 18×22"
    assert custom.get_title() == "custom\ns=2 p=0 d=1: 10×12"
    np.testing.assert_allclose(
        custom.images[0].get_array(), C.correlate2d(image, np.ones((2, 2)), stride=2)
    )
    assert not fig.axes[3].axison  # the unused fourth panel
    plt.close(fig)
    x = np.arange(16.0).reshape(4, 4)
    k = np.array([[1.0, 0.0], [0.0, -1.0]])
    fig = C.step_figure(x, k, stride=2, padding=1, i=1, j=1)
    label = fig.axes[2].get_xlabel()
    assert label.startswith("y[1, 1] = 1·5 + 0·6") and label.endswith("= -5")
    plt.close(fig)


def test_widgets_build_and_react(rng):
    image = rng.random((16, 16))
    box = C.kernel_explorer(image)
    choice, text = box.children[0].children[0].children
    choice.value = "Laplacian"
    assert C.parse_kernel(text.value).tolist() == C.KERNELS["Laplacian"].tolist()
    step = C.step_explorer(image[:5, :5], np.ones((3, 3)), stride=2, padding=1)
    assert [c.max for c in step.children[:2]] == [2, 2]
