"""Layers: thin stateful wrappers over :mod:`cnnbook.functional`.

Notation: x (N, C, H, W) for images, (N, D) for vectors. Each layer records
the ``cache`` of a forward pass on its tape (``self._save``) and its backward
takes it back (``self._saved()``): see :mod:`cnnbook.nn.module`.
Parameters are created on the configured default backend, float32 unless
``dtype`` says otherwise, from a seeded generator (``rng``: a seed, a NumPy
Generator, or None for :func:`cnnbook.nn.init.manual_seed`'s global one).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from cnnbook import backend as B
from cnnbook import functional as F
from cnnbook.functional import _checks
from cnnbook.functional import _fast as fast
from cnnbook.functional.conv import resolve_padding
from cnnbook.nn.init import generator, weights
from cnnbook.nn.module import Module, Parameter

__all__ = [
    "ELU",
    "GELU",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2d",
    "GroupNorm",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "ReLU",
    "SiLU",
    "Sigmoid",
    "Tanh",
]


def _param(host: np.ndarray, dtype: Any) -> Parameter:
    return Parameter(B.asarray(host, dtype=dtype))


def _check_array(layer: Module, x: Any, what: str) -> None:
    """``x`` must be an array (None, lists and strings are refused)."""
    if x is None or isinstance(x, (list, tuple, str, bytes, int, float, complex)):
        raise TypeError(
            f"{type(layer).__name__}: input must be an array{' ' if what else ''}"
            f"{what}, got "
            f"{type(x).__name__}; convert lists with numpy.asarray(..., "
            "dtype=numpy.float32)"
        )
    B.namespace(type(layer).__name__, x=x)  # any other non-array: TypeError


def _check_input(layer: Module, x: Any, ndim: int, axis: int, size: int, what: str):
    _check_array(layer, x, what)
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) != ndim or shape[axis] != size:
        raise ValueError(f"{layer!r} expects input {what}, got shape {shape}")


def _check_sizes(layer: str, **sizes: Any) -> None:
    """Each size a positive int (channels, features, kernel sides); NumPy
    integers count as ints."""
    for name, value in sizes.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Integral)
            or value < 1
        ):
            raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")


def _check_real(layer: str, name: str, value: Any, low: float, high: float) -> float:
    """A real number in [low, high] as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{layer}: {name} must be a real number, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and low <= v <= high):
        raise ValueError(
            f"{layer}: {name} must be in [{low:g}, {high:g}], got {value!r}"
        )
    return v


def _check_groups(layer: str, groups: Any, in_channels: int, out_channels: int):
    """``groups`` a positive int that divides both channel counts."""
    _check_sizes(layer, groups=groups)
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{layer}: groups={groups} must divide in_channels={in_channels} "
            f"and out_channels={out_channels}"
        )


class _Weighted(Module):
    """A layer with a ``weight`` and an optional ``bias`` (Linear, Conv2d,
    ConvTranspose2d): the functional pair ``_forward_op(x, w, b, *settings)``
    / ``_backward_op(dy, cache)``, defined by each, called with the layer's
    settings ``self._settings()``."""

    def _settings(self) -> tuple:
        return ()

    def _run(self, x):
        """The forward pass of a checked x."""
        b = self.bias.data if self.bias is not None else None
        y, cache = self._forward_op(x, self.weight.data, b, *self._settings())
        self._save(cache)
        return y

    def _backward(self, dy):
        dx, dw, db = self._backward_op(dy, self._saved())
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx


class _Conv(_Weighted):
    """What :class:`Conv2d` and :class:`ConvTranspose2d` share: an input
    (N, in_channels, H, W), and a repr listing the settings ``_repr_defaults``
    whose values differ from their defaults."""

    _repr_defaults: tuple[tuple[str, Any], ...] = ()

    def forward(self, x):
        _check_input(self, x, 4, 1, self.in_channels, f"(N, {self.in_channels}, H, W)")
        return self._run(x)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        for name, default in (*self._repr_defaults, ("groups", 1)):
            value = getattr(self, name)
            if value != default:
                s += (
                    f", {name}={value!r}"
                    if isinstance(value, str)
                    else (f", {name}={value}")
                )
        return s + ("" if self.bias is not None else ", bias=False")


