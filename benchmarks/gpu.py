"""Measure on a GPU what the CPU/GPU chapter says about one.

Needs CuPy and a CUDA device (PyTorch with CUDA for the peer timings); run from
the repository root on such a machine:

    python benchmarks/gpu.py          # ~1 min -> benchmarks/results/gpu/latest.json
    python benchmarks/gpu.py --quick    # small batches: checks it works

The book is built on a machine without a GPU, so the chapter cannot run its
GPU cells; it reads this file instead and asserts its claims against it:

- discipline: what CuPy does with a host array, with ``np.asarray`` and
  ``np.sum`` of a device array, and what cnnbook says when a batch and a model
  live on different devices (each the error text, or what came back);
- agreement: one SGD step of LeNet-5 and of the ResNet from the same seed
  on NumPy and on CuPy (loss and largest parameter difference);
- launch: the time of one tiny kernel (``a += 1`` on one number), queued
  back to back;
- steps: training steps (forward, loss, backward, SGD) of LeNet-5 and the
  ResNet at batch 64 to 1024, cnnbook on CuPy against PyTorch on CUDA (both in
  plain float32: PyTorch's TF32 is switched off), median of 20 after warm-up;
- transfer: a batch of MNIST and of ImageNet crops from pageable and from
  pinned host memory to the device;
- tests: with ``--junit``, the counts of the test suite's CuPy leg
  (``scripts/gpu_check.sh`` runs it first and passes its report).

PyTorch is a benchmark peer only; cnnbook never imports it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "book" / "support", ROOT / "benchmarks"):
    if str(path) not in sys.path:  # run as a script from anywhere
        sys.path.insert(0, str(path))

from cnnbook_book.devices import failure  # noqa: E402
from run import _torch_mirror, sgd_step  # noqa: E402  (benchmarks/run.py)

import cnnbook  # noqa: E402
import cnnbook.backend as B  # noqa: E402
from cnnbook import models  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
GPU = "cupy"  # the backend measured ("strict" dry-runs the script on a CPU)


def gpu_namespace():
    """cnnbook's CuPy namespace, or exit with cnnbook's reason."""
    try:
        return B.default_namespace(GPU)
    except RuntimeError as err:
        sys.exit(f"benchmarks/gpu.py needs a GPU: {err}")


def median_ms(fn, sync, repeat=20, warmup=3) -> float:
    """Median milliseconds of ``fn()``, each call bracketed by ``sync()``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def machine(cupy, torch) -> dict:
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"]
    return {
        "gpu": name.decode() if isinstance(name, bytes) else str(name),
        "gpu_memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
        "cupy": cupy.__version__,
        "numpy": np.__version__,
        "torch": getattr(torch, "__version__", None),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
    }


def discipline(xp) -> dict:
    """What CuPy and cnnbook do with the two classic GPU mistakes."""
    host = np.ones((2, 3), np.float32)
    dev = B.asarray(host, xp, B.default_device(GPU))
    model = models.lenet5(seed=0).to(GPU)
    try:  # CuPy implements NumPy's dispatch protocol
        summed = np.sum(dev)
        dispatched = (f"{type(summed).__module__}.{type(summed).__name__} "
                      f"on {B.backend_of(summed)}, value {float(summed)}")  # fmt: skip
    except Exception as err:  # the strict device refuses
        dispatched = f"{type(err).__name__}: {err}"
    return {
        "np.asarray(device array)": failure(np.asarray, dev),
        "device array + host array": failure(lambda: dev + host),
        "model on the GPU, batch on the host": failure(
            model, np.zeros((2, 1, 28, 28), np.float32)
        ),
        "np.sum(device array)": dispatched,
    }


def batch(n: int, seed: int = 0):
    """Random 28×28 images in [0, 1) and labels (host arrays)."""
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n)


def train_step(model_name: str, backend: str, n: int):
    """(model, step) with ``step()`` one SGD step on a fixed batch -> loss."""
    model = models.get_model(model_name, seed=0, input_grad=False).to(backend)
    xp, device = B.default_namespace(backend), B.default_device(backend)
    x, t = (B.asarray(a, xp, device) for a in batch(n))
    return model, sgd_step(model, x, t)


