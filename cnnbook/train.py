"""The training loop: ``fit``, ``evaluate``, ``predict``, and the book's recipes.

One step of mini-batch training::

    logits = model(xb); loss = criterion(logits, yb)     # forward
    model.zero_grad(); model.backward(criterion.backward())  # backward
    optimizer.step()                                     # update

:func:`fit` repeats it over epochs with a progress bar (``tqdm.auto``: a
widget in Jupyter, text in a terminal; ``progress=False`` turns it off),
records a :class:`History`, and stops with :class:`NonFiniteLossError` at the
first NaN/inf loss, putting back the last parameters that gave a finite one.
With the same seeds the history is the same, bit for bit, on one machine.

:func:`recipe` and :func:`train_recipe` hold the settings the book trains
with (``RECIPES``), also the command line's defaults.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cnnbook import backend as B
from cnnbook import data as D
from cnnbook import nn, optim
from cnnbook.models import get_model

__all__ = [
    "RECIPES",
    "History",
    "NonFiniteLossError",
    "evaluate",
    "fit",
    "make_optimizer",
    "make_scheduler",
    "predict",
    "recipe",
    "train_recipe",
]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; ``epoch``/``batch`` say where (from 1)."""

    def __init__(self, message: str, epoch: int, batch: int, history: History):
        super().__init__(message)
        self.epoch, self.batch, self.history = epoch, batch, history


@dataclass
class History:
    """Per-epoch records of a :func:`fit` run (lists of equal length)."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.epoch)

    def to_dict(self) -> dict[str, list]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Sequence]) -> History:
        return cls(**{k: list(v) for k, v in d.items()})

    def plot(self, axes: Any = None) -> Any:
        """Loss and accuracy curves (train and validation) on two axes.

        Returns the matplotlib Figure.
        """
        import matplotlib.pyplot as plt

        if axes is None:
            fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        else:
            fig = axes[0].figure
        ax_loss, ax_acc = axes
        ax_loss.plot(self.epoch, self.train_loss, "o-", label="train")
        ax_acc.plot(self.epoch, [100 * a for a in self.train_acc], "o-", label="train")
        if any(not math.isnan(v) for v in self.val_loss):
            ax_loss.plot(self.epoch, self.val_loss, "s-", label="validation")
            ax_acc.plot(
                self.epoch, [100 * a for a in self.val_acc], "s-", label="validation"
            )
        ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
        ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
        for ax in axes:
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        if not self.epoch:
            return "History(empty)"
        return (
            f"History({len(self)} epochs, last: train loss {self.train_loss[-1]:.4f}, "
            f"train acc {100 * self.train_acc[-1]:.2f}%, val acc "
            f"{100 * self.val_acc[-1]:.2f}%)"
        )


def _loader(data: Any, model: nn.Module, batch_size: int = 256) -> Iterable:
    """A DataLoader (or any iterable of batches) as is; (X, y) wrapped in one
    that places batches where the model's parameters live."""
    if isinstance(data, tuple) and len(data) == 2:
        return D.DataLoader(
            data[0], data[1], batch_size=batch_size, backend=_backend(model)
        )
    return data


def _backend(model: nn.Module) -> str | None:
    """The backend of the model's parameters (None for a parameter-free model)."""
    params = model.parameters()
    return B.backend_of(params[0].data) if params else None


def _correct(logits: Any, yb: Any) -> int:
    xp = B.namespace("accuracy", logits=logits, targets=yb)
    if yb.ndim != 1:  # regression targets: no accuracy
        return 0
    return int(xp.sum(xp.astype(xp.argmax(logits, axis=1) == yb, xp.int64)))


def _snapshot(model: nn.Module) -> list[tuple[nn.Module, str, bool, Any]]:
    out = []
    for _, m in model.named_modules():
        for name, p in m._parameters.items():
            xp = B.namespace("snapshot", a=p.data)
            out.append((m, name, True, xp.asarray(p.data, copy=True)))
        for name in m._buffers:
            a = getattr(m, name)
            xp = B.namespace("snapshot", a=a)
            out.append((m, name, False, xp.asarray(a, copy=True)))
    return out


def _restore(snap: list[tuple[nn.Module, str, bool, Any]]) -> None:
    for m, name, is_param, a in snap:
        if is_param:
            m._parameters[name].data, m._parameters[name].grad = a, None
        else:
            object.__setattr__(m, name, a)


