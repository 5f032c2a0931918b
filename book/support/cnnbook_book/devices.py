"""Companion to the chapter *CPU and GPU*: where arrays live, what a training
step costs in memory and arithmetic, timing with synchronisation, and the
performance suite's results.

Notation: x (N, C, H, W) inputs; w (F, C, KH, KW) kernels; a convolution as
one matrix product (im2col) is the GEMM W (M × K) @ cols (K × P) with
M = F, K = C·KH·KW and P = N·OH·OW.

- :func:`where` says which namespace and device an array belongs to.
- :func:`failure` runs a call that must fail and returns its error message.
- :func:`synchronize` and :func:`timed` time device code honestly.
- :func:`memory_budget` adds up a model's bytes: parameters, gradients,
  optimizer state, activations of one batch.
- :class:`Gemm`, :func:`conv_gemm` and :func:`attainable` give the FLOP
  count, arithmetic intensity and roofline bound of a convolution.
- :func:`branching_sites` finds code that asks which array library it has.
- :func:`find_benchmarks`, :func:`load_benchmarks`, :func:`benchmark_rows`,
  :func:`check_benchmarks`, :func:`machine_summary`, :func:`benchmark_html`
  and :func:`plot_benchmarks` read and show ``benchmarks/results/*.json``.
- :func:`load_gpu`, :func:`gpu_steps`, :func:`check_gpu` and
  :func:`plot_gpu_steps` read and show what ``benchmarks/gpu.py`` measured
  on a GPU (``benchmarks/results/gpu/``).

Nothing here branches on the array library: the namespace and device come
from :mod:`cnnbook.backend`, and synchronising asks the device object itself.
"""

from __future__ import annotations

import html
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import cnnbook
from cnnbook import backend as B
from cnnbook.functional import conv_output_size

__all__ = [
    "Gemm",
    "HostTraffic",
    "attainable",
    "benchmark_html",
    "benchmark_rows",
    "branching_sites",
    "check_benchmarks",
    "check_gpu",
    "conv_gemm",
    "count_host_traffic",
    "failure",
    "find_benchmarks",
    "gpu_steps",
    "html_table",
    "load_benchmarks",
    "load_gpu",
    "machine_summary",
    "memory_budget",
    "plot_benchmarks",
    "plot_gpu_steps",
    "synchronize",
    "timed",
    "where",
]

#: The cnnbook package, whose files :func:`branching_sites` reads.
PACKAGE = Path(cnnbook.__file__).resolve().parent
#: The performance suite's results in this repository (book/support/ sits
#: two levels below its root); not part of any installed package.
RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results"

#: Source patterns that branch on the array library or import one (written
#: so that this module's own source does not match them).
LIBRARY_BRANCH = re.compile(
    r"import\s+cupy|is_cupy_arra[y]|array_api_stric[t]"
    r"|isinstance\([^)]*np\.ndarray|is_numpy\("
)


# ----------------------------------------------------------------------------
# where arrays live
# ----------------------------------------------------------------------------
def where(a: Any) -> str:
    """Any array -> "namespace on device, dtype, shape" (for printing).

    >>> import numpy as np
    >>> where(np.zeros((2, 3), dtype=np.float32))
    'array_api_compat.numpy on cpu, float32, (2, 3)'
    """
    xp = B.namespace("where", a=a)
    dtype = B.numpy_dtype(a.dtype).name
    return f"{xp.__name__} on {B.device_of(a)}, {dtype}, {tuple(a.shape)}"


def failure(fn: Callable, *args: Any, **kwargs: Any) -> str:
    """Call ``fn(*args, **kwargs)``, which must raise; return "Type: message".

    >>> failure(int, "seven")
    "ValueError: invalid literal for int() with base 10: 'seven'"
    """
    try:
        fn(*args, **kwargs)
    except Exception as err:  # the point: show whichever error it is
        return f"{type(err).__name__}: {err}"
    raise AssertionError(f"{getattr(fn, '__name__', fn)} did not fail")


class HostTraffic(NamedTuple):
    """What :func:`count_host_traffic` saw, each a ``Counter`` of call sites
    ("file.py, in function")."""

    to_host: Counter  #: float/int/bool of a device array: a sync and a copy
    device_copies: Counter  #: asarray(a, copy=True) of a device array


