"""Optimizers (SGD, Adam, AdamW, RMSprop, Adagrad) and learning-rate schedules,
with PyTorch's update rules exactly. ``params`` may be a list of parameters or
of groups (dicts with ``"params"`` and per-group settings such as ``"lr"``),
as in PyTorch; ``opt.lr = x`` sets every group's rate, while a schedule scales
each group from its own base rate.

Notation: parameter θ, gradient g = ∂L/∂θ, learning rate η, step t = 1, 2, …

SGD (momentum μ, dampening τ, weight decay λ)::

    g ← g + λθ;   b ← g (t = 1) else μb + (1 − τ)g;   g ← g + μb (Nesterov) else b
    θ ← θ − ηg

Adam (β₁, β₂, ε; L2 penalty λ added to g) and AdamW (decoupled: θ ← θ(1 − ηλ))::

    m ← β₁m + (1 − β₁)g;   v ← β₂v + (1 − β₂)g²
    θ ← θ − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)

The updates run in the parameters' own array namespace, on any backend.

>>> import numpy as np
>>> from cnnbook.nn import Parameter
>>> p = Parameter(np.array([1.0]))
>>> p.grad = np.array([0.5])
>>> opt = SGD([p], lr=0.1)
>>> opt.step()
>>> p.data
array([0.95])
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from cnnbook import backend as B
from cnnbook._signals import deferred_interrupt
from cnnbook.nn.module import Parameter

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "OneCycleLR",
    "Optimizer",
    "RMSprop",
    "StepLR",
    "make_optimizer",
    "make_scheduler",
]


class Optimizer:
    """Base class: holds the parameters, ``lr`` and per-parameter ``state``.

    ``state[i]`` holds parameter i's ``_slots`` (arrays of its shape, on its
    device) and ``_counters`` (host ints, such as Adam's step).
    """

    _hyper: tuple[str, ...] = ("lr",)
    _slots: tuple[str, ...] = ()
    _counters: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any], lr: float):
        name = type(self).__name__
        given = list(params)
        if given and all(isinstance(g, dict) for g in given):
            groups = [dict(g) for g in given]
        else:
            groups = [{"params": given}]
        for g in groups:
            if "params" not in g:
                raise ValueError(f"{name}: a parameter group needs a 'params' entry")
            g["params"] = list(g["params"])
        object.__setattr__(self, "param_groups", groups)
        object.__setattr__(self, "_current", None)
        self.params = [p for g in groups for p in g["params"]]
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"{type(self).__name__}: params[{i}] is a {type(p).__name__}, "
                    "not a Parameter (pass model.parameters())"
                )
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{name}: a parameter appears in two groups")
        lr = _hyper_value(name, "lr", lr)
        for g in groups:
            g["lr"] = _hyper_value(name, "lr", g.get("lr", lr))
        self.step_count = 0
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    # -- hyper-parameters live in the groups --------------------------------
    # ``opt.lr`` reads the first group's value (during a step: the group being
    # updated); setting it sets every group's, as a scheduler does. Per-group
    # values come from ``param_groups`` given as dicts, as in PyTorch.
    def __getattr__(self, name: str) -> Any:
        if name in type(self)._hyper and "param_groups" in self.__dict__:
            group = self.__dict__["_current"] or self.__dict__["param_groups"][0]
            return group[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in type(self)._hyper and "param_groups" in self.__dict__:
            for g in self.param_groups:
                g[name] = value
            return
        object.__setattr__(self, name, value)

    def _defaults(self, **values: Any) -> None:
        """Give every group each hyper-parameter it does not set itself,
        checked by ``_hyper_value``-style checks of the subclass."""
        for g in self.param_groups:
            for k, v in values.items():
                g.setdefault(k, v)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget gradients: None (default) or zeros (``set_to_none=False``)."""
        for p in self.params:
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = p.grad * 0

    def step(self) -> None:
        """Update every parameter that has a gradient, all or none: the new
        values and states are computed first and swapped in together, with
        Ctrl-C held back (:func:`cnnbook._signals.deferred_interrupt`), so an
        error or an interrupt never leaves a half-applied step."""
        name = type(self).__name__
        for i, p in enumerate(self.params):
            g = p.grad
            if g is not None and tuple(getattr(g, "shape", ())) != p.shape:
                raise ValueError(
                    f"{name}.step: parameter {i} has shape {p.shape} but its grad "
                    f"has shape {tuple(getattr(g, 'shape', ()))}"
                )
        index = {id(p): i for i, p in enumerate(self.params)}
        with deferred_interrupt():
            staged = []
            try:
                for group in self.param_groups:
                    object.__setattr__(self, "_current", group)
                    for p in group["params"]:
                        if p.grad is not None:
                            i = index[id(p)]
                            state = dict(self.state[i])
                            new = self._update(p.data, p.grad, state)
                            staged.append((i, p, new, state))
            finally:
                object.__setattr__(self, "_current", None)
            for i, p, data, state in staged:
                p.data, self.state[i] = data, state
            self.step_count += 1

    def _update(self, theta: Any, g: Any, state: dict[str, Any]) -> Any:
        raise NotImplementedError

    # -- checkpoints -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters (floats) and state buffers as NumPy arrays."""
        out: dict[str, Any] = {"step_count": np.asarray(self.step_count)}
        for name in self._hyper:
            out[name] = np.asarray(getattr(self, name), dtype=np.float64)
        for g, group in enumerate(self.param_groups[1:], start=1):
            for name in self._hyper:
                out[f"group.{g}.{name}"] = np.asarray(group[name], dtype=np.float64)
        for i, state in enumerate(self.state):
            for k, v in state.items():
                if k in self._counters:
                    out[f"state.{i}.{k}"] = np.asarray(v, dtype=np.int64)
                else:
                    out[f"state.{i}.{k}"] = np.array(B.to_numpy(v), copy=True)
        return out

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; checks everything before writing."""
        name = type(self).__name__
        missing = [k for k in ("step_count", *self._hyper) if k not in sd]
        if missing:
            raise KeyError(f"{name}.load_state_dict: missing entries {missing}")
        staged: list[dict[str, Any]] = [{} for _ in self.params]
        groups: list[dict[str, Any]] = [{} for _ in self.param_groups[1:]]
        for key, value in sd.items():
            if key.startswith("group."):
                _, g, h = key.split(".", 2)
                if not (g.isdigit() and 1 <= int(g) <= len(groups)) or h not in (
                    self._hyper
                ):
                    raise KeyError(f"{name}.load_state_dict: unexpected entry {key}")
                v = B.to_numpy(value)
                groups[int(g) - 1][h] = tuple(v.tolist()) if v.ndim else float(v)
                continue
            if not key.startswith("state."):
                continue
            _, i, slot = key.split(".", 2)
            i = int(i)
            known = slot in self._slots or slot in self._counters
            if i >= len(self.params) or not known:
                raise KeyError(f"{name}.load_state_dict: unexpected entry {key}")
            p = self.params[i].data
            value = B.to_numpy(value)
            if slot in self._counters:
                staged[i][slot] = int(value)
                continue
            if tuple(value.shape) != tuple(p.shape):
                raise ValueError(
                    f"{name}.load_state_dict: {key} has shape {value.shape}, "
                    f"parameter {i} has {tuple(p.shape)}"
                )
            xp = B.namespace(name, p=p)
            staged[i][slot] = B.asarray(
                value, xp, B.device_of(p), dtype=p.dtype, copy=True
            )
        self.step_count = int(sd["step_count"])
        for h in self._hyper:
            v = B.to_numpy(sd[h])
            self.param_groups[0][h] = tuple(v.tolist()) if v.ndim else float(v)
        for group, values in zip(self.param_groups[1:], groups, strict=True):
            group.update(values)
        self.state = staged

    def __repr__(self) -> str:
        hyper = ", ".join(f"{h}={getattr(self, h)}" for h in self._hyper)
        groups = len(self.param_groups)
        more = f", {groups} groups" if groups > 1 else ""
        return f"{type(self).__name__}({len(self.params)} parameters{more}, {hyper})"


def _hyper_value(op: str, name: str, value: Any, upper: float | None = None) -> float:
    """A finite real number >= 0 (and < ``upper`` if given) as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v >= 0) or (upper is not None and v >= upper):
        bound = f"in [0, {upper:g})" if upper is not None else ">= 0 and finite"
        raise ValueError(f"{op}: {name} must be {bound}, got {value!r}")
    return v


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum."""

    _hyper = ("lr", "momentum", "dampening", "weight_decay")
    _slots = ("momentum_buffer",)

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        super().__init__(params, lr)
        self._defaults(
            momentum=momentum, dampening=dampening, weight_decay=weight_decay
        )
        for g in self.param_groups:
            for h in ("momentum", "dampening", "weight_decay"):
                g[h] = _hyper_value("SGD", h, g[h])
            if nesterov and (g["momentum"] <= 0 or g["dampening"] != 0):
                raise ValueError(
                    "SGD: Nesterov momentum needs momentum > 0, dampening 0"
                )
        self.nesterov = bool(nesterov)

    def _update(self, theta, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * theta
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = g
            else:
                buf = self.momentum * buf + (1 - self.dampening) * g
            state["momentum_buffer"] = buf
            g = g + self.momentum * buf if self.nesterov else buf
        return theta - self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015); ``weight_decay`` adds λθ to the gradient."""

    _hyper = ("lr", "betas", "eps", "weight_decay")
    _slots = ("exp_avg", "exp_avg_sq")
    _counters = ("step",)
    _decoupled = False

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        op = type(self).__name__
        self._defaults(betas=betas, eps=eps, weight_decay=weight_decay)
        for g in self.param_groups:
            b = g["betas"]
            if not isinstance(b, (tuple, list)) or len(b) != 2:
                raise TypeError(f"{op}: betas must be a pair, got {b!r}")
            g["betas"] = (
                _hyper_value(op, "betas[0]", b[0], 1.0),
                _hyper_value(op, "betas[1]", b[1], 1.0),
            )
            g["eps"] = _hyper_value(op, "eps", g["eps"])
            g["weight_decay"] = _hyper_value(op, "weight_decay", g["weight_decay"])

    def _update(self, theta, g, state):
        beta1, beta2 = self.betas
        if "exp_avg" not in state:
            xp = B.namespace(type(self).__name__, theta=theta)
            state["exp_avg"] = xp.zeros_like(theta)
            state["exp_avg_sq"] = xp.zeros_like(theta)
            state["step"] = 0
        t = state["step"] + 1
        state["step"] = t
        if self.weight_decay:
            if self._decoupled:
                theta = theta * (1 - self.lr * self.weight_decay)
            else:
                g = g + self.weight_decay * theta
        xp = B.namespace(type(self).__name__, theta=theta, g=g)
        m = state["exp_avg"]
        m = m + (g - m) * (1 - beta1)  # torch's lerp_
        v = state["exp_avg_sq"] * beta2 + (1 - beta2) * g * g
        state["exp_avg"], state["exp_avg_sq"] = m, v
        step_size = self.lr / (1 - beta1**t)
        denom = xp.sqrt(v) / math.sqrt(1 - beta2**t) + self.eps
        return theta - step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019); the other
    arguments as :class:`Adam`'s."""

    _decoupled = True

    def __init__(self, params: Iterable[Parameter], lr=1e-3, weight_decay=1e-2, **kw):
        super().__init__(params, lr, weight_decay=weight_decay, **kw)


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012), PyTorch's rule, for a parameter θ with gradient g:

    - ``g ← g + λθ``, ``v ← αv + (1 − α)g²``, ``a ← √v + ε``
      (centered: ``ḡ ← αḡ + (1 − α)g``, ``a ← √(v − ḡ²) + ε``);
    - ``θ ← θ − η g/a``, or with momentum μ: ``b ← μb + g/a``, ``θ ← θ − ηb``.
    """

    _hyper = ("lr", "alpha", "eps", "weight_decay", "momentum")
    _slots = ("square_avg", "grad_avg", "momentum_buffer")
    _counters = ("step",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ):
        super().__init__(params, lr)
        self._defaults(
            alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum
        )
        for g in self.param_groups:
            g["alpha"] = _hyper_value("RMSprop", "alpha", g["alpha"], 1.0 + 1e-12)
            for h in ("eps", "weight_decay", "momentum"):
                g[h] = _hyper_value("RMSprop", h, g[h])
        self.centered = bool(centered)

    def _update(self, theta, g, state):
        xp = B.namespace("RMSprop", theta=theta, g=g)
        if "square_avg" not in state:
            state["square_avg"] = xp.zeros_like(theta)
            state["step"] = 0
            if self.centered:
                state["grad_avg"] = xp.zeros_like(theta)
            if self.momentum > 0:
                state["momentum_buffer"] = xp.zeros_like(theta)
        state["step"] += 1
        if self.weight_decay:
            g = g + self.weight_decay * theta
        a = self.alpha
        v = state["square_avg"] * a + (1 - a) * g * g
        state["square_avg"] = v
        if self.centered:
            gbar = state["grad_avg"] * a + (1 - a) * g
            state["grad_avg"] = gbar
            avg = xp.sqrt(v - gbar * gbar) + self.eps
        else:
            avg = xp.sqrt(v) + self.eps
        if self.momentum > 0:
            buf = state["momentum_buffer"] * self.momentum + g / avg
            state["momentum_buffer"] = buf
            return theta - self.lr * buf
        return theta - self.lr * (g / avg)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011), PyTorch's rule, for a parameter θ with
    gradient g at step t:

    - ``g ← g + λθ``, ``η_t = η / (1 + (t − 1)·lr_decay)``;
    - ``s ← s + g²`` (s starts at s₀), ``θ ← θ − η_t g / (√s + ε)``.
    """

    _hyper = ("lr", "lr_decay", "weight_decay", "eps")
    _slots = ("sum",)
    _counters = ("step",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ):
        super().__init__(params, lr)
        self._defaults(lr_decay=lr_decay, weight_decay=weight_decay, eps=eps)
        for g in self.param_groups:
            for h in ("lr_decay", "weight_decay", "eps"):
                g[h] = _hyper_value("Adagrad", h, g[h])
        self.initial_accumulator_value = _hyper_value(
            "Adagrad", "initial_accumulator_value", initial_accumulator_value
        )

    def _update(self, theta, g, state):
        xp = B.namespace("Adagrad", theta=theta, g=g)
        if "sum" not in state:
            state["sum"] = xp.zeros_like(theta) + self.initial_accumulator_value
            state["step"] = 0
        state["step"] += 1
        t = state["step"]
        if self.weight_decay:
            g = g + self.weight_decay * theta
        clr = self.lr / (1 + (t - 1) * self.lr_decay)
        s_new = state["sum"] + g * g
        state["sum"] = s_new
        return theta - clr * (g / (xp.sqrt(s_new) + self.eps))


