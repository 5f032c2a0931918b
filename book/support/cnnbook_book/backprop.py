"""Companion to the chapter "Losses, backpropagation and gradient descent".

Chapter-specific mathematics and pictures, built on the package:

- :func:`naive_cross_entropy`: the textbook formula *without* the log-sum-exp
  trick, kept only to show how it overflows.
- :func:`conv2d_weight_grad` and :func:`conv2d_input_grad`: the two identities
  of the convolution's backward pass (dW is the cross-correlation of the input
  with dY; dX is the full convolution of dY with the flipped kernel), written
  with the package's own :func:`~cnnbook.functional.conv2d_forward` so they can
  be compared with :func:`~cnnbook.functional.conv2d_backward`.
- :class:`Surface`, :data:`SURFACES`, :func:`trajectory`: two-dimensional loss
  surfaces and the path an optimizer from :mod:`cnnbook.optim` takes on them;
  :func:`plot_trajectories`, :func:`trajectory_grid`, :func:`trajectory_snapshots`
  (static, kernel-free) and :func:`trajectory_explorer` (ipywidgets).
- Plots of a confusion matrix, digits, filters and feature maps for a trained
  network.
- :class:`LiveCurves`: a training callback that redraws loss/accuracy curves.

Notation: N batch, C input channels, F filters, H×W input, KH×KW kernel,
OH×OW output, K classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnbook import backend as B
from cnnbook.functional import conv2d_forward
from cnnbook.nn import Parameter
from cnnbook.optim import make_optimizer

__all__ = [
    "OPTIMIZERS",
    "SURFACES",
    "LiveCurves",
    "Surface",
    "conv2d_input_grad",
    "conv2d_weight_grad",
    "live_optimizer_explorer",
    "naive_cross_entropy",
    "plot_confusion_matrix",
    "plot_digits",
    "plot_feature_maps",
    "plot_filters",
    "plot_trajectories",
    "trajectory",
    "trajectory_explorer",
    "trajectory_grid",
    "trajectory_snapshots",
]


# ----------------------------------------------------------------------------
# losses: the naive formula, for contrast
# ----------------------------------------------------------------------------
def naive_cross_entropy(logits: Any, targets: Any) -> Any:
    """logits (N, K), targets (N,) -> mean of −log(e^{z_t} / Σ_k e^{z_k}), ().

    The formula straight from the definition, with no shift by the row maximum:
    e^{z} overflows to inf for z > 709 in float64 (> 88 in float32) and the
    result is nan. Do not train with it; use
    :func:`cnnbook.functional.softmax_cross_entropy`.

    >>> with np.errstate(over="ignore", invalid="ignore"):
    ...     big = naive_cross_entropy(np.array([[1000.0, 0.0]]), np.array([0]))
    >>> round(float(naive_cross_entropy(np.array([[2.0, 0.0]]), np.array([0]))), 4)
    0.1269
    >>> bool(np.isnan(big))
    True
    """
    xp = B.namespace("naive_cross_entropy", logits=logits, targets=targets)
    N = logits.shape[0]
    e = xp.exp(logits)
    p = e / xp.sum(e, axis=1, keepdims=True)
    picked = xp.take_along_axis(p, xp.reshape(targets, (N, 1)), axis=1)
    return -xp.mean(xp.log(picked))


# ----------------------------------------------------------------------------
# the convolution's backward pass as two convolutions
# ----------------------------------------------------------------------------
def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv2d_weight_grad(
    x: Any, dy: Any, kernel_size: tuple[int, int], stride=1, padding=0
) -> Any:
    """x (N, C, H, W), dy (N, F, OH, OW) -> dW (F, C, KH, KW).

    dW[f, c] = Σ_n x_pad[n, c] ⋆ dy[n, f]: the cross-correlation of the
    (zero-padded) input with the output gradient, the batch index playing the
    part of the channel. With stride s the taps of dy are s pixels apart in the
    input, which is a correlation with dilation s. Computed by
    :func:`~cnnbook.functional.conv2d_forward` on transposed arrays.

    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> conv2d_weight_grad(x, np.ones((1, 1, 2, 2)), (2, 2))[0, 0]
    array([[ 8., 12.],
           [20., 24.]])
    """
    xp = B.namespace("conv2d_weight_grad", x=x, dy=dy)
    KH, KW = _pair(kernel_size)
    xt = xp.permute_dims(x, (1, 0, 2, 3))  # (C, N, H, W): channels as a batch
    dyt = xp.permute_dims(dy, (1, 0, 2, 3))  # (F, N, OH, OW): dy as filters
    corr, _ = conv2d_forward(xt, dyt, padding=padding, dilation=stride)
    # rows past KH exist only where stride leaves input rows unused: drop them
    return xp.permute_dims(corr[:, :, :KH, :KW], (1, 0, 2, 3))  # (F, C, KH, KW)


def conv2d_input_grad(
    dy: Any, w: Any, input_size: tuple[int, int], stride=1, padding=0
) -> Any:
    """dy (N, F, OH, OW), w (F, C, KH, KW) -> dX (N, C, H, W).

    dX[n, c] = Σ_f dy[n, f] ∗ w[f, c], a *full* convolution: dy (with s − 1
    zeros inserted between its entries when the stride s > 1) is zero-padded by
    KH − 1, KW − 1 and cross-correlated with the kernel rotated by 180°; the
    rows and columns of the padding p are then cut off.

    >>> w = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    >>> conv2d_input_grad(np.ones((1, 1, 1, 1)), w, (2, 2))[0, 0]
    array([[1., 2.],
           [3., 4.]])
    """
    xp = B.namespace("conv2d_input_grad", dy=dy, w=w)
    N, F, OH, OW = dy.shape
    _, C, KH, KW = w.shape
    H, W = _pair(input_size)
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    device = B.device_of(dy)
    dilated = xp.zeros(
        (N, F, sh * (OH - 1) + 1, sw * (OW - 1) + 1), dtype=dy.dtype, device=device
    )
    dilated[:, :, ::sh, ::sw] = dy
    flipped = xp.flip(xp.permute_dims(w, (1, 0, 2, 3)), axis=(2, 3))  # (C, F, KH, KW)
    full, _ = conv2d_forward(dilated, flipped, padding=(KH - 1, KW - 1))
    # full covers the padded input's rows 0 .. s(OH−1)+KH−1; the rest got nothing
    dxpad = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=dy.dtype, device=device)
    dxpad[:, :, : full.shape[2], : full.shape[3]] = full
    return dxpad[:, :, ph : ph + H, pw : pw + W]


# ----------------------------------------------------------------------------
# two-dimensional loss surfaces and optimizer trajectories
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Surface:
    """A loss L(θ₁, θ₂) with its gradient, a start point and a plotting window.

    ``f(a, b)`` accepts arrays of any (equal) shape, for contour plots;
    ``grad(theta)`` maps θ (2,) to ∂L/∂θ (2,).
    """

    name: str
    f: Callable[[Any, Any], Any]
    grad: Callable[[np.ndarray], np.ndarray]
    start: tuple[float, float]
    minimum: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    levels: Sequence[float]


def _ravine_grad(t: np.ndarray) -> np.ndarray:
    return np.array([t[0], 10.0 * t[1]])


def _rosenbrock_grad(t: np.ndarray) -> np.ndarray:
    a, b = t
    return np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])


SURFACES: dict[str, Surface] = {
    # L = (θ₁² + 10 θ₂²) / 2: Hessian diag(1, 10), condition number 10
    "ravine": Surface(
        "ravine",
        lambda a, b: 0.5 * (a * a + 10.0 * b * b),
        _ravine_grad,
        start=(-4.0, 1.5),
        minimum=(0.0, 0.0),
        xlim=(-4.5, 4.5),
        ylim=(-2.0, 2.0),
        levels=[0.05, 0.2, 0.5, 1, 2, 4, 8, 14, 22],
    ),
    # Rosenbrock (1960): a curved, flat-bottomed valley, minimum at (1, 1)
    "rosenbrock": Surface(
        "rosenbrock",
        lambda a, b: (1 - a) ** 2 + 100 * (b - a * a) ** 2,
        _rosenbrock_grad,
        start=(-1.5, 2.0),
        minimum=(1.0, 1.0),
        xlim=(-2.0, 2.0),
        ylim=(-1.0, 3.0),
        levels=[0.1, 0.5, 2, 5, 15, 40, 100, 250, 500, 1000],
    ),
}

#: The update rules the chapter compares (names of
#: :data:`cnnbook.optim.OPTIMIZERS`: plain SGD, momentum 0.9, Adam).
OPTIMIZERS = ("sgd", "momentum", "adam")


def trajectory(
    surface: Surface | str,
    optimizer: str,
    lr: float,
    steps: int = 100,
    start: tuple[float, float] | None = None,
    blowup: float = 1e6,
) -> np.ndarray:
    """-> path (k + 1, 2): θ after 0, 1, …, k optimizer steps, k ≤ ``steps``.

    θ is a :class:`~cnnbook.nn.Parameter`; each step sets its ``grad`` from the
    surface and calls ``optimizer.step()``, exactly as training does. The path
    stops early once a coordinate of θ exceeds ``blowup`` in size (divergence).

    >>> path = trajectory("ravine", "sgd", lr=0.1, steps=200)
    >>> path.shape, bool(np.linalg.norm(path[-1]) < 1e-6)
    ((201, 2), True)
    >>> len(trajectory("ravine", "sgd", lr=0.25, steps=200)) < 201  # 0.25 > 2/10
    True
    """
    s = SURFACES[surface] if isinstance(surface, str) else surface
    theta = Parameter(np.array(s.start if start is None else start, dtype=np.float64))
    opt = make_optimizer(optimizer, [theta], lr)
    path = [theta.data.copy()]
    for _ in range(steps):
        theta.grad = s.grad(theta.data)
        opt.step()
        if not np.all(np.isfinite(theta.data)) or np.abs(theta.data).max() > blowup:
            break
        path.append(theta.data.copy())
    return np.array(path)


def plot_trajectories(
    surface: Surface | str,
    paths: dict[str, np.ndarray],
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Contours of the surface and each path (k, 2) as a line; returns the axes."""
    import matplotlib.pyplot as plt

    s = SURFACES[surface] if isinstance(surface, str) else surface
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6))
    a, b = np.meshgrid(np.linspace(*s.xlim, 200), np.linspace(*s.ylim, 200))
    ax.contour(a, b, s.f(a, b), levels=s.levels, colors="0.75", linewidths=0.7)
    ax.plot(*s.minimum, marker="*", color="k", markersize=10, linestyle="none")
    for (label, path), colour in zip(paths.items(), _colours(), strict=False):
        ax.plot(
            path[:, 0],
            path[:, 1],
            ".-",
            color=colour,
            markersize=3,
            linewidth=1,
            label=label,
        )
    ax.set_xlim(*s.xlim)
    ax.set_ylim(*s.ylim)
    ax.set_xlabel(r"$\theta_1$")
    ax.set_ylabel(r"$\theta_2$")
    if title:
        ax.set_title(title, fontsize=9)
    if paths:
        ax.legend(fontsize=7, loc="upper right")
    return ax


