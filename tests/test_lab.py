"""A chapter in JupyterLab with a live kernel: the explorers' sliders recompute.

The static book shows saved widget state only; this test proves the other way in,
running the chapters (``bash scripts/lab.sh``), works: JupyterLab 4 loads the
ipywidgets 8 front end, a chapter runs top to bottom, and moving an explorer's
slider makes the kernel redraw the explorer's output.

- JupyterLab is started on loopback with a token, on a free port, with its root in a
  temporary directory holding a copy of the chapter with its outputs and saved widget
  state removed (the repository's notebook is never touched, and every widget on the
  page must come from the live kernel). The kernel is this interpreter's environment.
- Headless Chromium (Debian's, ``$CHROMIUM`` or ``/usr/bin/chromium``, driven by
  Playwright's Python package; no browser is downloaded) opens the chapter and runs
  all cells; no cell may raise.
- The first cell whose output holds an ipywidgets slider and an image is the
  explorer. Its slider is moved one step with the keyboard (the arrow key on the
  slider's handle), and the test asserts that the slider's readout changes and that
  the explorer's image is redrawn (its ``src`` differs).
- Screenshots of the explorer before and after go to ``artifacts/lab/``.

Without JupyterLab, Playwright or Chromium it fails when the environment variable
``CI`` is set and skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from book_pages import unavailable

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "convolution.ipynb"  # an explorer, and ~10 s to run
SHOTS = ROOT / "artifacts" / "lab"

pytestmark = pytest.mark.slow

# generous bounds for a loaded 2-core machine; each is a wait on a condition
SERVER_START_S = 120
PAGE_LOAD_S = 180
RUN_ALL_S = 420
REDRAW_S = 120
SHUTDOWN_S = 30


def _chromium() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    if found:
        return found
    unavailable("Debian's chromium is missing: apt-get install -y chromium")
    raise AssertionError  # unreachable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_without_outputs(src: Path, dst: Path) -> None:
    """The chapter with no stored outputs, execution counts or widget state."""
    nb = json.loads(src.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    nb["metadata"].pop("widgets", None)
    nb["metadata"]["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    dst.write_text(json.dumps(nb, indent=1), encoding="utf-8")


def _lab_settings(settings: Path) -> None:
    """Every cell in the DOM (no windowing), and no news or update pop-ups."""
    overrides = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
            "windowingMode": "none"
        },
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    for name, value in overrides.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value), encoding="utf-8")


class Lab:
    """A JupyterLab server on loopback, rooted in a temporary directory."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.root = tmp / "root"
        self.root.mkdir()
        self.token = secrets.token_hex(16)
        self.log_path = tmp / "lab.log"
        self.proc: subprocess.Popen | None = None
        self.base = ""

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def _request(self, path: str, method: str = "GET", timeout: float = 10):
        req = urllib.request.Request(
            self.base + path,
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method == "POST" else None,
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status

    def start(self) -> None:
        settings = self.tmp / "settings"
        _lab_settings(settings)
        env = dict(os.environ)
        # the kernel's matplotlib must draw inline, whatever the test run set
        env.pop("MPLBACKEND", None)
        for var, sub in [
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_DATA_DIR", "data"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("IPYTHONDIR", "ipython"),
        ]:
            env[var] = str(self.tmp / sub)
        last_error = ""
        for _ in range(3):  # another process may take the free port first
            port = _free_port()
            self.base = f"http://127.0.0.1:{port}"
            cmd = [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}",
                f"--LabApp.user_settings_dir={settings}",
                f"--LabApp.workspaces_dir={self.tmp / 'workspaces'}",
                "--LabApp.expose_app_in_browser=True",
                "--LabApp.news_url=None",
            ]
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                cmd.append("--allow-root")  # containers and CI run as root
            with open(self.log_path, "w") as log:
                self.proc = subprocess.Popen(
                    cmd, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            deadline = time.monotonic() + SERVER_START_S
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last_error = f"JupyterLab exited with {self.proc.returncode}"
                    if "already in use" not in self.log_tail():
                        pytest.fail(f"{last_error}:\n{self.log_tail()}")
                    break
                try:
                    if self._request("/api/status", timeout=5) == 200:
                        return
                except (OSError, urllib.error.URLError) as err:
                    last_error = str(err)
                time.sleep(0.5)
            else:
                self.stop()
                pytest.fail(
                    f"JupyterLab did not answer within {SERVER_START_S} s "
                    f"({last_error}):\n{self.log_tail()}"
                )
        pytest.fail(f"JupyterLab did not start: {last_error}\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:  # the clean way: the server shuts its kernels down, then exits
            self._request("/api/shutdown", method="POST")
        except (OSError, urllib.error.URLError):
            self.proc.terminate()
        try:
            self.proc.wait(timeout=SHUTDOWN_S)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        unavailable("JupyterLab is missing: pip install -r requirements.txt")
    lab = Lab(tmp_path_factory.mktemp("lab"))
    _copy_without_outputs(CHAPTER, lab.root / CHAPTER.name)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()
        assert lab.proc is not None and lab.proc.poll() is not None


# the open notebook, through the application object JupyterLab exposes
# (--LabApp.expose_app_in_browser): its kernel and every code cell's state
NOTEBOOK_STATE = """(path) => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  if (!w || !w.context || w.context.path !== path || !w.content.model) return null;
  const cells = w.content.model.cells;
  let total = 0, done = 0;
  const errors = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== "code" || !c.sharedModel.getSource().trim()) continue;
    total += 1;
    if (c.executionCount !== null && c.executionCount !== undefined) done += 1;
    for (let j = 0; j < c.outputs.length; j++) {
      const o = c.outputs.get(j).toJSON();
      if (o.output_type === "error") errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
    }
  }
  return {total, done, errors, kernel: w.sessionContext.kernelDisplayStatus};
}"""


def _wait(check, timeout: float, what: str, detail=lambda: ""):
    """Poll check() until it returns a truthy value; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s: {what}\n{detail()}")
        time.sleep(0.5)


def test_explorer_slider_redraws_in_jupyterlab(lab):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is missing: pip install -r requirements.txt")
    chromium = _chromium()
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = CHAPTER.name
    problems: list[str] = []

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            timeout=PAGE_LOAD_S * 1000,
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(PAGE_LOAD_S * 1000)
            page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
            page.goto(
                f"{lab.base}/lab/tree/{name}?token={lab.token}",
                wait_until="domcontentloaded",
            )

            def state():
                return page.evaluate(NOTEBOOK_STATE, name)

            def detail():
                return f"{state()}\n{problems}\nserver log:\n{lab.log_tail()}"

            _wait(
                lambda: (s := state()) and s["kernel"] == "idle",
                PAGE_LOAD_S,
                f"{name} open in JupyterLab with an idle kernel",
                detail,
            )

            # Run All, as from the Run menu
            page.evaluate(
                "() => { window.jupyterapp.commands.execute("
                "'notebook:run-all-cells'); }"
            )

            def finished():
                s = state()
                if s and s["errors"]:
                    pytest.fail(f"a cell of {name} raised: {s['errors']}")
                return s and s["done"] == s["total"] and s["kernel"] == "idle" and s

            s = _wait(finished, RUN_ALL_S, f"every cell of {name} run", detail)
            assert s["total"] > 0

            # the explorer: the first cell whose output has a slider and an image
            explorer = (
                page.locator(".jp-CodeCell")
                .filter(has=page.locator(".jp-OutputArea .widget-hslider"))
                .filter(has=page.locator(".jp-OutputArea img"))
                .first
            )
            explorer.wait_for(state="attached", timeout=REDRAW_S * 1000)
            explorer.scroll_into_view_if_needed()
            text = explorer.inner_text()
            assert "Error displaying widget" not in text, text
            slider = explorer.locator(".widget-hslider").first
            handle = slider.locator(".noUi-handle").first
            readout = slider.locator(".widget-readout").first
            images = explorer.locator(".jp-OutputArea img")

            def srcs():
                return [
                    images.nth(i).get_attribute("src") for i in range(images.count())
                ]

            before_srcs, before_value = srcs(), readout.inner_text().strip()
            assert before_srcs and all(before_srcs), "the explorer shows no image"
            explorer.screenshot(path=SHOTS / "before.png")

            # one step with the keyboard, up unless the slider is at its maximum
            now = float(handle.get_attribute("aria-valuenow"))
            top = float(handle.get_attribute("aria-valuemax"))
            handle.focus()
            page.keyboard.press("ArrowRight" if now < top else "ArrowLeft")

            _wait(
                lambda: readout.inner_text().strip() != before_value,
                REDRAW_S,
                f"the slider's readout to leave {before_value}",
                detail,
            )
            after_value = readout.inner_text().strip()

            def redrawn():
                now_srcs = srcs()
                return (
                    now_srcs
                    and all(now_srcs)
                    and now_srcs != before_srcs
                    and state()["kernel"] == "idle"
                    and now_srcs == srcs()  # settled
                    and now_srcs
                )

            after_srcs = _wait(
                redrawn,
                REDRAW_S,
                f"the explorer's image to change after the slider moved "
                f"{before_value} -> {after_value}",
                detail,
            )
            explorer.scroll_into_view_if_needed()
            explorer.screenshot(path=SHOTS / "after.png")
            page.screenshot(path=SHOTS / "notebook.png")
            after_text = explorer.inner_text()
            s = state()
        finally:
            browser.close()

    assert not s["errors"], s["errors"]
    assert "Error displaying widget" not in after_text, after_text
    assert after_value != before_value
    assert after_srcs != before_srcs