class Conv2d(_Conv):
    """x (N, C_in, H, W) -> (N, C_out, OH, OW),
    OH = (H + 2p − d·(KH − 1) − 1) // s + 1.

    weight (C_out, C_in/groups, KH, KW), bias (C_out,), as PyTorch's
    ``nn.Conv2d``: ``stride``, ``padding`` (int, pair, (top, bottom, left,
    right), "valid" or "same"), ``dilation`` and ``groups`` (depthwise:
    groups = C_in).
    Computes :func:`cnnbook.functional.conv2d_forward` and its backward pass
    with the fast kernels of ``cnnbook.functional._fast``.

    ``input_grad=False`` (an argument, and an attribute you may set later)
    says that nothing needs the gradient of this layer's input, as PyTorch's
    ``requires_grad=False`` says of a tensor: the first layer, whose input is
    data. ``backward`` then returns None and skips the most expensive of its
    three products. The models of :mod:`cnnbook.models` take the same argument
    for their first layer; :func:`cnnbook.recipes.train_recipe` passes False.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: Any = 0,
        bias: bool = True,
        init: str = "default",
        rng: Any = None,
        dtype: Any = np.float32,
        input_grad: bool = True,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
    ):
        super().__init__()
        if isinstance(kernel_size, numbers.Integral):
            kernel_size = (kernel_size, kernel_size)
        if not isinstance(kernel_size, (tuple, list)) or len(kernel_size) != 2:
            raise ValueError(
                f"Conv2d: kernel_size must be an int or a pair, got {kernel_size!r}"
            )
        kh, kw = kernel_size
        _check_sizes(
            "Conv2d",
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_height=kh,
            kernel_width=kw,
        )
        in_channels, out_channels, kh, kw = map(
            int, (in_channels, out_channels, kh, kw)
        )
        _check_groups("Conv2d", groups, in_channels, out_channels)
        stride_pair = _checks.pair("Conv2d", "stride", stride, 1)
        dilation_pair = _checks.pair("Conv2d", "dilation", dilation, 1)
        resolve_padding("Conv2d", padding, (kh, kw), dilation_pair, (1, 1))
        if isinstance(padding, str) and padding == "same" and stride_pair != (1, 1):
            raise ValueError(f"Conv2d: padding='same' needs stride 1, got {stride!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), stride, padding
        self.dilation, self.groups = dilation, int(groups)
        shape = (out_channels, in_channels // self.groups, kh, kw)
        w, b = weights(shape, bias, init, rng)
        self.weight = _param(w, dtype)
        self.bias = _param(b, dtype) if bias else None
        self.input_grad = bool(input_grad)

    _repr_defaults = (("stride", 1), ("padding", 0), ("dilation", 1))

    def _settings(self):
        return self.stride, self.padding, self.dilation, self.groups

    def _forward_op(self, x, w, b, *settings):
        return fast.conv2d_forward(x, w, b, *settings)

    def _backward_op(self, dy, cache):
        return fast.conv2d_backward(dy, cache, self.input_grad)

    def extra_repr(self):
        s = super().extra_repr()
        return s + ("" if self.input_grad else ", input_grad=False")


class ConvTranspose2d(_Conv):
    """x (N, C_in, H, W) -> (N, C_out, OH, OW),
    OH = (H − 1)·s − 2p + d·(KH − 1) + output_padding + 1: the adjoint of a
    convolution (an upsampling layer). weight (C_in, C_out/groups, KH, KW),
    bias (C_out,), initialised as PyTorch's ``nn.ConvTranspose2d`` (fan-in
    from C_out/groups·KH·KW). ``groups`` splits the channels as in
    :class:`Conv2d`: group g maps its C_in/groups input channels to its
    C_out/groups output channels."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        bias: bool = True,
        dilation: Any = 1,
        rng: Any = None,
        dtype: Any = np.float32,
        groups: int = 1,
    ):
        super().__init__()
        kh, kw = _checks.pair("ConvTranspose2d", "kernel_size", kernel_size, 1)
        _check_sizes(
            "ConvTranspose2d", in_channels=in_channels, out_channels=out_channels
        )
        _check_groups("ConvTranspose2d", groups, in_channels, out_channels)
        for name, v, least in (
            ("stride", stride, 1),
            ("padding", padding, 0),
            ("output_padding", output_padding, 0),
            ("dilation", dilation, 1),
        ):
            _checks.pair("ConvTranspose2d", name, v, least)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = (kh, kw), stride, padding
        self.output_padding, self.dilation = output_padding, dilation
        self.groups = int(groups)
        # PyTorch's default: uniform ±1/√fan_in with fan_in = weight.shape[1]·KH·KW
        gen = generator(rng)
        c_out_g = self.out_channels // self.groups
        w, _ = weights((in_channels, c_out_g, kh, kw), False, "default", gen)
        bound = 1 / math.sqrt(c_out_g * kh * kw)
        self.weight = _param(w, dtype)
        self.bias = (
            _param(gen.uniform(-bound, bound, out_channels), dtype) if bias else None
        )

    _repr_defaults = (
        ("stride", 1),
        ("padding", 0),
        ("output_padding", 0),
        ("dilation", 1),
    )

    def _settings(self):
        p, op, d = self.padding, self.output_padding, self.dilation
        return self.stride, p, op, d, self.groups

    def _forward_op(self, x, w, b, *settings):
        return F.conv_transpose2d_forward(x, w, b, *settings)

    def _backward_op(self, dy, cache):
        return F.conv_transpose2d_backward(dy, cache)