def _colours() -> list[str]:
    return ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]


def trajectory_grid(
    surface: Surface | str,
    lrs: dict[str, Sequence[float]],
    steps: int = 60,
) -> Any:
    """Static counterpart of the explorer: one panel per (optimizer, learning
    rate), rows = optimizers (keys of ``lrs``), columns = their rates. Returns
    the figure."""
    import matplotlib.pyplot as plt

    s = SURFACES[surface] if isinstance(surface, str) else surface
    ncols = max(len(v) for v in lrs.values())
    fig, axes = plt.subplots(
        len(lrs),
        ncols,
        figsize=(3.1 * ncols, 2.4 * len(lrs)),
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    for row, (name, rates) in enumerate(lrs.items()):
        for col, lr in enumerate(rates):
            path = trajectory(s, name, lr, steps)
            ax = axes[row, col]
            plot_trajectories(
                s, {}, ax=ax, title=f"{name}, lr = {lr:g}\n{_fate(s, path, steps)}"
            )
            ax.plot(
                path[:, 0],
                path[:, 1],
                ".-",
                color=_colours()[row],
                markersize=2,
                linewidth=0.8,
            )
            ax.set_xlabel("")
            ax.set_ylabel("")
    fig.tight_layout()
    return fig


def _fate(surface: Surface, path: np.ndarray, steps: int) -> str:
    """'diverged at step k', 'diverging' (the loss grew) or the final loss."""
    if len(path) < steps + 1:
        return f"diverged at step {len(path)}"
    end = float(surface.f(*path[-1]))
    if end > float(surface.f(*path[0])):
        return f"diverging: L = {end:.2g}"
    return f"final L = {end:.2g}"


def trajectory_snapshots(
    surface: Surface | str,
    runs: dict[str, tuple[str, float]],
    at: Sequence[int] = (5, 20, 60),
) -> Any:
    """Several optimizers moving together, shown at a few step counts: one
    panel per entry of ``at``, each with every run's path up to that step, and
    one legend below. ``runs`` maps a label to (optimizer, lr). Returns the
    figure."""
    import matplotlib.pyplot as plt

    paths = {k: trajectory(surface, o, lr, max(at)) for k, (o, lr) in runs.items()}
    fig, axes = plt.subplots(
        1, len(at), figsize=(2.5 * len(at), 2.9), sharex=True, sharey=True
    )
    for ax, steps in zip(axes, at, strict=True):
        shown = {k: p[: steps + 1] for k, p in paths.items()}
        plot_trajectories(surface, shown, ax=ax, title=f"after {steps} steps")
        ax.get_legend().remove()
    for ax in axes[1:]:
        ax.set_ylabel("")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(runs), fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 1))  # room for the legend
    return fig


