"""What the experiments share: data splits, training, the plateau rule,
summaries, provenance and the result file.

Notation: X (N, 1, 8, 8) float in [0, 1], y (N,) int64 (scikit-learn's digits).

- :func:`splits`: the book's train/test split of the digits, and a validation
  set carved from the training part (:func:`cnnbook.data.train_val_split`).
  Every choice is made on the validation set; the test set is evaluated once
  per trained network, after training, and never used to choose anything.
- :func:`train`: seeded training with :func:`cnnbook.train.fit` in float64 on
  one BLAS thread; :class:`Plateau` stops it when the training loss has
  stopped improving (:func:`plateaued`). Training is chaotic: even in float64
  another BLAS kernel changes a 20-layer plain network's path after some 20
  epochs, so stored runs reproduce only under the pinned arithmetic
  (``scripts/pinned_arithmetic.sh``, which :func:`arithmetic` records).
- :func:`summary`: mean ± spread over seeds; :func:`provenance`: the command,
  seeds, versions, git commit and arithmetic settings;
  :func:`write_result`: the JSON file, written atomically.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import threadpoolctl

import cnnbook
from cnnbook import data as D
from cnnbook import nn, optim
from cnnbook import train as T
from cnnbook.files import atomic_write
from cnnbook.history import History

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
#: The validation split: a fifth of the book's 1,438 training digits.
VAL_FRACTION = 0.2
SPLIT_SEED = 0
#: Environment variables that decide the arithmetic (scripts/pinned_arithmetic.sh).
ARITHMETIC_ENV = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NPY_DISABLE_CPU_FEATURES",
    "PYTHONHASHSEED",
)

Arrays = tuple[np.ndarray, np.ndarray]


def splits() -> tuple[Arrays, Arrays, Arrays]:
    """-> (train, val, test), each (X (N, 1, 8, 8), y (N,)).

    The book's test set (359 digits, ``cnnbook.data.digits(seed=0)``); its
    1,438 training digits split 1,151 / 287 into train and validation.

    >>> (X, y), (X_val, y_val), (X_test, y_test) = splits()
    >>> len(X), len(X_val), len(X_test)
    (1151, 287, 359)
    """
    (X, y), test = D.digits(seed=0)
    train, val = D.train_val_split(X, y, VAL_FRACTION, SPLIT_SEED)
    return train, val, test


def plateaued(
    losses: Sequence[float], window: int, rel_tol: float, abs_tol: float
) -> bool:
    """losses (E,) per epoch -> True when the last ``window`` epochs did not
    improve the best earlier loss by more than ``max(rel_tol · best, abs_tol)``.

    Needs at least ``2 · window`` epochs. ``best`` is the lowest loss before
    the window; the window's lowest must beat it by the margin for training
    to count as still improving.

    >>> plateaued([1.0, 0.5, 0.3, 0.2], window=2, rel_tol=0.05, abs_tol=0.0)
    False
    >>> plateaued([1.0, 0.5, 0.49, 0.495], window=2, rel_tol=0.05, abs_tol=0.0)
    True
    >>> plateaued([0.3, 0.01, 0.0095, 0.0092], window=2, rel_tol=0.01, abs_tol=1e-3)
    True
    """
    if len(losses) < 2 * window:
        return False
    best = min(losses[:-window])
    return min(losses[-window:]) > best - max(rel_tol * best, abs_tol)


class Plateau:
    """A :func:`cnnbook.train.fit` callback: stop when the training loss
    (mean over each epoch) has plateaued (:func:`plateaued`).

    With ``drops`` > 0, each of the first ``drops`` plateaus instead divides
    the optimizer's learning rate by ``factor`` (He et al. divide it by 10
    twice; here at plateaus rather than at fixed iterations), and the rule
    then looks only at the epochs since the last drop. :func:`train` attaches
    the optimizer. ``drop_epochs`` and ``epoch`` record where it acted.
    """

    def __init__(
        self,
        window: int,
        rel_tol: float,
        abs_tol: float,
        drops: int = 0,
        factor: float = 10.0,
    ):
        self.window, self.rel_tol, self.abs_tol = window, rel_tol, abs_tol
        self.drops, self.factor = drops, factor
        self.optimizer: optim.Optimizer | None = None
        self.drop_epochs: list[int] = []
        self.epoch: int | None = None  # where training stopped at a plateau

    def attach(self, optimizer: optim.Optimizer) -> None:
        self.optimizer = optimizer

    def __call__(self, epoch: int, history: History) -> bool:
        start = self.drop_epochs[-1] if self.drop_epochs else 0
        losses = history.train_loss[start:]
        if not plateaued(losses, self.window, self.rel_tol, self.abs_tol):
            return False
        if len(self.drop_epochs) < self.drops:
            if self.optimizer is None:
                raise RuntimeError("Plateau: drops need an optimizer (attach it)")
            self.optimizer.lr = self.optimizer.lr / self.factor
            self.drop_epochs.append(epoch)
            return False
        self.epoch = epoch
        return True


def _batches(data: Arrays, dtype: Any) -> D.DataLoader:
    return D.DataLoader(data[0], data[1], batch_size=500, dtype=dtype)


def evaluate(model: nn.Module, data: Arrays) -> dict[str, float]:
    """Loss and accuracy in evaluation mode on ``data`` (X, y)."""
    dtype = model.parameters()[0].data.dtype
    return T.evaluate(model, _batches(data, dtype))


def train(
    model: nn.Module,
    train: Arrays,
    val: Arrays,
    epochs: int,
    lr: float,
    optimizer: str = "nesterov",
    weight_decay: float = 0.0,
    batch_size: int = 64,
    augment: Callable | None = None,
    seed: int = 0,
    dtype: Any = np.float64,
    stop: Callable[[int, History], bool] | None = None,
) -> tuple[History, bool]:
    """train, val (X, y) -> (history, diverged).

    Seeded shuffling (and ``augment``) with a constant learning rate, the
    validation loss and accuracy after every epoch, at most ``epochs`` epochs
    (fewer if ``stop`` says so). A run whose loss becomes NaN/inf stops there
    with ``diverged`` True and the history so far.
    """
    model.to(dtype=dtype)
    loader = D.DataLoader(
        train[0],
        train[1],
        batch_size,
        shuffle=True,
        seed=seed,
        augment=augment,
        dtype=dtype,
    )
    opt = optim.make_optimizer(optimizer, model.parameters(), lr, weight_decay)
    if hasattr(stop, "attach"):
        stop.attach(opt)  # a Plateau that lowers the learning rate
    callbacks = [stop] if stop is not None else []
    try:
        history = T.fit(
            model,
            loader,
            nn.CrossEntropyLoss(),
            opt,
            epochs,
            _batches(val, dtype),
            progress=False,
            callbacks=callbacks,
        )
    except T.NonFiniteLossError as err:
        return err.history, True
    return history, False


def curves(history: History) -> dict[str, list[float]]:
    """The per-epoch records a result file keeps."""
    return {
        "train_loss": list(history.train_loss),
        "train_acc": list(history.train_acc),
        "val_loss": list(history.val_loss),
        "val_acc": list(history.val_acc),
    }


def summary(values: Sequence[float]) -> dict[str, float]:
    """values over seeds -> mean, std (sample, ddof 1), min, max, n.

    >>> s = summary([1.0, 2.0, 3.0])
    >>> s["mean"], s["std"], s["min"], s["max"], s["n"]
    (2.0, 1.0, 1.0, 3.0, 3)
    """
    a = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        "min": float(a.min()),
        "max": float(a.max()),
        "n": len(a),
    }


def fmt(s: dict[str, float], digits: int = 3, scale: float = 1.0) -> str:
    """A summary as "mean ± std [min, max]".

    >>> fmt(summary([0.1, 0.2, 0.3]))
    '0.200 ± 0.100 [0.100, 0.300]'
    """
    m, sd, lo, hi = (scale * s[k] for k in ("mean", "std", "min", "max"))
    return f"{m:.{digits}f} ± {sd:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _git() -> dict[str, Any]:
    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        # the results folder itself does not make the code dirty
        dirty = git("status", "--porcelain", "--", ".", ":!experiments/results")
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(dirty)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def arithmetic() -> dict[str, Any]:
    """The settings that decide the last bits of a result: environment
    (scripts/pinned_arithmetic.sh), BLAS libraries and their kernels, NumPy's
    SIMD dispatch, and whether this is the pinned configuration."""
    from numpy._core import _multiarray_umath as m

    env = {k: os.environ.get(k) for k in ARITHMETIC_ENV}
    blas = [
        {
            k: info.get(k)
            for k in ("internal_api", "version", "architecture", "num_threads")
        }
        for info in threadpoolctl.threadpool_info()
    ]
    simd = [t for t in m.__cpu_dispatch__ if m.__cpu_features__.get(t)]
    pinned = env["OPENBLAS_CORETYPE"] == "Haswell" and env["PYTHONHASHSEED"] == "0"
    return {
        "pinned": pinned,
        "env": env,
        "blas": blas,
        "numpy_simd_targets_enabled": simd,
        "cpu": _cpu_model(),
        "machine": platform.machine(),
    }


def provenance(name: str, argv: Sequence[str], seeds: Sequence[int]) -> dict:
    """Who made a result: the command, seeds, versions, commit, arithmetic."""
    return {
        "experiment": name,
        "command": " ".join(["python", "-m", f"experiments.{name}", *argv]),
        "seeds": [int(s) for s in seeds],
        "cnnbook_version": cnnbook.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "git": _git(),
        "arithmetic": arithmetic(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
    }


def _finite(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj


def write_result(path: str | os.PathLike, result: dict) -> Path:
    """Write ``result`` as JSON to ``path`` atomically (old file or new one,
    never half); non-finite numbers become null."""
    path = Path(path)
    with atomic_write(path) as f:
        f.write(json.dumps(_finite(result), indent=1).encode() + b"\n")
    return path


def load_result(name: str) -> dict:
    """The stored result ``experiments/results/<name>.json``."""
    return json.loads((RESULTS / f"{name}.json").read_text())


def parser(name: str, doc: str, seeds: Sequence[int]) -> argparse.ArgumentParser:
    """The command line every experiment shares: ``--seeds``, ``--out``,
    ``--no-progress``."""
    p = argparse.ArgumentParser(
        prog=f"python -m experiments.{name}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=list(seeds),
        help=f"seeds of the reported runs (default: {' '.join(map(str, seeds))})",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=RESULTS / f"{name}.json",
        help=f"result file (default: experiments/results/{name}.json)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A text progress bar over runs (the package's tqdm), or a stand-in."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="run", disable=not enabled)


def begin(
    name: str, doc: str, seeds: Sequence[int], config: dict, argv: Any = None
) -> tuple[argparse.Namespace, dict, tuple[Arrays, Arrays, Arrays]]:
    """What an experiment's ``main`` starts with: its command line (``argv``,
    default ``sys.argv[1:]``) parsed by :func:`parser`, the result record begun
    by :func:`start` with ``config``, and the data -> (args, result, data)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser(name, doc, seeds).parse_args(argv)
    result = start(name, argv, seeds=args.seeds)
    result["config"] = config
    return args, result, splits()


