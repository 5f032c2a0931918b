"""Regularisation on 150 training digits: none, dropout, weight decay and
random shifts, each remedy's strength chosen on the validation split.

The chapter's network: :func:`cnnbook.models.vgg` with widths (16, 32), one
3×3 convolution per block and a 64-unit dense layer, trained for 40 epochs
(SGD with Nesterov momentum, learning rate 0.05, batch 32, float64) on 15
digits per class drawn (by the seed) from the training part of the
validation split. Each seed draws its own 150 digits, initial weights, data
order, dropout masks and shifts; within a seed every setting shares them, so
differences between settings are paired. For each remedy the strength with
the highest mean validation accuracy over the seeds is chosen (ties: lower
mean validation loss); the test set is then evaluated once, for "none" and
the chosen strength of each remedy.

    python -m experiments.regularization --seeds 0 1 2 3 4
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial

import numpy as np

from cnnbook import data as D
from cnnbook import models
from experiments import runner as R

NAME = "regularization"
SEEDS = (0, 1, 2, 3, 4)
CONFIG = {
    "data": "sklearn digits 8x8: 15 per class drawn by the seed from the train "
    "part of train_val_split(digits(seed=0) train, 0.2, seed=0); "
    "validation: the whole validation part",
    "per_class": 15,
    "model": "cnnbook.models.vgg((16, 32), convs_per_block=1, hidden=64, "
    "input_size=8, dropout=p)",
    "optimizer": "nesterov",
    "lr": 0.05,
    "batch_size": 32,
    "epochs": 40,
    "dtype": "float64",
    "grid": {
        "none": [{}],
        "dropout": [{"dropout": 0.25}, {"dropout": 0.5}],
        "weight_decay": [
            {"weight_decay": 1e-3},
            {"weight_decay": 3e-3},
            {"weight_decay": 1e-2},
            {"weight_decay": 3e-2},
        ],
        "shift": [{"shift": 1}, {"shift": 2}],
    },
    "choice": "per remedy, the highest mean final validation accuracy over the "
    "seeds (ties: lower mean final validation loss)",
}


def subset(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """y (N,) -> indices of ``per_class`` examples of every class, drawn by
    ``seed``, in a seeded random order.

    >>> idx = subset(np.repeat(np.arange(3), 5), 2, seed=0)
    >>> np.bincount(np.repeat(np.arange(3), 5)[idx]).tolist()
    [2, 2, 2]
    """
    rng = np.random.default_rng(seed)
    picks = [
        rng.choice(np.flatnonzero(y == c), per_class, replace=False)
        for c in np.unique(y)
    ]
    return rng.permutation(np.concatenate(picks))


def label(setting: dict) -> str:
    """A setting as a short name: {} -> "none", {"dropout": 0.5} -> "dropout=0.5"."""
    return ", ".join(f"{k}={v:g}" for k, v in setting.items()) or "none"


def run_one(setting: dict, seed: int, data, config=CONFIG):
    """One setting at one seed -> (its record, the trained model)."""
    (X, y), val, _ = data
    idx = subset(y, config["per_class"], seed)
    small = (X[idx], y[idx])
    net = models.vgg(
        (16, 32),
        1,
        hidden=64,
        in_channels=1,
        input_size=8,
        dropout=setting.get("dropout", 0.0),
        seed=seed,
        input_grad=False,
    )
    shift = setting.get("shift", 0)
    t0 = time.perf_counter()
    history, diverged = R.train(
        net,
        small,
        val,
        config["epochs"],
        config["lr"],
        config["optimizer"],
        weight_decay=setting.get("weight_decay", 0.0),
        batch_size=config["batch_size"],
        augment=D.RandomShift(shift) if shift else None,
        seed=seed,
    )
    record = {
        "setting": label(setting),
        "seed": seed,
        "diverged": diverged,
        "curves": R.curves(history),
        "final_train": R.evaluate(net, small),  # evaluation mode, no shifts
        "final_val": R.evaluate(net, val),
        "seconds": time.perf_counter() - t0,
    }
    return record, net


def choose(runs: list[dict], candidates: list[str]) -> str:
    """The candidate setting with the highest mean final validation accuracy
    (ties: the lower mean final validation loss)."""

    def key(name: str) -> tuple[float, float]:
        rs = [r for r in runs if r["setting"] == name]
        acc = np.mean([r["final_val"]["accuracy"] for r in rs])
        loss = np.mean([r["final_val"]["loss"] for r in rs])
        return (-float(acc), float(loss))

    return min(candidates, key=key)


def summarise(runs: list[dict], chosen: dict[str, str]) -> dict:
    """Mean ± spread of every setting on validation; for the chosen ones also
    test, and the paired (same seed) difference from "none"."""
    out: dict = {"validation": {}, "chosen": {}}
    for name in dict.fromkeys(r["setting"] for r in runs):
        rs = [r for r in runs if r["setting"] == name]
        out["validation"][name] = {
            "val_accuracy": R.summary([r["final_val"]["accuracy"] for r in rs]),
            "val_loss": R.summary([r["final_val"]["loss"] for r in rs]),
        }
    base = {r["seed"]: r for r in runs if r["setting"] == "none"}
    for remedy, name in chosen.items():
        rs = [r for r in runs if r["setting"] == name]
        out["chosen"][remedy] = {
            "setting": name,
            "train_loss": R.summary([r["final_train"]["loss"] for r in rs]),
            "train_accuracy": R.summary([r["final_train"]["accuracy"] for r in rs]),
            "val_accuracy": R.summary([r["final_val"]["accuracy"] for r in rs]),
            "test_loss": R.summary([r["test"]["loss"] for r in rs]),
            "test_accuracy": R.summary([r["test"]["accuracy"] for r in rs]),
            "gap": R.summary(
                [r["final_train"]["accuracy"] - r["test"]["accuracy"] for r in rs]
            ),
            "test_accuracy_minus_none": R.summary(
                [
                    r["test"]["accuracy"] - base[r["seed"]]["test"]["accuracy"]
                    for r in rs
                ]
            ),
            "test_loss_minus_none": R.summary(
                [r["test"]["loss"] - base[r["seed"]]["test"]["loss"] for r in rs]
            ),
        }
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    args, result, data = R.begin(NAME, __doc__, SEEDS, CONFIG, argv)
    result["split_sizes"] = {
        "train": CONFIG["per_class"] * 10,
        "train_pool": len(data[0][1]),
        "val": len(data[1][1]),
        "test": len(data[2][1]),
    }
    jobs = [
        (f"{label(s)}, seed {seed}", partial(run_one, s, seed, data))
        for settings in CONFIG["grid"].values()
        for s in settings
        for seed in args.seeds
    ]
    t0 = time.perf_counter()
    with R.progress_bar(len(jobs), NAME, not args.no_progress) as bar:
        done = R.run_jobs(bar, jobs)  # (record, trained model) per job
    runs = [record for record, _ in done]
    nets = {(record["setting"], record["seed"]): net for record, net in done}
    chosen = {
        remedy: choose(runs, [label(s) for s in settings])
        for remedy, settings in CONFIG["grid"].items()
    }
    test = data[2]
    for r in runs:  # the test set, once, for the chosen settings only
        if r["setting"] in chosen.values():
            r["test"] = R.evaluate(nets[r["setting"], r["seed"]], test)
    result["chosen"] = chosen
    result["runs"] = runs
    result["summary"] = summarise(runs, chosen)
    lines = [
        f"{remedy:13s} {s['setting']:20s} train acc "
        f"{R.fmt(s['train_accuracy'], 1, 100)} %  val acc "
        f"{R.fmt(s['val_accuracy'], 1, 100)} %  test acc "
        f"{R.fmt(s['test_accuracy'], 1, 100)} %  vs none "
        f"{R.fmt(s['test_accuracy_minus_none'], 1, 100)} points"
        for remedy, s in result["summary"]["chosen"].items()
    ]
    return R.finish(args.out, result, t0, lines)


if __name__ == "__main__":
    main()