def _caller() -> str:
    import traceback

    frame = traceback.extract_stack(limit=3)[0]
    return f"{Path(frame.filename).name}, in {frame.name}"


@contextmanager
def count_host_traffic() -> Iterator[HostTraffic]:
    """Record, while active, what a computation on the strict device asks of it.

    Yields a :class:`HostTraffic`: ``to_host`` counts ``float``/``int``/``bool``
    of a strict array (on a GPU each is a synchronisation and a copy to the
    host), ``device_copies`` counts ``asarray(a, copy=True)`` of a strict array
    (a copy that stays on the device), both by call site. The counting wraps
    those methods of ``array_api_strict`` and restores them on exit.

    >>> import numpy as np
    >>> xp = B.default_namespace("strict")
    >>> a = B.asarray(np.ones(3), xp, B.default_device("strict"))
    >>> with count_host_traffic() as seen:
    ...     _ = float(xp.sum(a)), xp.asarray(a, copy=True)
    >>> sum(seen.to_host.values()), sum(seen.device_copies.values())
    (1, 1)
    """
    import array_api_strict
    from array_api_strict._array_object import Array

    seen = HostTraffic(Counter(), Counter())
    methods = ("__float__", "__int__", "__bool__")
    saved = {name: getattr(Array, name) for name in methods}
    asarray = array_api_strict.asarray

    def counting(method: Callable) -> Callable:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            seen.to_host[_caller()] += 1
            return method(self, *args, **kwargs)

        return wrapper

    def counting_asarray(obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(obj, Array) and kwargs.get("copy") is True:
            seen.device_copies[_caller()] += 1
        return asarray(obj, *args, **kwargs)

    for name, method in saved.items():
        setattr(Array, name, counting(method))
    array_api_strict.asarray = counting_asarray
    try:
        yield seen
    finally:
        for name, method in saved.items():
            setattr(Array, name, method)
        array_api_strict.asarray = asarray


def synchronize(a: Any) -> None:
    """Wait until the device holding ``a`` has finished all queued work.

    A GPU library returns from a call as soon as the kernel is *queued*;
    a CuPy device object has ``synchronize()``. CPU arrays are computed when
    the call returns, so their devices have none and this does nothing.
    """
    sync = getattr(B.device_of(a), "synchronize", None)
    if callable(sync):
        sync()


def timed(fn: Callable[[], Any], like: Any, repeat: int = 5, warmup: int = 1):
    """Seconds of ``repeat`` calls of ``fn()`` (a list), each bracketed by
    :func:`synchronize` on the device of array ``like``, after ``warmup``
    untimed calls (the first call pays for allocation and compilation)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        synchronize(like)
        start = time.perf_counter()
        fn()
        synchronize(like)
        times.append(time.perf_counter() - start)
    return times


def branching_sites(package: Path | str | None = None) -> dict[str, list[int]]:
    """Lines of the package's ``*.py`` files that match :data:`LIBRARY_BRANCH`:
    {path relative to the package's parent: [line numbers]}, files in order.
    The book's rule is that only ``cnnbook/backend.py`` appears."""
    root = Path(package) if package is not None else PACKAGE
    sites: dict[str, list[int]] = {}
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8").splitlines()
        lines = [i for i, line in enumerate(text, 1) if LIBRARY_BRANCH.search(line)]
        if lines:
            sites[path.relative_to(root.parent).as_posix()] = lines
    return sites


def _nbytes(a: Any) -> int:
    return math.prod(a.shape) * B.numpy_dtype(a.dtype).itemsize


def memory_budget(model: Any, x: Any, optimizer_slots: int = 0) -> dict[str, int]:
    """Bytes a training step holds: model on x (N, ...) -> dict with
    "parameters", "gradients" (same shapes), "optimizer" (``optimizer_slots``
    arrays per parameter: 0 for SGD, 1 for momentum, 2 for Adam) and
    "activations" (every leaf layer's output for this batch, which backward
    needs in some form). The forward pass runs once, on x's device."""
    params = sum(_nbytes(p.data) for p in model.parameters())
    acts = [0]

    def hook(m: Any, inp: Any, out: Any) -> None:
        acts[0] += _nbytes(out)

    handles = [
        m.register_forward_hook(hook)
        for _, m in model.named_modules()
        if not m._modules
    ]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return {
        "parameters": params,
        "gradients": params,
        "optimizer": optimizer_slots * params,
        "activations": acts[0],
    }


# ----------------------------------------------------------------------------
# arithmetic: a convolution as one GEMM, and the roofline
# ----------------------------------------------------------------------------
class Gemm(NamedTuple):
    """The matrix product (M × K) @ (K × P)."""

    M: int
    K: int
    P: int

    @property
    def flops(self) -> int:
        """2·M·K·P: one multiply and one add per term."""
        return 2 * self.M * self.K * self.P

    def bytes(self, itemsize: int = 4) -> int:
        """Bytes read and written at least once: both factors and the result."""
        return itemsize * (self.M * self.K + self.K * self.P + self.M * self.P)

    def intensity(self, itemsize: int = 4) -> float:
        """Arithmetic intensity: FLOPs per byte of memory traffic."""
        return self.flops / self.bytes(itemsize)


def conv_gemm(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
) -> Gemm:
    """x (N, C, H, W), w (F, C, KH, KW) -> the forward GEMM of im2col:
    M = F, K = C·KH·KW, P = N·OH·OW. The backward pass runs two GEMMs of the
    same size (dW = dY·colsᵀ, dcols = Wᵀ·dY), so a training step of the layer
    costs about 3 × ``flops``.

    >>> conv_gemm((64, 1, 28, 28), (6, 1, 5, 5), padding=2)
    Gemm(M=6, K=25, P=50176)
    """
    N, C, H, W = x_shape
    F, Cw, KH, KW = w_shape
    if C != Cw:
        raise ValueError(f"conv_gemm: x has {C} channels but w expects {Cw}")
    OH = conv_output_size(H, KH, stride, padding, dilation)
    OW = conv_output_size(W, KW, stride, padding, dilation)
    return Gemm(F, C * KH * KW, N * OH * OW)


def attainable(intensity: float, peak_flops: float, bandwidth: float) -> float:
    """The roofline: FLOP/s a kernel of this intensity (FLOP/byte) can reach
    on a machine with ``peak_flops`` (FLOP/s) and ``bandwidth`` (byte/s).

    >>> attainable(2.0, 100.0, 10.0), attainable(50.0, 100.0, 10.0)
    (20.0, 100.0)
    """
    return min(peak_flops, intensity * bandwidth)


# ----------------------------------------------------------------------------
# the performance suite's results (benchmarks/run.py)
# ----------------------------------------------------------------------------
def find_benchmarks(folder: Path | str | None = None) -> list[Path]:
    """The result files ``*.json`` in ``folder`` (default
    ``benchmarks/results``), ``latest.json`` first, then by name."""
    folder = Path(folder) if folder is not None else RESULTS
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return sorted(paths, key=lambda p: (p.name != "latest.json", p.name))


def load_benchmarks(path: Path | str) -> dict[str, Any]:
    """One result file as written by ``benchmarks/run.py`` (schema 1)."""
    result = json.loads(Path(path).read_text(encoding="utf-8"))
    if result.get("schema") != 1 or "cases" not in result:
        raise ValueError(f"{path}: not a benchmarks/run.py result (schema 1)")
    return result


_SHAPES = re.compile(r"x\(([\d, ]+)\) w\(([\d, ]+)\) s(\d+) p(\d+)(?: g(\d+))?")


def _conv_shapes(
    text: str,
) -> tuple[tuple[int, ...], tuple[int, ...], int, int, int]:
    """A convolution case's shapes -> x, w, stride, padding, groups."""
    m = _SHAPES.match(text or "")
    if m is None:
        raise ValueError(f"not a convolution case: {text!r}")
    x, w = (tuple(int(v) for v in shape.split(",")) for shape in m.group(1, 2))
    return x, w, int(m.group(3)), int(m.group(4)), int(m.group(5) or 1)


def benchmark_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The cases that ran against PyTorch, one flat dict each: label, threads,
    dtype, cnnbook_ms, torch_ms (medians on the run's clock), ratio, target, met,
    clock ("cpu": process CPU time, which adds up all threads; "wall"), the
    wall-clock medians cnnbook_wall_ms and torch_wall_ms where recorded, and for
    convolution forward + backward cases the nominal GFLOP/s of each library
    (3 GEMMs of :func:`conv_gemm`'s size per step)."""
    rows = []
    for case in result["cases"]:
        if case.get("status") != "ok" or case.get("ratio_median") is None:
            continue
        row = {
            "name": case["name"],
            "label": case["label"],
            "threads": case["threads"],
            "dtype": case["dtype"],
            "cnnbook_ms": case["cnnbook"]["median_ms"],
            "torch_ms": case["torch"]["median_ms"],
            "ratio": case["ratio_median"],
            "target": case.get("target"),
            "met": case.get("met"),
            "clock": case.get("clock", result.get("settings", {}).get("clock")),
        }
        wall = case.get("by_clock", {}).get("wall")
        if wall is not None:
            row["cnnbook_wall_ms"] = wall["cnnbook"]["median_ms"]
            row["torch_wall_ms"] = wall["torch"]["median_ms"]
        shapes = case.get("shapes", "")
        if case["name"].startswith("conv") and "forward only" not in shapes:
            x, w, s, p, g = _conv_shapes(shapes)
            # groups g: g products of 1/g of the dense layer's size each
            dense = (w[0], w[1] * g, *w[2:])
            flops = 3 * conv_gemm(x, dense, s, p).flops // g
            row["gflops_cnnbook"] = flops / (row["cnnbook_ms"] * 1e6)
            row["gflops_torch"] = flops / (row["torch_ms"] * 1e6)
        rows.append(row)
    return rows


class _Facts:
    """``check(ok, what)`` counts the facts that hold (``held``) and raises
    ``ValueError`` naming the first that does not."""

    def __init__(self, checker: str):
        self.checker, self.held = checker, 0

    def __call__(self, ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"{self.checker}: {what}")
        self.held += 1


def check_benchmarks(result: dict[str, Any], rel: float = 1e-9) -> int:
    """Check a result file's internal consistency; return how many facts held.

    Every ratio is cnnbook's median over PyTorch's, "met" says ratio ≤ target,
    the memory line agrees with its target, and the machine names its CPU and
    BLAS. Raises ``ValueError`` naming the first fact that fails.
    """
    check = _Facts("check_benchmarks")

    m = result.get("machine", {})
    check(bool(m.get("cpu")), "no CPU description")
    check(bool(m.get("blas")), "no BLAS description (threadpool_info)")
    rows = benchmark_rows(result)
    check(len(rows) > 0, "no case ran against PyTorch")
    for r in rows:
        want = r["cnnbook_ms"] / r["torch_ms"]
        check(
            math.isclose(r["ratio"], want, rel_tol=rel),
            f"{r['name']}: ratio {r['ratio']} != {want}",
        )
        if r["target"] is not None:
            check(r["met"] == (r["ratio"] <= r["target"]), f"{r['name']}: met")
        if "gflops_torch" in r:
            check(
                math.isclose(r["gflops_torch"] / r["gflops_cnnbook"], r["ratio"]),
                f"{r['name']}: GFLOP/s do not match the ratio",
            )
    mem = result.get("memory")
    if mem:
        check(mem["met"] == (mem["peak_mib"] <= mem["target_mib"]), "memory met")
    return check.held


def machine_summary(result: dict[str, Any]) -> str:
    """One line: CPU, logical CPUs, NumPy + BLAS (core type), PyTorch,
    threads, clock and date of the run."""
    m, s = result["machine"], result.get("settings", {})
    blas = ", ".join(
        f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')})"
        for b in m.get("blas", [])
    )
    return (
        f"{m.get('cpu')}, {m.get('logical_cpus')} logical CPUs; NumPy "
        f"{m.get('numpy')} with {blas}; PyTorch {m.get('torch')}; "
        f"{s.get('threads')} thread(s), {s.get('clock', 'wall')} clock; "
        f"run {str(result.get('created', ''))[:10]}"
    )


def benchmark_html(result: dict[str, Any]) -> str:
    """The table of :func:`benchmark_rows` as an HTML table (medians in ms),
    which renders the same in Jupyter and in the book, and the memory line.

    The header names the clock. Process CPU time adds up the time of every
    thread, so for rows with more than one thread the wall-clock medians are
    shown beside it (where the run recorded them)."""
    clock = result.get("settings", {}).get("clock", "wall")
    unit = "ms CPU time" if clock == "cpu" else "ms wall"
    rows = benchmark_rows(result)
    multi = clock == "cpu" and any(
        r["threads"] > 1 and "cnnbook_wall_ms" in r for r in rows
    )
    head = ["case", "threads", f"cnnbook {unit}", f"PyTorch {unit}", "ratio",
            "target", "met"]  # fmt: skip
    if multi:
        head.append("wall ms (cnnbook / PyTorch)")
    body = []
    for r in rows:
        target = "" if r["target"] is None else f"{r['target']:.1f}"
        met = {True: "yes", False: "no"}.get(r["met"], "")
        cells = [r["label"], str(r["threads"]), f"{r['cnnbook_ms']:.2f}",
                 f"{r['torch_ms']:.2f}", f"{r['ratio']:.2f}", target, met]  # fmt: skip
        if multi:
            wall = r["threads"] > 1 and "cnnbook_wall_ms" in r
            cells.append(
                f"{r['cnnbook_wall_ms']:.2f} / {r['torch_wall_ms']:.2f}" if wall else ""
            )
        body.append(cells)
    text = html_table(head, body, align="lrrrrrlr")
    if clock == "cpu":
        text += (
            "\n<p>Times are medians of process CPU time, which adds up the time of "
            "all threads: a row with more than one thread shows its wall-clock "
            "medians in the last column.</p>"
            if multi
            else "\n<p>Times are medians of process CPU time (one thread: about "
            "the wall-clock time).</p>"
        )
    mem = result.get("memory")
    if mem:
        text += (
            f"\n<p>Peak memory of the VGG convolution, forward + backward: "
            f"{mem['peak_mib']:.0f} MiB (target ≤ {mem['target_mib']:.0f} MiB).</p>"
        )
    return text


def html_table(head: list[str], rows: list[list[str]], align: str = "") -> str:
    """Header and rows of cell texts (escaped here) -> an HTML ``<table>``;
    ``align`` has one letter per column, "l" or "r" (default left)."""

    def cells(tag: str, values: list[str]) -> str:
        out = []
        for k, v in enumerate(values):
            side = "right" if align[k : k + 1] == "r" else "left"
            out.append(f'<{tag} style="text-align:{side}">{html.escape(v)}</{tag}>')
        return "<tr>" + "".join(out) + "</tr>"

    lines = ["<table>", "<thead>", cells("th", head), "</thead>", "<tbody>"]
    lines += [cells("td", r) for r in rows]
    return "\n".join([*lines, "</tbody>", "</table>"])


def plot_benchmarks(result: dict[str, Any], ax: Any = None) -> Any:
    """Horizontal bars of the ratios cnnbook / PyTorch (log scale; green
    where cnnbook is faster), a tick at each target. Returns the axes."""
    import matplotlib.pyplot as plt

    rows = benchmark_rows(result)[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    names = [f"{r['label']} ({r['threads']} thr)" for r in rows]
    ratios = [r["ratio"] for r in rows]
    colors = ["tab:green" if v <= 1 else "tab:orange" for v in ratios]
    ax.barh(names, ratios, color=colors)
    for i, r in enumerate(rows):
        if r["target"] is not None:
            ax.plot(r["target"], i, "k|", markersize=14)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("time cnnbook / time PyTorch (median; | target; < 1 faster)")
    return ax


# ----------------------------------------------------------------------------
# measured on a GPU (benchmarks/gpu.py, run by scripts/gpu_check.sh)
# ----------------------------------------------------------------------------
#: Records of ``benchmarks/gpu.py``: ``latest.json`` and earlier runs kept
#: for comparison; written on a machine with a GPU, read by the chapter.
GPU_RESULTS = RESULTS / "gpu"


def load_gpu(name: str = "latest", folder: Path | str | None = None) -> dict | None:
    """The GPU record ``<name>.json`` (in :data:`GPU_RESULTS`), or None where
    there is none."""
    path = Path(folder if folder is not None else GPU_RESULTS) / f"{name}.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text(encoding="utf-8"))
    if "steps" not in result or "machine" not in result:
        raise ValueError(f"{path}: not a benchmarks/gpu.py result")
    return result


def gpu_steps(result: dict[str, Any]) -> dict[str, dict[int, dict[str, float]]]:
    """The record's training steps as {model: {batch: {"cnnbook": ms,
    "torch": ms}}} (medians; "torch" where PyTorch ran)."""
    table: dict[str, dict[int, dict[str, float]]] = {}
    for row in result["steps"]:
        times = {"cnnbook": row["ours_ms"]}
        if "torch_ms" in row:
            times["torch"] = row["torch_ms"]
        table.setdefault(row["model"], {})[row["batch"]] = times
    return table


def check_gpu(result: dict[str, Any]) -> int:
    """Check a GPU record's internal consistency; return how many facts held.

    It names its GPU; no test of its CuPy leg failed (where it holds the
    counts); each step ran the same network on the same batch in both
    libraries (first losses within 10⁻⁴) in a positive time; the transfers
    moved float32 batches of the sizes named. Raises ``ValueError`` naming
    the first fact that fails.
    """
    check = _Facts("check_gpu")

    check(bool(result["machine"].get("gpu")), "no GPU named")
    tests = result.get("tests")
    if tests is not None:
        check(tests["tests"] > 0, "the CuPy leg ran no test")
        bad = tests["failures"] + tests["errors"]
        check(bad == 0 and not tests["failed"], f"tests failed: {tests['failed']}")
    for row in result["steps"]:
        what = f"{row['model']} at batch {row['batch']}"
        check(row["ours_ms"] > 0, f"{what}: no time")
        if "torch_ms" in row:
            check(row["torch_ms"] > 0, f"{what}: no PyTorch time")
            same = abs(row["ours_loss"] - row["torch_loss"]) < 1e-4
            check(same, f"{what}: the two libraries' first losses differ")
    sizes = {"MNIST, 64 digits": 64 * 28 * 28 * 4,
             "ImageNet, 256 crops": 256 * 3 * 224 * 224 * 4}  # fmt: skip
    for row in result["transfer"]:
        check(row["bytes"] == sizes.get(row["what"]), f"{row['what']}: bytes")
        check(0 < row["pinned_ms"] and 0 < row["pageable_ms"], f"{row['what']}: times")
    check(result["launch_us"] > 0, "no launch time")
    return check.held


def plot_gpu_steps(records: dict[str, dict[str, Any]], ax: Any = None) -> Any:
    """Training-step time against batch size (log-log), one line per model
    and library for each record ({label: record}; PyTorch from the first).
    Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 5.2), layout="constrained")
    colors = {"lenet5": "tab:blue", "resnet": "tab:red"}
    names = {"lenet5": "LeNet-5", "resnet": "ResNet"}
    styles = iter(["-o", ":s", "-.^"])
    for k, (label, record) in enumerate(records.items()):
        style = next(styles)
        for model, by_batch in gpu_steps(record).items():
            batches = sorted(by_batch)
            ours = [by_batch[n]["cnnbook"] for n in batches]
            ax.plot(batches, ours, style, color=colors.get(model),
                    label=f"{names.get(model, model)}, cnnbook ({label})")  # fmt: skip
            if k == 0 and all("torch" in by_batch[n] for n in batches):
                peer = [by_batch[n]["torch"] for n in batches]
                ax.plot(batches, peer, "--x", color=colors.get(model), alpha=0.6,
                        label=f"{names.get(model, model)}, PyTorch")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    batches = sorted({row["batch"] for r in records.values() for row in r["steps"]})
    ax.set_xticks(batches, [str(n) for n in batches])
    ax.set_xlabel("batch size")
    ax.set_ylabel("ms per training step (median)")
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    return ax