def trajectory_explorer(steps: int = 80) -> Any:
    """An ipywidgets explorer: pick the surface, optimizer and learning rate
    and see the path. Needs a running kernel; returns the widget box."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    surface = widgets.Dropdown(options=list(SURFACES), description="surface")
    optimizer = widgets.Dropdown(
        options=list(OPTIMIZERS), value="momentum", description="optimizer"
    )
    lr = widgets.FloatLogSlider(
        value=0.02,
        base=10,
        min=-4,
        max=0,
        step=0.1,
        description="lr",
        readout_format=".4f",
    )
    n = widgets.IntSlider(value=steps, min=5, max=400, step=5, description="steps")
    out = widgets.Output()

    def update(*_: Any) -> None:
        path = trajectory(surface.value, optimizer.value, lr.value, n.value)
        s = SURFACES[surface.value]
        with out:
            out.clear_output(wait=True)
            _, ax = plt.subplots(figsize=(5, 3.6))
            note = f"{optimizer.value}, lr = {lr.value:.4g}: {_fate(s, path, n.value)}"
            plot_trajectories(s, {optimizer.value: path}, ax=ax, title=note)
            plt.show()

    for w in (surface, optimizer, lr, n):
        w.observe(update, names="value")
    update()
    return widgets.VBox(
        [widgets.HBox([surface, optimizer]), widgets.HBox([lr, n]), out]
    )


#: The surfaces whose loss and gradient ``book/_assets/explorers/optim.js`` knows.
LIVE_SURFACES = ("ravine", "rosenbrock")


def live_optimizer_explorer(
    surfaces: Sequence[str] = LIVE_SURFACES,
    lr: float = 0.02,
    momentum: float = 0.9,
    steps: int = 80,
):
    """-> an ``IPython.display.HTML`` explorer that runs gradient descent, momentum
    and Adam in the reader's browser (issue 11) on the chosen :data:`SURFACES`.

    The surfaces' start points, minima, windows and contour levels, and Adam's
    betas and eps, come from here; ``book/_assets/explorers/optim.js`` applies the
    update rules of :mod:`cnnbook.optim` (as :func:`trajectory` calls them) with
    the same early stop. Controls: surface, learning rate (log scale, 1e-4 to 1),
    momentum β, steps, start point (sliders, or a click on the plot).
    """
    from IPython.display import HTML

    return HTML(_live_optimizer_html(surfaces, lr, momentum, steps))


def _live_optimizer_html(surfaces, lr, momentum, steps, blowup: float = 1e6) -> str:
    import html

    from cnnbook.optim import Adam
    from cnnbook_book.live import live_html, range_control

    unknown = [n for n in surfaces if n not in LIVE_SURFACES]
    if unknown:
        raise ValueError(f"live_optimizer_explorer: no live surface {unknown}")
    adam = Adam([Parameter(np.zeros(2))], lr)
    payload = {
        "surfaces": {
            n: {
                "name": n,
                "start": list(SURFACES[n].start),
                "minimum": list(SURFACES[n].minimum),
                "xlim": list(SURFACES[n].xlim),
                "ylim": list(SURFACES[n].ylim),
                "levels": [float(v) for v in SURFACES[n].levels],
            }
            for n in surfaces
        },
        "betas": list(adam.betas),
        "eps": adam.eps,
        "blowup": blowup,
    }
    s0 = SURFACES[surfaces[0]]
    options = "".join(
        f'<option value="{n}">{html.escape(n)}</option>' for n in surfaces
    )
    markup = (
        '<div class="cnnbook-live-controls">'
        f'<label>surface <select name="surface">{options}</select></label>'
        + range_control(
            "lr", "learning rate η (log₁₀)", -4, 0, 0.1, round(math.log10(lr), 1)
        )
        + range_control("momentum", "momentum β", 0, 0.99, 0.01, momentum)
        + range_control("steps", "steps", 5, 400, 5, steps)
        + range_control("start1", "start θ₁", s0.xlim[0], s0.xlim[1], 0.1, s0.start[0])
        + range_control("start2", "start θ₂", s0.ylim[0], s0.ylim[1], 0.1, s0.start[1])
        + "</div>"
        '<div class="cnnbook-live-figures"><figure>'
        '<canvas class="surface wide" width="360" height="260" role="img" '
        'aria-label="contours of the loss and the paths of three optimizers">'
        "</canvas><figcaption>contours of L; "
        '<span style="color:#1a5f9e">gradient descent</span>, '
        '<span style="color:#b35300">momentum</span>, '
        '<span style="color:#1e7a1e">Adam</span>; square: start, '
        "filled square: minimum. Click to move the start.</figcaption></figure></div>"
        '<p class="cnnbook-live-formula" aria-live="polite"></p>'
    )
    return live_html("optim", payload, markup, "optimizer explorer")


# ----------------------------------------------------------------------------
# pictures
# ----------------------------------------------------------------------------
def plot_confusion_matrix(cm: np.ndarray, ax: Any = None) -> Any:
    """Counts (K, K) as an annotated image (row: true, column: predicted)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 4.0))
    K = cm.shape[0]
    ax.imshow(np.log1p(cm), cmap="Blues")
    for i in range(K):
        for j in range(K):
            if cm[i, j]:
                colour = "white" if i == j else "black"
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=colour,
                )
    ax.set_xticks(range(K))
    ax.set_yticks(range(K))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    return ax


