"""The networks the book trains, and a registry to build them by name.

- :func:`lenet5`: LeCun et al. (1998), with ReLU and max-pooling, for 28×28.
- :func:`vgg`: blocks of stacked 3×3 convolutions, each block ending in 2×2
  max-pooling (Simonyan & Zisserman, 2015), sized for small images.
- :func:`resnet`: basic residual blocks (He et al., 2016) with batch norm and
  1×1 projection shortcuts where a stage halves the resolution.
- :func:`plainnet`: the same network with the skip connections removed, for
  the degradation experiment.

Every builder takes ``input_grad`` for its first convolution
(:class:`cnnbook.nn.Conv2d`): False when nothing needs the gradient of the
input images (training), which saves the first layer's most expensive
product; ``model.backward`` then returns None.

>>> net = get_model("lenet5", seed=0)
>>> net.num_parameters()
61706
>>> get_model("alexnet")
Traceback (most recent call last):
...
ValueError: unknown model 'alexnet'; known models: lenet5, plainnet, resnet, vgg
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cnnbook import nn
from cnnbook.functional import conv_output_size

__all__ = ["MODELS", "get_model", "lenet5", "plainnet", "resnet", "vgg"]


def lenet5(
    num_classes: int = 10,
    seed: Any = None,
    dtype: Any = np.float32,
    input_grad: bool = True,
) -> nn.Sequential:
    """x (N, 1, 28, 28) -> logits (N, num_classes).

    conv 5×5×6 (pad 2) – ReLU – max-pool 2 – conv 5×5×16 – ReLU – max-pool 2 –
    flatten – 120 – ReLU – 84 – ReLU – num_classes; the layer order and keys of
    the PyTorch ``nn.Sequential`` with the same layers (``0.weight``, …).
    """
    rng = nn.init.generator(seed) if seed is not None else None
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2, rng=rng, dtype=dtype, input_grad=input_grad),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, rng=rng, dtype=dtype),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120, rng=rng, dtype=dtype),
        nn.ReLU(),
        nn.Linear(120, 84, rng=rng, dtype=dtype),
        nn.ReLU(),
        nn.Linear(84, num_classes, rng=rng, dtype=dtype),
    )


def vgg(
    widths: Sequence[int] = (32, 64),
    convs_per_block: int = 2,
    hidden: int = 128,
    num_classes: int = 10,
    in_channels: int = 1,
    input_size: int = 28,
    batch_norm: bool = False,
    dropout: float = 0.0,
    seed: Any = None,
    dtype: Any = np.float32,
    input_grad: bool = True,
) -> nn.Sequential:
    """x (N, in_channels, S, S) -> logits (N, num_classes).

    One block per entry of ``widths``: ``convs_per_block`` × (conv 3×3, pad 1
    [– batch norm] – ReLU), then max-pool 2 (S → S // 2). Then flatten –
    ``hidden`` – ReLU [– dropout] – num_classes.
    """
    rng = nn.init.generator(seed) if seed is not None else None
    blocks: dict[str, nn.Module] = {}
    c, s = in_channels, input_size
    for i, w in enumerate(widths):
        layers: list[nn.Module] = []
        for _ in range(convs_per_block):
            first = not blocks and not layers  # the layer that sees the images
            layers.append(
                nn.Conv2d(
                    c,
                    w,
                    3,
                    padding=1,
                    bias=not batch_norm,
                    init="he",
                    rng=rng,
                    dtype=dtype,
                    input_grad=input_grad if first else True,
                )
            )
            if batch_norm:
                layers.append(nn.BatchNorm2d(w, dtype=dtype))
            layers.append(nn.ReLU())
            c = w
        layers.append(nn.MaxPool2d(2))
        s = conv_output_size(s, 2, 2, 0)
        if s < 1:
            raise ValueError(
                f"vgg: {len(widths)} blocks halve a {input_size}×{input_size} input "
                "to nothing; use fewer blocks"
            )
        blocks[f"block{i + 1}"] = nn.Sequential(*layers)
    head: list[nn.Module] = [
        nn.Flatten(),
        nn.Linear(c * s * s, hidden, init="he", rng=rng, dtype=dtype),
        nn.ReLU(),
    ]
    if dropout:
        head.append(nn.Dropout(dropout, rng=rng))
    head.append(nn.Linear(hidden, num_classes, rng=rng, dtype=dtype))
    blocks["head"] = nn.Sequential(*head)
    return nn.Sequential(blocks)


def _conv_bn(c_in, c_out, stride, rng, dtype, input_grad=True):
    return [
        nn.Conv2d(
            c_in,
            c_out,
            3,
            stride=stride,
            padding=1,
            bias=False,
            init="he",
            rng=rng,
            dtype=dtype,
            input_grad=input_grad,
        ),
        nn.BatchNorm2d(c_out, dtype=dtype),
    ]


def _block(c_in, c_out, stride, skip, rng, dtype) -> nn.Module:
    """Basic block: conv3×3(stride)–BN–ReLU–conv3×3–BN, plus the shortcut
    (identity, or 1×1 conv(stride)–BN when the shape changes), then ReLU."""
    body = nn.Sequential(
        *_conv_bn(c_in, c_out, stride, rng, dtype),
        nn.ReLU(),
        *_conv_bn(c_out, c_out, 1, rng, dtype),
    )
    if not skip:
        return nn.Sequential(body, nn.ReLU())
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = nn.Sequential(
            nn.Conv2d(
                c_in,
                c_out,
                1,
                stride=stride,
                bias=False,
                init="he",
                rng=rng,
                dtype=dtype,
            ),
            nn.BatchNorm2d(c_out, dtype=dtype),
        )
    return nn.Sequential(nn.Residual(body, shortcut), nn.ReLU())


def resnet(
    blocks_per_stage: Sequence[int] = (2, 2, 2),
    widths: Sequence[int] = (16, 32, 64),
    num_classes: int = 10,
    in_channels: int = 1,
    skip: bool = True,
    seed: Any = None,
    dtype: Any = np.float32,
    input_grad: bool = True,
) -> nn.Sequential:
    """x (N, in_channels, H, W) -> logits (N, num_classes).

    stem (conv 3×3 – BN – ReLU) – stages of basic blocks (every stage after the
    first starts with stride 2) – global average pool – linear. Depth is
    2·sum(blocks_per_stage) + 2 weight layers (ResNet-14 by default).
    ``skip=False`` gives the plain twin.
    """
    if len(blocks_per_stage) != len(widths):
        raise ValueError(
            f"resnet: blocks_per_stage {tuple(blocks_per_stage)} and widths "
            f"{tuple(widths)} must have the same length"
        )
    rng = nn.init.generator(seed) if seed is not None else None
    parts: dict[str, nn.Module] = {
        "stem": nn.Sequential(
            *_conv_bn(in_channels, widths[0], 1, rng, dtype, input_grad), nn.ReLU()
        ),
    }
    c = widths[0]
    for i, (n, w) in enumerate(zip(blocks_per_stage, widths, strict=True)):
        stage = []
        for j in range(n):
            stride = 2 if (i > 0 and j == 0) else 1
            stage.append(_block(c, w, stride, skip, rng, dtype))
            c = w
        parts[f"layer{i + 1}"] = nn.Sequential(*stage)
    parts["pool"] = nn.GlobalAvgPool2d()
    parts["fc"] = nn.Linear(c, num_classes, rng=rng, dtype=dtype)
    return nn.Sequential(parts)


def plainnet(**kwargs: Any) -> nn.Sequential:
    """:func:`resnet` without skip connections (same layers otherwise)."""
    return resnet(skip=False, **kwargs)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet5": lenet5,
    "plainnet": plainnet,
    "resnet": resnet,
    "vgg": vgg,
}


def get_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model by name; ``kwargs`` go to its builder.

    The model remembers how it was built in ``model.config`` (used by
    checkpoints and the command line).
    """
    if name not in MODELS:
        raise ValueError(
            f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}"
        )
    model = MODELS[name](**kwargs)
    model.config = {"name": name, "kwargs": kwargs}
    return model