class Linear(_Weighted):
    """x (…, in_features) -> (…, out_features); y = x Wᵀ + b, W (out, in).
    Any number of leading dimensions, as PyTorch's."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: str = "default",
        rng: Any = None,
        dtype: Any = np.float32,
    ):
        super().__init__()
        _check_sizes("Linear", in_features=in_features, out_features=out_features)
        in_features, out_features = int(in_features), int(out_features)
        self.in_features, self.out_features = in_features, out_features
        w, b = weights((out_features, in_features), bias, init, rng)
        self.weight = _param(w, dtype)
        self.bias = _param(b, dtype) if bias else None

    def forward(self, x):
        _check_array(self, x, f"(..., {self.in_features})")
        shape = tuple(x.shape)
        if not shape or shape[-1] != self.in_features:
            raise ValueError(
                f"{self!r} expects input (N, {self.in_features}) or "
                f"(..., {self.in_features}), got shape {shape}"
            )
        return self._run(x)

    def _forward_op(self, x, w, b):
        return F.linear_forward(x, w, b)

    def _backward_op(self, dy, cache):
        return F.linear_backward(dy, cache)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}" + (
            "" if self.bias is not None else ", bias=False"
        )


class _Stateless(Module):
    """A layer without parameters: the functional pair ``forward_op`` /
    ``backward_op`` (set by each subclass), called with the layer's settings
    ``self._settings()`` after the input."""

    forward_op: Any = None
    backward_op: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            given = ", ".join(
                [*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())]
            )
            raise TypeError(f"{type(self).__name__}: takes no arguments, got ({given})")
        super().__init__()

    def _settings(self) -> tuple:
        return ()

    def forward(self, x):
        _check_array(self, x, "")
        y, cache = type(self).forward_op(x, *self._settings())
        self._save(cache)
        return y

    def _backward(self, dy):
        return type(self).backward_op(dy, self._saved())


class _Pool(_Stateless):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        op = type(self).__name__
        _checks.pair(op, "kernel_size", kernel_size, 1)
        if stride is not None:
            _checks.pair(op, "stride", stride, 1)
        _checks.pair(op, "padding", padding, 0)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode = bool(ceil_mode)

    def extra_repr(self):
        stride = self.kernel_size if self.stride is None else self.stride
        s = f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}"
        return s + (", ceil_mode=True" if self.ceil_mode else "")


class MaxPool2d(_Pool):
    """x (N, C, H, W) -> (N, C, OH, OW): the maximum of each window
    (:func:`cnnbook.functional.max_pool2d_forward`, run by the fast kernel).
    ``dilation`` and ``ceil_mode`` as PyTorch's; with ``return_indices`` the
    layer returns (y, indices) and its backward takes dy."""

    forward_op = staticmethod(fast.max_pool2d_forward)
    backward_op = staticmethod(fast.max_pool2d_backward)

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        return_indices=False,
        ceil_mode=False,
    ):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        _checks.pair("MaxPool2d", "dilation", dilation, 1)
        self.dilation, self.return_indices = dilation, bool(return_indices)

    def _settings(self):
        k, s, p = self.kernel_size, self.stride, self.padding
        return k, s, p, self.dilation, self.ceil_mode

    def forward(self, x):
        _check_array(self, x, "(N, C, H, W)")
        y, cache = fast.max_pool2d_forward(x, *self._settings())
        self._save(cache)
        if not self.return_indices:
            return y
        if isinstance(cache, fast.PairwiseCache):  # the reference's cache
            cache = F.max_pool2d_forward(x, *self._settings())[1]
        return y, F.max_pool2d_indices(cache)

    def extra_repr(self):
        s = super().extra_repr()
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        return s + (", return_indices=True" if self.return_indices else "")


class AvgPool2d(_Pool):
    """x (N, C, H, W) -> (N, C, OH, OW): the mean of each window;
    ``ceil_mode`` and ``count_include_pad`` as PyTorch's."""

    forward_op = staticmethod(F.avg_pool2d_forward)
    backward_op = staticmethod(F.avg_pool2d_backward)

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode=False,
        count_include_pad=True,
    ):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def _settings(self):
        k, s, p = self.kernel_size, self.stride, self.padding
        return k, s, p, self.ceil_mode, self.count_include_pad

    def extra_repr(self):
        s = super().extra_repr()
        return s + ("" if self.count_include_pad else ", count_include_pad=False")


