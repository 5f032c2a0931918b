"""Companion to the chapter "Convolution": kernels, true convolution next to the
cross-correlation CNN layers compute, convolution as a matrix and through the FFT,
and the chapter's explorers with their static counterparts.

Notation: x (H, W) one image; k (KH, KW) one kernel; stride s, padding p,
dilation d; output (OH, OW) with OH = (H + 2p − d(KH − 1) − 1) // s + 1.

Array functions (:func:`correlate2d`, :func:`convolve2d`, :func:`flip`,
:func:`dilate_kernel`, :func:`shift`) take their namespace from their inputs
and run on every backend; they call the package's :func:`conv2d_forward` rather
than re-implementing it. The matrix and FFT constructions
(:func:`conv_matrix`, :func:`fft_convolve2d`) and the definitions written out
as loops (:func:`convolve1d_definition`, :func:`convolve2d_definition`) are
host-side mathematics on NumPy arrays. Plotting and widgets import matplotlib
and ipywidgets only when called.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from cnnbook.backend import device_of, namespace, to_numpy
from cnnbook.functional import conv2d_forward, conv_output_size

__all__ = [
    "KERNELS",
    "conv_matrix",
    "convolve1d_definition",
    "convolve2d",
    "convolve2d_definition",
    "correlate2d",
    "dilate_kernel",
    "explorer_figure",
    "fft_convolve2d",
    "filter_volume_figure",
    "flip",
    "gaussian_kernel",
    "im2col_layout_figure",
    "kernel_explorer",
    "kernel_text",
    "live_kernel_explorer",
    "live_step_explorer",
    "parse_kernel",
    "settings_figure",
    "shift",
    "step_explorer",
    "step_figure",
]


# ----------------------------------------------------------------------------
# kernels
# ----------------------------------------------------------------------------
def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """(size, size) samples of exp(−(u² + v²) / 2σ²) about the centre, summing to 1.

    >>> k = gaussian_kernel(3, 1.0)
    >>> k.shape, round(float(k.sum()), 12), bool(k[1, 1] == k.max())
    ((3, 3), 1.0, True)
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"gaussian_kernel: size must be odd and positive, got {size}")
    u = np.arange(size) - (size - 1) / 2
    bump = np.exp(-(u[:, None] ** 2 + u[None, :] ** 2) / (2 * sigma**2))
    return bump / bump.sum()


