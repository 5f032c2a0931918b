"""Companion to the chapter *What a CNN sees*: attribution maps, class
visualisation and adversarial examples, all built on the package's
hand-derived input gradient (``model.backward(dscores)`` returns
dX = ∂(Σ dscores · scores)/∂x, for a model built with ``input_grad=True``).

Notation: x (N, C, H, W) images in [0, 1]; scores s (N, K) (logits); c the
class whose score is explained, an int or (N,) ints; maps (N, H, W).

- :func:`score_grad`: the scores and ∂s_c/∂x.
- :func:`saliency` (Simonyan et al., 2013), :func:`smoothgrad` (Smilkov et
  al., 2017), :func:`grad_cam` (Selvaraju et al., 2017) with
  :func:`upsample`, :func:`occlusion` (Zeiler & Fergus, 2014).
- :func:`class_visualisation`: gradient ascent on s_c(x) − λ‖x‖².
- :func:`loss_grad`, :func:`fgsm` (Goodfellow et al., 2015), :func:`pgd`
  (Madry et al., 2018), :func:`adversarial_epoch`.
- :func:`live_sees_explorer`: the explorer that recomputes the maps in the
  reader's browser (``book/_assets/explorers/sees.js``).

Every function leaves the model's train/eval mode as it found it; the ones
that go backward add to the parameters' ``.grad`` as any backward does.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnbook import nn
from cnnbook.backend import asarray, device_of, namespace, to_numpy

__all__ = [
    "METHODS",
    "adversarial_epoch",
    "class_visualisation",
    "explorer",
    "fgsm",
    "grad_cam",
    "live_sees_explorer",
    "loss_grad",
    "occlusion",
    "pgd",
    "plot_maps",
    "saliency",
    "score_grad",
    "smoothgrad",
    "upsample",
]

#: the explorer's methods, in the order of its menu
METHODS = ("saliency", "smoothgrad", "gradcam", "occlusion")


# ----------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------
def _images(op: str, x: Any) -> np.ndarray:
    if not hasattr(x, "ndim") or x.ndim != 4:
        shape = getattr(x, "shape", type(x).__name__)
        raise ValueError(f"{op}: x must be (N, C, H, W), got {shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{op}: x holds no images")
    return x


def _classes(op: str, c: Any, n: int, k: int) -> np.ndarray:
    cls = np.asarray(to_numpy(c))
    if cls.dtype.kind not in "iu":
        raise TypeError(f"{op}: the class must be an int or ints, got {cls.dtype}")
    cls = np.broadcast_to(cls, (n,)) if cls.ndim == 0 else cls
    if cls.shape != (n,):
        raise ValueError(f"{op}: one class per image: {n} images, {cls.shape} classes")
    if cls.min() < 0 or cls.max() >= k:
        raise ValueError(
            f"{op}: classes must be in [0, {k}), got {cls.min()}..{cls.max()}"
        )
    return cls.astype(np.int64)


def _positive(op: str, name: str, v: Any, integer: bool = False, zero=False):
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(v, bool) or not isinstance(v, kind) or not np.isfinite(v):
        raise TypeError(f"{op}: {name} must be a {'n int' if integer else ' number'}")
    if v < 0 or (v == 0 and not zero):
        raise ValueError(f"{op}: {name} must be {'≥' if zero else '>'} 0, got {v}")
    return v


class _Mode:
    """Evaluation mode inside, the model's own mode restored after."""

    def __init__(self, model: nn.Module, training: bool = False):
        self.model, self.training = model, training

    def __enter__(self):
        self.was = self.model.training
        self.model.train(self.training)

    def __exit__(self, *exc):
        self.model.train(self.was)


# ----------------------------------------------------------------------------
# gradients of a score and of the loss
# ----------------------------------------------------------------------------
def score_grad(model: nn.Module, x: Any, c: Any) -> tuple[np.ndarray, np.ndarray]:
    """x (N, C, H, W), c int or (N,) -> (s (N, K), g (N, C, H, W)): the scores and
    g = ∂s_c/∂x, image by image, from one forward and one backward pass with
    dscores = one-hot(c) (evaluation mode)."""
    _images("score_grad", x)
    with _Mode(model):
        s = model(x)
        try:
            cls = _classes("score_grad", c, s.shape[0], s.shape[1])
        except (TypeError, ValueError):
            model.clear_cache()
            raise
        d = np.zeros(tuple(s.shape), dtype=to_numpy(s).dtype)
        d[np.arange(len(cls)), cls] = 1.0
        xp = namespace("score_grad", s=s)
        g = model.backward(asarray(d, xp, device_of(s)))
    if g is None:
        raise ValueError(
            "score_grad: the model returns no input gradient; build it with "
            "input_grad=True"
        )
    return np.asarray(to_numpy(s)), np.asarray(to_numpy(g))


