"""Argument checks shared by every operation: each message names the operation,
the argument and the offending shapes or values."""

from __future__ import annotations

from typing import Any

from cnnbook.backend import namespace


def pair(op: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints -> a pair, each at least ``minimum``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{op}: {name} must be an int or a pair, got {value!r}")
        result = tuple(value)
    else:
        result = (value, value)
    for v in result:
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise TypeError(f"{op}: {name} must be an int or a pair, got {value!r}")
        if v < minimum:
            kind = "positive" if minimum == 1 else "non-negative"
            raise ValueError(f"{op}: {name} must be {kind}, got {value!r}")
    return int(result[0]), int(result[1])


def output_size(
    op: str, size: int, kernel: int, stride: int, padding: int, dilation: int = 1
) -> int:
    """OUT = (size + 2·padding − dilation·(kernel − 1) − 1) // stride + 1, checked."""
    for name, value, minimum in (
        ("kernel size", kernel, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
        ("dilation", dilation, 1),
    ):
        if value < minimum:
            kind = "positive" if minimum == 1 else "non-negative"
            raise ValueError(f"{op}: {name} must be {kind}, got {value!r}")
    span = dilation * (kernel - 1) + 1
    if span > size + 2 * padding:
        raise ValueError(
            f"{op}: the kernel spans {span} pixels (kernel size {kernel}, dilation "
            f"{dilation}) but the padded input is only {size + 2 * padding} "
            f"({size} + 2·{padding}) along that axis"
        )
    return (size + 2 * padding - span) // stride + 1


_REAL_FLOATING: dict[Any, bool] = {}  # (type, dtype) -> isdtype(...)


def _real_floating(xp: Any, dtype: Any) -> bool:
    """``xp.isdtype(dtype, "real floating")``, remembered per dtype: the check
    runs on every argument of every operation (~5 µs each on NumPy). The key
    starts with the dtype's type, so dtypes of two libraries are never
    compared with each other."""
    key = (type(dtype), dtype)
    try:
        return _REAL_FLOATING[key]
    except KeyError:
        result = _REAL_FLOATING[key] = bool(xp.isdtype(dtype, "real floating"))
        return result
    except TypeError:  # an unhashable dtype
        return bool(xp.isdtype(dtype, "real floating"))


def float_inputs(op: str, **arrays: Any) -> Any:
    """The namespace of ``arrays``; each must be floating point, all one dtype.

    The first is required; later ones may be None (an optional bias).
    """
    first_name = next(iter(arrays))
    if arrays[first_name] is None:
        raise TypeError(
            f"{op}: {first_name} must be an array (NumPy, CuPy or array-API), got None"
        )
    xp = namespace(op, **arrays)
    dtype, first = None, None
    for name, a in arrays.items():
        if a is None:
            continue
        if not _real_floating(xp, a.dtype):
            raise TypeError(
                f"{op}: {name} must be a floating-point array (float32 or float64), "
                f"got {a.dtype}; convert with x.astype(float32)"
            )
        if dtype is None:
            dtype, first = a.dtype, name
        elif a.dtype != dtype:
            raise TypeError(
                f"{op}: {first} is {dtype} but {name} is {a.dtype}; "
                f"use one dtype (e.g. model.to(dtype=...))"
            )
    return xp


def ndim(op: str, name: str, a: Any, dims: tuple[int, ...], layout: str) -> None:
    """Require ``a.ndim`` in ``dims``; ``layout`` describes the expected axes."""
    if a.ndim not in dims:
        raise ValueError(
            f"{op}: {name} must be {layout}, got shape {tuple(a.shape)} ({a.ndim}-D)"
        )


def grad_shape(op: str, dy: Any, shape: tuple[int, ...]) -> None:
    """The upstream gradient must have the forward output's shape."""
    if tuple(dy.shape) != tuple(shape):
        raise ValueError(
            f"{op}: dy has shape {tuple(dy.shape)} but the forward output had "
            f"shape {tuple(shape)}"
        )


def axis(op: str, name: str, value: Any, ndim: int) -> int:
    """An axis of an ndim-D array (negative counts from the end)."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    if not -max(ndim, 1) <= value < max(ndim, 1):
        raise ValueError(f"{op}: {name}={value} is out of range for a {ndim}-D input")
    return int(value) % max(ndim, 1)


def conv_inputs(
    op: str, x: Any, w: Any, b: Any, groups: Any, x_layout: str, w_layout: str
) -> tuple[Any, int]:
    """The arrays of a (transposed) convolution -> (namespace, groups): x and w
    4-D floating point (laid out as ``x_layout``, ``w_layout`` say), b
    optional, groups a positive int."""
    xp = float_inputs(op, x=x, w=w, b=b)
    ndim(op, "x", x, (4,), x_layout)
    ndim(op, "w", w, (4,), w_layout)
    if isinstance(groups, bool) or not hasattr(groups, "__index__") or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    return xp, int(groups)


def channels(op: str, x: Any, w: Any, expected: int, layout: str) -> None:
    """x (N, C, H, W) must have the ``expected`` channels that w (described by
    ``layout``) takes."""
    if x.shape[1] != expected:
        raise ValueError(
            f"{op}: x has {x.shape[1]} channels (x shape {tuple(x.shape)}) but w "
            f"expects {expected} (w shape {tuple(w.shape)}, {layout})"
        )


def bias(op: str, b: Any, size: int, w: Any) -> None:
    """An optional bias b must have shape (size,), one value per filter of w."""
    if b is not None and tuple(b.shape) != (size,):
        raise ValueError(
            f"{op}: b must have shape ({size},) to match w {tuple(w.shape)}, "
            f"got {tuple(b.shape)}"
        )
