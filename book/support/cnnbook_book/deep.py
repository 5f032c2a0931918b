"""Companion to the chapter "Deep architectures".

Notation: x (N, C, H, W); L the depth (number of 3×3 convolutions); k a kernel
size, s a stride; r_l the receptive field and j_l the jump (distance in input
pixels between neighbouring units) after layer l.

- :func:`receptive_fields`, :func:`layer_geometry`, :func:`gradient_footprint`:
  receptive fields computed from the layer geometry, and measured with the
  package's backward pass.
- :func:`deep_net`: a deep stack of 3×3 convolutions with switches for skip
  connections, batch norm, activation and initialisation (the explorer's
  network); :func:`conv_grad_norms` records each convolution's weight-gradient
  norm through the package's hooks (:class:`cnnbook.nn.Recorder`);
  :func:`gradient_norms` measures one combination of the switches and
  :func:`gradient_grid` all of them (the one source of the explorers' numbers).
- :func:`draw_grid`, :func:`explorer`: the gradient-norm explorer (ipywidgets)
  and its static counterpart, a grid of small multiples;
  :func:`live_gradient_explorer`: the grid, explorable in the published page.
- :func:`load_experiment`, :func:`experiment`: the full versions of the training
  experiments (the repository's ``experiments/``): their stored results, and
  their code, to re-run a reduced version live.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Sequence
from itertools import product
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from cnnbook import backend as B
from cnnbook import nn
from cnnbook_book.activations import INITS

__all__ = [
    "ACTIVATION_LAYERS",
    "DEPTHS",
    "conv_grad_norms",
    "deep_net",
    "draw_grid",
    "draw_norms",
    "experiment",
    "explorer",
    "gradient_footprint",
    "gradient_grid",
    "gradient_norms",
    "layer_geometry",
    "live_gradient_explorer",
    "load_experiment",
    "receptive_fields",
]

#: activation name -> layer class, for :func:`deep_net` (the activations
#: chapter's functions of the same names, as layers).
ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}
#: depths offered by the explorer and drawn by :func:`draw_grid`.
DEPTHS = (10, 20, 30)


# ----------------------------------------------------------------------------
# receptive fields
# ----------------------------------------------------------------------------
def receptive_fields(layers: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """layers: L pairs (k_l, s_l) -> L pairs (r_l, j_l), from the input side.

    r_l = r_{l−1} + (k_l − 1)·j_{l−1} and j_l = j_{l−1}·s_l, with r_0 = j_0 = 1:
    each new layer widens the window by k − 1 steps of the current jump.

    >>> receptive_fields([(3, 1), (3, 1)])      # two 3×3 see a 5×5 window
    [(3, 1), (5, 1)]
    >>> receptive_fields([(3, 1), (3, 1), (2, 2), (3, 1)])  # pooling doubles j
    [(3, 1), (5, 1), (6, 2), (10, 2)]
    """
    r, j, out = 1, 1, []
    for k, s in layers:
        if k < 1 or s < 1:
            raise ValueError(f"receptive_fields: need k, s >= 1, got ({k}, {s})")
        r, j = r + (k - 1) * j, j * s
        out.append((r, j))
    return out


def layer_geometry(model: nn.Module) -> list[tuple[str, int, int]]:
    """model -> (name, k, s) for each Conv2d / pooling leaf, in forward order.

    Square kernels and strides are read from the layers (a pooling layer's
    stride defaults to its kernel size, as in the package).

    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2))
    >>> layer_geometry(net)
    [('0', 3, 1), ('1', 2, 2)]
    """
    out = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            k, s = m.kernel_size[0], m.stride
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            k, s = m.kernel_size, m.stride
        else:
            continue
        k = k[0] if isinstance(k, tuple) else k
        s = s[0] if isinstance(s, tuple) else s
        out.append((name, int(k), int(k if s is None else s)))
    return out


def gradient_footprint(model: nn.Module, input_shape: tuple[int, ...]) -> np.ndarray:
    """input_shape (1, C, H, W) -> bool (H, W): the input pixels on which the
    centre output unit (channel 0) depends, found by backpropagation.

    One forward pass on ones, then backward with dy = 1 at the centre of
    channel 0 only: dx is non-zero exactly where the unit looks (for linear
    layers with random weights; cancellations have probability 0).

    >>> net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, rng=0),
    ...                     nn.Conv2d(1, 1, 3, padding=1, rng=1)).to(dtype=np.float64)
    >>> gradient_footprint(net, (1, 1, 9, 9)).sum()    # a 5×5 window
    np.int64(25)
    """
    like = model.parameters()[0].data  # place the probes where the weights live
    xp, device = B.namespace("gradient_footprint", weight=like), B.device_of(like)
    y = model(B.asarray(np.ones(input_shape), xp, device, dtype=like.dtype))
    dy = np.zeros(tuple(y.shape))
    dy[0, 0, y.shape[2] // 2, y.shape[3] // 2] = 1.0
    dx = B.to_numpy(model.backward(B.asarray(dy, xp, device, dtype=like.dtype)))
    model.zero_grad()
    return np.abs(dx[0]).sum(axis=0) > 0


# ----------------------------------------------------------------------------
# a deep stack of 3×3 convolutions and its gradient norms
# ----------------------------------------------------------------------------
def deep_net(
    depth: int,
    width: int = 16,
    activation: str = "relu",
    init: str = "he",
    batch_norm: bool = False,
    skip: bool = False,
    in_channels: int = 1,
    num_classes: int = 10,
    scale: float = 1.0,
    seed: int = 0,
    dtype: Any = np.float64,
) -> nn.Sequential:
    """x (N, in_channels, H, W) -> logits (N, num_classes).

    ``depth`` layers conv 3×3 (pad 1) [– batch norm] – activation, then global
    average pooling and a linear classifier. With ``skip`` every layer after
    the first (which changes the channel count) is a residual block
    x ↦ x + f(x), f = activation ∘ [BN] ∘ conv. Convolution weights are drawn
    by ``init`` ("xavier" or "he") and multiplied by ``scale``. Parameters are
    float64 by default, so measured norms do not depend on summation order.

    >>> net = deep_net(4, width=8, skip=True)
    >>> net(np.zeros((2, 1, 8, 8))).shape
    (2, 10)
    >>> sum(isinstance(m, nn.Residual) for _, m in net.named_modules())
    3
    """
    if depth < 1:
        raise ValueError(f"deep_net: depth must be >= 1, got {depth}")
    if activation not in ACTIVATION_LAYERS:
        raise ValueError(
            f"deep_net: unknown activation {activation!r}; "
            f"choose one of {list(ACTIVATION_LAYERS)}"
        )
    if init not in INITS:
        raise ValueError(f"deep_net: unknown init {init!r}; choose one of {INITS}")
    rng = nn.init.generator(seed)
    layers: list[nn.Module] = []
    c = in_channels
    for i in range(depth):
        conv = nn.Conv2d(
            c,
            width,
            3,
            padding=1,
            bias=not batch_norm,
            init=init,
            rng=rng,
            dtype=dtype,
        )
        conv.weight.data = conv.weight.data * scale
        f: list[nn.Module] = [conv]
        if batch_norm:
            f.append(nn.BatchNorm2d(width, dtype=dtype))
        f.append(ACTIVATION_LAYERS[activation]())
        body = nn.Sequential(*f)
        layers.append(nn.Residual(body) if skip and i > 0 else body)
        c = width
    layers += [
        nn.GlobalAvgPool2d(),
        nn.Linear(width, num_classes, rng=rng, dtype=dtype),
    ]
    return nn.Sequential(*layers)


def conv_grad_norms(
    model: nn.Module, X: Any, y: Any, dlogits: Any = None
) -> np.ndarray:
    """X (N, C, H, W), y (N,) -> (L,) float64: ‖∂loss/∂W_l‖ for each Conv2d.

    One forward and one backward pass of the cross-entropy loss in training
    mode; the norms come from :class:`cnnbook.nn.Recorder`'s backward hooks,
    in the order the convolutions appear in the forward pass. X is cast to the
    parameters' dtype. With ``dlogits`` (N, num_classes) that array is
    backpropagated instead of the loss's gradient (``y`` is then unused).

    >>> X = np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)
    >>> conv_grad_norms(deep_net(3), X, np.arange(8)).shape
    (3,)
    """
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    like = model.parameters()[0].data
    X = B.namespace("conv_grad_norms", X=X).astype(X, like.dtype)
    criterion = nn.CrossEntropyLoss()
    model.train()
    model.zero_grad()
    with nn.Recorder(model, activations=False) as rec:
        logits = model(X)
        if dlogits is None:
            criterion(logits, y)
            model.backward(criterion.backward())
        else:
            xp = B.namespace("conv_grad_norms", logits=logits, dlogits=dlogits)
            model.backward(xp.astype(dlogits, logits.dtype))
    model.zero_grad()
    return np.array([rec.param_grad_norms[f"{n}.weight"] for n in convs])


def gradient_norms(
    X: Any,
    y: Any,
    activation: str = "relu",
    batch_norm: bool = False,
    skip: bool = False,
    depth: int = DEPTHS[-1],
    init: str = "he",
    width: int = 16,
    seed: int = 0,
) -> np.ndarray:
    """X (N, C, H, W), y (N,) -> (depth,) weight-gradient norms of one
    :func:`deep_net` setting: one forward and backward pass
    (:func:`conv_grad_norms`). The explorer and :func:`gradient_grid` both call it.

    >>> X = np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)
    >>> gradient_norms(X, np.arange(8), "sigmoid", depth=3).shape
    (3,)
    """
    net = deep_net(
        depth, width, activation, init, batch_norm, skip, X.shape[1], seed=seed
    )
    return conv_grad_norms(net, X, y)


def gradient_grid(
    X: Any,
    y: Any,
    depths: Sequence[int] = DEPTHS,
    activations: Sequence[str] = ("relu", "sigmoid"),
    init: str = "he",
    width: int = 16,
    seed: int = 0,
) -> dict[tuple[str, bool, bool, int], np.ndarray]:
    """X (N, C, H, W), y (N,) -> {(activation, batch_norm, skip, depth):
    (depth,) weight-gradient norms} for every combination, one pass each
    (:func:`gradient_norms`).

    >>> X = np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)
    >>> grid = gradient_grid(X, np.arange(8), depths=(2,), activations=("relu",))
    >>> len(grid), grid["relu", True, True, 2].shape
    (4, (2,))
    """
    return {
        (act, bn, skip, depth): gradient_norms(
            X, y, act, bn, skip, depth, init, width, seed
        )
        for act, bn, skip, depth in product(
            activations, (False, True), (False, True), depths
        )
    }


# ----------------------------------------------------------------------------
# drawing and the explorer
# ----------------------------------------------------------------------------
def draw_norms(ax: Any, norms: np.ndarray, **style: Any) -> Any:
    """Plot (L,) gradient norms against layer 1..L on a log scale."""
    return ax.semilogy(np.arange(1, len(norms) + 1), norms, **style)


def draw_grid(
    grid: dict[tuple[str, bool, bool, int], np.ndarray], dpi: int = 60
) -> Any:
    """The static counterpart of :func:`explorer`: one panel per (activation,
    batch norm), a curve for every depth with (blue) and without (red) skip
    connections. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    acts = sorted({k[0] for k in grid}, key=list(ACTIVATION_LAYERS).index)
    depths = sorted({k[3] for k in grid})
    cols = [(a, bn) for a in acts for bn in (False, True)]
    fig, axes = plt.subplots(
        1, len(cols), figsize=(2.6 * len(cols), 3.4), sharey=True, dpi=dpi
    )  # four panels fit the page's 757 px at 72 dpi
    axes = np.atleast_1d(axes)
    styles = [":", "--", "-", "-."]
    for ax, (act, bn) in zip(axes, cols, strict=True):
        for i, d in enumerate(depths):
            for skip, color in ((False, "C3"), (True, "C0")):
                draw_norms(
                    ax,
                    grid[act, bn, skip, d],
                    color=color,
                    ls=styles[i % len(styles)],
                    label=f"{'skip' if skip else 'plain'}, L={d}",
                )
        ax.set_title(f"{act}{' + batch norm' if bn else ''}", fontsize=9)
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("weight-gradient norm")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=9)
    fig.tight_layout(rect=(0, 0.2, 1, 1))  # room for the legend below
    return fig


