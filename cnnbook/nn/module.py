"""``Parameter`` and ``Module``: the bookkeeping every layer shares.

A module owns parameters (learned, with gradients), buffers (state such as
batch norm's running statistics) and sub-modules, all registered by assigning
attributes, as in PyTorch. ``forward(x)`` computes and keeps what backward
needs; ``_backward(dy) -> dx`` returns the input gradient and *adds* parameter
gradients into ``param.grad`` (call ``zero_grad()`` between steps). Callers
use ``module(x)`` and ``module.backward(dy)``, which run the hooks around
``forward`` and ``_backward``.

Each forward pass that may be gone back through records its cache on a
per-module tape (``self._save(cache)``); a backward takes the entries back
last-in, first-out (``self._saved()``). So a module used twice in one forward
pass (one ``ReLU`` after two convolutions) gets correct gradients, provided
backward visits the modules in the reverse order of forward, as the
containers do. A second ``backward`` (from the top) goes through the same
pass again and adds to ``grad`` once more. Two rules keep a gradient from
ever being silently wrong:

- A forward pass on a new input (a new call of the top-level model) before
  backward went through the previous one makes the next ``backward`` raise
  :class:`StaleForwardError`: it cannot know which pass ``dy`` belongs to.
  Run forward passes that need no gradient (validation losses, plots) under
  :func:`no_grad`, as :func:`cnnbook.train.evaluate` and ``predict`` do, or
  call :meth:`Module.clear_cache` to drop the unfinished pass on purpose.
- Under :func:`no_grad` nothing is recorded, and a backward raises.

Evaluation mode (``model.eval()``) still records, as in PyTorch, so a
saliency map can go back through a model in evaluation mode.

Hooks let a chapter watch a network: ``register_forward_hook(fn)`` calls
``fn(module, x, y)`` after each forward and ``register_backward_hook(fn)``
calls ``fn(module, dy, dx)`` after each backward; :class:`Recorder` uses them
to collect activations and gradient norms by layer name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from cnnbook import backend as B

__all__ = [
    "Module",
    "Parameter",
    "Recorder",
    "StaleForwardError",
    "is_grad_enabled",
    "no_grad",
]


class _State:
    """Whether forward passes record (``grad``), how deep the current chain
    of ``Module.__call__`` is, and the id of the current top-level pass."""

    grad = True
    depth = 0
    pass_id = 0
    backward_depth = 0


_STATE = _State()


class no_grad:
    """Context manager (or decorator): forward passes inside record no cache.

    >>> import numpy as np
    >>> from cnnbook.nn import ReLU
    >>> relu = ReLU()
    >>> with no_grad():
    ...     y = relu(np.ones(3))
    >>> relu.backward(np.ones(3))
    Traceback (most recent call last):
    ...
    RuntimeError: ReLU.backward: no forward pass to go back through ...
    """

    def __enter__(self) -> no_grad:
        self._previous = _STATE.grad
        _STATE.grad = False
        return self

    def __exit__(self, *exc: Any) -> None:
        _STATE.grad = self._previous

    def __call__(self, fn: Callable) -> Callable:
        import functools

        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return fn(*args, **kwargs)

        return wrapped


def is_grad_enabled() -> bool:
    """False inside :class:`no_grad`."""
    return _STATE.grad


class StaleForwardError(RuntimeError):
    """backward was called after a second forward pass whose predecessor was
    never gone back through: which pass dy belongs to is unknowable."""


class Parameter:
    """A learned array ``data`` and its gradient ``grad`` (None until backward)."""

    def __init__(self, data: Any):
        self.data = data
        self.grad: Any = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    def accumulate(self, grad: Any) -> None:
        """self.grad ← self.grad + grad (← grad the first time)."""
        self.grad = grad if self.grad is None else self.grad + grad

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` returns, as PyTorch's does."""

    missing_keys: list[str]
    unexpected_keys: list[str]

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return (
            f"IncompatibleKeys(missing_keys={self.missing_keys}, "
            f"unexpected_keys={self.unexpected_keys})"
        )


