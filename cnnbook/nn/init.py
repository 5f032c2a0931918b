"""Weight initialisation from a seeded generator.

Notation: a weight of shape (F, C, KH, KW) (convolution) or (out, in) (dense
layer) has fan_in = C·KH·KW (or in) and fan_out = F·KH·KW (or out).

- He / Kaiming (He et al., 2015): Var(w) = gain² / fan, gain = √2 for ReLU;
  keeps activation variance constant through ReLU layers.
- Xavier / Glorot (Glorot & Bengio, 2010): Var(w) = gain² · 2 / (fan_in + fan_out).
- PyTorch's default for ``Conv2d`` and ``Linear``: weight and bias uniform on
  [−1/√fan_in, 1/√fan_in] (``kaiming_uniform_(a=√5)``).

Each function draws on the host from a NumPy generator (a seed or a
``numpy.random.Generator``) and returns a float64 NumPy array; the ``*_``
variants fill a :class:`~cnnbook.nn.Parameter` in place, keeping its backend,
device and dtype.

>>> w = kaiming_normal((64, 32, 3, 3), rng=0)
>>> round(float(w.std() * (32 * 9) ** 0.5), 1)   # ≈ √2
1.4
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnbook import backend as B
from cnnbook.nn.module import Parameter

__all__ = [
    "INITS",
    "calculate_gain",
    "fans",
    "generator",
    "kaiming_normal",
    "kaiming_normal_",
    "kaiming_uniform",
    "kaiming_uniform_",
    "manual_seed",
    "pytorch_default",
    "uniform",
    "weights",
    "xavier_normal",
    "xavier_normal_",
    "xavier_uniform",
    "xavier_uniform_",
]

_global = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Reseed the generator layers use when given no ``rng``."""
    global _global
    _global = np.random.default_rng(seed)


def generator(rng: Any = None) -> np.random.Generator:
    """A Generator from a seed, a Generator (returned as is) or None (global)."""
    if rng is None:
        return _global
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape ``(out, in, *kernel)``."""
    if len(shape) < 2:
        raise ValueError(f"fans: need a weight of ndim >= 2, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str = "relu", param: float | None = None) -> float:
    """PyTorch's gains: linear/sigmoid 1, tanh 5/3, relu √2, leaky_relu √(2/(1+a²))."""
    if nonlinearity in ("linear", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + a * a))
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def _fan(shape: tuple[int, ...], mode: str) -> int:
    fan_in, fan_out = fans(shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


def uniform(shape: tuple[int, ...], bound: float, rng: Any = None) -> np.ndarray:
    """U(−bound, bound) samples."""
    return generator(rng).uniform(-bound, bound, size=shape)


def kaiming_normal(shape, a=0.0, mode="fan_in", nonlinearity="relu", rng=None):
    """N(0, std²), std = gain / √fan, for a weight of ``shape``; ``a`` is the
    negative slope of a leaky ReLU, ``mode`` "fan_in" or "fan_out"."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode))
    return generator(rng).normal(0.0, std, size=shape)


def kaiming_uniform(shape, a=0.0, mode="fan_in", nonlinearity="relu", rng=None):
    """U(−b, b), b = gain · √(3 / fan): the variance of :func:`kaiming_normal`."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(shape, mode))
    return uniform(shape, bound, rng)


def xavier_uniform(
    shape: tuple[int, ...], gain: float = 1.0, rng: Any = None
) -> np.ndarray:
    """U(−b, b), b = gain · √(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    return uniform(shape, gain * math.sqrt(6.0 / (fan_in + fan_out)), rng)


def xavier_normal(
    shape: tuple[int, ...], gain: float = 1.0, rng: Any = None
) -> np.ndarray:
    """N(0, std²), std = gain · √(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return generator(rng).normal(0.0, std, size=shape)


def pytorch_default(
    weight_shape: tuple[int, ...], bias: bool = True, rng: Any = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(weight, bias) as PyTorch's Conv2d/Linear initialise them:
    U(−1/√fan_in, 1/√fan_in) for both."""
    gen = generator(rng)
    bound = 1.0 / math.sqrt(fans(weight_shape)[0])
    w = uniform(weight_shape, bound, gen)
    return w, (uniform((weight_shape[0],), bound, gen) if bias else None)


def _fill(param: Parameter, host: np.ndarray) -> Parameter:
    xp = B.namespace("init", a=param.data)
    param.data = B.asarray(host, xp, B.device_of(param.data), dtype=param.data.dtype)
    return param


def kaiming_normal_(param: Parameter, **kwargs: Any) -> Parameter:
    """Fill ``param`` with :func:`kaiming_normal` samples (same keywords)."""
    return _fill(param, kaiming_normal(param.shape, **kwargs))


def kaiming_uniform_(param: Parameter, **kwargs: Any) -> Parameter:
    """Fill ``param`` with :func:`kaiming_uniform` samples (same keywords)."""
    return _fill(param, kaiming_uniform(param.shape, **kwargs))


def xavier_uniform_(param: Parameter, **kwargs: Any) -> Parameter:
    """Fill ``param`` with :func:`xavier_uniform` samples (same keywords)."""
    return _fill(param, xavier_uniform(param.shape, **kwargs))


def xavier_normal_(param: Parameter, **kwargs: Any) -> Parameter:
    """Fill ``param`` with :func:`xavier_normal` samples (same keywords)."""
    return _fill(param, xavier_normal(param.shape, **kwargs))


#: The schemes a layer's ``init=`` argument names (see :func:`weights`).
INITS = ("default", "he", "xavier")


def weights(
    shape: tuple[int, ...],
    bias: bool,
    scheme: str = "default",
    rng: Any = None,
    nonlinearity: str = "relu",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Host (weight, bias or None) for a layer under the named scheme:
    ``"default"`` (:func:`pytorch_default`), ``"he"`` (:func:`kaiming_normal`,
    zero bias) or ``"xavier"`` (:func:`xavier_uniform`, zero bias)."""
    if scheme == "default":
        return pytorch_default(shape, bias, rng)
    if scheme == "he":
        w = kaiming_normal(shape, nonlinearity=nonlinearity, rng=rng)
    elif scheme == "xavier":
        w = xavier_uniform(shape, rng=rng)
    else:
        raise ValueError(f"unknown init {scheme!r}; choose one of {INITS}")
    return w, (np.zeros(shape[0]) if bias else None)