def finish(out: Path, result: dict, t0: float, lines: Sequence[str]) -> dict:
    """What an experiment's ``main`` ends with: the wall time since ``t0`` in
    the result, the result written to ``out``, then ``lines`` (its summary)
    and where it went printed."""
    result["wall_seconds"] = time.perf_counter() - t0
    write_result(out, result)
    for line in lines:
        print(line)
    print(f"wrote {out} ({result['wall_seconds']:.0f} s)")
    return result


def run_jobs(bar: Any, jobs: Sequence[tuple[str, Callable[[], Any]]]) -> list:
    """Run each job, in order, under the progress bar -> their results. A job is
    (what the bar shows while it runs, a function of no arguments that runs it)."""
    results = []
    for what, job in jobs:
        bar.set_postfix_str(what)
        results.append(job())
        bar.update(1)
    return results


def start(name: str, argv: Sequence[str], seeds: Sequence[int]) -> dict:
    """One BLAS thread, a warning if the arithmetic is not pinned, and the
    provenance record the result starts with."""
    threadpoolctl.threadpool_limits(1)
    record = provenance(name, argv, seeds)
    if not record["arithmetic"]["pinned"]:
        print(
            f"experiments.{name}: the arithmetic is not pinned (run under "
            "`source scripts/pinned_arithmetic.sh`); the stored numbers may not "
            "reproduce elsewhere",
            file=sys.stderr,
        )
    return record