def agreement(model_name: str) -> dict:
    """One step from the same seed on NumPy and CuPy: how far apart?"""
    losses, params = {}, {}
    for backend in ("numpy", GPU):
        model, step = train_step(model_name, backend, 64)
        losses[backend] = float(step())
        params[backend] = [B.to_numpy(p.data) for p in model.parameters()]
    gap = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(params["numpy"], params[GPU], strict=True)
    )
    return {
        "loss_numpy": losses["numpy"],
        "loss_gpu": losses[GPU],
        "largest_parameter_difference": gap,
    }


def launch_us(cupy) -> float:
    """Microseconds per tiny kernel, 2,000 queued back to back."""
    a = cupy.zeros(1, cupy.float32)

    def queue():
        for _ in range(2000):
            cupy.add(a, 1, out=a)

    return 1e3 * median_ms(queue, cupy.cuda.Device().synchronize, repeat=5) / 2000


def torch_step(torch, model_name: str, n: int):
    """The same step in PyTorch on CUDA (the benchmark suite's mirror)."""
    model = models.get_model(model_name, seed=0, input_grad=False)
    tmodel = _torch_mirror(model).cuda()
    opt = torch.optim.SGD(tmodel.parameters(), lr=0.01)
    x, t = (torch.from_numpy(a).cuda() for a in batch(n))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(tmodel(x), t)
        loss.backward()
        opt.step()
        return loss

    return step


def steps(cupy, torch, sizes) -> list[dict]:
    rows = []
    sync = cupy.cuda.Device().synchronize
    for model_name in ("lenet5", "resnet"):
        for n in sizes:
            _, ours = train_step(model_name, GPU, n)
            row = {"model": model_name, "batch": n, "ours_loss": float(ours())}
            row["ours_ms"] = median_ms(ours, sync)
            if torch is not None:  # the first loss: the same network, the same batch
                peer = torch_step(torch, model_name, n)
                row["torch_loss"] = float(peer().detach())
                row["torch_ms"] = median_ms(peer, sync)
            rows.append(row)
            print(row, flush=True)
    return rows


def transfers(cupy, quick: bool) -> list[dict]:
    """Host -> device copies of one batch, from pageable and pinned memory."""
    shapes = {"MNIST, 64 digits": (64, 1, 28, 28),
              "ImageNet, 256 crops": (8 if quick else 256, 3, 224, 224)}  # fmt: skip
    sync, rows = cupy.cuda.Device().synchronize, []
    for what, shape in shapes.items():
        host = np.random.default_rng(0).random(shape, dtype=np.float32)
        pinned = cupy.cuda.alloc_pinned_memory(host.nbytes)
        staged = np.frombuffer(pinned, np.float32, host.size).reshape(shape)
        staged[...] = host
        dev = cupy.empty(shape, cupy.float32)
        rows.append({
            "what": what, "bytes": host.nbytes,
            "pageable_ms": median_ms(lambda d=dev, h=host: d.set(h), sync),
            "pinned_ms": median_ms(lambda d=dev, h=staged: d.set(h), sync),
        })  # fmt: skip
        assert bool((dev == cupy.asarray(host)).all())
    return rows


def commit() -> str | None:
    """The checkout's commit (with "+changes" if the tree differs), or None
    outside a git checkout: which code the record measured."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip

    try:
        head, changed = git("rev-parse", "--short", "HEAD"), git("status", "-s")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if changed else "")


def test_summary(junit: Path) -> dict:
    """Counts from a pytest JUnit XML report (the suite's CuPy leg)."""
    import xml.etree.ElementTree as ET

    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {
        k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")
    }
    failed = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return {**counts, "failed": failed}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches")
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu" / "latest.json")
    parser.add_argument("--junit", type=Path, help="the CuPy leg's JUnit report")
    args = parser.parse_args(argv)

    xp = gpu_namespace()
    import cupy

    try:
        import torch

        if not torch.cuda.is_available():
            torch = None
        else:  # the same arithmetic as CuPy's float32 GEMMs: no TF32
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
    except ImportError:
        torch = None
    cnnbook.use("numpy")  # each measurement places its own arrays

    result = {
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat("T", "seconds"),
        "commit": commit(),
        "quick": args.quick,
        "tests": test_summary(args.junit) if args.junit else None,
        "machine": machine(cupy, torch),
        "discipline": discipline(xp),
        "agreement": {m: agreement(m) for m in ("lenet5", "resnet")},
        "launch_us": launch_us(cupy),
        "transfer": transfers(cupy, args.quick),
        "steps": steps(cupy, torch, (8, 32) if args.quick else (64, 256, 1024)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "steps"}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
