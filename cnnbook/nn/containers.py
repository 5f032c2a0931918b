"""Containers: ``Sequential`` (a chain), ``Residual`` (body(x) + shortcut(x))
and ``Concat`` (branches side by side, outputs joined along the channels).

Backpropagation through a chain visits the layers in reverse; through a sum
it sends the same dy into both branches and adds the two input gradients;
through a concatenation it cuts dy into one slice per branch and adds the
branches' input gradients.
An error raised inside a layer is re-raised with the layer's dotted name
(e.g. ``layer '3'`` or ``layer 'layer1.0.body.0'``) so a wrong input shape
points at the layer that rejected it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cnnbook import backend as B
from cnnbook.nn.module import Module

__all__ = ["Concat", "Identity", "ModuleList", "Residual", "Sequential"]


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


class Concat(Module):
    """x -> y = cat([b_1(x), …, b_n(x)], dim): the same input through parallel
    branches, the outputs joined along ``dim`` (1: channels of ``(N, C, H, W)``).

    The inception block (Szegedy et al., 2015) and the dense block (Huang et
    al., 2017; a branch may be :class:`Identity`) are built from it. PyTorch
    has no such module (``torchvision``'s inception blocks call ``torch.cat``
    on their branch outputs in ``forward``); this one has a backward pass.
    Branches are named "0", "1", … or by a dict, as in :class:`Sequential`.

    Backward: branch i gets the slice of dy holding its C_i channels
    (``dy[:, C_1 + … + C_{i-1} : C_1 + … + C_i]``), and dx is the sum of the
    branches' input gradients, visited last branch first (the reverse of
    forward, so a module shared by two branches takes its caches back in
    the right order). The branch sizes are recorded on the tape at each
    forward pass.

    >>> import numpy as np
    >>> from cnnbook.nn import Conv2d
    >>> block = Concat(Conv2d(3, 4, 1, rng=0), Conv2d(3, 2, 3, padding=1, rng=1))
    >>> block(np.ones((1, 3, 5, 5), dtype=np.float32)).shape
    (1, 6, 5, 5)
    """

    def __init__(self, *branches: Module | dict[str, Module], dim: int = 1):
        super().__init__()
        if len(branches) == 1 and isinstance(branches[0], dict):
            named = list(branches[0].items())
        else:
            named = [(str(i), m) for i, m in enumerate(branches)]
        if not named:
            raise ValueError("Concat: give at least one branch")
        for name, m in named:
            if not isinstance(m, Module):
                raise TypeError(
                    f"Concat: branch {name} must be a Module, got {type(m).__name__}"
                )
            setattr(self, name, m)
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"Concat: dim must be an int, got {dim!r}")
        self.dim = dim

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, i: int | str) -> Module:
        if isinstance(i, str):
            return self._modules[i]
        return list(self._modules.values())[i]

    def forward(self, x):
        outs = {name: _call(self, name, m, x) for name, m in self._modules.items()}
        shapes = {name: tuple(o.shape) for name, o in outs.items()}
        first = next(iter(shapes.values()))
        dim = self.dim + len(first) if self.dim < 0 else self.dim
        if not 0 <= dim < len(first):
            raise ValueError(
                f"Concat: dim {self.dim} is out of range for outputs of shape {first}"
            )
        rest = lambda s: s[:dim] + s[dim + 1 :]  # noqa: E731
        if any(len(s) != len(first) or rest(s) != rest(first) for s in shapes.values()):
            listed = ", ".join(f"{name}: {s}" for name, s in shapes.items())
            raise ValueError(
                f"Concat: the branches' outputs must agree in every dimension but "
                f"dim {self.dim}; got {listed}"
            )
        xp = B.namespace("Concat", **{f"branch {k}": o for k, o in outs.items()})
        self._save((dim, [s[dim] for s in shapes.values()]))
        return xp.concat(list(outs.values()), axis=dim)

    def _backward(self, dy):
        dim, sizes = self._saved()
        ends = [sum(sizes[: i + 1]) for i in range(len(sizes))]
        head = (slice(None),) * dim
        dxs = []
        for m, end, size in reversed(list(zip(self, ends, sizes, strict=True))):
            dxs.append(m.backward(dy[(*head, slice(end - size, end), ...)]))
        if all(d is None for d in dxs):
            return None  # no branch computes an input gradient (input_grad=False)
        if any(d is None for d in dxs):
            raise RuntimeError(
                "Concat.backward: some branches return no input gradient "
                "(input_grad=False) and others do; dx would miss their share"
            )
        dx = dxs[0]
        for d in dxs[1:]:
            dx = dx + d
        return dx
