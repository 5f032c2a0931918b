"""Re-run every chapter under another CPU configuration and compare with the stored
outputs: the check that the book's numbers do not depend on the machine.

    .venv/bin/python scripts/nbval_other_cpu.py [NOTEBOOK ...]

The stored outputs are made, and checked by the main nbval pass, under the pinned
arithmetic of ``scripts/pinned_arithmetic.sh``: OpenBLAS's Haswell (AVX2) kernels, one
BLAS thread, NumPy's AVX2 loops. This script runs nbval strict once more under the
configuration of the *other* kind of machine, as far as this one can emulate it:

* on a CPU with AVX-512: the machine's own arithmetic (OpenBLAS's AVX-512 kernels,
  NumPy's AVX-512 loops), still with one BLAS thread;
* on a CPU with AVX2 but no AVX-512 (which cannot run AVX-512 code): OpenBLAS's
  Sandybridge kernels (AVX without fused multiply-add), NumPy's AVX2 loops.

``CNNBOOK_OTHER_CPU=sandybridge`` (or ``avx512``) chooses one of the two by hand, so an
AVX-512 machine can also run the pass an AVX2 machine runs.

Everything a chapter prints must come out the same, except in cells whose metadata
names a reason they cannot (``"cnnbook": {"arithmetic_dependent": "why"}``): cells
whose digits come from training, which is chaotic (one rounding difference in one
product changes every later step). Those cells are excused here, and only here; their
claims are asserted in code, and the asserts still run under this configuration.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN_VARIABLES = ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")


def has_avx512() -> bool:
    """True when NumPy reports that this CPU runs AVX-512 (F) instructions."""
    try:
        from numpy._core import _multiarray_umath as m
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as m
    return bool(m.__cpu_features__.get("AVX512F"))


def other_configuration() -> tuple[str, dict[str, str]]:
    """(description, environment) of the configuration this machine can emulate."""
    env = {k: v for k, v in os.environ.items() if k not in PIN_VARIABLES}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONHASHSEED"] = "0"
    forced = os.environ.get("CNNBOOK_OTHER_CPU")  # "avx512" or "sandybridge"
    if forced == "avx512" or (forced is None and has_avx512()):
        return "this CPU's own AVX-512 kernels and loops, 1 BLAS thread", env
    env["OPENBLAS_CORETYPE"] = "Sandybridge"
    return "OpenBLAS Sandybridge kernels (no FMA), 1 BLAS thread", env


def excuse_dependent_cells(notebook: Path, target: Path) -> list[tuple[int, str]]:
    """Copy ``notebook`` to ``target``, marking its arithmetic-dependent cells
    ``nbval-ignore-output``; return (cell index, reason) for each of them."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    excused = []
    for index, cell in enumerate(nb["cells"]):
        reason = cell.get("metadata", {}).get("cnnbook", {}).get("arithmetic_dependent")
        if cell["cell_type"] == "code" and reason:
            tags = cell["metadata"].setdefault("tags", [])
            tags.append("nbval-ignore-output")
            excused.append((index, reason))
    target.write_text(json.dumps(nb), encoding="utf-8")
    return excused


def main(argv: list[str]) -> int:
    names = argv or sorted(p.name for p in (ROOT / "book").glob("*.ipynb"))
    description, env = other_configuration()
    print(f"other CPU configuration: {description}")
    with tempfile.TemporaryDirectory(prefix="cnnbook-other-cpu-") as tmp:
        copies = []
        for name in names:
            source = ROOT / "book" / Path(name).name
            copy = Path(tmp) / source.name
            for index, reason in excuse_dependent_cells(source, copy):
                print(f"  excused: {source.name} cell {index}: {reason}")
            copies.append(str(copy))
        shutil.copy(ROOT / "book" / "nbval_sanitize.cfg", tmp)
        command = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--rootdir", tmp, "-c", os.devnull, "--nbval", "--nbval-current-env",
            "--nbval-sanitize-with", str(Path(tmp) / "nbval_sanitize.cfg"), *copies,
        ]  # fmt: skip
        return subprocess.run(command, env=env, cwd=tmp).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
