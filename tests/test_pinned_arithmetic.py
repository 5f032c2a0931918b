"""scripts/pinned_arithmetic.sh: the settings under which chapters are executed and
compared take effect in every library that does the book's arithmetic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json
import numpy, scipy.linalg, sklearn, skimage  # every BLAS the chapters load
import threadpoolctl
from numpy.lib.introspect import opt_func_info

targets = set()
def walk(node):
    for value in node.values():
        if isinstance(value, dict):
            if "current" in value:
                targets.add(value["current"])
            else:
                walk(value)
walk(opt_func_info())
print(json.dumps({"blas": threadpoolctl.threadpool_info(), "targets": sorted(targets)}))
"""


def probe(arithmetic: str) -> dict:
    """What the libraries report after sourcing the pin with CNNBOOK_ARITHMETIC."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS", "NPY"))}
    env.update(CNNBOOK_ARITHMETIC=arithmetic, CNNBOOK_PYTHON=sys.executable)
    script = f'source scripts/pinned_arithmetic.sh && "{sys.executable}" -c "$0"'
    out = subprocess.run(
        ["bash", "-c", script, PROBE], env=env, cwd=ROOT,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_every_blas_runs_haswell_kernels_on_one_thread():
    report = probe("pinned")
    openblas = [b for b in report["blas"] if b["internal_api"] == "openblas"]
    assert openblas, report["blas"]  # NumPy's and SciPy's wheels both bring one
    for lib in report["blas"]:
        assert lib["num_threads"] == 1, lib
    for lib in openblas:
        assert lib["architecture"] == "Haswell", lib


def test_numpy_takes_no_avx512_loop():
    targets = probe("pinned")["targets"]
    assert targets, "opt_func_info reported no dispatch targets"
    assert not [t for t in targets if "AVX512" in t or "X86_V4" in t], targets


def test_without_the_pin_an_avx512_cpu_takes_avx512_loops():
    # so the test above is not vacuous: the pin is what removes them
    try:
        from numpy._core import _multiarray_umath as m
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as m
    targets = probe("native")["targets"]
    avx512 = [t for t in targets if "AVX512" in t or "X86_V4" in t]
    assert bool(avx512) == bool(m.__cpu_features__.get("AVX512F")), targets