class AdaptiveAvgPool2d(_Stateless):
    """x (N, C, H, W) -> (N, C, OH, OW) for a fixed ``output_size``: the mean
    over PyTorch's adaptive bins (``(1, 1)``: a global pool keeping dims)."""

    forward_op = staticmethod(F.adaptive_avg_pool2d_forward)
    backward_op = staticmethod(F.adaptive_avg_pool2d_backward)

    def __init__(self, output_size):
        super().__init__()
        _checks.pair("AdaptiveAvgPool2d", "output_size", output_size, 1)
        self.output_size = output_size

    def _settings(self):
        return (self.output_size,)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class GlobalAvgPool2d(_Stateless):
    """x (N, C, H, W) -> (N, C) (or (N, C, 1, 1) with ``keepdim=True``): the
    mean over each channel's H·W values."""

    forward_op = staticmethod(F.global_avg_pool2d_forward)
    backward_op = staticmethod(F.global_avg_pool2d_backward)

    def __init__(self, *, keepdim: bool = False):
        super().__init__()
        if not isinstance(keepdim, bool):
            raise TypeError(f"GlobalAvgPool2d: keepdim must be a bool, got {keepdim!r}")
        self.keepdim = keepdim

    def _settings(self):
        return (self.keepdim,)

    def extra_repr(self):
        return "keepdim=True" if self.keepdim else ""


def _stateless(name: str, forward: Any, backward: Any, doc: str) -> type[_Stateless]:
    """A parameter-free layer class computing the functional pair."""
    namespace = {"__doc__": doc, "__module__": __name__}
    namespace.update(
        forward_op=staticmethod(forward), backward_op=staticmethod(backward)
    )
    return type(name, (_Stateless,), namespace)


ReLU = _stateless(
    "ReLU", F.relu_forward, F.relu_backward, "y = max(x, 0), elementwise."
)
Sigmoid = _stateless(
    "Sigmoid",
    F.sigmoid_forward,
    F.sigmoid_backward,
    "y = 1 / (1 + e^(−x)), elementwise.",
)
Tanh = _stateless("Tanh", F.tanh_forward, F.tanh_backward, "y = tanh x, elementwise.")


class LeakyReLU(_Stateless):
    """y = x for x > 0, negative_slope · x otherwise."""

    forward_op = staticmethod(F.leaky_relu_forward)
    backward_op = staticmethod(F.leaky_relu_backward)

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = _check_real(
            "LeakyReLU", "negative_slope", negative_slope, -math.inf, math.inf
        )

    def _settings(self):
        return (self.negative_slope,)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class GELU(_Stateless):
    """y = x·Φ(x) (exact, PyTorch's default), or the tanh form with
    ``approximate="tanh"``."""

    forward_op = staticmethod(F.gelu_forward)
    backward_op = staticmethod(F.gelu_backward)

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(
                f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}"
            )
        self.approximate = approximate

    def _settings(self):
        return (self.approximate,)

    def extra_repr(self):
        return "" if self.approximate == "none" else "approximate='tanh'"


