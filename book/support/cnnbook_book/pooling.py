"""Companion to the chapter *Pooling*: moving and zooming images, the fixed feature
pipelines whose change the chapter measures (the measure itself is a cell of the
chapter), and the pooling explorer with its static counterpart.

Notation: x (N, C, H, W) images; w (F, C, KH, KW) convolution kernels; feature
maps (N, F, OH, OW), or (N, F) after global average pooling. The layers are the
package's own (:mod:`cnnbook.functional`); this module only composes and measures.

- :func:`shift` (from :mod:`cnnbook_book.convolution`) and :func:`zoom` transform
  images (zero fill outside).
- :func:`features` is a fixed convolution + ReLU stage, optionally pooled.
- :func:`random_filters` draws the fixed, seeded filter bank.
- :func:`pool`, :func:`plot_pooling`, :func:`explorer`, :func:`states_grid` and
  :func:`states_animation` draw pooling for the reader (matplotlib, ipywidgets).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnbook.backend import asarray, device_of, namespace
from cnnbook.functional import (
    avg_pool2d_forward,
    conv2d_forward,
    global_avg_pool2d_forward,
    max_pool2d_forward,
    relu_forward,
)
from cnnbook_book.convolution import shift
from cnnbook_book.show import animation_html

__all__ = [
    "POOLS",
    "explorer",
    "features",
    "live_pool_explorer",
    "plot_pooling",
    "pool",
    "random_filters",
    "shift",
    "states_animation",
    "states_grid",
    "zoom",
]

POOLS = ("none", "max", "avg", "global")


# ----------------------------------------------------------------------------
# transforms
# ----------------------------------------------------------------------------
def _resample(x: Any, axis: int, factor: float) -> Any:
    """Linear resampling of one axis about its centre by ``factor`` (zero outside)."""
    xp = namespace("zoom", x=x)
    n = x.shape[axis]
    centre = (n - 1) / 2
    src = centre + (np.arange(n) - centre) / factor  # where output i reads from
    lo = np.floor(src).astype(np.int64)
    frac = src - lo
    # pad the axis with one zero on each side; indices shift by one
    shape = list(x.shape)
    shape[axis] = n + 2
    padded = xp.zeros(tuple(shape), dtype=x.dtype, device=device_of(x))
    inner = [slice(None)] * x.ndim
    inner[axis] = slice(1, n + 1)
    padded[tuple(inner)] = x
    i0 = np.clip(lo + 1, 0, n + 1)
    i1 = np.clip(lo + 2, 0, n + 1)
    w1 = np.where((lo + 1 >= 0) & (lo + 2 <= n + 1), frac, 0.0)
    w0 = np.where((lo + 1 >= 0) & (lo + 1 <= n + 1), 1 - frac, 0.0)
    dev = device_of(x)
    bshape = [1] * x.ndim
    bshape[axis] = n

    def weight(a: np.ndarray) -> Any:
        return xp.reshape(asarray(a, xp, dev, dtype=x.dtype), tuple(bshape))

    take0 = xp.take(padded, asarray(i0, xp, dev), axis=axis)
    take1 = xp.take(padded, asarray(i1, xp, dev), axis=axis)
    return take0 * weight(w0) + take1 * weight(w1)


def zoom(x: Any, factor: float) -> Any:
    """x (N, C, H, W) -> (N, C, H, W): content scaled by ``factor`` about the
    image centre (bilinear; > 1 enlarges), zero where nothing maps.

    >>> import numpy as np
    >>> x = np.zeros((1, 1, 5, 5)); x[0, 0, 2, 2] = 1.0
    >>> zoom(x, 1.0)[0, 0, 2].tolist()
    [0.0, 0.0, 1.0, 0.0, 0.0]
    >>> zoom(x, 2.0)[0, 0, 2].tolist()
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    if factor <= 0:
        raise ValueError(f"zoom: factor must be positive, got {factor!r}")
    return _resample(_resample(x, x.ndim - 2, factor), x.ndim - 1, factor)


# ----------------------------------------------------------------------------
# features and the measure
# ----------------------------------------------------------------------------
def random_filters(F: int, C: int = 1, K: int = 5, seed: int = 0) -> np.ndarray:
    """-> w (F, C, K, K) float32: Gaussian filters with zero mean and unit norm,
    so a constant patch gives 0 and every filter has the same gain.

    >>> w = random_filters(4, K=3)
    >>> w.shape, bool(np.allclose(w.sum(axis=(1, 2, 3)), 0, atol=1e-6))
    ((4, 1, 3, 3), True)
    """
    w = np.random.default_rng(seed).normal(size=(F, C, K, K))
    w -= w.mean(axis=(1, 2, 3), keepdims=True)
    w /= np.sqrt((w**2).sum(axis=(1, 2, 3), keepdims=True))
    return w.astype(np.float32)


