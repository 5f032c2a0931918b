"""Containers: ``Sequential`` (a chain) and ``Residual`` (body(x) + shortcut(x)).

Backpropagation through a chain visits the layers in reverse; through a sum
it sends the same dy into both branches and adds the two input gradients.
An error raised inside a layer is re-raised with the layer's dotted name
(e.g. ``layer '3'`` or ``layer 'layer1.0.body.0'``) so a wrong input shape
points at the layer that rejected it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cnnbook.nn.module import Module

__all__ = ["Identity", "ModuleList", "Residual", "Sequential"]


def _call(parent: Module, name: str, child: Module, x: Any) -> Any:
    """child(x), naming the layer in any ValueError/TypeError it raises."""
    try:
        return child(x)
    except (ValueError, TypeError) as err:
        path = getattr(err, "cnnbook_path", None)
        if path is None:
            err.cnnbook_path = [name]  # type: ignore[attr-defined]
            err.cnnbook_message = str(err)  # type: ignore[attr-defined]
            err.cnnbook_layer = type(child).__name__  # type: ignore[attr-defined]
        else:
            path.insert(0, name)
        full = ".".join(err.cnnbook_path)  # type: ignore[attr-defined]
        err.args = (
            f"layer '{full}' ({err.cnnbook_layer}): "  # type: ignore[attr-defined]
            f"{err.cnnbook_message}",  # type: ignore[attr-defined]
        )
        raise


class Identity(Module):
    """y = x."""

    def forward(self, x):
        return x

    def _backward(self, dy):
        return dy


class Sequential(Module):
    """Apply layers in order: y = f_n(… f_2(f_1(x))).

    ``Sequential(a, b, c)`` names its layers "0", "1", "2", as PyTorch does;
    ``Sequential({"conv": a, "relu": b})`` uses the given names.

    >>> from cnnbook.nn import Linear, ReLU
    >>> net = Sequential(Linear(4, 3, rng=0), ReLU())
    >>> net
    Sequential(
      (0): Linear(in_features=4, out_features=3)
      (1): ReLU()
    )
    """

    def __init__(self, *layers: Module | dict[str, Module]):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], dict):
            named = list(layers[0].items())
        else:
            named = [(str(i), m) for i, m in enumerate(layers)]
        for name, m in named:
            if not isinstance(m, Module):
                raise TypeError(
                    f"Sequential: layer {name} must be a Module, got {type(m).__name__}"
                )
            setattr(self, name, m)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, i: int | str | slice) -> Module:
        """A layer by position or name; a slice is a Sequential of the same
        layers under their names (``net[:3]``: the first three layers)."""
        if isinstance(i, str):
            return self._modules[i]
        if isinstance(i, slice):
            return Sequential(dict(list(self._modules.items())[i]))
        return list(self._modules.values())[i]

    def forward(self, x):
        for name, m in self._modules.items():
            x = _call(self, name, m, x)
        return x

    def _backward(self, dy):
        for m in reversed(list(self._modules.values())):
            dy = m.backward(dy)
        return dy


class ModuleList(Module):
    """A list of modules, registered so their parameters are found; it has no
    forward of its own (the owner decides how to call them), as PyTorch's.

    >>> from cnnbook.nn import Linear
    >>> blocks = ModuleList([Linear(2, 2, rng=0) for _ in range(3)])
    >>> len(blocks), len(blocks.parameters())
    (3, 6)
    """

    def __init__(self, modules: Any = ()):
        super().__init__()
        self.extend(modules)

    def append(self, m: Module) -> ModuleList:
        if not isinstance(m, Module):
            raise TypeError(
                f"ModuleList: item {len(self)} must be a Module, got {type(m).__name__}"
            )
        setattr(self, str(len(self)), m)
        return self

    def extend(self, modules: Any) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def forward(self, x):
        raise NotImplementedError(
            "ModuleList.forward: a ModuleList is not a layer; call its modules "
            "(or use Sequential)"
        )


class Residual(Module):
    """y = body(x) + shortcut(x); the shortcut is the identity when None.

    Backward: dx = shortcut.backward(dy) + body.backward(dy), the shortcut
    first: the reverse of forward, so a module shared by both branches takes
    its caches back in the right order.
    """

    def __init__(self, body: Module, shortcut: Module | None = None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut if shortcut is not None else Identity()

    def forward(self, x):
        y = _call(self, "body", self.body, x)
        s = _call(self, "shortcut", self.shortcut, x)
        if tuple(y.shape) != tuple(s.shape):
            raise ValueError(
                f"Residual: body gives shape {tuple(y.shape)} but shortcut gives "
                f"{tuple(s.shape)}; use a projection shortcut (1×1 conv)"
            )
        return y + s

    def _backward(self, dy):
        ds = self.shortcut.backward(dy)
        return self.body.backward(dy) + ds
