"""Checkpoints: a model (and optimizer, history) in one ``.npz`` file.

``save`` writes to a temporary file in the same folder and renames it into
place (:func:`cnnbook.files.atomic_write`), so a crash never leaves a
half-written checkpoint and an existing file survives any failure. Arrays are
stored as NumPy (a checkpoint written on one backend loads on any other) with an
architecture signature (each parameter's key, shape and dtype): ``load``
checks the file and the signature before it writes anything, and names the
first mismatching parameter.

>>> import tempfile, os
>>> from cnnbook.models import lenet5
>>> path = os.path.join(tempfile.mkdtemp(), "lenet5.npz")
>>> save(path, lenet5(seed=0))
>>> load(path, lenet5(seed=1)) is None   # no history was saved
True
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from cnnbook.files import atomic_write
from cnnbook.history import History

__all__ = ["CheckpointError", "load", "read_meta", "save"]

FORMAT = "cnnbook-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


def _signature(state: dict[str, np.ndarray]) -> list[list]:
    return [[k, list(v.shape), v.dtype.str] for k, v in state.items()]


def save(
    path: str | os.PathLike,
    model: Any,
    optimizer: Any = None,
    history: Any = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Write ``model``'s state dict (and the optimizer's, and ``history``) to
    ``path`` atomically. ``meta`` (JSON-serialisable) is stored alongside;
    ``model.config`` (set by :func:`cnnbook.models.get_model`) is kept too.
    """
    path = Path(path)
    state = model.state_dict()
    arrays = {f"model/{k}": v for k, v in state.items()}
    info: dict[str, Any] = {
        "format": FORMAT,
        "model_class": type(model).__name__,
        "signature": _signature(state),
        "config": getattr(model, "config", None),
        "meta": meta or {},
        "history": history.to_dict() if history is not None else None,
        "optimizer": None,
    }
    if optimizer is not None:
        info["optimizer"] = type(optimizer).__name__
        for k, v in optimizer.state_dict().items():
            arrays[f"optimizer/{k}"] = np.asarray(v)
    arrays["info"] = np.frombuffer(json.dumps(info).encode(), dtype=np.uint8)
    with atomic_write(path) as f:
        np.savez(f, allow_pickle=False, **arrays)


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(info, arrays) of a checkpoint, fully read into memory, or a clear error."""
    if not path.exists():
        raise FileNotFoundError(f"cnnbook.load: no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        info = json.loads(bytes(arrays.pop("info")).decode())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"cnnbook.load: {path} is not a readable cnnbook checkpoint "
            f"(truncated or corrupt?): {err}"
        ) from err
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"cnnbook.load: {path} is not a cnnbook checkpoint")
    return info, arrays


def _checked_signature(info: dict[str, Any], path: Path) -> list[list]:
    """The architecture signature of ``info`` as ``[key, shape, dtype]`` triples,
    or a CheckpointError if it is missing or malformed."""
    sig = info.get("signature")
    ok = isinstance(sig, list) and all(
        isinstance(e, list)
        and len(e) == 3
        and isinstance(e[0], str)
        and isinstance(e[1], list)
        and all(isinstance(n, int) for n in e[1])
        and isinstance(e[2], str)
        for e in sig
    )
    if not ok:
        got = "no" if sig is None else f"a malformed ({type(sig).__name__})"
        raise CheckpointError(
            f"cnnbook.load: {path} has the cnnbook format tag but {got} architecture "
            "signature (a list of [key, shape, dtype]); it was not written by "
            "cnnbook.save or has been edited"
        )
    return sig


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON part of a checkpoint: config, meta, history, signature."""
    return _read(Path(path))[0]


def load(path: str | os.PathLike, model: Any, optimizer: Any = None) -> Any:
    """Load a checkpoint into ``model`` (and ``optimizer``); returns the saved
    :class:`~cnnbook.history.History` or None.

    Everything is checked before anything is written: a corrupt file, a
    different architecture (the error names the first mismatching parameter)
    or a missing optimizer state leaves the model and optimizer untouched.
    """
    path = Path(path)
    info, arrays = _read(path)
    state = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    mine = model.state_dict()
    for key, shape, _ in _checked_signature(info, path):
        if key not in mine:
            raise CheckpointError(
                f"cnnbook.load: {path} holds parameter {key!r} {tuple(shape)} that "
                f"the model ({type(model).__name__}) does not have: a different "
                "architecture"
            )
        if tuple(mine[key].shape) != tuple(shape):
            raise CheckpointError(
                f"cnnbook.load: parameter {key!r} has shape {tuple(shape)} in {path} "
                f"but {tuple(mine[key].shape)} in the model: a different architecture"
            )
        if key not in state:
            raise CheckpointError(f"cnnbook.load: {path} lacks the array for {key!r}")
    extra = [k for k in mine if k not in state]
    if extra:
        raise CheckpointError(
            f"cnnbook.load: the model has parameter {extra[0]!r} that {path} lacks: "
            "a different architecture"
        )
    opt_state = None
    if optimizer is not None:
        if info.get("optimizer") is None:
            raise CheckpointError(f"cnnbook.load: {path} holds no optimizer state")
        if info["optimizer"] != type(optimizer).__name__:
            raise CheckpointError(
                f"cnnbook.load: {path} holds {info['optimizer']} state, not "
                f"{type(optimizer).__name__}"
            )
        opt_state = {
            k[len("optimizer/") :]: v
            for k, v in arrays.items()
            if k.startswith("optimizer/")
        }
    # all checks passed: write (load_state_dict validates before assigning)
    backup = model.state_dict() if opt_state is not None else None
    model.load_state_dict(state)
    if opt_state is not None:
        try:
            optimizer.load_state_dict(opt_state)
        except (KeyError, ValueError) as err:
            model.load_state_dict(backup)
            raise CheckpointError(
                f"cnnbook.load: optimizer state in {path}: {err}"
            ) from err
    if info.get("history") is None:
        return None
    return History.from_dict(info["history"])