def fit(
    model: nn.Module,
    train_data: Any,
    criterion: Any,
    optimizer: optim.Optimizer,
    epochs: int,
    val_data: Any = None,
    scheduler: Any = None,
    progress: bool = True,
    callbacks: Sequence[Callable[[int, History], Any]] = (),
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_data``.

    ``train_data``/``val_data``: a :class:`~cnnbook.data.DataLoader` (or any
    iterable of ``(xb, yb)`` batches) or an ``(X, y)`` pair. ``scheduler`` is
    stepped after every batch if its ``per_batch`` is true, else after every
    epoch. ``callbacks`` are called as ``cb(epoch, history)`` after each epoch;
    one returning ``True`` stops training. Returns the :class:`History`.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fit: epochs must be a positive int, got {epochs!r}")
    train_data = _loader(train_data, model, 64)
    val_data = _loader(val_data, model) if val_data is not None else None
    history = History()
    per_batch = bool(getattr(scheduler, "per_batch", False))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = epochs * len(train_data) if hasattr(train_data, "__len__") else None
        bar = tqdm(total=total, unit="batch", leave=True)
    last_good = _snapshot(model)
    first = _first_layer(model)
    skip_dx = isinstance(first, nn.Conv2d) and first.input_grad
    if skip_dx:  # nobody needs the gradient of the data
        first.input_grad = False
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            start = time.perf_counter()
            lr = optimizer.lr
            loss_sum, correct, seen = 0.0, 0, 0
            if bar is not None:
                bar.set_description(f"epoch {epoch}/{epochs}")
            for batch, (xb, yb) in enumerate(train_data, start=1):
                logits = model(xb)
                loss = float(criterion(logits, yb))
                if not math.isfinite(loss):
                    _restore(last_good)
                    raise NonFiniteLossError(
                        f"fit: the loss became {loss} at epoch {epoch}, batch {batch}; "
                        "the parameters are back to the last ones with a finite "
                        "loss (try a smaller learning rate)",
                        epoch,
                        batch,
                        history,
                    )
                last_good = _snapshot(model)
                model.zero_grad()
                model.backward(criterion.backward())
                optimizer.step()
                if scheduler is not None and per_batch:
                    scheduler.step()
                n = int(xb.shape[0])
                loss_sum += loss * n
                correct += _correct(logits, yb)
                seen += n
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{loss_sum / seen:.4f}",
                        acc=f"{100 * correct / seen:.1f}%",
                    )
            if scheduler is not None and not per_batch:
                scheduler.step()
            val = evaluate(model, val_data, criterion) if val_data is not None else {}
            history.epoch.append(epoch)
            history.train_loss.append(loss_sum / max(seen, 1))
            history.train_acc.append(correct / max(seen, 1))
            history.val_loss.append(val.get("loss", math.nan))
            history.val_acc.append(val.get("accuracy", math.nan))
            history.lr.append(lr)
            history.seconds.append(time.perf_counter() - start)
            if bar is not None and val:
                bar.write(
                    f"epoch {epoch}: train loss {history.train_loss[-1]:.4f}, "
                    f"val loss {val['loss']:.4f}, val acc {100 * val['accuracy']:.2f}%"
                )
            if any([cb(epoch, history) is True for cb in callbacks]):
                break
    finally:
        if skip_dx:
            first.input_grad = True
        if bar is not None:
            bar.close()
    return history


def _first_layer(model: nn.Module) -> nn.Module:
    """The layer that receives the data: the first leaf of nested Sequentials."""
    layer = model
    while isinstance(layer, nn.Sequential) and len(layer) > 0:
        layer = next(iter(layer))
    return layer


def evaluate(
    model: nn.Module, data: Any, criterion: Any = None, batch_size: int = 256
) -> dict[str, float]:
    """Mean loss (if ``criterion``; cross-entropy by default) and accuracy of
    ``model`` in evaluation mode over ``data`` (a loader or ``(X, y)``).

    Returns ``{"loss": float, "accuracy": float in [0, 1]}``; the model's
    train/eval mode is restored afterwards.
    """
    criterion = criterion or nn.CrossEntropyLoss()
    was_training = model.training
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    try:
        for xb, yb in _loader(data, model, batch_size):
            logits = model(xb)
            n = int(xb.shape[0])
            loss_sum += float(criterion(logits, yb)) * n
            correct += _correct(logits, yb)
            seen += n
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("evaluate: the data holds no samples")
    return {"loss": loss_sum / seen, "accuracy": correct / seen}


def predict(
    model: nn.Module, X: Any, batch_size: int = 256, proba: bool = False
) -> np.ndarray:
    """X (N, …) -> predicted classes (N,) int64, or probabilities (N, K) with
    ``proba=True``, as NumPy arrays, computed in evaluation mode."""
    from cnnbook.functional import softmax

    X = np.asarray(B.to_numpy(X))
    loader = D.DataLoader(
        X,
        np.zeros(len(X), dtype=np.int64),
        batch_size=batch_size,
        backend=_backend(model),
    )
    was_training = model.training
    model.eval()
    out = []
    try:
        for xb, _ in loader:
            logits = model(xb)
            host = B.to_numpy(softmax(logits) if proba else logits)
            out.append(host if proba else host.argmax(axis=1))
    finally:
        model.train(was_training)
    return np.concatenate(out)


# ----------------------------------------------------------------------------
# recipes: the settings the book trains with
# ----------------------------------------------------------------------------
def _mnist5k_onecycle(
    epochs: int, optimizer: str, lr: float, weight_decay: float
) -> dict[str, Any]:
    """Batches of 64 from MNIST-5k, ±2 px shifts, a one-cycle schedule."""
    return dict(
        data="mnist5k",
        epochs=epochs,
        batch_size=64,
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        schedule="onecycle",
        augment_shift=2,
    )