def saliency(model: nn.Module, x: Any, c: Any) -> np.ndarray:
    """x (N, C, H, W), c -> (N, H, W): max over channels of ``abs(∂s_c/∂x)``
    (Simonyan et al., 2013)."""
    return np.abs(score_grad(model, x, c)[1]).max(axis=1)


def smoothgrad(
    model: nn.Module,
    x: Any,
    c: Any,
    samples: int = 25,
    sigma: float = 0.15,
    seed: int = 0,
    noise: Any = None,
) -> np.ndarray:
    """x (N, C, H, W), c -> (N, H, W): the mean saliency map over ``samples``
    noisy copies x + ε, ε ~ N(0, (σ·(max x − min x))²) per pixel (Smilkov et al.,
    2017); the range is each image's own. ``noise`` (S, C, H, W) of unit
    variance replaces the seeded draw (the explorer passes its own)."""
    x = np.asarray(to_numpy(_images("smoothgrad", x)))
    _positive("smoothgrad", "sigma", sigma, zero=True)
    if noise is None:
        _positive("smoothgrad", "samples", samples, integer=True)
        noise = np.random.default_rng(seed).standard_normal((samples, *x.shape[1:]))
    noise = np.asarray(noise)
    if noise.ndim != 4 or noise.shape[1:] != x.shape[1:]:
        raise ValueError(
            f"smoothgrad: noise must be (S, {x.shape[1:]}), got {noise.shape}"
        )
    spread = (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))[:, None, None, None]
    total = np.zeros((x.shape[0], x.shape[2], x.shape[3]))
    for eps in noise:
        total += saliency(model, (x + sigma * spread * eps).astype(x.dtype), c)
    return total / len(noise)


def grad_cam(model: nn.Module, x: Any, c: Any, layer: nn.Module) -> np.ndarray:
    """x (N, C, H, W), c, ``layer`` (a module of ``model`` whose output is
    A (N, K, h, w)) -> (N, h, w): ReLU(Σ_k α_k A_k) with α_k the spatial mean of
    ∂s_c/∂A_k (Selvaraju et al., 2017). A and ∂s_c/∂A are read by a forward and
    a backward hook on ``layer``."""
    if not any(m is layer for m in model.modules()):
        raise ValueError("grad_cam: layer must be a module of the model")
    seen: dict[str, Any] = {}
    hooks = [
        layer.register_forward_hook(lambda m, i, o: seen.__setitem__("A", o)),
        layer.register_backward_hook(lambda m, dy, dx: seen.__setitem__("dA", dy)),
    ]
    try:
        score_grad(model, x, c)
    finally:
        for h in hooks:
            h.remove()
    A, dA = np.asarray(to_numpy(seen["A"])), np.asarray(to_numpy(seen["dA"]))
    if A.ndim != 4:
        raise ValueError(
            f"grad_cam: the layer's output must be (N, K, h, w), got {A.shape}"
        )
    alpha = dA.mean(axis=(2, 3))  # (N, K)
    return np.maximum(np.einsum("nk,nkhw->nhw", alpha, A), 0.0)


def upsample(m: Any, size: tuple[int, int], stride: float, offset: float) -> np.ndarray:
    """m (N, h, w) -> (N, H, W): linear interpolation of a map whose entry i lies
    at input pixel offset + stride·i (the centre of its receptive field), held
    constant beyond the first and last centres.

    >>> upsample(np.array([[[0.0, 2.0]]]), (1, 4), 2, 0.5)[0, 0].tolist()
    [0.0, 0.5, 1.5, 2.0]
    """
    m = np.asarray(m, dtype=np.float64)
    H, W = size
    rows, cols = (
        offset + stride * np.arange(m.shape[1]),
        offset + stride * np.arange(m.shape[2]),
    )
    out = np.empty((m.shape[0], H, m.shape[2]))
    for n in range(m.shape[0]):
        for j in range(m.shape[2]):
            out[n, :, j] = np.interp(np.arange(H), rows, m[n, :, j])
    res = np.empty((m.shape[0], H, W))
    for n in range(m.shape[0]):
        for i in range(H):
            res[n, i] = np.interp(np.arange(W), cols, out[n, i])
    return res


