"""Batch normalization and the speed of training, each network at its own
learning rate chosen on the validation split.

The chapter's network: :func:`cnnbook.models.vgg` with widths (16, 32), three
3×3 convolutions per block and a 64-unit dense layer, without and with batch
norm after every convolution. For each network, every rate of ``lr_grid`` is
tried with the ``--grid-seeds``; the rate with the lowest mean validation loss
after the last epoch is chosen (a run that diverges counts as infinitely bad).
Then each network trains at its chosen rate with every ``--seeds`` seed, and
the training loss per epoch, the first epoch with training loss below 0.1 and
the final validation and test accuracy are reported (mean ± spread).

    python -m experiments.batch_norm --seeds 0 1 2 3 4
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from functools import partial

from cnnbook import models
from experiments import runner as R

NAME = "batch_norm"
SEEDS = (0, 1, 2, 3, 4)
GRID_SEEDS = (100, 101)
CONFIG = {
    "data": "sklearn digits 8x8: cnnbook.data.digits(seed=0) train part, "
    "train_val_split(val_fraction=0.2, seed=0)",
    "model": "cnnbook.models.vgg((16, 32), convs_per_block=3, hidden=64, "
    "input_size=8, batch_norm=bn)",
    "optimizer": "nesterov",
    "batch_size": 64,
    "dtype": "float64",
    "epochs": 12,
    "lr_grid": [0.003, 0.01, 0.03, 0.1, 0.3],
    "lr_choice": "lowest mean validation loss after the last epoch over the "
    "grid seeds; a diverged run counts as infinite loss",
    "loss_threshold": 0.1,
}
NETS = {"no_bn": False, "bn": True}


def first_epoch_below(values: Sequence[float], threshold: float) -> int | None:
    """values (E,) -> the first epoch (from 1) with value < threshold, or None.

    >>> first_epoch_below([0.9, 0.4, 0.2], 0.5), first_epoch_below([1.0], 0.5)
    (2, None)
    """
    for i, v in enumerate(values, start=1):
        if v < threshold:
            return i
    return None


def run_one(net_name: str, lr: float, seed: int, data, test: bool, config=CONFIG):
    """One network trained for ``config["epochs"]`` -> (its record, the model).

    The test set is evaluated only when ``test`` (the reported runs, never the
    runs that choose the rate)."""
    train, val, test_data = data
    net = models.vgg(
        (16, 32),
        3,
        hidden=64,
        in_channels=1,
        input_size=8,
        batch_norm=NETS[net_name],
        seed=seed,
        input_grad=False,
    )
    t0 = time.perf_counter()
    history, diverged = R.train(
        net,
        train,
        val,
        config["epochs"],
        lr,
        config["optimizer"],
        batch_size=config["batch_size"],
        seed=seed,
    )
    record = {
        "net": net_name,
        "lr": lr,
        "seed": seed,
        "diverged": diverged,
        "curves": R.curves(history),
        "first_epoch_below": first_epoch_below(
            history.train_loss, config["loss_threshold"]
        ),
        "final_val": None if diverged else R.evaluate(net, val),
        "seconds": time.perf_counter() - t0,
    }
    if test and not diverged:
        record["test"] = R.evaluate(net, test_data)  # once, after the choice
    return record


def choose(grid: list[dict], net_name: str) -> tuple[float, dict[str, float]]:
    """The rate with the lowest mean final validation loss for ``net_name``;
    returns it and the mean loss of every rate (inf where a run diverged)."""
    mean_loss = {}
    for lr in sorted({r["lr"] for r in grid if r["net"] == net_name}):
        rs = [r for r in grid if r["net"] == net_name and r["lr"] == lr]
        losses = [math.inf if r["diverged"] else r["final_val"]["loss"] for r in rs]
        mean_loss[lr] = sum(losses) / len(losses)
    return min(mean_loss, key=mean_loss.get), mean_loss


def summarise(runs: list[dict], epochs: int) -> dict:
    """Mean ± spread per network over the reported seeds."""
    out = {}
    for net_name in NETS:
        rs = [r for r in runs if r["net"] == net_name and not r["diverged"]]
        if not rs:
            continue
        reached = [r["first_epoch_below"] for r in rs]
        out[net_name] = {
            "lr": rs[0]["lr"],
            "diverged": sum(r["diverged"] for r in runs if r["net"] == net_name),
            "train_loss_per_epoch": [
                R.summary([r["curves"]["train_loss"][e] for r in rs])
                for e in range(epochs)
            ],
            "runs_below_threshold": sum(e is not None for e in reached),
            # a run that never got below counts as epochs + 1
            "first_epoch_below": R.summary(
                [e if e is not None else epochs + 1 for e in reached]
            ),
            "final_val_accuracy": R.summary([r["final_val"]["accuracy"] for r in rs]),
            "final_val_loss": R.summary([r["final_val"]["loss"] for r in rs]),
            "test_accuracy": R.summary([r["test"]["accuracy"] for r in rs]),
        }
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = R.parser(NAME, __doc__, SEEDS)
    p.add_argument(
        "--grid-seeds",
        type=int,
        nargs="+",
        default=list(GRID_SEEDS),
        help="seeds of the learning-rate search (default: 100 101)",
    )
    p.add_argument(
        "--lr",
        nargs="+",
        default=[],
        metavar="NET=RATE",
        help="use this rate for NET (no_bn or bn) instead of the one the grid "
        "chooses (the grid still runs; for re-running stored seeds)",
    )
    args = p.parse_args(argv)
    given = {}
    for item in args.lr:
        net_name, _, rate = item.partition("=")
        if net_name not in NETS or not rate:
            p.error(f"--lr: expected NET=RATE with NET in {list(NETS)}, got {item!r}")
        given[net_name] = float(rate)
    result = R.start(NAME, argv, args.seeds)
    result["grid_seeds"] = list(args.grid_seeds)
    result["config"] = CONFIG
    data = R.splits()
    result["split_sizes"] = dict(
        zip(("train", "val", "test"), (len(d[1]) for d in data), strict=True)
    )
    grid_jobs = [
        (f"grid: {n}, lr {lr}, seed {s}", partial(run_one, n, lr, s, data, test=False))
        for n in NETS
        for lr in CONFIG["lr_grid"]
        for s in args.grid_seeds
    ]
    t0 = time.perf_counter()
    total = len(grid_jobs) + len(NETS) * len(args.seeds)
    with R.progress_bar(total, NAME, not args.no_progress) as bar:
        grid = R.run_jobs(bar, grid_jobs)
        chosen, mean_val_loss = {}, {}
        for net_name in NETS:
            chosen[net_name], mean_val_loss[net_name] = choose(grid, net_name)
        chosen_by = {n: "given" if n in given else "validation" for n in NETS}
        chosen.update(given)
        reported = [
            (
                f"{n}, lr {chosen[n]}, seed {s}",
                partial(run_one, n, chosen[n], s, data, test=True),
            )
            for n in NETS
            for s in args.seeds
        ]
        runs = R.run_jobs(bar, reported)
    result["grid"] = grid
    result["grid_mean_final_val_loss"] = {
        n: {str(lr): v for lr, v in m.items()} for n, m in mean_val_loss.items()
    }
    result["chosen_lr"] = chosen
    result["chosen_by"] = chosen_by
    result["runs"] = runs
    result["summary"] = summarise(runs, CONFIG["epochs"])
    lines = [
        f"{net_name:6s} lr {s['lr']}: train loss epoch 1 "
        f"{R.fmt(s['train_loss_per_epoch'][0])}, "
        f"last {R.fmt(s['train_loss_per_epoch'][-1], 4)}; first epoch < "
        f"{CONFIG['loss_threshold']}: {R.fmt(s['first_epoch_below'], 1)}; "
        f"test acc {R.fmt(s['test_accuracy'], 1, 100)} %"
        for net_name, s in result["summary"].items()
    ]
    return R.finish(args.out, result, t0, lines)


if __name__ == "__main__":
    main()
