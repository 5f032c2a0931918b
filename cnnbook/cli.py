"""Command line: ``python -m cnnbook train …`` and ``python -m cnnbook evaluate …``.

``train --model lenet5`` with no other option uses the book's recipe
(:data:`cnnbook.recipes.RECIPES`); each option overrides one setting. Bad
options exit with status 2 and a message; a failure while running (missing
file, corrupt checkpoint, a diverging run, a bad ``CNNBOOK_BACKEND``) exits
with status 1 and a message, no traceback. ``--out`` and the step count of the
schedule are checked before training starts.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from cnnbook import backend as B

__all__ = ["build_parser", "main"]


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        msg = f"expected a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return v


def _add_backend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=B.BACKENDS,
        default=None,
        help="array backend (default: $CNNBOOK_BACKEND or numpy)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m cnnbook``: sub-commands ``train`` and ``evaluate``."""
    from cnnbook.models import MODELS
    from cnnbook.optim import OPTIMIZERS, SCHEDULES
    from cnnbook.recipes import DATASETS, RECIPES

    p = argparse.ArgumentParser(
        prog="python -m cnnbook",
        description="Train and evaluate the cnnbook networks on offline data.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    t = sub.add_parser(
        "train",
        help="train a model and save a checkpoint",
        description="Train a model on the embedded data and print the test "
        "accuracy. Options left out take the book's recipe for the model: "
        + "; ".join(
            f"{m}: " + ", ".join(f"{k}={v}" for k, v in r.items())
            for m, r in RECIPES.items()
        ),
    )
    t.add_argument(
        "--model", required=True, choices=sorted(MODELS), help="network to train"
    )
    t.add_argument("--epochs", type=_positive_int, help="passes over the data")
    t.add_argument("--batch-size", type=_positive_int, help="images per step")
    t.add_argument(
        "--lr",
        type=_nonneg_float,
        help="learning rate (the peak rate with --schedule onecycle)",
    )
    t.add_argument("--weight-decay", type=_nonneg_float, help="L2 / decoupled decay")
    t.add_argument("--optimizer", choices=OPTIMIZERS, help="update rule")
    t.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule")
    t.add_argument(
        "--augment-shift",
        type=int,
        choices=range(0, 5),
        metavar="{0..4}",
        help="random shift in pixels (0 turns augmentation off)",
    )
    t.add_argument(
        "--data", choices=sorted(DATASETS), help="data set (default mnist5k)"
    )
    t.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed for weights, shuffling and augmentation (default 0)",
    )
    _add_backend_option(t)
    t.add_argument("--out", default=None, help="checkpoint to write (.npz)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser(
        "evaluate",
        help="test accuracy of a saved checkpoint",
        description="Load a checkpoint written by 'train' and "
        "print its loss and accuracy on the test split.",
    )
    e.add_argument("checkpoint", help="a .npz written by 'python -m cnnbook train'")
    e.add_argument(
        "--data",
        choices=sorted(DATASETS),
        help="data set (default: the one it was trained on)",
    )
    _add_backend_option(e)
    return p


def _train(args: argparse.Namespace) -> int:
    from cnnbook.checkpoint import save
    from cnnbook.files import check_writable
    from cnnbook.recipes import DATASETS, recipe, train_recipe

    overrides = {
        k: getattr(args, k)
        for k in (
            "epochs",
            "batch_size",
            "lr",
            "weight_decay",
            "optimizer",
            "schedule",
            "augment_shift",
            "data",
        )
    }
    settings = recipe(args.model, **overrides)
    if args.out:  # before training, so a bad path never costs the model
        check_writable("--out", args.out)
    if settings["schedule"] == "onecycle":
        n = len(DATASETS[settings["data"]]()[0][0])
        per_epoch = math.ceil(n / settings["batch_size"])
        total = settings["epochs"] * per_epoch
        if not 0.3 * total > 1:  # OneCycleLR's warm-up needs a step
            raise ValueError(
                f"--batch-size {settings['batch_size']} gives {per_epoch} step(s) "
                f"per epoch over {n} images, so --epochs {settings['epochs']} "
                f"makes {total}; the one-cycle schedule needs at least 4 steps: "
                "lower --batch-size, raise --epochs or choose another --schedule"
            )
    model, history, test = train_recipe(
        args.model,
        seed=args.seed,
        progress=not args.no_progress,
        backend=args.backend,
        **overrides,
    )
    print(
        f"test accuracy: {100 * test['accuracy']:.2f}% "
        f"(loss {test['loss']:.4f}, {args.model}, seed {args.seed})"
    )
    if args.out:
        save(
            args.out,
            model,
            history=history,
            meta={"recipe": settings, "seed": args.seed, "test": test},
        )
        print(f"saved {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from cnnbook.checkpoint import load, read_meta
    from cnnbook.data import DataLoader
    from cnnbook.models import get_model
    from cnnbook.recipes import DATASETS
    from cnnbook.train import evaluate

    info = read_meta(args.checkpoint)
    config = info.get("config")
    if not config:
        raise ValueError(f"{args.checkpoint} does not say which model it holds")
    data = args.data or info.get("meta", {}).get("recipe", {}).get("data", "mnist5k")
    where = f"{args.checkpoint}: model config {config!r}"
    if not isinstance(config, dict):
        raise ValueError(f"{where} is not a dict with 'name' and 'kwargs'")
    for key in ("name", "kwargs"):
        if key not in config:
            raise ValueError(f"{where} has no {key!r}")
    if not isinstance(config["kwargs"], dict):
        raise ValueError(f"{where}: 'kwargs' is not a dict")
    if args.backend:
        B.use(args.backend)
    try:
        model = get_model(config["name"], **config["kwargs"])
    except TypeError as err:
        raise ValueError(f"{where}: cannot build {config['name']!r}: {err}") from err
    load(args.checkpoint, model)
    _, (X, y) = DATASETS[data]()
    test = evaluate(model, DataLoader(X, y, batch_size=500))
    print(
        f"test accuracy: {100 * test['accuracy']:.2f}% (loss {test['loss']:.4f}, "
        f"{config['name']} on {data})"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m cnnbook`` and the ``cnnbook`` script."""
    args = build_parser().parse_args(argv)
    try:
        B.current()  # a bad CNNBOOK_BACKEND: a message, not a traceback
        return _train(args) if args.command == "train" else _evaluate(args)
    except (OSError, ValueError, TypeError, RuntimeError, ArithmeticError) as err:
        # ArithmeticError: a diverging run (NonFiniteLossError)
        print(f"cnnbook {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