@nn.no_grad()
def _scores(model: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    with _Mode(model):
        return np.concatenate(
            [
                to_numpy(model(x[i : i + batch_size]))
                for i in range(0, len(x), batch_size)
            ]
        )


def occlusion(
    model: nn.Module, x: Any, c: Any, patch: int = 6, stride: int = 2, fill: float = 0.0
) -> np.ndarray:
    """x (N, C, H, W), c -> (N, H, W): for every position of a ``patch``×``patch``
    square (``stride`` apart) set to ``fill``, the drop s_c(x) − s_c(x occluded);
    each pixel gets the mean drop of the squares that cover it (Zeiler & Fergus,
    2014). No gradient: (1 + positions) forward passes per image."""
    x = np.asarray(to_numpy(_images("occlusion", x)))
    N, _, H, W = x.shape
    _positive("occlusion", "patch", patch, integer=True)
    _positive("occlusion", "stride", stride, integer=True)
    if patch > min(H, W):
        raise ValueError(f"occlusion: patch {patch} is larger than the image {H}×{W}")
    tops = range(0, H - patch + 1, stride)
    lefts = range(0, W - patch + 1, stride)
    out = np.zeros((N, H, W))
    cover = np.zeros((H, W))
    for t in tops:
        for le in lefts:
            cover[t : t + patch, le : le + patch] += 1
    base = _scores(model, x)
    cls = _classes("occlusion", c, N, base.shape[1])
    for n in range(N):
        copies = np.repeat(x[n : n + 1], len(tops) * len(lefts), axis=0)
        for k, (t, le) in enumerate((t, le) for t in tops for le in lefts):
            copies[k, :, t : t + patch, le : le + patch] = fill
        drop = base[n, cls[n]] - _scores(model, copies)[:, cls[n]]
        for k, (t, le) in enumerate((t, le) for t in tops for le in lefts):
            out[n, t : t + patch, le : le + patch] += drop[k]
    return out / np.maximum(cover, 1)


# ----------------------------------------------------------------------------
# class visualisation
# ----------------------------------------------------------------------------
def class_visualisation(
    model: nn.Module,
    c: int,
    start: Any,
    steps: int = 200,
    lr: float = 0.1,
    l2: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """start (C, H, W) -> (x (C, H, W), objective (steps + 1,)): gradient ascent
    from ``start`` on J(x) = s_c(x) − λ‖x − start‖² (λ = ``l2``; Simonyan et al.,
    2013, who start from the mean image, the zero of their centred inputs),
    x ← x + lr·(∂s_c/∂x − 2λ(x − start)). At a maximum ∂s_c/∂x = 2λ(x − start)."""
    _positive("class_visualisation", "steps", steps, integer=True)
    _positive("class_visualisation", "lr", lr)
    _positive("class_visualisation", "l2", l2)
    x0 = np.asarray(to_numpy(start))
    if x0.ndim != 3:
        raise ValueError(
            f"class_visualisation: start must be (C, H, W), got {x0.shape}"
        )
    x, trace = x0[None].copy(), []
    for step in range(steps + 1):
        s, g = score_grad(model, x, c)
        d = (x - x0).astype(np.float64)
        trace.append(float(s[0, c]) - l2 * float((d**2).sum()))
        if step < steps:
            x = (x + lr * (g - 2 * l2 * (x - x0))).astype(x0.dtype)
    return x[0], np.array(trace)


# ----------------------------------------------------------------------------
# adversarial examples
# ----------------------------------------------------------------------------
def loss_grad(model: nn.Module, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """x (N, C, H, W), y (N,) -> (L (N,), g (N, C, H, W)): each image's
    cross-entropy and its gradient ∂L_n/∂x_n (evaluation mode)."""
    _images("loss_grad", x)
    crit = nn.CrossEntropyLoss(reduction="sum")
    with _Mode(model):
        s = model(x)
        try:
            y = _classes("loss_grad", y, s.shape[0], s.shape[1])
        except (TypeError, ValueError):
            model.clear_cache()
            raise
        total = crit(s, y)
        g = model.backward(crit.backward())
    if g is None:
        raise ValueError("loss_grad: build the model with input_grad=True")
    z = np.asarray(to_numpy(s), dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    L = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]
    del total
    return L, np.asarray(to_numpy(g))


def fgsm(model: nn.Module, x: Any, y: Any, eps: float, clip=(0.0, 1.0)) -> np.ndarray:
    """x (N, C, H, W), y (N,) -> x' (N, C, H, W) = clip(x + ε·sign(∂L/∂x)), the
    fast gradient sign method (Goodfellow et al., 2015); ``clip=None`` keeps
    x' outside [0, 1]."""
    _positive("fgsm", "eps", eps, zero=True)
    x = np.asarray(to_numpy(_images("fgsm", x)))
    x1 = x + eps * np.sign(loss_grad(model, x, y)[1])
    return (np.clip(x1, *clip) if clip is not None else x1).astype(x.dtype)


def pgd(
    model: nn.Module,
    x: Any,
    y: Any,
    eps: float,
    steps: int = 10,
    alpha: float | None = None,
    clip=(0.0, 1.0),
) -> np.ndarray:
    """x (N, C, H, W), y (N,) -> x' (N, C, H, W): ``steps`` signed-gradient
    steps of size α (default 2.5·ε/steps) from x, each followed by the
    projection onto {‖x' − x‖_∞ ≤ ε} ∩ [0, 1] (Madry et al., 2018, without the
    random start)."""
    _positive("pgd", "eps", eps, zero=True)
    _positive("pgd", "steps", steps, integer=True)
    alpha = 2.5 * eps / steps if alpha is None else _positive("pgd", "alpha", alpha)
    x = np.asarray(to_numpy(_images("pgd", x)))
    x1 = x.copy()
    for _ in range(steps):
        x1 = x1 + alpha * np.sign(loss_grad(model, x1, y)[1])
        x1 = np.clip(x1, x - eps, x + eps)
        if clip is not None:
            x1 = np.clip(x1, *clip)
        x1 = x1.astype(x.dtype)
    return x1


def adversarial_epoch(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    optimizer: Any,
    eps: float,
    batch_size: int = 64,
    seed: int = 0,
) -> float:
    """X (N, C, H, W), y (N,) -> mean training loss: one epoch on the objective
    ½·L(x) + ½·L(FGSM(x)) (Goodfellow et al., 2015, α = ½), each batch's
    adversarial copies made against the current parameters; the clean and
    adversarial images go through the model as one batch."""
    from cnnbook.data import DataLoader

    crit = nn.CrossEntropyLoss()
    total, seen = 0.0, 0
    for xb, yb in DataLoader(X, y, batch_size=batch_size, shuffle=True, seed=seed):
        adv = fgsm(model, xb, yb, eps)
        both, labels = np.concatenate([xb, adv]), np.concatenate([yb, yb])
        with _Mode(model, training=True):
            model.zero_grad()
            loss = float(crit(model(both), labels))
            model.backward(crit.backward())
            optimizer.step()
        total += loss * len(xb)
        seen += len(xb)
    return total / seen


# ----------------------------------------------------------------------------
# the live explorer
# ----------------------------------------------------------------------------
def _lenet_check(model: nn.Module) -> None:
    names = [type(m).__name__ for m in model]
    want = ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten",
            "Linear", "ReLU", "Linear", "ReLU", "Linear"]  # fmt: skip
    if names != want:
        raise ValueError(
            f"live_sees_explorer: the model must be a LeNet-5, got {names}"
        )


def live_sees_explorer(
    model: nn.Module,
    images: Any,
    labels: Any,
    noise: Any,
    sigma: float = 0.15,
    patch: int = 6,
    stride: int = 2,
):
    """images (N, 1, 28, 28), labels (N,), noise (S, 1, 28, 28) -> an
    ``IPython.display.HTML`` explorer (``book/_assets/explorers/sees.js``): pick
    a digit, a class and a method (saliency, SmoothGrad with these S noise
    images, Grad-CAM on the second convolution's ReLU, occlusion); the
    browser runs the LeNet-5's forward and backward passes itself from its
    weights (float32 JSON) and draws the map over the digit."""
    from IPython.display import HTML

    return HTML(_live_sees_html(model, images, labels, noise, sigma, patch, stride))


def _live_sees_html(model, images, labels, noise, sigma, patch, stride) -> str:
    from cnnbook_book.live import encode_array, live_html

    _lenet_check(model)
    images = np.asarray(to_numpy(images))
    labels = np.asarray(to_numpy(labels)).astype(int)
    state = model.state_dict()
    payload = {
        "weights": {k: encode_array(v) for k, v in state.items()},
        "images": encode_array(images),
        "labels": labels.tolist(),
        "noise": encode_array(noise),
        "sigma": sigma,
        "patch": patch,
        "stride": stride,
    }
    digits = "".join(
        f'<option value="{i}">#{i}: a {lab}</option>' for i, lab in enumerate(labels)
    )
    classes = "".join(f'<option value="{k}">{k}</option>' for k in range(10))
    names = {"saliency": "saliency |∂s/∂x|", "smoothgrad": "SmoothGrad",
             "gradcam": "Grad-CAM", "occlusion": "occlusion"}  # fmt: skip
    methods = "".join(f'<option value="{m}">{names[m]}</option>' for m in METHODS)
    figure = (
        '<figure><canvas class="{0}" role="img" aria-label="{1}"></canvas>'
        '<figcaption class="{0}-caption">{1}</figcaption></figure>'
    )
    markup = (
        '<div class="cnnbook-live-controls">'
        f'<label>digit <select name="digit">{digits}</select></label>'
        f'<label>class c <select name="cls"><option value="pred">predicted</option>'
        f"{classes}</select></label>"
        f'<label>method <select name="method">{methods}</select></label>'
        '</div><div class="cnnbook-live-figures">'
        + figure.format("digit", "the digit")
        + figure.format("map", "the map")
        + figure.format("overlay", "the map over the digit")
        + '</div><p class="cnnbook-live-formula" aria-live="polite"></p>'
    )
    return live_html("sees", payload, markup, "what the CNN sees: attribution maps")


# ----------------------------------------------------------------------------
# pictures for the reader (matplotlib and ipywidgets are imported lazily)
# ----------------------------------------------------------------------------
def plot_maps(
    images: Any, maps: dict[str, Any], titles: Sequence[str] | None = None
) -> Any:
    """images (N, 1, H, W), maps {row name: (N, H, W)} -> a figure: the
    digits in the first row, each map below them (its own colour scale per
    panel, from 0 to its largest absolute value)."""
    import matplotlib.pyplot as plt

    images = np.asarray(to_numpy(images))
    N = len(images)
    rows = 1 + len(maps)
    fig, axes = plt.subplots(
        rows, N, figsize=(1.05 * N + 1.0, 1.2 * rows), dpi=72, squeeze=False
    )
    for j in range(N):
        axes[0, j].imshow(images[j, 0], cmap="gray", vmin=0, vmax=1)
        if titles is not None:
            axes[0, j].set_title(titles[j], fontsize=10)
        for i, m in enumerate(maps.values(), start=1):
            m = np.asarray(m)[j]
            axes[i, j].imshow(m, cmap="inferno", vmin=0, vmax=np.abs(m).max() or 1)
    for i, name in enumerate(["digit", *maps]):
        axes[i, 0].set_ylabel(name, fontsize=10)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def explorer(model: nn.Module, images: Any, labels: Any, **kwargs: Any) -> Any:
    """An ipywidgets explorer: choose a digit of ``images`` (N, 1, H, W) and a
    method; draws the map of the predicted class with the package's functions.
    Needs a running kernel (:func:`live_sees_explorer` is the page's)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    images = np.asarray(to_numpy(images))

    def draw(digit: int, method: str) -> None:
        x = images[digit : digit + 1]
        c = int(_scores(model, x)[0].argmax())
        m = _map(model, x, c, method, **kwargs)
        plot_maps(x, {method: m}, [f"predicted {c}"])
        plt.show()

    options = [(f"#{i}: a {int(lab)}", i) for i, lab in enumerate(to_numpy(labels))]
    return widgets.interactive(
        draw,
        digit=widgets.Dropdown(options=options, description="digit"),
        method=widgets.Dropdown(options=list(METHODS), description="method"),
    )


def _map(model, x, c, method, noise=None, sigma=0.15, patch=6, stride=2):
    """One of :data:`METHODS` for images x (N, 1, 28, 28) of a LeNet-5, as the
    explorer computes it (Grad-CAM of the second convolution's ReLU, upsampled)."""
    if method == "saliency":
        return saliency(model, x, c)
    if method == "smoothgrad":
        return smoothgrad(model, x, c, sigma=sigma, noise=noise)
    if method == "gradcam":
        return upsample(grad_cam(model, x, c, model[4]), x.shape[2:], 2, 4.5)
    if method == "occlusion":
        return occlusion(model, x, c, patch, stride)
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