KERNELS: dict[str, np.ndarray] = {
    "identity": np.array([[0.0, 0, 0], [0, 1, 0], [0, 0, 0]]),
    "box blur 5×5": np.full((5, 5), 1 / 25),
    "Gaussian 5×5, σ=1": gaussian_kernel(5, 1.0),
    "Sobel x": np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "Sobel y": np.array([[-1.0, -2, -1], [0, 0, 0], [1, 2, 1]]),
    "sharpen": np.array([[0.0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "Laplacian": np.array([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]),
}
"""Named (KH, KW) kernels, as cross-correlation kernels (what conv layers apply)."""


def parse_kernel(text: str) -> np.ndarray:
    """Rows separated by ``;`` or newlines, numbers by spaces or commas -> (KH, KW).

    Entries may be fractions such as ``1/9``.

    >>> parse_kernel("1 0 -1; 2, 0, -2; 1 0 -1").tolist()
    [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]
    >>> parse_kernel("1/4 1/4\\n1/4 1/4").sum()
    np.float64(1.0)
    >>> parse_kernel("1 2; 3")
    Traceback (most recent call last):
    ...
    ValueError: parse_kernel: every row needs the same number of entries, got [2, 1]
    """
    rows = [r for r in re.split(r"[;\n]", text) if r.strip()]
    if not rows:
        raise ValueError("parse_kernel: the kernel is empty")
    values = [[_number(t) for t in re.split(r"[,\s]+", r.strip())] for r in rows]
    lengths = [len(r) for r in values]
    if len(set(lengths)) != 1:
        raise ValueError(
            f"parse_kernel: every row needs the same number of entries, got {lengths}"
        )
    return np.array(values, dtype=np.float64)


def _number(token: str) -> float:
    num, _, den = token.partition("/")
    try:
        return float(num) / float(den) if den else float(num)
    except ValueError as err:
        raise ValueError(f"parse_kernel: {token!r} is not a number") from err


def kernel_text(k: Any) -> str:
    """(KH, KW) -> the text :func:`parse_kernel` reads back (rows on lines).

    >>> print(kernel_text(np.array([[1.0, 0.5], [-2.0, 0.0]])))
    1 0.5
    -2 0
    """
    return "\n".join(" ".join(f"{v:.4g}" for v in row) for row in to_numpy(k))


# ----------------------------------------------------------------------------
# convolution and cross-correlation of one image (every backend)
# ----------------------------------------------------------------------------
def correlate2d(x: Any, k: Any, stride=1, padding=0, dilation=1) -> Any:
    """x (H, W), k (KH, KW) -> (OH, OW): cross-correlation, no flip.

    y[i, j] = Σ_u Σ_v k[u, v] · xpad[s·i + d·u, s·j + d·v]; a thin wrapper that
    calls :func:`cnnbook.functional.conv2d_forward` with N = C = F = 1.

    >>> x = np.arange(9.0).reshape(3, 3)
    >>> correlate2d(x, np.array([[1.0, -1.0]])).tolist()
    [[-1.0, -1.0], [-1.0, -1.0], [-1.0, -1.0]]
    """
    xp = namespace("correlate2d", x=x, k=k)
    H, W = x.shape
    KH, KW = k.shape
    x4 = xp.reshape(x, (1, 1, H, W))
    k4 = xp.reshape(k, (1, 1, KH, KW))
    y, _ = conv2d_forward(x4, k4, None, stride, padding, dilation)
    return y[0, 0, ...]


def flip(k: Any) -> Any:
    """(..., KH, KW) -> the kernel rotated by 180°: k[..., ::-1, ::-1].

    >>> flip(np.array([[1, 2], [3, 4]])).tolist()
    [[4, 3], [2, 1]]
    """
    xp = namespace("flip", k=k)
    return xp.flip(k, axis=(-2, -1))


def convolve2d(x: Any, k: Any, mode: str = "full") -> Any:
    """x (H, W), k (KH, KW) -> true convolution (x * k), the kernel flipped.

    (x * k)[t1, t2] = Σ_a1 Σ_a2 x[a1, a2] · k[t1 − a1, t2 − a2]. ``mode``:
    ``"full"`` (H + KH − 1, W + KW − 1), every overlap; ``"valid"``
    (H − KH + 1, W − KW + 1), the kernel inside the image; ``"same"`` (H, W),
    odd kernels only. Computed as a cross-correlation with :func:`flip` (k).

    >>> convolve2d(np.array([[1.0, 2.0, 3.0]]), np.array([[0.0, 1.0, 0.5]])).tolist()
    [[0.0, 1.0, 2.5, 4.0, 1.5]]
    """
    KH, KW = k.shape
    if mode == "full":
        padding = (KH - 1, KW - 1)
    elif mode == "valid":
        padding = (0, 0)
    elif mode == "same":
        if KH % 2 == 0 or KW % 2 == 0:
            raise ValueError(f"convolve2d: mode 'same' needs an odd kernel, {k.shape}")
        padding = ((KH - 1) // 2, (KW - 1) // 2)
    else:
        raise ValueError(f"convolve2d: mode must be full, valid or same, got {mode!r}")
    return correlate2d(x, flip(k), padding=padding)


def dilate_kernel(k: Any, dilation: int) -> Any:
    """(..., KH, KW) -> (..., d(KH − 1) + 1, d(KW − 1) + 1): d − 1 zeros between taps.

    Correlating with the dilated kernel equals correlating with ``dilation=d``.

    >>> dilate_kernel(np.array([[1.0, 2.0]]), 3).tolist()
    [[1.0, 0.0, 0.0, 2.0]]
    """
    xp = namespace("dilate_kernel", k=k)
    if dilation < 1:
        raise ValueError(f"dilate_kernel: dilation must be positive, got {dilation}")
    *lead, KH, KW = k.shape
    shape = (*lead, dilation * (KH - 1) + 1, dilation * (KW - 1) + 1)
    out = xp.zeros(shape, dtype=k.dtype, device=device_of(k))
    out[..., ::dilation, ::dilation] = k
    return out


def shift(x: Any, dy: int, dx: int) -> Any:
    """(..., H, W) -> same shape, content moved dy rows down and dx columns
    right (negative: up/left); what enters is zero, what leaves is lost. The
    translation of the convolution and pooling chapters.

    >>> shift(np.array([[1, 2, 3], [4, 5, 6]]), 1, -1).tolist()
    [[0, 0, 0], [2, 3, 0]]
    """
    xp = namespace("shift", x=x)
    H, W = x.shape[-2:]
    out = xp.zeros_like(x)
    if abs(dy) >= H or abs(dx) >= W:
        return out
    rows_to = slice(max(dy, 0), H + min(dy, 0))
    rows_from = slice(max(-dy, 0), H + min(-dy, 0))
    cols_to = slice(max(dx, 0), W + min(dx, 0))
    cols_from = slice(max(-dx, 0), W + min(-dx, 0))
    out[..., rows_to, cols_to] = x[..., rows_from, cols_from]
    return out


# ----------------------------------------------------------------------------
# the same operation written three other ways (NumPy, host side)
# ----------------------------------------------------------------------------
def convolve1d_definition(f: np.ndarray, g: np.ndarray) -> np.ndarray:
    """f (n,), g (m,) -> (n + m − 1,): (f * g)[t] = Σ_a f[a] · g[t − a], by the letter.

    t is the position at which the result is evaluated; the sum runs over every a
    with both indices in range. Loops, for reading, not for speed.

    >>> convolve1d_definition(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.5]))
    array([0. , 1. , 2.5, 4. , 1.5])
    """
    n, m = len(f), len(g)
    out = np.zeros(n + m - 1)
    for t in range(n + m - 1):
        for a in range(n):
            if 0 <= t - a < m:
                out[t] += f[a] * g[t - a]
    return out


def convolve2d_definition(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """x (H, W), k (KH, KW) -> full true convolution (H + KH − 1, W + KW − 1).

    (x * k)[t1, t2] = Σ_a1 Σ_a2 x[a1, a2] · k[t1 − a1, t2 − a2], by the letter:
    loops over every input position a and every output position t, no flip and no
    call into the package, so it is an independent check of :func:`convolve2d`.
    The "valid" part is ``[KH − 1 : H, KW − 1 : W]``.

    >>> convolve2d_definition(np.array([[1.0, 2.0]]), np.array([[1.0], [3.0]])).tolist()
    [[1.0, 2.0], [3.0, 6.0]]
    """
    H, W = x.shape
    KH, KW = k.shape
    out = np.zeros((H + KH - 1, W + KW - 1))
    for t1 in range(H + KH - 1):
        for t2 in range(W + KW - 1):
            for a1 in range(H):
                for a2 in range(W):
                    if 0 <= t1 - a1 < KH and 0 <= t2 - a2 < KW:
                        out[t1, t2] += x[a1, a2] * k[t1 - a1, t2 - a2]
    return out


def conv_matrix(
    k: np.ndarray, H: int, W: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> np.ndarray:
    """k (KH, KW) -> M (OH·OW, H·W) with M @ x.ravel() == correlate2d(x, k).ravel().

    Row i·OW + j holds k[u, v] in column r·W + c for every tap that lands inside
    the image, r = s·i + d·u − p, c = s·j + d·v − p (taps on padding read 0 and
    are dropped). With s = d = 1, p = 0 the matrix is doubly block Toeplitz: an
    (OH × H) grid of (OW × W) blocks, block (i, r) the Toeplitz matrix of kernel
    row r − i.

    >>> conv_matrix(np.array([[1.0, 2.0]]), 1, 3).tolist()
    [[1.0, 2.0, 0.0], [0.0, 1.0, 2.0]]
    """
    KH, KW = k.shape
    OH = conv_output_size(H, KH, stride, padding, dilation)
    OW = conv_output_size(W, KW, stride, padding, dilation)
    M = np.zeros((OH * OW, H * W), dtype=np.result_type(k.dtype, np.float64))
    for i in range(OH):
        for j in range(OW):
            for u in range(KH):
                for v in range(KW):
                    r = stride * i + dilation * u - padding
                    c = stride * j + dilation * v - padding
                    if 0 <= r < H and 0 <= c < W:
                        M[i * OW + j, r * W + c] = k[u, v]
    return M


def fft_convolve2d(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """x (H, W), k (KH, KW) -> full convolution (H + KH − 1, W + KW − 1) via the FFT.

    Convolution theorem: the DFT turns circular convolution into a pointwise
    product. Zero-padding both arrays to the full size makes the circular
    convolution equal the linear one.

    >>> y = fft_convolve2d(np.array([[1.0, 2.0, 3.0]]), np.array([[0.0, 1.0, 0.5]]))
    >>> (y.round(12) + 0.0).tolist()
    [[0.0, 1.0, 2.5, 4.0, 1.5]]
    """
    shape = (x.shape[0] + k.shape[0] - 1, x.shape[1] + k.shape[1] - 1)
    product = np.fft.rfft2(x, shape) * np.fft.rfft2(k, shape)
    return np.fft.irfft2(product, shape)


# ----------------------------------------------------------------------------
# the kernel explorer and its static counterpart
# ----------------------------------------------------------------------------
def _formula(H: int, K: int, s: int, p: int, d: int) -> str:
    out = conv_output_size(H, K, s, p, d)
    return f"({H} + 2·{p} − {d}·({K}−1) − 1) // {s} + 1 = {out}"


def _draw_settings(axes, image, kernel, stride, padding, dilation, name=None):
    image, kernel = np.asarray(image, dtype=np.float64), np.asarray(kernel)
    H, W = image.shape
    KH, KW = kernel.shape
    y = to_numpy(correlate2d(image, kernel, stride, padding, dilation))
    for ax in axes:
        ax.clear()
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title(f"input {H}×{W}", fontsize=9)
    lim = max(float(np.abs(kernel).max()), 1e-12)
    axes[1].imshow(dilate_kernel(kernel, dilation), cmap="RdBu_r", vmin=-lim, vmax=lim)
    label = name or "kernel"
    axes[1].set_title(f"{label} {KH}×{KW}, dilation {dilation}", fontsize=9)
    if KH * KW <= 25 and dilation == 1:
        for (u, v), val in np.ndenumerate(kernel):
            axes[1].text(v, u, f"{val:.2g}", ha="center", va="center", fontsize=7)
    axes[2].imshow(y, cmap="gray")
    axes[2].set_title(
        f"output {y.shape[0]}×{y.shape[1]} (stride {stride}, padding {padding})",
        fontsize=9,
    )
    axes[2].set_xlabel("OH = " + _formula(H, KH, stride, padding, dilation), fontsize=8)
    return y


def explorer_figure(
    image: Any,
    kernel: Any,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    name: str | None = None,
):
    """image (H, W), kernel (KH, KW) -> a figure: input, kernel, output (OH, OW),
    with the output-size formula filled in."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3), dpi=72)
    _draw_settings(axes, image, kernel, stride, padding, dilation, name)
    fig.tight_layout()
    return fig


def kernel_explorer(image: Any):
    """image (H, W) -> an ipywidgets box: pick or edit a kernel, set stride,
    padding and dilation, see the output image and its size."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    choice = w.Dropdown(
        options=[*KERNELS, "custom"], value="Sobel x", description="kernel"
    )
    text = w.Textarea(value=kernel_text(KERNELS["Sobel x"]), rows=5, description="edit")
    stride = w.IntSlider(value=1, min=1, max=4, description="stride")
    padding = w.IntSlider(value=0, min=0, max=4, description="padding")
    dilation = w.IntSlider(value=1, min=1, max=3, description="dilation")
    out = w.Output()

    def redraw(*_):
        out.clear_output(wait=True)
        with out:
            try:
                k = parse_kernel(text.value)
                fig = explorer_figure(
                    image, k, stride.value, padding.value, dilation.value
                )
                plt.show()
                plt.close(fig)
            except ValueError as err:
                print(err)

    def pick(change):
        if change["new"] != "custom":
            text.value = kernel_text(KERNELS[change["new"]])

    choice.observe(pick, names="value")
    for control in (text, stride, padding, dilation):
        control.observe(redraw, names="value")
    redraw()
    controls = w.VBox([choice, text])
    return w.VBox([w.HBox([controls, w.VBox([stride, padding, dilation])]), out])


def settings_figure(image: Any, settings: list[dict], ncols: int = 4):
    """image (H, W), settings: dicts of kernel (name or array), stride, padding,
    dilation -> a figure with the input and one output per setting, side by side,
    each titled with its setting and output size: the kernel explorer's states
    for print (the live explorer above shows any setting)."""
    import matplotlib.pyplot as plt

    panels = len(settings) + 1
    nrows = -(-panels // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(2.45 * ncols, 2.7 * nrows), dpi=72, squeeze=False
    )
    axes = axes.ravel()
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title(f"input {image.shape[0]}×{image.shape[1]}", fontsize=10)
    for ax, s in zip(axes[1:], settings, strict=False):
        named = isinstance(s["kernel"], str)
        name = s["kernel"] if named else "custom"
        k = KERNELS[name] if named else np.asarray(s["kernel"])
        stride, padding = s.get("stride", 1), s.get("padding", 0)
        dilation = s.get("dilation", 1)
        y = correlate2d(image, k, stride, padding, dilation)
        ax.imshow(y, cmap="gray")
        ax.set_title(
            f"{name}\ns={stride} p={padding} d={dilation}: {y.shape[0]}×{y.shape[1]}",
            fontsize=10,
        )
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[panels:]:  # the empty panels of the last row
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def live_kernel_explorer(
    image: Any,
    presets: dict[str, Any] | None = None,
    kernel: str = "Sobel x",
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
):
    """image (H, W), presets {name: (KH, KW)} -> an ``IPython.display.HTML``
    kernel explorer that recomputes in the reader's browser (issue 11).

    The image and the preset kernels (default :data:`KERNELS`) travel as float32
    JSON; ``book/_assets/explorers/conv.js`` computes the cross-correlation with
    zero padding, stride and dilation of :func:`correlate2d`, draws the output and
    fills in the output-size formula. Controls: preset, kernel entries (the text
    :func:`parse_kernel` reads), stride 1-4, padding 0-4, dilation 1-3.
    """
    from IPython.display import HTML

    return HTML(_live_kernel_html(image, presets, kernel, stride, padding, dilation))


def _live_kernel_html(image, presets, kernel, stride, padding, dilation) -> str:
    import html as _html

    from cnnbook_book.live import encode_array, live_html, range_control

    presets = KERNELS if presets is None else presets
    if kernel not in presets:
        raise ValueError(f"live_kernel_explorer: no preset {kernel!r}")
    payload = {
        "image": encode_array(image),
        "presets": {n: encode_array(k) for n, k in presets.items()},
        "kernel": kernel,
    }
    options = "".join(
        f'<option value="{_html.escape(n)}"{" selected" if n == kernel else ""}>'
        f"{_html.escape(n)}</option>"
        for n in [*presets, "custom"]
    )
    markup = (
        '<div class="cnnbook-live-controls">'
        f'<label>kernel <select name="preset">{options}</select></label>'
        '<label>entries (rows on lines, 1/9 allowed) <textarea name="kernel" '
        f'rows="5" cols="22" spellcheck="false">{kernel_text(presets[kernel])}'
        "</textarea></label>"
        + range_control("stride", "stride s", 1, 4, 1, stride)
        + range_control("padding", "padding p", 0, 4, 1, padding)
        + range_control("dilation", "dilation d", 1, 3, 1, dilation)
        + "</div>"
        '<div class="cnnbook-live-figures">'
        '<figure><canvas class="input" role="img" aria-label="input image">'
        "</canvas><figcaption>input</figcaption></figure>"
        '<figure><canvas class="output" role="img" aria-label="output image">'
        '</canvas><figcaption class="output-caption">output</figcaption></figure>'
        "</div>"
        '<p class="cnnbook-live-formula" aria-live="polite"></p>'
    )
    return live_html("conv", payload, markup, "kernel explorer")


# ----------------------------------------------------------------------------
# one output value, step by step
# ----------------------------------------------------------------------------
def _draw_step(axes, x, k, stride, padding, i, j):
    x, k = np.asarray(x, dtype=np.float64), np.asarray(k, dtype=np.float64)
    H, W = x.shape
    KH, KW = k.shape
    y = to_numpy(correlate2d(x, k, stride, padding))
    OH, OW = y.shape
    xpad = np.pad(x, padding)
    for ax in axes:
        ax.clear()
        ax.set_xticks([])
        ax.set_yticks([])
    inside = np.zeros_like(xpad)
    inside[padding : padding + H, padding : padding + W] = 1
    axes[0].imshow(inside, cmap="Greys", vmin=-1, vmax=4)
    for (r, c), val in np.ndenumerate(xpad):
        axes[0].text(c, r, f"{val:g}", ha="center", va="center", fontsize=8)
    r0, c0 = stride * i, stride * j
    axes[0].add_patch(_box(c0 - 0.5, r0 - 0.5, KW, KH, "tab:orange"))
    axes[0].set_title(f"input {H}×{W}, padded by {padding}", fontsize=9)
    axes[1].imshow(np.zeros_like(k), cmap="Greys", vmin=-1, vmax=4)
    for (u, v), val in np.ndenumerate(k):
        axes[1].text(v, u, f"{val:g}", ha="center", va="center", fontsize=9)
    axes[1].add_patch(_box(-0.5, -0.5, KW, KH, "tab:orange"))
    axes[1].set_title(f"kernel {KH}×{KW}", fontsize=9)
    done = np.full((OH, OW), np.nan)
    order = np.arange(OH * OW).reshape(OH, OW)
    done[order <= i * OW + j] = y[order <= i * OW + j]
    axes[2].imshow(np.zeros((OH, OW)), cmap="Greys", vmin=-1, vmax=4)
    for (r, c), val in np.ndenumerate(done):
        if not np.isnan(val):
            axes[2].text(c, r, f"{val:g}", ha="center", va="center", fontsize=9)
    axes[2].add_patch(_box(j - 0.5, i - 0.5, 1, 1, "tab:orange"))
    axes[2].set_title(f"output {OH}×{OW}, stride {stride}", fontsize=9)
    window = xpad[r0 : r0 + KH, c0 : c0 + KW]
    terms = [f"{a:g}·{b:g}" for a, b in zip(k.ravel(), window.ravel(), strict=True)]
    half = (len(terms) + 1) // 2
    axes[2].set_xlabel(
        f"y[{i}, {j}] = "
        + " + ".join(terms[:half])
        + "\n+ "
        + " + ".join(terms[half:])
        + f" = {y[i, j]:g}",
        fontsize=8,
    )
    return y


def _box(x0, y0, width, height, color):
    from matplotlib.patches import Rectangle

    return Rectangle((x0, y0), width, height, fill=False, lw=2.5, ec=color)


def step_figure(
    x: Any, k: Any, stride: int = 1, padding: int = 0, i: int = 0, j: int = 0
):
    """x (H, W), k (KH, KW) -> a figure showing how output value y[i, j] is
    computed: the window of the padded input, the kernel, and the sum of products."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), dpi=72)
    _draw_step(axes, x, k, stride, padding, i, j)
    fig.tight_layout()
    return fig


def step_explorer(x: Any, k: Any, stride: int = 1, padding: int = 0):
    """x (H, W), k (KH, KW) -> an ipywidgets box with sliders for the output
    position (i, j)."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    H, W = x.shape
    KH, KW = k.shape
    OH = conv_output_size(H, KH, stride, padding)
    OW = conv_output_size(W, KW, stride, padding)

    def show(i, j):
        fig = step_figure(x, k, stride, padding, i, j)
        plt.show()
        plt.close(fig)

    return w.interactive(
        show,
        i=w.IntSlider(value=0, min=0, max=OH - 1, description="row i"),
        j=w.IntSlider(value=0, min=0, max=OW - 1, description="column j"),
    )


def live_step_explorer(x: Any, k: Any, stride: int = 1, padding: int = 0):
    """x (H, W), k (KH, KW) -> an ``IPython.display.HTML`` step-through that runs
    in the reader's browser (issue 11): sliders (or a click on the output) pick
    the output position (i, j); the page outlines the window of the padded input,
    writes out the products and their sum y[i, j], as :func:`step_figure` draws.
    ``book/_assets/explorers/convstep.js`` computes it from x and k (float32).
    """
    from IPython.display import HTML

    from cnnbook_book.live import encode_array, live_html, range_control

    H, W = x.shape
    KH, KW = k.shape
    OH = conv_output_size(H, KH, stride, padding)
    OW = conv_output_size(W, KW, stride, padding)
    payload = {
        "x": encode_array(x),
        "k": encode_array(k),
        "stride": stride,
        "padding": padding,
    }
    markup = (
        '<div class="cnnbook-live-controls">'
        + range_control("i", "output row i", 0, OH - 1, 1, 0)
        + range_control("j", "output column j", 0, OW - 1, 1, 0)
        + '</div><div class="cnnbook-live-grids"></div>'
        '<p class="cnnbook-live-formula" aria-live="polite"></p>'
    )
    return HTML(live_html("convstep", payload, markup, "convolution step-through"))


def filter_volume_figure(C: int = 3, H: int = 6, K: int = 3, at=(1, 2)):
    """A figure of one filter (C, K, K) on an input volume (C, H, H): the window
    it covers at output position ``at`` = (i, j) (stride 1, no padding), and the
    one output value y[f, i, j] it makes on the (H − K + 1)² map."""
    import matplotlib.pyplot as plt

    i, j = at
    O = H - K + 1
    volume = np.ones((H, H, C), dtype=bool)  # axes: column, row, channel
    window = np.zeros_like(volume)
    window[j : j + K, H - i - K : H - i, :] = True  # rows drawn from the top
    fig = plt.figure(figsize=(10, 3.8), dpi=72)
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    # two calls, so that the window's faces count as outer faces and are drawn
    ax.voxels(volume & ~window, facecolors=(0.6, 0.75, 0.9, 0.2),
              edgecolor=(0.2, 0.2, 0.2, 0.25), lw=0.3)  # fmt: skip
    ax.voxels(window, facecolors=(1.0, 0.55, 0.1, 0.95), edgecolor="k", lw=0.4)
    ax.set_box_aspect((H, H, C))
    ax.view_init(elev=24, azim=-60)
    ax.set_axis_off()
    ax.set_title(
        f"input C×H×W = {C}×{H}×{H}; one filter's window C×K×K = {C}×{K}×{K}",
        fontsize=11,
    )
    out = fig.add_subplot(1, 2, 2)
    grid = np.zeros((O, O))
    grid[i, j] = 1
    out.imshow(grid, cmap="Oranges", vmin=0, vmax=1.4)
    out.set_xticks(range(O))
    out.set_yticks(range(O))
    out.set_title(
        f"output map {O}×{O}: the window's {C * K * K} products\n"
        f"sum to the one value y[f, {i}, {j}]",
        fontsize=11,
    )
    out.set_xlabel("j")
    out.set_ylabel("i")
    fig.tight_layout()
    return fig


def im2col_layout_figure(C: int = 2, H: int = 4, K: int = 3, at=(0, 1)):
    """A figure of im2col's columns for one image (C, H, H) whose pixel values are
    their own flat indices, stride 1, no padding: left, the window of output
    position ``at``; right, the matrix (C·K·K, OH·OW), rows (c, u, v), that
    window's column outlined."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from cnnbook.functional import conv2d_forward

    x = np.arange(C * H * H, dtype=np.float64).reshape(1, C, H, H)
    w = np.zeros((1, C, K, K))
    _, cache = conv2d_forward(x, w)
    cols = np.asarray(cache.cols)  # (C·K·K, OH·OW)
    O = H - K + 1
    i, j = at
    column = i * O + j
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(10, 5.4), dpi=72, gridspec_kw={"width_ratios": [1, 1.3]}
    )
    left.imshow(np.hstack([x[0, c] for c in range(C)]), cmap="Blues", alpha=0.5)
    for c in range(C):
        for (r, q), v in np.ndenumerate(x[0, c]):
            left.text(q + c * H, r, f"{v:g}", ha="center", va="center", fontsize=10)
        left.add_patch(
            Rectangle((c * H + j - 0.5, i - 0.5), K, K, fill=False, ec="tab:orange",
                      lw=3)
        )  # fmt: skip
        left.text(c * H + H / 2 - 0.5, H - 0.2, f"channel {c}", ha="center",
                  va="top", fontsize=10)  # fmt: skip
    left.set_title(f"input, {C} channels of {H}×{H}: window of output ({i}, {j})",
                   fontsize=11)  # fmt: skip
    left.axis("off")
    right.imshow(cols, cmap="Blues", alpha=0.5, aspect="auto")
    for (r, q), v in np.ndenumerate(cols):
        right.text(q, r, f"{v:g}", ha="center", va="center", fontsize=9)
    right.add_patch(
        Rectangle((column - 0.5, -0.5), 1, len(cols), fill=False, ec="tab:orange",
                  lw=3)
    )  # fmt: skip
    for c in range(1, C):
        right.axhline(c * K * K - 0.5, color="k", lw=1)
    right.set_yticks(range(len(cols)))
    right.set_yticklabels(
        [f"c{c} ({u},{v})" for c in range(C) for u in range(K) for v in range(K)],
        fontsize=9,
    )
    right.set_xticks(range(O * O))
    right.set_xticklabels([f"({a},{b})" for a in range(O) for b in range(O)],
                          fontsize=9)  # fmt: skip
    right.set_xlabel("output position (i, j): one column each")
    right.set_title(f"cols: {len(cols)} rows (c, u, v) × {O * O} columns", fontsize=11)
    fig.tight_layout()
    return fig