#: The book's training settings per model (the command line's defaults).
#: LeNet-5 with Adam under a one-cycle schedule reaches 97.5 %+ on MNIST-5k;
#: the plain twin trains exactly as the ResNet does, so the degradation
#: experiment compares networks, not recipes.
RECIPES: dict[str, dict[str, Any]] = {
    "lenet5": _mnist5k_onecycle(epochs=20, optimizer="adam", lr=3e-3, weight_decay=0.0),
    "vgg": _mnist5k_onecycle(epochs=10, optimizer="adam", lr=2e-3, weight_decay=0.0),
    "resnet": _mnist5k_onecycle(epochs=10, optimizer="sgd", lr=0.1, weight_decay=5e-4),
}
RECIPES["plainnet"] = dict(RECIPES["resnet"])
DATASETS = {"mnist5k": D.mnist5k, "digits": D.digits}
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "step", "none")


def recipe(model_name: str, **overrides: Any) -> dict[str, Any]:
    """The book's settings for ``model_name`` with ``overrides`` applied."""
    if model_name not in RECIPES:
        raise ValueError(
            f"recipe: no recipe for {model_name!r}; known: {', '.join(RECIPES)}"
        )
    r = dict(RECIPES[model_name])
    unknown = set(overrides) - set(r)
    if unknown:
        raise ValueError(
            f"recipe: unknown settings {sorted(unknown)}; known: {list(r)}"
        )
    r.update({k: v for k, v in overrides.items() if v is not None})
    return r


def make_optimizer(
    name: str, params: list[nn.Parameter], lr: float, weight_decay: float = 0.0
) -> optim.Optimizer:
    """``"sgd"`` (momentum 0.9, Nesterov), ``"adam"`` or ``"adamw"``."""
    if name == "sgd":
        return optim.SGD(
            params, lr, momentum=0.9, nesterov=True, weight_decay=weight_decay
        )
    if name == "adam":
        return optim.Adam(params, lr, weight_decay=weight_decay)
    if name == "adamw":
        return optim.AdamW(params, lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def make_scheduler(
    name: str, optimizer: optim.Optimizer, epochs: int, steps_per_epoch: int
) -> Any:
    """``"onecycle"`` (per batch; peak = the optimizer's lr), ``"cosine"``
    (per epoch, to 0 at the end), ``"step"`` (×0.1 every ``epochs // 3``
    epochs) or ``"none"`` (returns None)."""
    if name == "onecycle":
        return optim.OneCycleLR(
            optimizer, max_lr=optimizer.lr, total_steps=epochs * steps_per_epoch
        )
    if name == "cosine":
        return optim.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        return optim.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if name == "none":
        return None
    raise ValueError(f"unknown schedule {name!r}; choose one of {SCHEDULES}")


def train_recipe(
    model_name: str = "lenet5",
    seed: int = 0,
    progress: bool = True,
    backend: str | None = None,
    callbacks: Sequence[Callable[[int, History], Any]] = (),
    **overrides: Any,
) -> tuple[nn.Module, History, dict[str, float]]:
    """Train ``model_name`` the way the book does; returns (model, history,
    test metrics ``{"loss", "accuracy"}``).

    ``seed`` fixes the initial weights and the shuffling/augmentation; the
    data split is always the book's. ``callbacks`` go to :func:`fit` (e.g. live
    curves). ``overrides`` change recipe settings (``epochs=5``, ``lr=1e-3``, ...).
    """
    r = recipe(model_name, **overrides)
    (X, y), (X_test, y_test) = DATASETS[r["data"]]()
    previous = B.current()
    if backend is not None:
        B.use(backend)
    try:
        in_ch, size = X.shape[1], X.shape[2]
        kw: dict[str, Any] = {"seed": seed}
        if model_name == "vgg":
            kw.update(in_channels=in_ch, input_size=size)
        elif model_name in ("resnet", "plainnet"):
            kw.update(in_channels=in_ch)
        elif size != 28:
            raise ValueError(f"train_recipe: {model_name} needs 28×28 images")
        model = get_model(model_name, **kw)
        shift = r["augment_shift"]
        train = D.DataLoader(
            X,
            y,
            batch_size=r["batch_size"],
            shuffle=True,
            seed=seed,
            augment=D.RandomShift(shift) if shift else None,
        )
        test = D.DataLoader(X_test, y_test, batch_size=500)
        opt = make_optimizer(
            r["optimizer"], model.parameters(), r["lr"], r["weight_decay"]
        )
        sched = make_scheduler(r["schedule"], opt, r["epochs"], len(train))
        history = fit(
            model,
            train,
            nn.CrossEntropyLoss(),
            opt,
            r["epochs"],
            val_data=test,
            scheduler=sched,
            progress=progress,
            callbacks=callbacks,
        )
        return model, history, evaluate(model, test)
    finally:
        B.use(previous)
