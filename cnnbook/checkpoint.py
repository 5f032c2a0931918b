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


#: Limits on what ``load`` reads: the uncompressed size of all arrays, and the
#: ratio of uncompressed to compressed size of any large member (a zip bomb).
MAX_BYTES = 2**31
MAX_RATIO = 100
#: dtypes an array of a checkpoint may have (weights, buffers, counters, info).
DTYPES = frozenset("<f4 <f8 <i8 <i4 |u1 |b1 <u8 <f2".split())


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the zip at ``path``, after checking sizes and headers."""
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        if total > MAX_BYTES:
            raise CheckpointError(
                f"cnnbook.load: {path} would unpack to {total} bytes, more than "
                f"cnnbook.checkpoint.MAX_BYTES = {MAX_BYTES}"
            )
        for i in infos:
            big = i.file_size > 2**20
            if big and i.file_size > MAX_RATIO * max(i.compress_size, 1):
                raise CheckpointError(
                    f"cnnbook.load: {path}: member {i.filename} unpacks "
                    f"{i.file_size / max(i.compress_size, 1):.0f}-fold (a zip bomb?)"
                )
            if not i.filename.endswith(".npy"):
                raise CheckpointError(
                    f"cnnbook.load: {path}: unexpected member {i.filename!r}"
                )
            with zf.open(i) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                if dtype.str not in DTYPES:
                    raise CheckpointError(
                        f"cnnbook.load: {path}: {i.filename} has dtype {dtype}, "
                        "not one a checkpoint holds (float, int, uint8)"
                    )
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if nbytes > i.file_size:
                    raise CheckpointError(
                        f"cnnbook.load: {path}: {i.filename} claims shape {shape} "
                        f"({nbytes} bytes) but holds {i.file_size} bytes"
                    )
                data = f.read(nbytes + 1)
            if len(data) != nbytes:
                raise CheckpointError(
                    f"cnnbook.load: {path}: {i.filename} holds {len(data)} bytes of "
                    f"data for shape {shape}, which needs {nbytes}"
                )
            a = np.frombuffer(data, dtype=dtype)
            order = "F" if fortran else "C"
            arrays[i.filename[: -len(".npy")]] = a.reshape(shape, order=order).copy()
    return arrays


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(info, arrays) of a checkpoint, fully read into memory, or a clear error.

    Sizes, dtypes and array headers are checked before any array is read, so
    a corrupt or hostile file costs at most :data:`MAX_BYTES` of memory; any
    failure of the zip or npy layers becomes a :class:`CheckpointError`.
    """
    if not path.exists():
        raise FileNotFoundError(f"cnnbook.load: no checkpoint at {path}")
    try:
        arrays = _read_arrays(path)
        info = json.loads(bytes(arrays.pop("info")).decode())
    except CheckpointError:
        raise
    except MemoryError as err:
        raise CheckpointError(f"cnnbook.load: {path} is too large to read") from err
    except Exception as err:  # zip, zlib, lzma, bz2, npy header, JSON, ...
        raise CheckpointError(
            f"cnnbook.load: {path} is not a readable cnnbook checkpoint "
            f"(truncated or corrupt?): {type(err).__name__}: {err}"
        ) from err
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"cnnbook.load: {path} is not a cnnbook checkpoint")
    return info, arrays


def _checked_history(info: dict[str, Any], path: Path) -> History | None:
    """The saved History, or None; a CheckpointError if it is malformed."""
    h = info.get("history")
    if h is None:
        return None
    names = set(History.__dataclass_fields__)
    ok = (
        isinstance(h, dict)
        and set(h) <= names
        and all(isinstance(v, list) for v in h.values())
        and len({len(v) for v in h.values()}) <= 1
        and all(
            isinstance(x, (int, float)) and not isinstance(x, bool)
            for v in h.values()
            for x in v
        )
    )
    if not ok:
        raise CheckpointError(
            f"cnnbook.load: {path} has a malformed history (want lists of numbers "
            f"of one length under {sorted(names)}); nothing was loaded"
        )
    return History.from_dict(h)


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
    history = _checked_history(info, path)
    # all checks passed: write (load_state_dict validates before assigning)
    backup = model.state_dict() if opt_state is not None else None
    try:
        model.load_state_dict(state)
    except (KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"cnnbook.load: model state in {path}: {err}") from err
    if opt_state is not None:
        try:
            optimizer.load_state_dict(opt_state)
        except Exception as err:
            model.load_state_dict(backup)
            raise CheckpointError(
                f"cnnbook.load: optimizer state in {path}: {err}; the model was "
                "left as it was"
            ) from err
    return history