# ----------------------------------------------------------------------------
# learning-rate schedules
# ----------------------------------------------------------------------------
def _check_int(scheduler: str, name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{scheduler}: {name} must be an int >= {least}, got {value!r} "
            f"({type(value).__name__})"
        )
    if value < least:
        raise ValueError(f"{scheduler}: {name} must be >= {least}, got {value}")


def _check_positive(scheduler: str, name: str, value: Any) -> None:
    if not (isinstance(value, numbers.Real) and value > 0):
        raise ValueError(f"{scheduler}: {name} must be > 0, got {value!r}")


class _Scheduler:
    """Sets every parameter group's ``lr`` from the count of ``step()`` calls.

    Each group is scaled from its own base rate (``base_lrs``, the groups'
    rates when the schedule is made), as PyTorch's schedules do: a head
    trained at 10x the backbone's rate stays at 10x all along.
    ``per_batch`` says whether the training loop calls ``step()`` after every
    batch (one-cycle) or after every epoch (step decay, cosine).
    """

    per_batch = False

    def __init__(self, optimizer: Optimizer):
        self.optimizer = optimizer
        if not hasattr(self, "base_lrs"):
            self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply(0)

    def lr_at(self, t: int, base_lr: float) -> float:
        """The rate at step ``t`` of a group whose base rate is ``base_lr``."""
        raise NotImplementedError

    def _momentum_at(self, t: int) -> float | None:
        return None  # only the one-cycle schedule moves the momentum

    def _apply(self, t: int) -> None:
        # every value is computed (and may raise) before any group changes
        lrs = [self.lr_at(t, base) for base in self.base_lrs]
        momentum = self._momentum_at(t)
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
            if momentum is None:
                continue
            if "betas" in group:  # Adam: beta_1 plays the momentum's part
                group["betas"] = (momentum, group["betas"][1])
            else:
                group["momentum"] = momentum

    def step(self) -> None:
        self._apply(self.last_epoch + 1)
        self.last_epoch += 1

    def get_last_lr(self) -> list[float]:
        """Each group's current rate, as PyTorch's ``get_last_lr()``."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        base_lrs = [float(b) for b in sd["base_lrs"]]
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the state has "
                f"{len(base_lrs)} base rates, the optimizer "
                f"{len(self.optimizer.param_groups)} parameter groups"
            )
        last_epoch = int(sd["last_epoch"])
        saved = self.base_lrs
        self.base_lrs = base_lrs
        try:
            self._apply(last_epoch)
        except Exception:
            self.base_lrs = saved
            raise
        self.last_epoch = last_epoch


class StepLR(_Scheduler):
    """η_t = η₀ · γ^⌊t / step_size⌋."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        _check_int("StepLR", "step_size", step_size, 1)
        _check_positive("StepLR", "gamma", gamma)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, t, base_lr):
        return base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(_Scheduler):
    """η_t = η_min + (η₀ − η_min)(1 + cos(π t / T_max)) / 2."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        _check_int("CosineAnnealingLR", "T_max", T_max, 1)
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, t, base_lr):
        return (
            self.eta_min
            + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2
        )


class OneCycleLR(_Scheduler):
    """One cycle (Smith & Topin, 2019), stepped after every batch, as PyTorch's
    ``OneCycleLR`` with ``anneal_strategy="cos"``, ``three_phase=False``:
    the rate rises from max_lr/div_factor to max_lr over ``pct_start`` of
    ``total_steps``, then falls to max_lr/(div_factor·final_div_factor).
    ``max_lr`` is one rate for every group, or a sequence of one per group
    (each group's ``base_lrs`` entry is then its own peak).
    With ``cycle_momentum`` the momentum (SGD) or β₁ (Adam) moves the other way
    between ``base_momentum`` and ``max_momentum``.
    """

    per_batch = True

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | Sequence[float],
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
    ):
        _check_int("OneCycleLR", "total_steps", total_steps, 2)
        groups = len(optimizer.param_groups)
        if isinstance(max_lr, (list, tuple)):
            if len(max_lr) != groups:
                raise ValueError(
                    f"OneCycleLR: max_lr has {len(max_lr)} rates but the optimizer "
                    f"has {groups} parameter groups"
                )
            peaks = list(max_lr)
        else:
            peaks = [max_lr] * groups
        for name, value in (
            *(("max_lr", peak) for peak in peaks),
            ("div_factor", div_factor),
            ("final_div_factor", final_div_factor),
        ):
            _check_positive("OneCycleLR", name, value)
            if not math.isfinite(value):
                raise ValueError(f"OneCycleLR: {name} must be finite, got {value!r}")
        if not 0 < pct_start < 1:
            raise ValueError(
                f"OneCycleLR: pct_start must be in (0, 1), got {pct_start!r}"
            )
        if not pct_start * total_steps > 1:
            raise ValueError(
                "OneCycleLR: pct_start * total_steps must be > 1 (the warm-up "
                "lasts pct_start * total_steps - 1 steps), got "
                f"{pct_start} * {total_steps} = {pct_start * total_steps:g}; "
                "raise total_steps or pct_start"
            )
        self.base_lrs = [float(peak) for peak in peaks]
        self.total_steps = total_steps
        self.div_factor, self.final_div_factor = div_factor, final_div_factor
        self.peak = float(pct_start * total_steps) - 1
        self.end = float(total_steps - 1)
        self.cycle_momentum = cycle_momentum and (
            isinstance(optimizer, Adam) or getattr(optimizer, "momentum", 0) > 0
        )
        self.base_momentum, self.max_momentum = base_momentum, max_momentum
        super().__init__(optimizer)

    @staticmethod
    def _cos(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    def _phase(self, t: int, a: float, b: float, c: float) -> float:
        """Value at step t going a -> b (rise) then b -> c (fall)."""
        if t <= self.peak:
            return self._cos(a, b, t / self.peak)
        return self._cos(b, c, (t - self.peak) / (self.end - self.peak))

    def lr_at(self, t, base_lr):
        if t > self.total_steps:
            raise ValueError(
                f"OneCycleLR: stepped {t} times but total_steps is {self.total_steps}"
            )
        start = base_lr / self.div_factor
        return self._phase(t, start, base_lr, start / self.final_div_factor)

    def _momentum_at(self, t):
        if not self.cycle_momentum:
            return None
        return self._phase(t, self.max_momentum, self.base_momentum, self.max_momentum)


# ---------------------------------------------------------------------------
# one registry of update rules and one of schedules, by name
# ---------------------------------------------------------------------------
#: Update rules by name: plain SGD, SGD with momentum μ = 0.9 (heavy ball),
#: the same with Nesterov's look-ahead, AdaGrad, RMSprop (α = 0.99), Adam
#: (β = 0.9, 0.999), AdamW.
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")

#: Learning-rate schedules by name (see :func:`make_scheduler`).
SCHEDULES = ("onecycle", "cosine", "step", "none")


def make_optimizer(
    name: str, params: Iterable[Parameter], lr: float, weight_decay: float = 0.0
) -> Optimizer:
    """The update rule ``name`` (one of :data:`OPTIMIZERS`) over ``params``.

    >>> make_optimizer("adam", [Parameter(np.zeros(2))], 0.1)
    Adam(1 parameters, lr=0.1, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0)
    >>> make_optimizer("nesterov", [Parameter(np.zeros(2))], 0.1).nesterov
    True
    """
    if name == "sgd":
        return SGD(params, lr, weight_decay=weight_decay)
    if name == "momentum":
        return SGD(params, lr, momentum=0.9, weight_decay=weight_decay)
    if name == "nesterov":
        return SGD(params, lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adagrad":
        return Adagrad(params, lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return RMSprop(params, lr, weight_decay=weight_decay)
    if name == "adam":
        return Adam(params, lr, weight_decay=weight_decay)
    if name == "adamw":
        return AdamW(params, lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def make_scheduler(
    name: str, optimizer: Optimizer, epochs: int, steps_per_epoch: int
) -> Any:
    """``"onecycle"`` (per batch; peak = the optimizer's lr), ``"cosine"``
    (per epoch, to 0 at the end), ``"step"`` (×0.1 every ``epochs // 3``
    epochs) or ``"none"`` (returns None)."""
    if name == "onecycle":
        return OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=epochs * steps_per_epoch,
        )
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        return StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if name == "none":
        return None
    raise ValueError(f"unknown schedule {name!r}; choose one of {SCHEDULES}")
