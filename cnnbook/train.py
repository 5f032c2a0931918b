"""The training loop: ``fit``, ``evaluate``, ``predict``.

One step of mini-batch training::

    logits = model(xb); loss = criterion(logits, yb)     # forward
    model.zero_grad(); model.backward(criterion.backward())  # backward
    optimizer.step()                                     # update

:func:`fit` repeats it over epochs with a progress bar (``tqdm.auto``: a
widget in Jupyter, text in a terminal; ``progress=False`` turns it off),
records a :class:`~cnnbook.history.History`, and stops with
:class:`NonFiniteLossError` at the first NaN/inf loss, putting back the last
parameters that gave a finite one. With the same seeds the history is the
same, bit for bit, on one machine.

The settings the book trains with live in :mod:`cnnbook.recipes`. ``fit``
changes nothing about the model but its parameters: to skip the first
layer's input gradient, build the model with ``input_grad=False``
(:class:`cnnbook.nn.Conv2d`).
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from cnnbook import backend as B
from cnnbook import data as D
from cnnbook import nn, optim
from cnnbook._signals import deferred_interrupt
from cnnbook.history import History

__all__ = ["NonFiniteLossError", "evaluate", "fit", "predict"]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; ``epoch``/``batch`` say where (from 1)."""

    def __init__(self, message: str, epoch: int, batch: int, history: History):
        super().__init__(message)
        self.epoch, self.batch, self.history = epoch, batch, history


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

    Ctrl-C stops training between steps, never inside one: the optimizer
    and scheduler step as one piece. Forward passes recorded before ``fit``
    and not gone back through are dropped (:meth:`Module.clear_cache`).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral):
        raise TypeError(f"fit: epochs must be a positive int, got {epochs!r}")
    if epochs < 1:
        raise ValueError(f"fit: epochs must be a positive int, got {epochs!r}")
    epochs = int(epochs)
    if not isinstance(model, nn.Module):
        raise TypeError(f"fit: model must be a Module, got {type(model).__name__}")
    model.clear_cache()
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
                with deferred_interrupt():
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
            if seen == 0:
                raise ValueError(
                    f"fit: train_data gave no batches in epoch {epoch}; it must "
                    "hold at least one sample (an iterator is used up after one "
                    "epoch: pass a DataLoader or an (X, y) pair)"
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
        if bar is not None:
            bar.close()
    return history


@nn.no_grad()
def evaluate(
    model: nn.Module, data: Any, criterion: Any = None, batch_size: int = 256
) -> dict[str, float]:
    """Mean loss (if ``criterion``; cross-entropy by default) and accuracy of
    ``model`` in evaluation mode over ``data`` (a loader or ``(X, y)``).

    Returns ``{"loss": float, "accuracy": float in [0, 1]}``; the model's
    train/eval mode is restored afterwards. Runs under
    :class:`~cnnbook.nn.no_grad`: nothing is recorded for backward.
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


@nn.no_grad()
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
