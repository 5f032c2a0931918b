"""Companion to the chapter "Activation functions".

Notation: P points of a grid; N inputs; D₀ input features; M the width of a
hidden layer; L the depth (number of hidden layers). Weights are laid out as
PyTorch's, (out_features, in_features).

- :func:`curve`: f(x) and f′(x) from the package's own forward and backward
  passes (the derivative is the backward pass with dy = 1).
- :func:`compose_linear`: a stack of dense layers folded into one (W, b).
- :func:`init_weights`, :func:`mlp_forward`, :func:`mlp_backward`: a deep
  random multilayer perceptron built from ``cnnbook.functional`` and
  ``cnnbook.nn.init``; :func:`deep_stats` measures activations and gradients
  layer by layer.
- :func:`draw_state`, :func:`explorer`, :func:`animation_html`: the chapter's
  interactive explorer and its static counterpart for the published page.
- :func:`live_curve_explorer`, :func:`stack_quantiles`, :func:`live_stack_explorer`:
  the explorers that stay live in the published page (issue 11).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from cnnbook import backend as B
from cnnbook import functional as F
from cnnbook.nn import init as I
from cnnbook_book import show

__all__ = [
    "ACTIVATIONS",
    "CURVES",
    "INITS",
    "QUANTILES",
    "DeepStats",
    "animation_html",
    "compose_linear",
    "curve",
    "deep_stats",
    "draw_state",
    "explorer",
    "init_weights",
    "live_curve_explorer",
    "live_stack_explorer",
    "mlp_backward",
    "mlp_forward",
    "stack_quantiles",
    "standardized_digits",
]

#: name -> (forward, backward) from :mod:`cnnbook.functional`.
ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "relu": (F.relu_forward, F.relu_backward),
    "leaky_relu": (F.leaky_relu_forward, F.leaky_relu_backward),
    "sigmoid": (F.sigmoid_forward, F.sigmoid_backward),
    "tanh": (F.tanh_forward, F.tanh_backward),
    "gelu": (F.gelu_forward, F.gelu_backward),
}

#: every activation of :mod:`cnnbook.functional`: :data:`ACTIVATIONS` and SiLU, ELU
#: (:func:`curve` draws any of them; the deep-network code uses :data:`ACTIVATIONS`).
CURVES: dict[str, tuple[Callable, Callable]] = {
    **ACTIVATIONS,
    "silu": (F.silu_forward, F.silu_backward),
    "elu": (F.elu_forward, F.elu_backward),
}

#: weight initialisations: Glorot & Bengio (2010) and He et al. (2015).
INITS = ("xavier", "he")


def _pair(name: str) -> tuple[Callable, Callable]:
    if name not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {list(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]


# ----------------------------------------------------------------------------
# one activation: the function and its derivative
# ----------------------------------------------------------------------------
def curve(name: str, x: Any) -> tuple[Any, Any]:
    """x (any shape) -> f(x), f′(x) (both shaped like x) for activation ``name``.

    f′ is the package's backward pass with upstream gradient dy = 1, so the
    plot of f′ shows exactly what backpropagation multiplies by.

    >>> y, d = curve("relu", np.array([-1.0, 0.0, 2.0]))
    >>> y.tolist(), d.tolist()
    ([0.0, 0.0, 2.0], [0.0, 0.0, 1.0])
    >>> curve("sigmoid", np.array([0.0]))[1].tolist()
    [0.25]
    """
    forward, backward = CURVES[name] if name in CURVES else _pair(name)
    xp = B.namespace("curve", x=x)
    y, cache = forward(x)
    return y, backward(xp.ones_like(y), cache)


# ----------------------------------------------------------------------------
# linear layers compose to one linear map
# ----------------------------------------------------------------------------
def compose_linear(weights: Sequence[Any], biases: Sequence[Any]) -> tuple[Any, Any]:
    """weights[l] (n_{l+1}, n_l), biases[l] (n_{l+1},) -> W (n_L, n_0), b (n_L,).

    The stack x ↦ W_L(⋯(W_1 x + b_1)⋯) + b_L with no activation in between is
    the single affine map x ↦ W x + b with W = W_L ⋯ W_1 and
    b = W_L(⋯(W_2 b_1 + b_2)⋯) + b_L.

    >>> W, b = compose_linear([np.eye(2) * 2, np.eye(2) * 3], [np.ones(2), np.ones(2)])
    >>> W.tolist(), b.tolist()
    ([[6.0, 0.0], [0.0, 6.0]], [4.0, 4.0])
    """
    if len(weights) == 0 or len(weights) != len(biases):
        raise ValueError("compose_linear: need as many biases as weights (at least 1)")
    xp = B.namespace("compose_linear", w=weights[0], b=biases[0])
    W, b = weights[0], biases[0]
    for w_l, b_l in zip(weights[1:], biases[1:], strict=True):
        W = w_l @ W
        b = b @ xp.matrix_transpose(w_l) + b_l
    return W, b


# ----------------------------------------------------------------------------
# a deep random network
# ----------------------------------------------------------------------------
def init_weights(
    sizes: Sequence[int], init: str = "he", scale: float = 1.0, rng: Any = 0
) -> list[np.ndarray]:
    """sizes (n_0, n_1, …, n_L) -> L weights, weights[l] of shape (n_{l+1}, n_l).

    ``init="xavier"``: N(0, 2/(fan_in + fan_out)) (Glorot & Bengio, 2010);
    ``init="he"``: N(0, 2/fan_in) (He et al., 2015); both from
    :mod:`cnnbook.nn.init`, then multiplied by ``scale``. NumPy float64.

    >>> ws = init_weights([64, 256, 256], "he", rng=0)
    >>> [w.shape for w in ws]
    [(256, 64), (256, 256)]
    >>> round(float(ws[1].std() * 16), 1)   # √2 / √256 · 16 = √2
    1.4
    """
    if init not in INITS:
        raise ValueError(f"init_weights: init must be one of {INITS}, got {init!r}")
    gen = I.generator(rng)
    weights = []
    for d_in, d_out in pairwise(sizes):
        shape = (d_out, d_in)
        if init == "he":
            w = I.kaiming_normal(shape, nonlinearity="relu", rng=gen)
        else:
            w = I.xavier_normal(shape, rng=gen)
        weights.append(scale * w)
    return weights


def mlp_forward(
    x: Any, weights: Sequence[Any], activation: str, biases: Sequence[Any] | None = None
) -> tuple[list[Any], list[Any]]:
    """x (N, n_0) -> hidden outputs [h_1 … h_L], h_l (N, n_l), and caches.

    Each layer is h_l = f(h_{l-1} W_lᵀ + b_l) from ``linear_forward`` and the
    activation's ``*_forward``; ``biases`` None means no biases.
    """
    forward, _ = _pair(activation)
    hs, caches = [], []
    h = x
    for i, w in enumerate(weights):
        z, lin = F.linear_forward(h, w, None if biases is None else biases[i])
        h, act = forward(z)
        hs.append(h)
        caches.append((lin, act))
    return hs, caches


def mlp_backward(dh: Any, caches: list[Any], activation: str) -> list[Any]:
    """dh (N, n_L), the gradient at the last output -> [dh_0, dh_1 … dh_{L-1}].

    dh_l (N, n_l) is the gradient with respect to the input of layer l + 1
    (dh_0 with respect to x), from the package's backward passes.
    """
    _, backward = _pair(activation)
    grads = []
    for lin, act in reversed(caches):
        dz = backward(dh, act)
        dh, _, _ = F.linear_backward(dz, lin)
        grads.append(dh)
    return grads[::-1]


@dataclass
class DeepStats:
    """Per-layer statistics of a deep random network, NumPy arrays.

    std, mean, zero_fraction, grad_std: (L,); samples: (L, S) activations.
    ``grad_std[l]`` is the std of the gradient reaching the output of hidden
    layer l + 1 from a standard-normal upstream gradient at the top.
    """

    activation: str
    init: str
    scale: float
    std: np.ndarray
    mean: np.ndarray
    zero_fraction: np.ndarray
    grad_std: np.ndarray
    samples: np.ndarray


def deep_stats(
    x: Any,
    depth: int = 30,
    activation: str = "relu",
    init: str = "he",
    scale: float = 1.0,
    width: int = 256,
    rng: Any = 0,
    samples: int = 2000,
) -> DeepStats:
    """x (N, n_0) -> :class:`DeepStats` of ``depth`` dense layers of ``width``.

    Weights from :func:`init_weights` (the same seed gives the same network
    for every activation), no biases. The arrays stay on x's backend; the
    statistics come back as NumPy.

    >>> x = np.random.default_rng(0).normal(size=(64, 32))
    >>> s = deep_stats(x, depth=5, activation="relu", init="he", width=32)
    >>> s.std.shape, s.samples.shape, bool(s.zero_fraction[0] > 0.3)
    ((5,), (5, 2000), True)
    """
    xp = B.namespace("deep_stats", x=x)
    gen = I.generator(rng)
    host = init_weights([x.shape[1]] + [width] * depth, init, scale, gen)
    weights = [B.asarray(w, xp, B.device_of(x), dtype=x.dtype) for w in host]
    hs, caches = mlp_forward(x, weights, activation)
    top = B.asarray(gen.normal(size=tuple(hs[-1].shape)), xp, B.device_of(x), x.dtype)
    grads = [*mlp_backward(top, caches, activation)[1:], top]
    H = np.stack([B.to_numpy(h) for h in hs]).reshape(depth, -1)
    G = np.stack([B.to_numpy(d) for d in grads]).reshape(depth, -1)
    pick = gen.choice(H.shape[1], size=min(samples, H.shape[1]), replace=False)
    return DeepStats(
        activation=activation,
        init=init,
        scale=float(scale),
        std=H.std(axis=1),
        mean=H.mean(axis=1),
        zero_fraction=(H == 0).mean(axis=1),
        grad_std=G.std(axis=1),
        samples=H[:, np.sort(pick)],
    )


def standardized_digits(n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """First ``n`` training digits of :func:`cnnbook.data.digits` -> X (n, 64), y (n,).

    Pixels are standardised per feature (constant pixels become 0), float64.
    """
    from cnnbook.data import digits

    (X, y), _ = digits(seed=seed)
    X = X.reshape(len(X), -1).astype(np.float64)[:n]
    std = X.std(axis=0)
    X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return X, y[:n]


# ----------------------------------------------------------------------------
# the explorer and its static counterpart
# ----------------------------------------------------------------------------
def draw_state(axes: Sequence[Any], stats: DeepStats, layers: Sequence[int]) -> None:
    """Draw one state on three matplotlib axes: f and f′; std per layer; histograms.

    ``layers`` are 1-based hidden layers whose activations are histogrammed.
    """
    ax_f, ax_std, ax_hist = axes
    for ax in axes:
        ax.clear()
    grid = np.linspace(-5, 5, 401)
    f, d = curve(stats.activation, grid)
    ax_f.plot(grid, f, label="f")
    ax_f.plot(grid, d, label="f′")
    ax_f.axhline(0, color="grey", lw=0.5)
    ax_f.set(title=stats.activation, xlabel="x", ylim=(-1.5, 3))
    ax_f.legend(loc="upper left")
    depth = len(stats.std)
    idx = np.arange(1, depth + 1)
    ax_std.semilogy(idx, np.maximum(stats.std, 1e-30), "o-", ms=3, label="activations")
    ax_std.semilogy(idx, np.maximum(stats.grad_std, 1e-30), "s-", ms=3, label="grads")
    ax_std.set(
        title=f"{stats.init} init, scale {stats.scale:g}",
        xlabel="layer",
        ylabel="std",
        ylim=(1e-20, 1e4),
    )
    ax_std.legend(loc="lower right")
    for layer in layers:
        v = stats.samples[layer - 1]
        hi = max(float(np.abs(v).max()), 1e-12)
        ax_hist.hist(
            v / hi, bins=40, range=(-1, 1), histtype="step", label=f"layer {layer}"
        )
    ax_hist.set(title="activations / max |activation|", yscale="log")
    ax_hist.legend(loc="upper left", fontsize="small")


def explorer(x: np.ndarray, max_depth: int = 50) -> Any:
    """An ipywidgets explorer: activation, init, scale, depth -> :func:`draw_state`.

    Needs a running kernel; :func:`animation_html` is its static counterpart.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(activation="relu", init="he", scale=1.0, depth=30):
        stats = deep_stats(x, depth, activation, init, scale)
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
        draw_state(axes, stats, sorted({1, max(depth // 2, 1), depth}))
        fig.tight_layout()
        plt.show()

    return widgets.interact(
        show,
        activation=widgets.Dropdown(options=list(ACTIVATIONS), value="relu"),
        init=widgets.ToggleButtons(options=list(INITS), value="he"),
        scale=widgets.FloatSlider(
            value=1.0, min=0.25, max=3.0, step=0.05, continuous_update=False
        ),
        depth=widgets.IntSlider(
            value=30, min=1, max=max_depth, continuous_update=False
        ),
    )


def animation_html(
    states: Sequence[DeepStats], layers: Sequence[int], dpi: int = 60
) -> str:
    """A JavaScript animation (play, step, slider) over precomputed states.

    Works in a static page without a kernel: each frame is one
    :func:`draw_state` picture, embedded by ``FuncAnimation.to_jshtml``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), dpi=dpi)

    def frame(i: int) -> list:
        draw_state(axes, states[i], layers)
        fig.tight_layout()
        return []

    anim = FuncAnimation(fig, frame, frames=len(states), interval=1500, blit=False)
    html = show.animation_html(anim, "activation_states", fps=1)
    plt.close(fig)
    return html


# ----------------------------------------------------------------------------
# live in the published page (issue 11)
# ----------------------------------------------------------------------------
#: the quantiles of each layer's activations that :func:`live_stack_explorer` draws.
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _default(fn: Callable, name: str) -> float:
    import inspect

    return float(inspect.signature(fn).parameters[name].default)


def live_curve_explorer(
    activation: str = "gelu",
    half_width: float = 6.0,
    points: int = 6001,
    threshold: float = 0.01,
    at: float = 0.5,
) -> Any:
    """-> an ``IPython.display.HTML`` explorer of f, f′ and the saturated region
    ``{x : |f′(x)| < threshold}`` of any activation of :data:`CURVES`, live in the
    reader's browser (``book/_assets/explorers/act.js``).

    The script evaluates f and f′ with the formulas of :mod:`cnnbook.functional`
    (GELU with the same erf series as :func:`cnnbook.functional.erf`) on ``points``
    equally spaced x in [−half_width, half_width], and prints f(at), f′(at) and the
    share of the grid that is saturated. The leaky slope and ELU's α are the
    package's defaults, read here.
    """
    from IPython.display import HTML

    return HTML(_live_curve_html(activation, half_width, points, threshold, at))


def _live_curve_html(activation, half_width, points, threshold, at) -> str:
    import html
    import math

    from cnnbook_book.live import live_html, range_control

    if activation not in CURVES:
        raise ValueError(f"live_curve_explorer: no activation {activation!r}")
    payload = {
        "points": int(points),
        "leaky_slope": _default(F.leaky_relu_forward, "negative_slope"),
        "elu_alpha": _default(F.elu_forward, "alpha"),
    }
    options = "".join(
        f'<option value="{n}"{" selected" if n == activation else ""}>'
        f"{html.escape(n)}</option>"
        for n in CURVES
    )
    markup = (
        '<div class="cnnbook-live-controls">'
        f'<label>activation f <select name="activation">{options}</select></label>'
        + range_control("range", "x from −r to r: r", 1, 10, 0.5, half_width)
        + range_control(
            "threshold",
            "saturated: |f′| below 10^",
            -4,
            -0.5,
            0.1,
            round(math.log10(threshold), 1),
        )
        + range_control("at", "read f, f′ at x", -10, 10, 0.05, at)
        + "</div>"
        '<div class="cnnbook-live-figures"><figure>'
        '<canvas class="curve wide plot" width="400" height="260" role="img" '
        'aria-label="the activation and its derivative; saturated regions shaded">'
        "</canvas><figcaption>"
        '<span style="color:#1a5f9e">f(x)</span>, '
        '<span style="color:#b35300">f′(x)</span> (dashed); grey: |f′| below the '
        "threshold (saturated); square: the x read out.</figcaption></figure></div>"
        '<p class="cnnbook-live-formula" aria-live="polite"></p>'
    )
    return live_html("act", payload, markup, "activation explorer")


def stack_quantiles(stats: DeepStats, q: Sequence[float] = QUANTILES) -> np.ndarray:
    """stats -> (len(q), L): the quantiles of each layer's sampled activations.

    >>> s = deep_stats(np.eye(8), depth=2, width=8, samples=50)
    >>> stack_quantiles(s).shape
    (5, 2)
    """
    return np.quantile(stats.samples, q, axis=1)


def live_stack_explorer(states: dict[tuple[str, str, float], DeepStats]) -> Any:
    """{(activation, init, scale): :class:`DeepStats`} -> an ``IPython.display.HTML``
    explorer of those precomputed states, drawn in the reader's browser
    (``book/_assets/explorers/actstack.js``).

    For the chosen activation, initialisation and scale it plots the standard
    deviation of the activations and of the gradients per layer and the quantiles
    (:data:`QUANTILES`) of each layer's activations, and prints the numbers of one
    chosen layer. (The share of exact zeros is left out: outside ReLU it counts
    where GELU's Φ rounds to 0, which depends on the CPU's arithmetic.) Nothing is
    recomputed in the page: the states are those the chapter computed with
    :func:`deep_stats`, and the page says so.
    """
    from IPython.display import HTML

    return HTML(_live_stack_html(states))


def _resolved(q: np.ndarray, std: np.ndarray, digits: float = 1e-6) -> np.ndarray:
    """q (Q, L) -> q with values below ``digits`` × the layer's std set to 0.

    Those are rounding noise: GELU's far negative tail x·(1 + erf(x/√2))/2, where
    1 + erf is a few ulps of 1, differs in its last bits between CPUs (and so
    would the stored page); float32 on the layer's scale cannot show them anyway.
    """
    return np.where(np.abs(q) < digits * std, 0.0, q)


def _live_stack_html(states) -> str:
    import html

    from cnnbook_book.live import encode_array, live_html, range_control

    acts = list(dict.fromkeys(k[0] for k in states))
    inits = list(dict.fromkeys(k[1] for k in states))
    scales = sorted({float(k[2]) for k in states})
    missing = [
        (a, i, s)
        for a in acts
        for i in inits
        for s in scales
        if (a, i, s) not in states
    ]
    if missing:
        raise ValueError(
            f"live_stack_explorer: every combination needed, missing {missing}"
        )
    depth = len(next(iter(states.values())).std)
    payload = {
        "depth": depth,
        "scales": scales,
        "quantiles": list(QUANTILES),
        "states": {
            f"{a}|{i}|{float(s):g}": {
                "std": encode_array(st.std),
                "grad_std": encode_array(st.grad_std),
                "mean": encode_array(st.mean),
                "q": encode_array(_resolved(stack_quantiles(st), st.std)),
            }
            for (a, i, s), st in states.items()
        },
    }

    def select(name, label, values, chosen):
        opts = "".join(
            f'<option value="{v}"{" selected" if v == chosen else ""}>'
            f"{html.escape(v)}</option>"
            for v in values
        )
        return f'<label>{label} <select name="{name}">{opts}</select></label>'

    s0 = scales.index(1.0) if 1.0 in scales else 0
    markup = (
        f'<p class="cnnbook-live-note">Precomputed: the {len(states)} states '
        f"({len(acts)} activations × {len(inits)} initialisations × "
        f"{len(scales)} weight scales, depth {depth}) were computed by "
        "<code>deep_stats</code> when the chapter ran; the page draws them.</p>"
        '<div class="cnnbook-live-controls">'
        + select("activation", "activation", acts, "relu")
        + select("init", "initialisation", inits, "he")
        + range_control("scale", "weight scale (step)", 0, len(scales) - 1, 1, s0)
        + range_control("layer", "layer read out", 1, depth, 1, depth)
        + "</div>"
        '<div class="cnnbook-live-figures"><figure>'
        '<canvas class="std wide plot" width="400" height="240" role="img" '
        'aria-label="standard deviation of activations and gradients per layer">'
        "</canvas><figcaption>std per layer (log scale): "
        '<span style="color:#1a5f9e">activations</span>, '
        '<span style="color:#b35300">gradients</span> (dashed)</figcaption></figure>'
        "<figure>"
        '<canvas class="quantiles wide plot" width="400" height="240" role="img" '
        'aria-label="quantiles of the activations per layer"></canvas>'
        "<figcaption>activations per layer: median, 25–75 % and 5–95 % of a "
        "sample</figcaption></figure></div>"
        '<p class="cnnbook-live-formula" aria-live="polite"></p>'
    )
    return live_html("actstack", payload, markup, "deep network explorer")