class ELU(_Stateless):
    """y = x for x > 0, α(eˣ − 1) otherwise."""

    forward_op = staticmethod(F.elu_forward)
    backward_op = staticmethod(F.elu_backward)

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = _check_real("ELU", "alpha", alpha, 0.0, math.inf)

    def _settings(self):
        return (self.alpha,)

    def extra_repr(self):
        return f"alpha={self.alpha}"


SiLU = _stateless(
    "SiLU", F.silu_forward, F.silu_backward, "y = x·σ(x) (sigmoid-weighted linear)."
)


class Flatten(Module):
    """x (N, d1, d2, …) -> (N, d1·d2·…): dims start_dim … end_dim become one,
    as PyTorch's ``nn.Flatten(start_dim=1, end_dim=-1)``."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        for name, v in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"Flatten: {name} must be an int, got {v!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x):
        _check_array(self, x, "(N, d1, d2, …)")
        shape = tuple(x.shape)
        n = len(shape)
        start = self.start_dim + n if self.start_dim < 0 else self.start_dim
        end = self.end_dim + n if self.end_dim < 0 else self.end_dim
        if not (0 <= start < max(n, 1) and 0 <= end < max(n, 1)) or start > end:
            raise ValueError(
                f"Flatten: start_dim={self.start_dim}, end_dim={self.end_dim} do "
                f"not fit input of shape {shape} ({n}-D)"
            )
        xp = B.namespace("Flatten", x=x)
        self._save(shape)
        merged = math.prod(shape[start : end + 1])  # not -1: N = 0 is allowed
        return xp.reshape(x, (*shape[:start], merged, *shape[end + 1 :]))

    def _backward(self, dy):
        xp = B.namespace("Flatten.backward", dy=dy)
        return xp.reshape(dy, self._saved())

    def extra_repr(self):
        if (self.start_dim, self.end_dim) == (1, -1):
            return ""
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class _BatchNorm(Module):
    _ndims: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        dtype: Any = np.float32,
    ):
        super().__init__()
        name = type(self).__name__
        _check_sizes(name, num_features=num_features)
        num_features = int(num_features)
        eps = _check_real(name, "eps", eps, 0.0, math.inf)
        if eps == 0:
            raise ValueError(f"{name}: eps must be > 0, got {eps!r}")
        momentum = _check_real(name, "momentum", momentum, 0.0, 1.0)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = _param(np.ones(num_features), dtype)
        self.bias = _param(np.zeros(num_features), dtype)
        self.register_buffer(
            "running_mean", B.asarray(np.zeros(num_features), dtype=dtype)
        )
        self.register_buffer(
            "running_var", B.asarray(np.ones(num_features), dtype=dtype)
        )
        self.register_buffer("num_batches_tracked", B.asarray(np.int64(0)))

    def forward(self, x):
        _check_array(self, x, "")
        C = self.num_features
        shape = tuple(getattr(x, "shape", ()))
        if len(shape) not in self._ndims or shape[1] != C:
            layouts = {2: f"(N, {C})", 3: f"(N, {C}, L)", 4: f"(N, {C}, H, W)"}
            want = " or ".join(layouts[n] for n in self._ndims)
            raise ValueError(f"{self!r} expects input {want}, got shape {shape}")
        y, cache = fast.batch_norm_forward(
            x,
            self.weight.data,
            self.bias.data,
            self.running_mean,
            self.running_var,
            self.training,
            self.momentum,
            self.eps,
        )
        self._save(cache)
        if self.training:
            self.num_batches_tracked = self.num_batches_tracked + 1
        return y

    def _backward(self, dy):
        dx, dgamma, dbeta = fast.batch_norm_backward(dy, self._saved())
        self.weight.accumulate(dgamma)
        self.bias.accumulate(dbeta)
        return dx

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """x (N, C) or (N, C, L) -> same, normalised per feature over N (and L);
    weight γ, bias β (C,). The running variance is the unbiased one, as in
    PyTorch (CS231n, d2l and ONNX keep the biased one)."""

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """x (N, C, H, W) -> same, normalised per channel over N, H, W."""

    _ndims = (4,)


class _AffineNorm(Module):
    """Layer and group norm: a per-sample normalisation, then an optional learned
    scale and shift. Subclasses name their functional pair and check their
    input."""

    _norm_forward = None  # F.layer_norm_forward or F.group_norm_forward
    _norm_backward = None  # F.layer_norm_backward or F.group_norm_backward

    def _affine(self) -> tuple[Any, Any]:
        """(weight, bias) arrays, or (None, None) without the affine part."""
        if self.weight is None:
            return None, None
        return self.weight.data, self.bias.data

    def _normalize(self, x, setting):
        """The forward pass of a checked x; ``setting``: normalized_shape or
        num_groups."""
        w, b = self._affine()
        y, cache = type(self)._norm_forward(x, setting, w, b, self.eps)
        self._save(cache)
        return y

    def _backward(self, dy):
        dx, dw, db = type(self)._norm_backward(dy, self._saved())
        if self.weight is not None:
            self.weight.accumulate(dw)
            self.bias.accumulate(db)
        return dx


class LayerNorm(_AffineNorm):
    """``x (…, *normalized_shape)`` -> same, each sample normalised over its last
    axes; weight (ones) and bias (zeros) of normalized_shape when
    ``elementwise_affine``. As PyTorch's ``nn.LayerNorm``."""

    _norm_forward = staticmethod(F.layer_norm_forward)
    _norm_backward = staticmethod(F.layer_norm_backward)

    def __init__(
        self,
        normalized_shape: Any,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        dtype: Any = np.float32,
    ):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        ns = tuple(normalized_shape)
        _check_sizes(
            "LayerNorm", **{f"normalized_shape[{i}]": n for i, n in enumerate(ns)}
        )
        self.normalized_shape = tuple(int(n) for n in ns)
        self.eps = _check_real("LayerNorm", "eps", eps, 0.0, math.inf)
        self.weight = (
            _param(np.ones(self.normalized_shape), dtype)
            if elementwise_affine
            else None
        )
        self.bias = (
            _param(np.zeros(self.normalized_shape), dtype)
            if elementwise_affine
            else None
        )

    def forward(self, x):
        _check_array(self, x, f"(..., {', '.join(map(str, self.normalized_shape))})")
        return self._normalize(x, self.normalized_shape)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}" + (
            "" if self.weight is not None else ", elementwise_affine=False"
        )