def explorer(
    X: Any,
    y: Any,
    depths: Sequence[int] = DEPTHS,
    activations: Sequence[str] = ("relu", "sigmoid"),
    init: str = "he",
    width: int = 16,
) -> Any:
    """Toggles for depth, skip connections, batch norm and activation; the
    plot shows the per-layer weight-gradient norms of :func:`deep_net`
    (recomputed on every change, so it needs a running kernel). The same
    choices as :func:`gradient_grid`, whose :func:`draw_grid` is the static
    counterpart."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    controls = dict(
        depth=w.ToggleButtons(
            options=list(depths), value=depths[-1], description="depth"
        ),
        skip=w.Checkbox(value=False, description="skip connections"),
        batch_norm=w.Checkbox(value=False, description="batch norm"),
        activation=w.ToggleButtons(options=list(activations), description="activation"),
    )

    def show(depth, skip, batch_norm, activation):
        norms = gradient_norms(X, y, activation, batch_norm, skip, depth, init, width)
        ax = plt.subplots(figsize=(6, 3))[1]
        draw_norms(ax, norms, marker="o", ms=3)
        ax.set(
            xlabel="layer",
            ylabel="weight-gradient norm",
            title=f"layer 1 / layer {depth}: {norms[0] / norms[-1]:.3g}",
        )
        ax.grid(alpha=0.3)
        plt.show()

    out = w.interactive_output(show, controls)
    return w.VBox([*controls.values(), out])


def live_gradient_explorer(
    grid: dict[tuple[str, bool, bool, int], np.ndarray], activation: str = "relu"
) -> Any:
    """The grid of :func:`gradient_grid` -> an ``IPython.display.HTML`` explorer
    with the controls of :func:`explorer` (depth, skip connections, batch norm,
    activation), drawn in the reader's browser
    (``book/_assets/explorers/gradnorm.js``). Nothing is recomputed there: the
    page shows the norms the chapter computed, and says so.
    """
    from IPython.display import HTML

    return HTML(_live_gradient_html(grid, activation))


def _live_gradient_html(grid, activation) -> str:
    import html

    from cnnbook_book.live import encode_array, live_html

    acts = sorted({k[0] for k in grid}, key=list(ACTIVATION_LAYERS).index)
    depths = sorted({k[3] for k in grid})
    need = set(product(acts, (False, True), (False, True), depths))
    if need - set(grid):
        raise ValueError(f"live_gradient_explorer: missing {sorted(need - set(grid))}")
    if activation not in acts:
        raise ValueError(f"live_gradient_explorer: no activation {activation!r}")
    payload = {
        "depths": depths,
        "norms": {
            f"{a}|{int(bn)}|{int(skip)}|{d}": encode_array(n)
            for (a, bn, skip, d), n in grid.items()
        },
    }

    def options(values, chosen):
        return "".join(
            f'<option value="{v}"{" selected" if v == chosen else ""}>'
            f"{html.escape(str(v))}</option>"
            for v in values
        )

    markup = (
        f'<p class="cnnbook-live-note">Precomputed: the {len(grid)} settings were '
        "computed by <code>gradient_grid</code> when the chapter ran (the figure "
        "above); the page draws the one you choose.</p>"
        '<div class="cnnbook-live-controls">'
        f'<label>depth L <select name="depth">{options(depths, depths[-1])}'
        "</select></label>"
        '<label class="cnnbook-live-check"><input type="checkbox" name="skip"> '
        "skip connections</label>"
        '<label class="cnnbook-live-check"><input type="checkbox" name="batch_norm"> '
        "batch norm</label>"
        f'<label>activation <select name="activation">{options(acts, activation)}'
        "</select></label></div>"
        '<div class="cnnbook-live-figures"><figure>'
        '<canvas class="norms wide plot" width="400" height="240" role="img" '
        'aria-label="weight-gradient norm per layer, log scale"></canvas>'
        "<figcaption>weight-gradient norm per layer (log scale): "
        '<span style="color:#1a5f9e">the chosen setting</span>; grey dashed: the '
        "same with skip connections switched the other way</figcaption></figure></div>"
        '<p class="cnnbook-live-formula" aria-live="polite"></p>'
    )
    return live_html("gradnorm", payload, markup, "gradient-norm explorer")


# ----------------------------------------------------------------------------
# the full experiments: experiments/ in the repository
# ----------------------------------------------------------------------------
#: The repository's experiments folder (scripts and ``results/``).
EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"


def load_experiment(name: str) -> dict[str, Any]:
    """The stored result ``experiments/results/<name>.json``: provenance,
    configuration, per-seed runs and the summary (mean ± spread)."""
    path = EXPERIMENTS / "results" / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"load_experiment: no stored result {path}; run "
            f"`bash experiments/run_all.sh {name}` from the repository root"
        )
    return json.loads(path.read_text())


def experiment(name: str) -> ModuleType:
    """The module ``experiments.<name>`` (not installed: the repository root
    is put on ``sys.path``), to re-run part of an experiment live."""
    root = str(EXPERIMENTS.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module(f"experiments.{name}")
