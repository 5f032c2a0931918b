"""The deep-architectures chapter's experiments at the size their conclusions need.

One module per experiment, each runnable from the repository root under the
pinned arithmetic (``experiments/README.md``)::

    python -m experiments.degradation --seeds 0 1 2
    python -m experiments.batch_norm --seeds 0 1 2 3 4
    python -m experiments.regularization --seeds 0 1 2 3 4

Each writes ``experiments/results/<name>.json``: the command, seeds and
configuration, the versions and arithmetic that produced it, per-seed curves,
the test metrics (computed once, after every choice was made on the
validation split) and the summary (mean ± spread). :mod:`experiments.runner`
holds what they share. Not part of the ``cnnbook`` wheel.
"""
