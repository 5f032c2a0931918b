"""Layers with forward and backward passes, PyTorch names: ``cnnbook.nn``.

>>> import numpy as np
>>> from cnnbook import nn
>>> net = nn.Sequential(nn.Linear(4, 8, rng=0), nn.ReLU(), nn.Linear(8, 3, rng=1))
>>> x = np.ones((2, 4), dtype=np.float32)
>>> crit = nn.CrossEntropyLoss()
>>> loss = crit(net(x), np.array([0, 2]))
>>> dx = net.backward(crit.backward())
>>> net[0].weight.grad.shape
(8, 4)
"""

from cnnbook.nn import init
from cnnbook.nn.containers import Concat, Identity, ModuleList, Residual, Sequential
from cnnbook.nn.layers import (
    ELU,
    GELU,
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    GroupNorm,
    LayerNorm,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ReLU,
    Sigmoid,
    SiLU,
    Tanh,
)
from cnnbook.nn.losses import CrossEntropyLoss, MSELoss
from cnnbook.nn.module import (
    Module,
    Parameter,
    Recorder,
    StaleForwardError,
    is_grad_enabled,
    no_grad,
)

__all__ = [
    "ELU",
    "GELU",
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Concat",
    "Conv2d",
    "ConvTranspose2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2d",
    "GroupNorm",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "ModuleList",
    "Parameter",
    "ReLU",
    "Recorder",
    "Residual",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "StaleForwardError",
    "Tanh",
    "init",
    "is_grad_enabled",
    "no_grad",
]
