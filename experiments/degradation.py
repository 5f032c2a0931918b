"""Degradation: plain against residual networks at two depths, trained until
the training loss plateaus (He et al. 2016, Fig. 1, at small scale).

The chapter's networks: :func:`cnnbook.models.resnet` with widths (8, 16, 32)
and 1 or 3 basic blocks per stage (8 and 20 weight layers) and its plain twin
(``skip=False``), on the 1,151 training digits of the validation split. Every
network is trained identically (SGD with Nesterov momentum 0.9, learning rate
0.05, batch 64, float64) until its training loss plateaus
(:func:`experiments.runner.plateaued`: the best loss of the last 5 epochs
beats the best before by less than max(2 %, 0.001)); there the learning rate
is divided by 10, as He et al. do, and training goes on to the next plateau
(or 60 epochs in all). The training loss and error are then measured in
evaluation mode on the training data; He et al. find plain-56 above plain-20
and ResNet-56 below ResNet-20.

    python -m experiments.degradation --seeds 0 1 2
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial

from cnnbook import models
from experiments import runner as R

NAME = "degradation"
SEEDS = (0, 1, 2)
CONFIG = {
    "data": "sklearn digits 8x8: cnnbook.data.digits(seed=0) train part, "
    "train_val_split(val_fraction=0.2, seed=0)",
    "model": "cnnbook.models.resnet(blocks, widths, skip=kind == 'residual')",
    "widths": [8, 16, 32],
    "blocks_per_stage": [1, 3],
    "depths": [8, 20],
    "optimizer": "nesterov",
    "lr": 0.05,
    "batch_size": 64,
    "dtype": "float64",
    "max_epochs": 60,
    "plateau": {
        "window": 5,
        "rel_tol": 0.02,
        "abs_tol": 1e-3,
        "drops": 1,
        "factor": 10.0,
    },
    "lr_choice": "the chapter's 0.05 for every network (He et al. train plain "
    "and residual networks with one recipe); not tuned",
}


def run_one(kind: str, blocks: int, seed: int, data, config=CONFIG) -> dict:
    """One network trained to its plateau -> its record (curves, final
    metrics in evaluation mode on train and validation, test once)."""
    train, val, test = data
    widths = config["widths"]
    net = models.resnet(
        (blocks,) * len(widths),
        widths,
        in_channels=1,
        skip=kind == "residual",
        seed=seed,
        input_grad=False,
    )
    stop = R.Plateau(**config["plateau"])
    t0 = time.perf_counter()
    history, diverged = R.train(
        net,
        train,
        val,
        config["max_epochs"],
        config["lr"],
        config["optimizer"],
        batch_size=config["batch_size"],
        seed=seed,
        stop=stop,
    )
    final_train = R.evaluate(net, train)
    return {
        "kind": kind,
        "depth": 2 * blocks * len(widths) + 2,
        "seed": seed,
        "epochs": len(history),
        "plateau_epoch": stop.epoch,
        "lr_drop_epochs": list(stop.drop_epochs),
        "lr_per_epoch": list(history.lr),
        "diverged": diverged,
        "curves": R.curves(history),
        "final_train": final_train,
        "final_train_error": 1.0 - final_train["accuracy"],
        "final_val": R.evaluate(net, val),
        "test": R.evaluate(net, test),  # the only time the test set is used
        "seconds": time.perf_counter() - t0,
    }


def summarise(runs: list[dict]) -> dict:
    """Mean ± spread per network over seeds, and the paired (same seed)
    differences deep − shallow for plain and residual networks."""
    out: dict = {"networks": {}, "deeper_minus_shallower": {}}
    keys = sorted({(r["kind"], r["depth"]) for r in runs})
    for kind, depth in keys:
        rs = [r for r in runs if (r["kind"], r["depth"]) == (kind, depth)]
        out["networks"][f"{kind}-{depth}"] = {
            "final_train_loss": R.summary([r["final_train"]["loss"] for r in rs]),
            "final_train_error": R.summary([r["final_train_error"] for r in rs]),
            "last_epoch_train_loss": R.summary(
                [r["curves"]["train_loss"][-1] for r in rs]
            ),
            "epochs": R.summary([r["epochs"] for r in rs]),
            "plateaued": sum(r["plateau_epoch"] is not None for r in rs),
            "val_accuracy": R.summary([r["final_val"]["accuracy"] for r in rs]),
            "test_accuracy": R.summary([r["test"]["accuracy"] for r in rs]),
        }
    for kind in ("plain", "residual"):
        by_seed = {}
        for r in runs:
            if r["kind"] == kind:
                by_seed.setdefault(r["seed"], {})[r["depth"]] = r
        pairs = [d for d in by_seed.values() if len(d) == 2]
        if pairs:
            lo, hi = sorted(pairs[0])
            out["deeper_minus_shallower"][kind] = {
                "final_train_loss": R.summary(
                    [
                        p[hi]["final_train"]["loss"] - p[lo]["final_train"]["loss"]
                        for p in pairs
                    ]
                ),
                "final_train_error": R.summary(
                    [
                        p[hi]["final_train_error"] - p[lo]["final_train_error"]
                        for p in pairs
                    ]
                ),
            }
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    args, result, data = R.begin(NAME, __doc__, SEEDS, CONFIG, argv)
    result["split_sizes"] = {
        k: len(d[1]) for k, d in zip(("train", "val", "test"), data, strict=True)
    }
    jobs = [
        (f"{k}, {b} blocks/stage, seed {s}", partial(run_one, k, b, s, data))
        for s in args.seeds
        for b in CONFIG["blocks_per_stage"]
        for k in ("plain", "residual")
    ]
    t0 = time.perf_counter()
    with R.progress_bar(len(jobs), NAME, not args.no_progress) as bar:
        runs = R.run_jobs(bar, jobs)
    result["runs"] = runs
    result["summary"] = summarise(runs)
    lines = [
        f"{name:12s} train loss {R.fmt(s['final_train_loss'], 4)}  "
        f"train error {R.fmt(s['final_train_error'], 2, 100)} %  "
        f"epochs {R.fmt(s['epochs'], 0)}  test acc "
        f"{R.fmt(s['test_accuracy'], 1, 100)} %"
        for name, s in result["summary"]["networks"].items()
    ]
    return R.finish(args.out, result, t0, lines)


if __name__ == "__main__":
    main()