def plot_digits(images: Any, titles: Sequence[str], ncols: int = 8) -> Any:
    """images (n, 1, H, W) or (n, H, W) in a grid with a title each; the figure."""
    import matplotlib.pyplot as plt

    imgs = np.asarray(B.to_numpy(images)).reshape(len(titles), *images.shape[-2:])
    nrows = max(1, math.ceil(len(imgs) / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(0.94 * ncols, 1.3 * nrows), squeeze=False
    )  # 8 columns fit the page's 757 px at 100 dpi: titles stay 11 px
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, imgs, titles, strict=False):
        ax.imshow(img, cmap="gray_r")
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def _image_grid(
    images: np.ndarray, ncols: int, cell: float, title: str | None, signed: bool
) -> Any:
    """images (K, H, W) -> a grid figure, ``ncols`` wide, ``cell`` inches per image.

    ``signed``: each image on its own symmetric red/blue scale; else viridis.
    """
    import matplotlib.pyplot as plt

    ncols = min(ncols, len(images))
    nrows = math.ceil(len(images) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(cell * ncols, cell * nrows + 0.3), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, img in zip(axes.flat, images, strict=False):
        if signed:
            m = np.abs(img).max() or 1.0
            ax.imshow(img, cmap="RdBu_r", vmin=-m, vmax=m)
        else:
            ax.imshow(img, cmap="viridis")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_filters(w: Any, ncols: int = 8, title: str | None = None) -> Any:
    """w (F, C, KH, KW) -> a grid of F·C kernels, each with its own symmetric
    colour scale (red positive, blue negative); the figure."""
    k = np.asarray(B.to_numpy(w), dtype=np.float64)
    F, C, KH, KW = k.shape
    return _image_grid(k.reshape(F * C, KH, KW), ncols, 0.8, title, signed=True)


def plot_feature_maps(maps: Any, ncols: int = 8, title: str | None = None) -> Any:
    """maps (C, H, W) of one image -> a grid of C feature maps; the figure."""
    a = np.asarray(B.to_numpy(maps), dtype=np.float64)
    return _image_grid(a, ncols, 1.0, title, signed=False)


class LiveCurves:
    """A :func:`cnnbook.train.fit` callback ``cb(epoch, history)`` that redraws
    the loss and accuracy curves after every epoch, in place, in a notebook.

    The axes span all ``epochs`` from the start, so the curves grow from left
    to right; ``target`` (a fraction) draws a dashed accuracy line. Outside
    IPython it only counts the calls. Never stops training (returns None).

    >>> from cnnbook.history import History
    >>> live = LiveCurves(epochs=3, target=0.975)
    >>> h = History([1], [0.5], [0.8], [0.4], [0.9], [1e-3], [1.0])
    >>> live(1, h) is None, live.calls
    (True, 1)
    """

    def __init__(self, epochs: int, target: float | None = None):
        self.epochs, self.target = epochs, target
        self.calls = 0
        self._handle: Any = None

    def figure(self, history: Any) -> Any:
        """The curves of ``history`` (a :class:`~cnnbook.history.History`)."""
        fig = history.plot()
        for ax in fig.axes:
            ax.set_xlim(0.5, self.epochs + 0.5)
        if self.target is not None:
            fig.axes[1].axhline(
                100 * self.target, color="k", linestyle="--", linewidth=0.8
            )
        return fig

    def __call__(self, epoch: int, history: Any) -> None:
        self.calls += 1
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:  # plain Python: nothing to draw on
            return None
        if get_ipython() is None:
            return None
        import matplotlib.pyplot as plt

        fig = self.figure(history)
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)
        return None