def pool(x: Any, kind: str, kernel_size: int = 2, stride: int | None = None) -> Any:
    """x (N, C, H, W) -> (N, C, OH, OW) ("max", "avg"), (N, C) ("global"), or x
    itself ("none"); OH = (H − kernel_size) // stride + 1, stride defaults to
    kernel_size. Dispatches to the package's pooling functions.

    >>> import numpy as np
    >>> x = np.array([[[[1., 2., 5., 0.], [3., 4., 1., 1.]]]])
    >>> pool(x, "max").tolist(), pool(x, "global").tolist()
    ([[[[4.0, 5.0]]]], [[2.125]])
    """
    if kind == "none":
        return x
    if kind == "max":
        return max_pool2d_forward(x, kernel_size, stride)[0]
    if kind == "avg":
        return avg_pool2d_forward(x, kernel_size, stride)[0]
    if kind == "global":
        return global_avg_pool2d_forward(x)[0]
    raise ValueError(f"pool: kind must be one of {POOLS}, got {kind!r}")


def features(
    x: Any, weights: Sequence[Any], kind: str = "none", kernel_size: int = 2
) -> Any:
    """x (N, C, H, W) -> feature maps: per kernel w in ``weights``, a stage
    conv (padding K // 2, no bias) -> ReLU -> pooling of ``kind``; "global"
    pools once, after the last stage. (N, F, H', W'), or (N, F) for "global".

    >>> import numpy as np
    >>> x = np.ones((2, 1, 8, 8), dtype=np.float32)
    >>> w = random_filters(3)
    >>> [features(x, [w], k).shape for k in POOLS]
    [(2, 3, 8, 8), (2, 3, 4, 4), (2, 3, 4, 4), (2, 3)]
    """
    xp = namespace("features", x=x)
    for w in weights:
        w = asarray(w, xp, device_of(x), dtype=x.dtype)
        x = relu_forward(conv2d_forward(x, w, None, 1, w.shape[-1] // 2)[0])[0]
        if kind in ("max", "avg", "none"):
            x = pool(x, kind, kernel_size)
    return pool(x, "global") if kind == "global" else x


# ----------------------------------------------------------------------------
# pictures for the reader (matplotlib and ipywidgets are imported lazily)
# ----------------------------------------------------------------------------
def _show_pooled(ax: Any, y: np.ndarray, shape: tuple[int, int], k: int, s: int):
    """Draw pooled map y (OH, OW) over the input area its windows cover, so that
    rows and columns no window reaches stay empty."""
    (H, W), (OH, OW) = shape, y.shape
    bottom, right = (OH - 1) * s + k - 0.5, (OW - 1) * s + k - 0.5
    ax.imshow(y, cmap="gray", vmin=0, vmax=1, extent=(-0.5, right, bottom, -0.5))
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)


def plot_pooling(
    image: np.ndarray,
    kernel_size: int,
    stride: int,
    kind: str,
    axes: Sequence[Any] | None = None,
) -> Any:
    """image (H, W) -> the figure: the input with the first windows outlined,
    and its pooled map (OH, OW) drawn over the area its windows cover (the rest,
    never pooled, in blue), shapes in the titles."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    x = np.asarray(image, dtype=np.float64)[None, None]
    y = pool(x, kind, kernel_size, stride)[0, 0]
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.2), dpi=72)
    else:
        fig = axes[0].figure
    H, W = image.shape
    OH, OW = y.shape
    for ax in axes:
        ax.clear()
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
    colours = ("tab:red", "tab:orange", "tab:cyan")
    for j, c in zip(range(min(OW, 3)), colours, strict=False):
        axes[0].add_patch(
            Rectangle(
                (j * stride - 0.5, -0.5),
                kernel_size,
                kernel_size,
                fill=False,
                lw=1.5,
                ec=c,
            )
        )
    axes[0].set_title(f"input {H}×{W}", fontsize=9)
    _show_pooled(axes[1], y, (H, W), kernel_size, stride)
    axes[1].set_facecolor("tab:blue")  # input area that no window covers
    axes[1].set_title(f"{kind} pool k={kernel_size} s={stride}: {OH}×{OW}", fontsize=9)
    return fig


def explorer(images: dict[str, np.ndarray]) -> Any:
    """An ipywidgets explorer: choose image, kernel size, stride and pooling type;
    needs a running kernel (see :func:`states_animation` for the static page)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def draw(image: str, kernel_size: int, stride: int, kind: str) -> None:
        plot_pooling(images[image], kernel_size, stride, kind)
        plt.show()

    return widgets.interactive(
        draw,
        image=widgets.Dropdown(options=list(images)),
        kernel_size=widgets.IntSlider(value=2, min=1, max=8, description="kernel"),
        stride=widgets.IntSlider(value=2, min=1, max=8, description="stride"),
        kind=widgets.ToggleButtons(options=["max", "avg"], description="type"),
    )


def live_pool_explorer(
    images: dict[str, Any],
    kind: str = "max",
    kernel_size: int = 2,
    stride: int = 2,
    dx: int = 1,
):
    """images {name: (H, W)} -> an ``IPython.display.HTML`` explorer that pools in
    the reader's browser (issue 11): max or average pooling, window and stride
    1-8, and a shift of the input (dy rows down, dx columns right, 0-8, zero
    fill as :func:`shift`), with the pooled maps of the image and of the shifted
    image and the measured change (‖y′ − y‖ / ‖y‖, the chapter's relative
    change, and the share of pooled values that changed). A click on a value
    of the shifted image's pooled map marks where its gradient goes (max: the
    window's maximum; avg: the whole window). ``book/_assets/explorers/pool.js``
    computes what :func:`pool` computes; the images travel as float32 JSON.
    """
    from IPython.display import HTML

    return HTML(_live_pool_html(images, kind, kernel_size, stride, dx))


def _live_pool_html(images, kind, kernel_size, stride, dx) -> str:
    import html

    from cnnbook_book.live import encode_array, live_html, range_control

    if kind not in ("max", "avg"):
        raise ValueError(f"live_pool_explorer: kind must be max or avg, got {kind!r}")
    payload = {"images": {n: encode_array(a) for n, a in images.items()}}
    names = "".join(f'<option value="{html.escape(n)}">{html.escape(n)}</option>'
                    for n in images)  # fmt: skip
    kinds = "".join(
        f'<option value="{k}"{" selected" if k == kind else ""}>{k}</option>'
        for k in ("max", "avg")
    )
    figure = (
        '<figure><canvas class="{0}" role="img" aria-label="{1}"></canvas>'
        '<figcaption class="{0}-caption">{1}</figcaption></figure>'
    )
    markup = (
        '<div class="cnnbook-live-controls">'
        f'<label>image <select name="image">{names}</select></label>'
        f'<label>pooling <select name="kind">{kinds}</select></label>'
        + range_control("kernel", "window K", 1, 8, 1, kernel_size)
        + range_control("stride", "stride s", 1, 8, 1, stride)
        + range_control("dy", "shift down", 0, 8, 1, 0)
        + range_control("dx", "shift right", 0, 8, 1, dx)
        + '</div><div class="cnnbook-live-figures">'
        + figure.format("shifted", "shifted input")
        + figure.format("pooled", "pooled input")
        + figure.format(
            "pooled-shifted",
            "pooled shifted input; click a value, or focus and press the arrow "
            "keys, to see where its gradient goes",
        )
        + '</div><p class="cnnbook-live-formula" aria-live="polite"></p>'
    )
    return live_html("pool", payload, markup, "pooling explorer")


def states_grid(image: np.ndarray, states: Sequence[tuple[int, int, str]]) -> Any:
    """image (H, W), S states (kernel_size, stride, kind) -> a figure with one
    pooled map per state, in a grid: the explorer's states, precomputed (input
    area that no window covers in blue)."""
    import matplotlib.pyplot as plt

    cols = min(len(states), 4)
    rows = math.ceil(len(states) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.2 * cols, 2.4 * rows), dpi=72, squeeze=False
    )
    H, W = image.shape
    x = np.asarray(image, dtype=np.float64)[None, None]
    for ax, (k, s, kind) in zip(axes.flat, states, strict=False):
        y = pool(x, kind, k, s)[0, 0]
        _show_pooled(ax, y, (H, W), k, s)
        ax.set_facecolor("tab:blue")
        ax.set_title(f"{kind} k={k} s={s}: {y.shape[0]}×{y.shape[1]}", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(states) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def states_animation(
    image: np.ndarray,
    states: Sequence[tuple[int, int, str]],
    dpi: int = 60,
    name: str = "pooling",
) -> str:
    """image (H, W), S states (kernel_size, stride, kind) -> HTML (a JavaScript
    animation with play / step / slider, one frame per state) that runs in a
    static page without a kernel. ``name`` (letters, digits, _) names its
    HTML elements: give each animation on a page its own."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.2), dpi=dpi)

    def frame(i: int) -> list:
        plot_pooling(image, *states[i], axes=axes)
        return []

    anim = FuncAnimation(fig, frame, frames=len(states), interval=900)
    html = animation_html(anim, name, default_mode="loop")
    plt.close(fig)
    return html