class _Handle:
    """Returned by ``register_*_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: dict, key: int):
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)


_hook_ids = iter(range(1 << 62))


class Module:
    """Base class. A subclass calls ``super().__init__()`` first, sets its
    parameters and sub-modules as attributes, and implements ``forward(x)``
    and ``_backward(dy)``; callers use ``module(x)`` and ``module.backward(dy)``,
    which run the hooks around them.

    >>> from cnnbook.nn import Linear
    >>> layer = Linear(3, 2, rng=0)
    >>> [name for name, _ in layer.named_parameters()]
    ['weight', 'bias']
    """

    def __init__(self) -> None:
        d = self.__dict__
        d["_parameters"], d["_buffers"], d["_modules"] = {}, {}, {}
        d["_forward_hooks"], d["_backward_hooks"] = {}, {}
        d["training"] = True
        d["_tape"], d["_stale"], d["_cursor"], d["_low"] = [], False, 0, 0

    # -- registration --------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before setting "
                f"attributes (here {name!r})"
            )
        if isinstance(value, (Parameter, Module)):
            d["_buffers"].pop(name, None)
        d["_parameters"].pop(name, None)
        d["_modules"].pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: Any) -> None:
        """Keep ``value`` (an array) as state: saved, moved, not learned."""
        self._buffers[name] = True
        object.__setattr__(self, name, value)

    # -- forward, backward, hooks ---------------------------------------------
    def forward(self, x: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def _backward(self, dy: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}._backward")

    def __call__(self, x: Any) -> Any:
        """y = forward(x), then each forward hook ``fn(module, x, y)``.

        A call from outside any module starts a new forward pass; if it
        fails, what it recorded is dropped.
        """
        top = _STATE.depth == 0
        if top:
            _STATE.pass_id += 1
        _STATE.depth += 1
        try:
            y = self.forward(x)
            for hook in list(self._forward_hooks.values()):
                hook(self, x, y)
        except BaseException:
            if top:
                self.clear_cache()
            raise
        finally:
            _STATE.depth -= 1
        return y

    def backward(self, dy: Any) -> Any:
        """dx = _backward(dy), then each backward hook ``fn(module, dy, dx)``.

        A :class:`StaleForwardError` drops every recorded pass of this module
        and its descendants, so the next forward and backward start clean.
        """
        if _STATE.backward_depth == 0:  # a new backward: rewind every tape
            for _, m in self.named_modules():
                d = m.__dict__
                d["_cursor"] = len(d.get("_tape", ()))
        _STATE.backward_depth += 1
        try:
            dx = self._backward(dy)
        except StaleForwardError:
            if _STATE.backward_depth == 1:
                self.clear_cache()
            raise
        finally:
            _STATE.backward_depth -= 1
        for hook in list(self._backward_hooks.values()):
            hook(self, dy, dx)
        return dx

    # -- the tape of forward passes -------------------------------------------
    def _save(self, cache: Any) -> None:
        """Record what backward needs (nothing under :class:`no_grad`).

        The first record of a new top-level pass drops the older pass's
        records; if backward never went through all of them, the next
        backward raises :class:`StaleForwardError`. A :class:`no_grad` pass
        drops only records backward has been through.
        """
        d = self.__dict__
        tape = d.setdefault("_tape", [])
        if tape and tape[-1][0] != _STATE.pass_id:
            unfinished = d.get("_low", 0) > 0
            if _STATE.grad or not unfinished:
                d["_stale"] = d.get("_stale", False) or unfinished
                tape.clear()
                d["_cursor"] = d["_low"] = 0
        if not _STATE.grad:
            return
        tape.append((_STATE.pass_id, cache))
        d["_cursor"] = d["_low"] = len(tape)

    def _saved(self) -> Any:
        """The cache of the latest recorded forward not yet gone back through
        in this backward pass (caches are taken back last-in, first-out)."""
        d = self.__dict__
        name = type(self).__name__
        if d.get("_stale"):
            raise StaleForwardError(
                f"{name}.backward: the model ran forward on a new input before "
                "backward went through the previous forward pass, so dy cannot "
                "be matched to a pass. Run forward passes that need no gradient "
                "under cnnbook.nn.no_grad() (or evaluate/predict), or call "
                "model.clear_cache() to drop an unfinished pass; then run "
                "forward and backward again"
            )
        cursor = d.get("_cursor", 0)
        if cursor == 0:
            raise RuntimeError(
                f"{name}.backward: no forward pass to go back through (none ran, "
                "it ran under no_grad(), or this backward already used every "
                "recorded use of the layer); call the layer on an input first"
            )
        d["_cursor"] = cursor - 1
        d["_low"] = min(d.get("_low", cursor), cursor - 1)
        return d["_tape"][cursor - 1][1]

    def clear_cache(self) -> Module:
        """Forget the recorded forward passes of this module and its
        descendants (what backward would use). Returns ``self``."""
        for _, m in self.named_modules():
            m.__dict__.update(_tape=[], _stale=False, _cursor=0, _low=0)
        return self

    def register_forward_hook(self, fn: Callable[[Module, Any, Any], None]) -> _Handle:
        """Call ``fn(module, x, y)`` after every forward; returns a handle."""
        key = next(_hook_ids)
        self._forward_hooks[key] = fn
        return _Handle(self._forward_hooks, key)

    def register_backward_hook(self, fn: Callable[[Module, Any, Any], None]) -> _Handle:
        """Call ``fn(module, dy, dx)`` after every backward; returns a handle."""
        key = next(_hook_ids)
        self._backward_hooks[key] = fn
        return _Handle(self._backward_hooks, key)

    # -- traversal -------------------------------------------------------------
    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module ("") and all descendants."""
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        """This module and all descendants, depth first."""
        for _, m in self.named_modules():
            yield m

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn(m)`` on every descendant, then on this module (as PyTorch:
        children first), e.g. to initialise weights; returns ``self``."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for mod_name, m in self.named_modules(prefix):
            for name, p in m._parameters.items():
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, Any]]:
        for mod_name, m in self.named_modules():
            for name in m._buffers:
                yield (f"{mod_name}.{name}" if mod_name else name), getattr(m, name)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget accumulated gradients: ``grad`` back to None, or to zeros
        with ``set_to_none=False``."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = p.grad * 0

    def train(self, mode: bool = True) -> Module:
        for _, m in self.named_modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def num_parameters(self) -> int:
        return sum(int(np.prod(p.shape)) for p in self.parameters())

    # -- placement -------------------------------------------------------------
    def to(self, backend_or_device: Any = None, dtype: Any = None) -> Module:
        """Move parameters and buffers to a backend ("numpy", "cupy", "strict")
        and/or cast floating arrays to ``dtype`` (e.g. ``numpy.float64``).

        Gradients are dropped. Returns ``self``.
        """
        if backend_or_device is not None and backend_or_device not in B.BACKENDS:
            raise ValueError(
                f"{type(self).__name__}.to: unknown backend {backend_or_device!r}; "
                f"choose one of {B.BACKENDS}"
            )
        name = backend_or_device

        def move(a: Any) -> Any:
            host_dtype = None
            if dtype is not None and B.numpy_dtype(a.dtype).kind == "f":
                host_dtype = dtype
            if name is None and host_dtype is None:
                return a
            if name is None:
                xp = B.namespace("Module.to", a=a)
                return B.asarray(a, xp, B.device_of(a), dtype=host_dtype)
            xp, dev = B.default_namespace(name), B.default_device(name)
            return B.asarray(a, xp, dev, dtype=host_dtype, copy=True)

        for _, m in self.named_modules():
            for p in m._parameters.values():
                p.data, p.grad = move(p.data), None
            for b in m._buffers:
                object.__setattr__(m, b, move(getattr(m, b)))
        return self

    # -- state -----------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and buffers as NumPy copies, keyed as PyTorch keys them."""
        out: dict[str, np.ndarray] = {}
        for mod_name, m in self.named_modules():
            for name, p in m._parameters.items():
                out[f"{mod_name}.{name}" if mod_name else name] = np.array(
                    B.to_numpy(p.data), copy=True
                )
            for name in m._buffers:
                out[f"{mod_name}.{name}" if mod_name else name] = np.array(
                    B.to_numpy(getattr(m, name)), copy=True
                )
        return out

    def load_state_dict(
        self, state: dict[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Copy arrays (of any backend, or anything ``numpy.asarray`` accepts,
        such as CPU torch tensors) into this module, keeping each parameter's
        backend, device and dtype. Everything is checked before anything is
        written; an array of another kind (integer or complex for a float
        parameter) is refused rather than cast.

        With ``strict=False`` missing and unexpected keys are allowed; either
        way the keys are returned as ``(missing_keys, unexpected_keys)``.
        """
        targets: dict[str, tuple[Module, str, bool]] = {}
        for mod_name, m in self.named_modules():
            for name in m._parameters:
                key = f"{mod_name}.{name}" if mod_name else name
                targets[key] = (m, name, True)
            for name in m._buffers:
                key = f"{mod_name}.{name}" if mod_name else name
                targets[key] = (m, name, False)
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(
                f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        staged = []
        for key, (m, name, is_param) in targets.items():
            if key not in state:
                continue
            current = m._parameters[name].data if is_param else getattr(m, name)
            value = B.to_numpy(state[key])  # device arrays refuse np.asarray
            want = B.numpy_dtype(current.dtype).kind
            if value.dtype.kind not in ("f" if want == "f" else "biu"):
                raise TypeError(
                    f"{type(self).__name__}.load_state_dict: {key} is {value.dtype} "
                    f"in the state but {B.numpy_dtype(current.dtype)} in the model; "
                    "refusing to cast (a state of the wrong kind is likely corrupt)"
                )
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {key} has shape "
                    f"{tuple(value.shape)} in the state but {tuple(current.shape)} "
                    "in the model"
                )
            xp = B.namespace("load_state_dict", a=current)
            staged.append(
                (
                    m,
                    name,
                    is_param,
                    B.asarray(
                        value, xp, B.device_of(current), dtype=current.dtype, copy=True
                    ),
                )
            )
        for m, name, is_param, arr in staged:
            if is_param:
                m._parameters[name].data, m._parameters[name].grad = arr, None
            else:
                object.__setattr__(m, name, arr)
        return IncompatibleKeys(missing, unexpected)

    # -- printing --------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        if not self._modules:
            return lines[0] + ")"
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return "\n".join(lines) + "\n)"

    def summary(self, input_shape: tuple[int, ...], dtype: Any = None) -> str:
        """A table of leaf layers: name, type, output shape, parameter count.

        ``input_shape`` includes the batch dimension, e.g. (1, 1, 28, 28). Runs
        one forward pass on zeros in evaluation mode.
        """
        rows: list[tuple[str, str, str, int]] = []
        handles = []
        for name, m in self.named_modules():
            if m._modules:
                continue

            def hook(mod: Module, x: Any, y: Any, name: str = name) -> None:
                n = sum(int(np.prod(p.shape)) for p in mod._parameters.values())
                rows.append((name, type(mod).__name__, str(tuple(y.shape)), n))

            handles.append(m.register_forward_hook(hook))
        was_training = self.training
        params = self.parameters()
        like = params[0].data if params else None
        if like is not None:
            xp = B.namespace("summary", a=like)
            x = B.asarray(
                np.zeros(input_shape), xp, B.device_of(like), dtype=dtype or like.dtype
            )
        else:
            x = B.asarray(np.zeros(input_shape), dtype=dtype or np.float32)
        try:
            self.eval()
            with no_grad():
                self(x)
        finally:
            self.train(was_training)
            for h in handles:
                h.remove()
        head = ("layer", "type", "output shape", "params")
        table = [head, *[(a, b, c, f"{d:,}") for a, b, c, d in rows]]
        widths = [max(len(r[i]) for r in table) for i in range(4)]
        fmt = lambda r: "  ".join(  # noqa: E731
            r[i].ljust(widths[i]) if i < 3 else r[i].rjust(widths[i]) for i in range(4)
        )
        rule = "-" * len(fmt(head))
        total = f"total parameters: {self.num_parameters():,}"
        return "\n".join([fmt(head), rule, *map(fmt, table[1:]), rule, total])


class Recorder:
    """Record each leaf layer's activations and gradient norms by name.

    >>> from cnnbook.nn import Linear, ReLU, Sequential
    >>> import numpy as np
    >>> net = Sequential(Linear(3, 4, rng=0), ReLU(), Linear(4, 2, rng=1))
    >>> with Recorder(net) as rec:
    ...     y = net(np.ones((5, 3), dtype=np.float32))
    ...     dx = net.backward(np.ones((5, 2), dtype=np.float32))
    >>> sorted(rec.activations), rec.activations["0"].shape
    (['0', '1', '2'], (5, 4))
    >>> sorted(rec.grad_norms)
    ['0', '1', '2']

    ``activations[name]`` is a NumPy copy of the layer's last output;
    ``grad_norms[name]`` the L2 norm of the gradient arriving at its output
    (dy); ``param_grad_norms[name]`` those of its parameters after backward.
    """

    def __init__(self, model: Module, activations: bool = True):
        self.model, self.keep_activations = model, activations
        self.activations: dict[str, np.ndarray] = {}
        self.grad_norms: dict[str, float] = {}
        self.param_grad_norms: dict[str, float] = {}
        self._handles: list[_Handle] = []

    def __enter__(self) -> Recorder:
        for name, m in self.model.named_modules():
            if m._modules:
                continue
            self._handles.append(m.register_forward_hook(self._fw(name)))
            self._handles.append(m.register_backward_hook(self._bw(name)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _fw(self, name: str) -> Callable:
        def hook(m: Module, x: Any, y: Any) -> None:
            if self.keep_activations:
                self.activations[name] = np.array(B.to_numpy(y), copy=True)

        return hook

    def _bw(self, name: str) -> Callable:
        def hook(m: Module, dy: Any, dx: Any) -> None:
            xp = B.namespace("Recorder", dy=dy)
            self.grad_norms[name] = float(xp.sqrt(xp.sum(dy * dy)))
            for pname, p in m._parameters.items():
                if p.grad is not None:
                    key = f"{name}.{pname}" if name else pname
                    self.param_grad_norms[key] = float(xp.sqrt(xp.sum(p.grad * p.grad)))

        return hook
