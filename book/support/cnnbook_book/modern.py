"""Companion to the chapter "Modern CNN building blocks".

Notation: x (N, C, H, W); F output channels, K a (square) kernel size, k the
growth rate of a dense block; a "multiply-add" (MAC) is one product summed
into an output, counted per image (N = 1).

- :func:`count_macs`: multiply-adds of every convolution and dense layer of a
  network, measured by forward hooks on one image (so the output sizes are
  the ones the network really computes).
- Blocks built from the package's layers and containers
  (:class:`cnnbook.nn.Sequential`, :class:`cnnbook.nn.Residual`,
  :class:`cnnbook.nn.Concat`): :func:`mlpconv`, :func:`inception`,
  :func:`bottleneck`, :func:`preact_block`, :func:`dense_block`,
  :func:`separable_conv`.
- :func:`small_cnn`: the chapter's three-stage network, with standard or
  depthwise-separable convolutions and a choice of normalisation;
  :func:`train_runs` trains it briefly and evaluates it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from cnnbook import data as D
from cnnbook import nn, optim
from cnnbook import train as T

__all__ = [
    "NORMS",
    "Run",
    "bottleneck",
    "count_macs",
    "dense_block",
    "inception",
    "mlp",
    "mlpconv",
    "norm_layer",
    "preact_block",
    "separable_conv",
    "small_cnn",
    "train_runs",
]


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass of ``model`` on one input of
    ``input_shape`` (without the batch axis), summed over its
    :class:`~cnnbook.nn.Conv2d` and :class:`~cnnbook.nn.Linear` layers.

    A convolution computes OH·OW·F outputs, each a sum of (C/groups)·KH·KW
    products; a dense layer in·out. Biases, normalisation, activations and
    pooling (a few operations per value) are not counted.
    """
    total = 0
    handles = []

    def conv(m: nn.Module, x: Any, y: Any) -> None:
        nonlocal total
        _, f, oh, ow = y.shape
        kh, kw = m.kernel_size
        total += oh * ow * f * (m.in_channels // m.groups) * kh * kw

    def dense(m: nn.Module, x: Any, y: Any) -> None:
        nonlocal total
        total += m.weight.shape[0] * m.weight.shape[1]

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(dense))
    was_training = model.training
    dtype = model.parameters()[0].dtype
    try:
        model.eval()
        with nn.no_grad():
            model(np.zeros((1, *input_shape), dtype=dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return int(total)


# ----------------------------------------------------------------------------
# blocks
# ----------------------------------------------------------------------------
def mlpconv(c_in: int, widths: Sequence[int], k: int, rng: Any = None) -> nn.Sequential:
    """Network in Network's "mlpconv" layer (Lin et al., 2013): a K×K
    convolution followed by 1×1 convolutions, each with ReLU: a small
    multi-layer perceptron slid over the image. x (N, c_in, H, W) ->
    (N, widths[-1], H, W) (padding K // 2)."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, widths[0], k, padding=k // 2, rng=rng),
        nn.ReLU(),
    ]
    for a, b in itertools.pairwise(widths):
        layers += [nn.Conv2d(a, b, 1, rng=rng), nn.ReLU()]
    return nn.Sequential(*layers)


def inception(
    c_in: int,
    c1: int,
    c3_reduce: int,
    c3: int,
    c5_reduce: int,
    c5: int,
    pool_proj: int,
    reduce: bool = True,
    rng: Any = None,
) -> nn.Concat:
    """GoogLeNet's inception block (Szegedy et al., 2015): four branches on
    the same input, joined along the channels by :class:`cnnbook.nn.Concat`.

    1×1 conv (c1) | 1×1 (c3_reduce) – 3×3 (c3) | 1×1 (c5_reduce) – 5×5 (c5) |
    3×3 max-pool (stride 1) – 1×1 (pool_proj); ReLU after every convolution.
    x (N, c_in, H, W) -> (N, c1 + c3 + c5 + pool_proj, H, W). With
    ``reduce=False`` the 3×3 and 5×5 convolutions and the pool branch take
    the c_in channels directly (the "naive" block, without 1×1 reductions).
    """

    def conv(a: int, b: int, k: int) -> list[nn.Module]:
        return [nn.Conv2d(a, b, k, padding=k // 2, rng=rng), nn.ReLU()]

    if reduce:
        b3 = conv(c_in, c3_reduce, 1) + conv(c3_reduce, c3, 3)
        b5 = conv(c_in, c5_reduce, 1) + conv(c5_reduce, c5, 5)
        pool: list[nn.Module] = [nn.MaxPool2d(3, stride=1, padding=1)]
        pool += conv(c_in, pool_proj, 1)
    else:
        b3, b5 = conv(c_in, c3, 3), conv(c_in, c5, 5)
        pool = [nn.MaxPool2d(3, stride=1, padding=1)]
    return nn.Concat(
        {
            "b1": nn.Sequential(*conv(c_in, c1, 1)),
            "b3": nn.Sequential(*b3),
            "b5": nn.Sequential(*b5),
            "pool": nn.Sequential(*pool),
        }
    )


def bottleneck(c: int, mid: int, rng: Any = None) -> nn.Sequential:
    """The bottleneck residual block (He et al., 2016): 1×1 conv (c -> mid) –
    BN – ReLU – 3×3 (mid -> mid) – BN – ReLU – 1×1 (mid -> c) – BN, plus the
    identity, then ReLU. x (N, c, H, W) -> same."""
    body = nn.Sequential(
        nn.Conv2d(c, mid, 1, bias=False, init="he", rng=rng),
        nn.BatchNorm2d(mid),
        nn.ReLU(),
        nn.Conv2d(mid, mid, 3, padding=1, bias=False, init="he", rng=rng),
        nn.BatchNorm2d(mid),
        nn.ReLU(),
        nn.Conv2d(mid, c, 1, bias=False, init="he", rng=rng),
        nn.BatchNorm2d(c),
    )
    return nn.Sequential(nn.Residual(body), nn.ReLU())


def preact_block(c: int, rng: Any = None, zero_last: bool = False) -> nn.Residual:
    """The pre-activation residual block (He et al., 2016b):
    x + conv(ReLU(BN(conv(ReLU(BN(x)))))), 3×3 convolutions, nothing after
    the addition, so the identity path is exact. ``zero_last`` sets the
    last convolution's weights to zero: the block is then the identity.
    x (N, c, H, W) -> same."""
    body = nn.Sequential(
        nn.BatchNorm2d(c),
        nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1, bias=False, init="he", rng=rng),
        nn.BatchNorm2d(c),
        nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1, bias=False, init="he", rng=rng),
    )
    if zero_last:
        body[5].weight.data = body[5].weight.data * 0
    return nn.Residual(body)


def dense_block(c_in: int, growth: int, layers: int, rng: Any = None) -> nn.Sequential:
    """A dense block (Huang et al., 2017): ``layers`` times, x -> [x, H(x)]
    with H = BN – ReLU – 3×3 conv (-> ``growth`` channels), joined by
    :class:`cnnbook.nn.Concat` with an :class:`~cnnbook.nn.Identity` branch,
    so layer l sees all earlier feature maps. x (N, c_in, H, W) ->
    (N, c_in + layers · growth, H, W)."""
    out = []
    c = c_in
    for _ in range(layers):
        h = nn.Sequential(
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.Conv2d(c, growth, 3, padding=1, bias=False, init="he", rng=rng),
        )
        out.append(nn.Concat(nn.Identity(), h))
        c += growth
    return nn.Sequential(*out)


def separable_conv(c_in: int, c_out: int, k: int = 3, rng: Any = None) -> nn.Sequential:
    """MobileNet's depthwise-separable convolution (Howard et al., 2017): a
    K×K depthwise convolution (groups = c_in, one filter per channel), then a
    1×1 pointwise convolution mixing the channels. No bias: a normalisation
    follows in practice. x (N, c_in, H, W) -> (N, c_out, H, W)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, k, padding=k // 2, groups=c_in, bias=False, rng=rng),
        nn.Conv2d(c_in, c_out, 1, bias=False, rng=rng),
    )


# ----------------------------------------------------------------------------
# the chapter's small network and its training runs
# ----------------------------------------------------------------------------
#: normalisation name -> layer for c channels (group norm: groups of 4
#: channels; layer norm over (C, H, W) is group norm with one group)
NORMS = {
    "none": lambda c: nn.Identity(),
    "batch": lambda c: nn.BatchNorm2d(c),
    "group": lambda c: nn.GroupNorm(max(1, c // 4), c),
    "layer": lambda c: nn.GroupNorm(1, c),
}


def norm_layer(name: str, c: int) -> nn.Module:
    """The normalisation layer ``name`` (a key of :data:`NORMS`) for c channels."""
    if name not in NORMS:
        raise ValueError(f"norm_layer: unknown {name!r}; choose one of {list(NORMS)}")
    return NORMS[name](c)


def small_cnn(
    widths: Sequence[int] = (16, 32, 32),
    separable: bool = False,
    norm: str = "none",
    head: str = "gap",
    num_classes: int = 10,
    seed: int = 0,
) -> nn.Sequential:
    """x (N, 1, 28, 28) -> logits (N, num_classes).

    Three stages of 3×3 convolution [– norm] – ReLU, the first two followed
    by 2×2 max-pooling (28 -> 14 -> 7), then global average pooling and one
    dense layer (``head="gap"``) or one dense layer on the flattened 7×7 maps
    (``head="flatten"``, which learns faster). With ``separable`` the second and third
    convolutions are depthwise-separable (:func:`separable_conv`); the first
    sees one channel, where a depthwise step has nothing to separate.
    """
    rng = nn.init.generator(seed)
    bias = norm == "none"
    layers: list[nn.Module] = []
    c = 1
    for i, w in enumerate(widths):
        if separable and i > 0:
            conv: nn.Module = separable_conv(c, w, 3, rng=rng)
        else:
            conv = nn.Conv2d(
                c, w, 3, padding=1, bias=bias, init="he", rng=rng, input_grad=i > 0
            )
        layers += [conv, norm_layer(norm, w), nn.ReLU()]
        if i < len(widths) - 1:
            layers.append(nn.MaxPool2d(2))
        c = w
    if head == "gap":
        layers += [nn.GlobalAvgPool2d(), nn.Linear(c, num_classes, rng=rng)]
    elif head == "flatten":
        layers += [nn.Flatten(), nn.Linear(c * 7 * 7, num_classes, rng=rng)]
    else:
        raise ValueError(f"small_cnn: head must be 'gap' or 'flatten', got {head!r}")
    return nn.Sequential(*layers)


def mlp(norm: str, hidden: int = 64, num_classes: int = 10, seed: int = 0):
    """x (N, 1, 28, 28) -> logits (N, num_classes): flatten – dense (hidden) –
    norm – ReLU – dense. ``norm``: "batch" (:class:`~cnnbook.nn.BatchNorm1d`,
    statistics over the batch alone), "group" (groups of 4 features) or
    "layer" (:class:`~cnnbook.nn.LayerNorm` over the hidden features)."""
    layers = {
        "batch": lambda: nn.BatchNorm1d(hidden),
        "group": lambda: nn.GroupNorm(hidden // 4, hidden),
        "layer": lambda: nn.LayerNorm(hidden),
    }
    if norm not in layers:
        raise ValueError(f"mlp: unknown norm {norm!r}; choose one of {list(layers)}")
    rng = nn.init.generator(seed)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(28 * 28, hidden, rng=rng),
        layers[norm](),
        nn.ReLU(),
        nn.Linear(hidden, num_classes, rng=rng),
    )


class Run(NamedTuple):
    """One training run: its history, and validation metrics in evaluation
    mode (running statistics) and in training mode (batch statistics of
    validation batches of the training batch size)."""

    history: Any
    val: dict[str, float]
    val_batch_stats: dict[str, float]


def train_runs(
    make: Any,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    seeds: Sequence[int] = (0,),
    epochs: int = 2,
    batch_size: int = 32,
    lr: float = 1e-2,
) -> list[Run]:
    """Train ``make(seed)`` once per seed with Adam under a one-cycle schedule
    (peak ``lr``, stepped per batch, :func:`cnnbook.optim.make_scheduler`) on
    ``train`` (seeded shuffling), then evaluate it on ``val``. Returns one :class:`Run`
    per seed. ``val_batch_stats`` evaluates with the model in training mode
    on validation batches of ``batch_size`` (batch norm then uses each
    batch's own statistics; the other layers behave as in evaluation)."""
    out = []
    for seed in seeds:
        model = make(seed)
        loader = D.DataLoader(*train, batch_size=batch_size, shuffle=True, seed=seed)
        opt = optim.Adam(model.parameters(), lr=lr)
        sched = optim.make_scheduler("onecycle", opt, epochs, len(loader))
        crit = nn.CrossEntropyLoss()
        hist = T.fit(model, loader, crit, opt, epochs, scheduler=sched, progress=False)
        val_eval = T.evaluate(model, val)
        val_train_mode = _evaluate_in_training_mode(model, val, batch_size)
        out.append(Run(hist, val_eval, val_train_mode))
    return out


def _evaluate_in_training_mode(
    model: nn.Module, val: tuple[np.ndarray, np.ndarray], batch_size: int
) -> dict[str, float]:
    """Accuracy on ``val`` with batch statistics (training mode) in batches of
    ``batch_size``; the running statistics are restored afterwards."""
    state = model.state_dict()
    correct = 0
    try:
        with nn.no_grad():
            model.train()
            for xb, yb in D.DataLoader(*val, batch_size=batch_size):
                correct += int((np.argmax(model(xb), axis=1) == yb).sum())
    finally:
        model.load_state_dict(state)
    return {"accuracy": correct / len(val[1])}
