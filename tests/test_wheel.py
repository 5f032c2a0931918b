"""The installable package: the wheel holds the library and nothing else, and
every Python block of the README runs in a fresh virtual environment made
from that wheel with only the extras the README names for it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# A block's extras: its first line is a comment "# pip install 'cnnbook[a,b]'".
EXTRAS_LINE = re.compile(r"^# pip install 'cnnbook\[([a-z,]+)\]'$")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout, built once (no network: the build uses the
    environment's setuptools)."""
    out = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(ROOT)],
        cwd=out,
    )  # fmt: skip
    (path,) = out.glob("cnnbook-*.whl")
    return path


def test_wheel_holds_only_the_library(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = [n for n in names if ".dist-info/" in n]
    library = [n for n in names if n not in dist_info]
    assert library and all(n.startswith("cnnbook/") for n in library), [
        n for n in library if not n.startswith("cnnbook/")
    ]
    assert all(n.endswith(".py") for n in library), library
    for gone in ("cnnbook/explore/", "cnnbook/show.py", "cnnbook_book", "tests/"):
        assert not any(gone in n for n in names), gone
    assert "cnnbook/functional/_fast.py" in library
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "cnnbook").rglob("*.py")}
    assert set(library) == source  # every module of the package, nothing more
    assert any(n.endswith("licenses/LICENSE") for n in dist_info), dist_info
    metadata = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in dist_info if n.endswith("METADATA")))
        .decode()
    )
    for field in (
        "Author: The cnnbook authors",
        "License-Expression: MIT",
        "Requires-Dist: numpy>=2.0",
        "Provides-Extra: data",
        "Provides-Extra: plot",
        "Provides-Extra: widgets",
        "Provides-Extra: gpu",
        "Project-URL: Source, https://github.com/cnnbook/cnnbook",
        "Classifier: Programming Language :: Python :: 3",
    ):
        assert field in metadata, field


def readme_blocks() -> list[str]:
    """The README's ```python blocks, in order."""
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_blocks_name_their_extras():
    blocks = readme_blocks()
    assert len(blocks) >= 2
    needs = [EXTRAS_LINE.match(b.splitlines()[0]) for b in blocks]
    assert needs[0] is None  # the first example needs nothing but the package
    training = next(b for b in blocks if "train.fit" in b)
    match = EXTRAS_LINE.match(training.splitlines()[0])
    assert match and set(match.group(1).split(",")) == {"data", "plot"}


@pytest.mark.slow
def test_readme_blocks_run_from_the_wheel(wheel, tmp_path):
    blocks = readme_blocks()
    extras = sorted(
        {
            e
            for b in blocks
            if (m := EXTRAS_LINE.match(b.splitlines()[0]))
            for e in m.group(1).split(",")
        }
    )
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    spec = f"{wheel}[{','.join(extras)}]" if extras else str(wheel)
    _run([str(python), "-m", "pip", "install", "--quiet", spec])
    work = tmp_path / "work"  # no checkout here: cnnbook comes from the wheel
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(MPLBACKEND="Agg", CNNBOOK_BACKEND="numpy")
    for i, block in enumerate(blocks):
        script = work / f"block{i}.py"
        script.write_text(block)
        result = subprocess.run(
            [str(python), str(script)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"README block {i}:\n{block}\n{result.stderr}"
    where = _run(
        [str(python), "-c", "import cnnbook; print(cnnbook.__file__)"],
        cwd=work,
        env=env,
    ).stdout
    assert str(env_dir) in where  # the wheel's copy ran, not the checkout