class GroupNorm(_AffineNorm):
    """``x (N, C, *)`` -> same: the channels in ``num_groups`` groups, each
    normalised per sample; weight, bias (C,) when ``affine``. As PyTorch's."""

    _norm_forward = staticmethod(F.group_norm_forward)
    _norm_backward = staticmethod(F.group_norm_backward)

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        dtype: Any = np.float32,
    ):
        super().__init__()
        _check_sizes("GroupNorm", num_groups=num_groups, num_channels=num_channels)
        if num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: num_groups {num_groups} must divide num_channels "
                f"{num_channels}"
            )
        self.num_groups, self.num_channels = int(num_groups), int(num_channels)
        self.eps = _check_real("GroupNorm", "eps", eps, 0.0, math.inf)
        C = self.num_channels
        self.weight = _param(np.ones(C), dtype) if affine else None
        self.bias = _param(np.zeros(C), dtype) if affine else None

    def forward(self, x):
        _check_array(self, x, f"(N, {self.num_channels}, ...)")
        shape = tuple(x.shape)
        if len(shape) < 2 or shape[1] != self.num_channels:
            raise ValueError(
                f"{self!r} expects input (N, {self.num_channels}, ...), got shape "
                f"{shape}"
            )
        return self._normalize(x, self.num_groups)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}" + (
            "" if self.weight is not None else ", affine=False"
        )


class Dropout(Module):
    """Inverted dropout: in training zero each value with probability p and
    scale the rest by 1/(1 − p); the identity in evaluation."""

    def __init__(self, p: float = 0.5, rng: Any = None):
        super().__init__()
        self.p = _check_real("Dropout", "p", p, 0.0, 1.0)
        self.rng = np.random.default_rng(generator(rng).integers(1 << 62))

    def forward(self, x):
        _check_array(self, x, "")
        y, cache = F.dropout_forward(x, self.p, self.training, self.rng)
        self._save(cache)
        return y

    def _backward(self, dy):
        return F.dropout_backward(dy, self._saved())

    def extra_repr(self):
        return f"p={self.p}"
