"""Benchmark cnnbook's NumPy kernels against PyTorch CPU on identical shapes.

Run from the repository root (1 thread unless ``--threads`` says otherwise):

    .venv/bin/python benchmarks/run.py              # full suite, ~2 minutes
    .venv/bin/python benchmarks/run.py --threads 2  # both libraries on 2 threads
    .venv/bin/python benchmarks/run.py --quick      # tiny shapes: checks it works

For every case the two libraries run interleaved (A B A B ...) after a warm-up,
each on the same inputs, dtype and thread count (``threadpoolctl`` for NumPy's
BLAS, ``torch.set_num_threads`` for PyTorch). The table gives the median and
the minimum time of each and the ratio cnnbook / PyTorch (below 1: cnnbook is
faster). Absolute times drift on a shared machine; ratios from one interleaved
run are what to quote. Results go to ``benchmarks/results/latest.json`` with
a description of the machine (CPU, NumPy/PyTorch versions, the BLAS and its
core type from ``threadpoolctl.threadpool_info()``) and, with matplotlib, a
figure ``benchmarks/results/latest.png`` for the book's CPU/GPU chapter.

PyTorch is a benchmark peer only; cnnbook never imports it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import threadpoolctl

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import cnnbook.functional as Fn  # noqa: E402
from cnnbook.functional import _fast as fast_kernels  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the suite still times cnnbook alone
    torch = None

RESULTS = ROOT / "benchmarks" / "results"
Step = Callable[[], Any]


@dataclass
class Case:
    """One benchmark: ``build(quick)`` returns (cnnbook step, torch step or None,
    a description of the shapes)."""

    name: str
    label: str
    build: Callable[[bool], tuple[Step, Step | None, str]]
    target: float | None = None
    threads: int | None = None  # None: the run's --threads
    dtype: str = "float32"
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------
# kernels: conv and max-pool forward + backward (dx, dW, db)
# ----------------------------------------------------------------------------
def _rng_arrays(dtype, *shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def conv_case(x_shape, w_shape, stride, padding, dtype="float32", groups=1):
    """x, w shapes -> builder of cnnbook and PyTorch conv forward + backward
    (``groups``: grouped or, with groups = channels, depthwise)."""

    def build(quick: bool):
        xs, ws, g = x_shape, w_shape, groups
        if quick and g > 1:  # tiny shapes, same structure
            g = 4 if g == xs[1] else 2
            xs, ws = (2, 4, 8, 8), (4, 4 // g, ws[2], ws[3])
        elif quick:
            xs = (2, min(xs[1], 3), min(xs[2], 8), min(xs[3], 8))
            ws = (min(ws[0], 4), xs[1], ws[2], ws[3])
        N, _C, H, W = xs
        F_, _, KH, KW = ws
        OH = (H + 2 * padding - KH) // stride + 1
        OW = (W + 2 * padding - KW) // stride + 1
        x, w, b, dy = _rng_arrays(dtype, xs, ws, (F_,), (N, F_, OH, OW))

        def ours():
            _y, cache = fast_kernels.conv2d_forward(x, w, b, stride, padding, 1, g)
            return fast_kernels.conv2d_backward(dy, cache)

        peer = None
        if torch is not None:
            tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
            tdy = torch.from_numpy(dy)

            def peer():
                tx.grad = tw.grad = tb.grad = None
                y = TF.conv2d(tx, tw, tb, stride, padding, 1, g)
                y.backward(tdy)
                return tx.grad, tw.grad, tb.grad

        desc = f"x{xs} w{ws} s{stride} p{padding}" + (f" g{g}" if g > 1 else "")
        return ours, peer, desc

    return build


def maxpool_case(x_shape, k=2, dtype="float32"):
    def build(quick: bool):
        xs = (2, min(x_shape[1], 3), 8, 8) if quick else x_shape
        x, dy = _rng_arrays(dtype, xs, (xs[0], xs[1], xs[2] // k, xs[3] // k))

        def ours():
            _y, cache = fast_kernels.max_pool2d_forward(x, k)
            return fast_kernels.max_pool2d_backward(dy, cache)

        peer = None
        if torch is not None:
            tx, tdy = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

            def peer():
                tx.grad = None
                TF.max_pool2d(tx, k).backward(tdy)
                return tx.grad

        return ours, peer, f"x{xs} k{k} s{k}"

    return build


def naive_case(fast: bool):
    """Forward only, small: the loop reference (or im2col) against PyTorch."""

    def build(quick: bool):
        xs, ws = (
            ((1, 2, 6, 6), (2, 2, 3, 3)) if quick else ((2, 3, 12, 12), (4, 3, 3, 3))
        )
        x, w, b = _rng_arrays("float32", xs, ws, (ws[0],))
        if fast:

            def ours():
                return fast_kernels.conv2d_forward(x, w, b, 1, 1)[0]
        else:

            def ours():
                return Fn.conv2d_naive(x, w, b, 1, 1)

        peer = None
        if torch is not None:
            tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))

            def peer():
                with torch.no_grad():
                    return TF.conv2d(tx, tw, tb, 1, 1)

        return ours, peer, f"x{xs} w{ws} p1, forward only"

    return build


# ----------------------------------------------------------------------------
# full training steps: forward, loss, backward, SGD update
# ----------------------------------------------------------------------------
def _torch_mirror(model) -> Any:
    """A PyTorch copy of a cnnbook model (same layers, same weights), built by
    walking its modules: Sequential, Residual and the standard layers."""
    import torch.nn as tnn

    class Residual(tnn.Module):
        def __init__(self, body, shortcut):
            super().__init__()
            self.body, self.shortcut = body, shortcut

        def forward(self, x):
            return self.body(x) + self.shortcut(x)

    def copy(t, m, names=("weight", "bias")):
        with torch.no_grad():
            for name in names:
                src = getattr(m, name, None)
                if src is not None:
                    getattr(t, name).copy_(torch.from_numpy(np.asarray(src.data)))
        return t

    def convert(m):
        kind = type(m).__name__
        if kind == "Sequential":
            return tnn.Sequential(*(convert(k) for k in m.children()))
        if kind == "Residual":
            return Residual(convert(m.body), convert(m.shortcut))
        if kind == "Conv2d":
            F_, C, KH, KW = m.weight.shape
            t = tnn.Conv2d(C, F_, (KH, KW), m.stride, m.padding,
                           bias=m.bias is not None)  # fmt: skip
            return copy(t, m)
        if kind == "Linear":
            out_f, in_f = m.weight.shape
            return copy(tnn.Linear(in_f, out_f, m.bias is not None), m)
        if kind == "BatchNorm2d":
            return copy(tnn.BatchNorm2d(m.num_features, m.eps, m.momentum), m)
        if kind in ("MaxPool2d", "AvgPool2d"):
            return getattr(tnn, kind)(m.kernel_size, m.stride, m.padding)
        if kind == "GlobalAvgPool2d":
            return tnn.Sequential(tnn.AdaptiveAvgPool2d(1), tnn.Flatten())
        if kind in ("ReLU", "Tanh", "Sigmoid", "Flatten", "Identity"):
            return getattr(tnn, kind)()
        raise TypeError(f"no PyTorch mirror for {kind}")

    return convert(model)


def _n_params(model) -> int:
    return int(sum(int(np.prod(p.shape)) for p in model.parameters()))


def sgd_step(model, x, t, lr: float = 0.01) -> Step:
    """``step()``: one SGD step of cnnbook ``model`` on the batch (x, t),
    forward, loss, backward and update -> the loss."""
    import cnnbook.optim as optim

    opt = optim.SGD(model.parameters(), lr=lr)

    def step():
        model.zero_grad()
        loss, dlogits = Fn.softmax_cross_entropy(model(x), t)
        model.backward(dlogits)
        opt.step()
        return loss

    return step


def train_case(model_name: str):
    """Full step on a batch: cnnbook.models.<model_name> + cnnbook.optim.SGD
    against a PyTorch model of the same architecture."""

    def build(quick: bool):
        import cnnbook.models as models

        # As the book's recipes build it: the first conv computes no dx (nobody
        # needs the gradient of the data; PyTorch skips it for x without grad).
        model = models.get_model(model_name, seed=0, input_grad=False)
        batch = 4 if quick else 64
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, 1, 28, 28)).astype("float32")
        t = rng.integers(0, 10, batch)
        ours = sgd_step(model, x, t)

        peer = None
        desc = f"x({batch}, 1, 28, 28), {model.num_parameters()} parameters"
        if torch is not None:
            tmodel = _torch_mirror(model)
            if _n_params(tmodel) != model.num_parameters():
                raise ValueError("the PyTorch mirror has other parameters")
            topt = torch.optim.SGD(tmodel.parameters(), lr=0.01)
            tx, tt = torch.from_numpy(x), torch.from_numpy(t)

            def peer():
                topt.zero_grad(set_to_none=True)
                loss = TF.cross_entropy(tmodel(tx), tt)
                loss.backward()
                topt.step()
                return loss

        return ours, peer, desc

    return build


CASES = [
    Case("conv_lenet1", "conv LeNet-1", conv_case((64, 1, 28, 28), (6, 1, 5, 5), 1, 2),
         target=0.8),
    Case("conv_lenet2", "conv LeNet-2", conv_case((64, 6, 14, 14), (16, 6, 5, 5), 1, 0),
         target=2.0),
    Case("conv_vgg", "conv VGG", conv_case((32, 64, 32, 32), (64, 64, 3, 3), 1, 1),
         target=2.0),
    Case("conv_stride2", "conv stride-2",
         conv_case((32, 64, 32, 32), (128, 64, 3, 3), 2, 1), target=1.5),
    Case("conv_vgg_f64", "conv VGG float64",
         conv_case((32, 64, 32, 32), (64, 64, 3, 3), 1, 1, "float64"), target=1.0,
         dtype="float64"),
    Case("conv_depthwise", "conv depthwise 3x3 (MobileNet)",
         conv_case((32, 32, 56, 56), (32, 1, 3, 3), 1, 1, groups=32), target=3.0),
    Case("conv_depthwise_28", "conv depthwise 3x3, 64 ch, 28 px",
         conv_case((32, 64, 28, 28), (64, 1, 3, 3), 1, 1, groups=64), target=3.0),
    Case("conv_depthwise_s2", "conv depthwise 3x3 stride 2, 64 ch, 28 px",
         conv_case((32, 64, 28, 28), (64, 1, 3, 3), 2, 1, groups=64), target=3.0),
    Case("conv_grouped", "conv grouped 3x3, 8 groups (ResNeXt)",
         conv_case((32, 64, 28, 28), (64, 8, 3, 3), 1, 1, groups=8), target=3.0),
    Case("maxpool_lenet", "max-pool 2x2 (64,6,28,28)", maxpool_case((64, 6, 28, 28)),
         target=0.6),
    Case("maxpool_vgg", "max-pool 2x2 (32,64,32,32)", maxpool_case((32, 64, 32, 32)),
         target=0.6),
    Case("lenet5_step", "LeNet-5 train step, 1 thr", train_case("lenet5"), target=1.2),
    Case("lenet5_step_2t", "LeNet-5 train step, 2 thr", train_case("lenet5"),
         target=1.6, threads=2),
    Case("resnet_step", "ResNet train step", train_case("resnet")),
    Case("conv_naive", "conv small, naive loops", naive_case(fast=False)),
    Case("conv_small_fast", "conv small, im2col", naive_case(fast=True)),
]  # fmt: skip


# ----------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------
class Threads:
    """Fix the thread count of NumPy's BLAS and of PyTorch inside a block."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self._limits = threadpoolctl.threadpool_limits(limits=self.n)
        if torch is not None:
            self._torch = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        self._limits.restore_original_limits()
        if torch is not None:
            torch.set_num_threads(self._torch)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def interleaved(
    a: Step, b: Step | None, warmup: int, min_runs: int, max_runs: int, budget: float
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Time a and b alternately (A B A B ...) after ``warmup`` calls of each;
    stop after ``max_runs`` pairs or once ``budget`` seconds have passed (but
    never before ``min_runs`` pairs). Returns each one's times in seconds on
    both clocks: "wall" (elapsed) and "cpu" (this process's CPU time: on a
    machine shared with other jobs it leaves out the time spent waiting for a
    core; with several threads it adds theirs up)."""
    for _ in range(warmup):
        a()
        if b is not None:
            b()
    ta: dict[str, list[float]] = {k: [] for k in CLOCKS}
    tb: dict[str, list[float]] = {k: [] for k in CLOCKS}
    start = time.perf_counter()

    def timed(step: Step, into: dict[str, list[float]]) -> None:
        w0, c0 = time.perf_counter(), time.process_time()
        step()
        into["cpu"].append(time.process_time() - c0)
        into["wall"].append(time.perf_counter() - w0)

    while len(ta["wall"]) < min_runs or (
        len(ta["wall"]) < max_runs and time.perf_counter() - start < budget
    ):
        timed(a, ta)
        if b is not None:
            timed(b, tb)
    return ta, tb


def _summary(times: list[float]) -> dict[str, Any] | None:
    if not times:
        return None
    return {
        "median_ms": 1e3 * statistics.median(times),
        "min_ms": 1e3 * min(times),
        "runs": len(times),
    }


def run_case(
    case: Case, quick: bool, threads: int, budget: float, clock: str = "wall"
) -> dict[str, Any]:
    """Time one case; the row's headline numbers use ``clock``, and
    ``by_clock`` keeps both clocks' summaries."""
    row: dict[str, Any] = {
        "name": case.name,
        "label": case.label,
        "dtype": case.dtype,
        "threads": case.threads or threads,
        "target": case.target,
        "clock": clock,
    }
    try:
        ours, peer, desc = case.build(quick)
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        # e.g. cnnbook.models not there yet: report, keep going
        row.update(status="skipped", reason=f"{type(err).__name__}: {err}")
        return row
    row["shapes"] = desc
    with Threads(row["threads"]):
        ta, tb = interleaved(
            ours,
            peer,
            warmup=1 if quick else 3,
            min_runs=2 if quick else 7,
            max_runs=2 if quick else 60,
            budget=0.0 if quick else budget,
        )
    row["status"] = "ok"
    row["by_clock"] = {}
    for name in CLOCKS:
        a, b = ta[name], tb[name]
        entry: dict[str, Any] = {"cnnbook": _summary(a), "torch": _summary(b)}
        if b and min(b) > 0 and statistics.median(b) > 0:
            entry["ratio_median"] = statistics.median(a) / statistics.median(b)
            entry["ratio_min"] = min(a) / min(b)
        row["by_clock"][name] = entry
    row.update(row["by_clock"][clock])
    if row.get("ratio_median") is not None and case.target is not None:
        row["met"] = row["ratio_median"] <= case.target
    return row


def peak_memory(quick: bool, target_mib: float = 200.0) -> dict[str, Any]:
    """tracemalloc peak of the VGG case's forward + backward (NumPy registers
    its buffers with tracemalloc). Run first, before any kernel has cached a
    buffer, so reused buffers count too."""
    build = conv_case((32, 64, 32, 32), (64, 64, 3, 3), 1, 1)
    ours, _, desc = build(quick)
    conv_case((1, 1, 4, 4), (1, 1, 3, 3), 1, 1)(True)[0]()  # first-call imports
    with Threads(1):
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            ours()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    mib = peak / 2**20
    return {
        "case": "conv_vgg",
        "shapes": desc,
        "peak_mib": mib,
        "target_mib": target_mib,
        "met": mib <= target_mib,
    }


# ----------------------------------------------------------------------------
# the machine, the table, the figure
# ----------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(("avx", "fma")))
    except OSError:
        pass
    return []


def machine() -> dict[str, Any]:
    info = threadpoolctl.threadpool_info()
    blas = [i for i in info if i.get("user_api") == "blas"]
    return {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": None if torch is None else torch.__version__,
        "blas": [
            {k: i.get(k) for k in ("internal_api", "version", "architecture")}
            for i in blas
        ],
        "openblas_env": {
            k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")
        },
        "threadpool_info": info,
        "torch_config": None if torch is None else torch.__config__.show(),
    }


def _fmt(x: float | None, spec: str = "8.2f") -> str:
    return (
        format(x, spec) if x is not None else " " * (int(spec.split(".")[0]) - 1) + "-"
    )


def table(rows: list[dict[str, Any]], memory: dict[str, Any]) -> str:
    head = (
        f"{'case':28} {'thr':>3} {'ours med':>9} {'ours min':>9} {'torch med':>9} "
        f"{'torch min':>9} {'ratio':>6} {'r(min)':>6} {'target':>6}  met"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"{r['label']:28} skipped: {r['reason']}")
            continue
        o, t = r["cnnbook"], r["torch"] or {}
        met = {True: "yes", False: "NO"}.get(r.get("met"), "")
        lines.append(
            f"{r['label']:28} {r['threads']:3d} {_fmt(o['median_ms'], '9.2f')} "
            f"{_fmt(o['min_ms'], '9.2f')} {_fmt(t.get('median_ms'), '9.2f')} "
            f"{_fmt(t.get('min_ms'), '9.2f')} {_fmt(r.get('ratio_median'), '6.2f')} "
            f"{_fmt(r.get('ratio_min'), '6.2f')} {_fmt(r['target'], '6.1f')}  {met}"
        )
    lines.append(
        f"peak memory, VGG conv forward + backward (tracemalloc): "
        f"{memory['peak_mib']:.1f} MiB (target <= {memory['target_mib']:.0f})"
    )
    return "\n".join(lines)


def figure(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get("ratio_median") is not None]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.2))
    names = [r["label"] for r in rows][::-1]
    ratios = [r["ratio_median"] for r in rows][::-1]
    colors = ["tab:green" if v <= 1 else "tab:orange" for v in ratios]
    ax.barh(names, ratios, color=colors)
    for i, r in enumerate(rows[::-1]):
        if r["target"] is not None:
            ax.plot(r["target"], i, "k|", markersize=14)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("time cnnbook / time PyTorch (median; | = target; < 1: faster)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="threads (default 1)")
    p.add_argument("--quick", action="store_true", help="tiny shapes, 2 runs each")
    p.add_argument("--cases", help="comma-separated case names (default: all)")
    p.add_argument("--budget", type=float, default=4.0, help="seconds per case")
    p.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: elapsed time (default); cpu: process CPU time, steadier "
        "when other jobs load the machine (both are saved)",
    )
    p.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    p.add_argument("--plot", type=Path, default=None, help="figure path (.png)")
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)

    chosen = CASES
    if args.cases:
        wanted = args.cases.split(",")
        unknown = set(wanted) - {c.name for c in CASES}
        if unknown:
            p.error(
                f"unknown cases {sorted(unknown)}; known: {[c.name for c in CASES]}"
            )
        chosen = [c for c in CASES if c.name in wanted]
    load_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    memory = peak_memory(args.quick)
    rows = []
    for case in chosen:
        rows.append(run_case(case, args.quick, args.threads, args.budget, args.clock))
        print(f"  done {case.name}", file=sys.stderr, flush=True)
    result = {
        "schema": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "settings": {"threads": args.threads, "quick": args.quick,
                     "budget_s": args.budget, "clock": args.clock,
                     "load_average_start": load_start},
        "machine": machine(),
        "cases": rows,
        "memory": memory,
    }  # fmt: skip
    text = table(rows, memory)
    m = result["machine"]
    blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']})"
                     for b in m["blas"])  # fmt: skip
    print(f"{m['cpu']}, {m['logical_cpus']} CPUs; numpy {m['numpy']} [{blas}]; "
          f"torch {m['torch']}; load {m['load_average']}")  # fmt: skip
    print(f"clock: {args.clock} (times in ms)")
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {args.out}")
    if not args.no_plot:
        plot = args.plot or args.out.with_suffix(".png")
        try:
            figure(
                rows, plot, f"cnnbook / PyTorch CPU — {m['cpu']}, numpy {m['numpy']}"
            )
            print(f"wrote {plot}")
        except ImportError:
            print("matplotlib missing: no figure")
    return result


if __name__ == "__main__":
    main()
