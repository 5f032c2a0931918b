"""The live explorers (issue 11) in the built book, in headless Chromium.

Each explorer's controls are set to several values, with the mouse-free calls a
script makes and by keyboard (focus a control, press the arrow keys), and the
result the page computed (``el.cnnbookLast``, set by ``book/_assets/explorers/*.js``)
is compared with what the package computes in Python for the same setting, to float32
tolerance. A control that changes nothing fails, as does a result that disagrees. At
390 px the page must not overflow; the explorer scripts must weigh at most 150 kB.
Needs the built site, like ``test_book_reader.py``, whose fixtures this reuses.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin

import numpy as np
import pytest
from cnnbook_book import activations as A
from cnnbook_book import deep as Dp
from cnnbook_book.backprop import SURFACES, trajectory
from cnnbook_book.live import decode_array
from cnnbook_book.pooling import pool, shift
from cnnbook_book.sees import METHODS, _map
from test_book_reader import HTML, OVERFLOW, WAIT_MATHJAX, base_url, browser  # noqa: F401

from cnnbook import models
from cnnbook.data import digits
from cnnbook.functional import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    conv2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from cnnbook.nn import Parameter, no_grad
from cnnbook.optim import SGD, make_optimizer

pytestmark = pytest.mark.slow

EXPLORERS = HTML / "_static" / "explorers"
MAX_SCRIPT_BYTES = 150_000
RTOL, ATOL = 1e-5, 1e-6  # float32


def _open(browser, base_url, docname, kind, width=1366):  # noqa: F811
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(urljoin(base_url, f"{docname}.html"), wait_until="load")
    page.evaluate(WAIT_MATHJAX)
    el = page.locator(f'[data-cnnbook-live="{kind}"]')
    assert el.count() == 1, f"{docname}: no live {kind} explorer in the page"
    page.wait_for_function(
        f"() => document.querySelector('[data-cnnbook-live=\"{kind}\"]').cnnbookLast"
    )
    return ctx, page, el, errors


def _last(el) -> dict:
    return el.evaluate("e => e.cnnbookLast")


def _set(el, name: str, value) -> None:
    """Set a control as a script would and fire its event."""
    el.evaluate(
        """(e, [name, value]) => {
             const c = e.querySelector(`[name="${name}"]`);
             c.value = value;
             c.dispatchEvent(new Event(c.tagName === 'SELECT' ? 'change' : 'input'));
           }""",
        [name, value],
    )


# ----------------------------------------------------------------------------------
# convolution: the kernel explorer
# ----------------------------------------------------------------------------------
def _conv_reference(image: np.ndarray, last: dict) -> np.ndarray:
    k = np.array(last["kernel"], dtype=np.float64).reshape(last["KH"], last["KW"])
    y, _ = conv2d_forward(
        image[None, None].astype(np.float64),
        k[None, None],
        None,
        last["stride"],
        last["padding"],
        last["dilation"],
    )
    return y[0, 0]


def _check_conv(image, el, seen: list) -> dict:
    last = _last(el)
    assert "error" not in last, last
    ref = _conv_reference(image, last)
    y = np.array(last["y"]).reshape(last["OH"], last["OW"])
    assert y.shape == ref.shape, (y.shape, ref.shape)
    np.testing.assert_allclose(y, ref, rtol=RTOL, atol=ATOL)
    seen.append(float(np.abs(y - ref).max()))
    # the picture is that array: grey levels scaled from its minimum to its maximum
    pixels = el.evaluate(
        """e => { const c = e.querySelector('canvas.output');
                  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
                  return {w: c.width, h: c.height, grey: Array.from(d.data).filter(
                    (_, n) => n % 4 === 0)}; }"""
    )
    assert (pixels["h"], pixels["w"]) == ref.shape
    lo, hi = ref.min(), ref.max()
    want = np.round((ref - lo) * (255 / (hi - lo))) if hi > lo else np.zeros_like(ref)
    grey = np.array(pixels["grey"]).reshape(ref.shape)
    assert np.abs(grey - want).max() <= 1, "the output canvas does not show the output"
    H, W = image.shape
    s, p, d = last["stride"], last["padding"], last["dilation"]
    for size, K, line in ((H, last["KH"], 0), (W, last["KW"], 1)):
        out = ref.shape[line]
        want = f"({size} + 2·{p} − {d}·({K}−1) − 1) // {s} + 1 = {out}"
        assert want in last["formula"].split("\n")[line], (want, last["formula"])
    return last


def test_kernel_explorer_computes_what_the_package_computes(browser, base_url):  # noqa: F811
    ctx, page, el, errors = _open(browser, base_url, "book/convolution", "conv")
    try:
        payload = el.evaluate(
            "e => JSON.parse(e.querySelector('script.cnnbook-live-data').textContent)"
        )
        image = decode_array(payload["image"]).astype(np.float64)
        presets = {n: decode_array(k) for n, k in payload["presets"].items()}
        seen: list[float] = []
        first = _check_conv(image, el, seen)
        assert first["preset"] == payload["kernel"]
        # every preset, and each range control over its values
        outputs = set()
        for name, k in presets.items():
            _set(el, "preset", name)
            last = _check_conv(image, el, seen)
            np.testing.assert_array_equal(np.array(last["kernel"]), k.ravel())
            outputs.add(tuple(np.round(last["y"][:50], 6)))
        assert len(outputs) == len(presets), "two presets gave the same output"
        _set(el, "preset", "Sobel x")
        for name, values in {
            "stride": [2, 3, 4, 1],
            "padding": [1, 4, 2, 0],
            "dilation": [2, 3, 1],
        }.items():
            before = _last(el)
            for v in values:
                _set(el, name, v)
                last = _check_conv(image, el, seen)
                assert last[name] == v, (name, v, last[name])
            _set(el, name, values[0])
            assert _last(el)["y"] != before["y"], f"{name} changes nothing"
            _set(el, name, before[name])
        # the kernel entries: typed text becomes a custom kernel
        text = el.locator('textarea[name="kernel"]')
        text.fill("1/9 1/9 1/9\n1/9 1/9 1/9\n1/9 1/9 1/9")
        last = _check_conv(image, el, seen)
        assert last["preset"] == "custom" and last["KH"] == 3
        np.testing.assert_allclose(last["kernel"], np.full(9, 1 / 9))
        text.fill("0 1; -1 2")
        last = _check_conv(image, el, seen)
        assert (last["KH"], last["KW"]) == (2, 2)
        # keyboard: focus a slider, press the arrow keys
        _set(el, "preset", "Laplacian")
        for name, key, want in (
            ("stride", "ArrowRight", [2, 3]),
            ("padding", "ArrowRight", [1, 2]),
            ("dilation", "ArrowRight", [2, 3]),
            ("stride", "ArrowLeft", [2, 1]),
        ):
            el.locator(f'input[name="{name}"]').focus()
            for w in want:
                page.keyboard.press(key)
                last = _check_conv(image, el, seen)
                assert last[name] == w, (name, key, w, last[name])
        # the preset list by keyboard
        el.locator('select[name="preset"]').focus()
        page.keyboard.press("ArrowDown")
        assert _last(el)["preset"] != "Laplacian"
        _check_conv(image, el, seen)
        assert not errors, errors
        print(
            f"kernel explorer: {len(seen)} settings, largest |JS − package| "
            f"{max(seen):.2e}"
        )
    finally:
        ctx.close()


def test_step_through_writes_out_the_package_sum(browser, base_url):  # noqa: F811
    ctx, page, el, errors = _open(browser, base_url, "book/convolution", "convstep")
    try:
        payload = el.evaluate(
            "e => JSON.parse(e.querySelector('script.cnnbook-live-data').textContent)"
        )
        x = decode_array(payload["x"]).astype(np.float64)
        k = decode_array(payload["k"]).astype(np.float64)
        s, p = payload["stride"], payload["padding"]
        y, _ = conv2d_forward(x[None, None], k[None, None], None, s, p)
        y = y[0, 0]
        xpad = np.pad(x, p)
        KH, KW = k.shape
        seen: list[float] = []

        def check(i, j):
            last = _last(el)
            assert (last["i"], last["j"]) == (i, j), (last["i"], last["j"], i, j)
            window = xpad[s * i : s * i + KH, s * j : s * j + KW]
            np.testing.assert_array_equal(last["window"], window.ravel())
            np.testing.assert_allclose(last["products"], (k * window).ravel())
            np.testing.assert_allclose(last["sum"], y[i, j], rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(last["y"], y.ravel(), rtol=RTOL, atol=ATOL)
            seen.append(abs(last["sum"] - y[i, j]))
            text = el.locator(".cnnbook-live-formula").inner_text()
            assert text.startswith(f"y[{i}, {j}] = ") and text.count("·") == KH * KW

        check(0, 0)
        OH, OW = y.shape
        for i in range(OH):
            for j in range(OW):
                _set(el, "i", i)
                _set(el, "j", j)
                check(i, j)
        el.locator('input[name="i"]').focus()
        page.keyboard.press("ArrowLeft")
        check(OH - 2, OW - 1)
        el.locator('input[name="j"]').focus()
        page.keyboard.press("ArrowLeft")
        check(OH - 2, OW - 2)
        el.locator("table.cnnbook-live-grid").nth(2).locator("td").first.click()
        check(0, 0)
        assert not errors, errors
        print(
            f"step-through: {len(seen)} positions, largest |JS − package| "
            f"{max(seen):.2e}"
        )
    finally:
        ctx.close()


# ----------------------------------------------------------------------------------
# backprop: the optimizer explorer
# ----------------------------------------------------------------------------------
def _reference_path(surface, name, lr, beta, steps, start) -> np.ndarray:
    if name != "momentum" or beta == 0.9:
        return trajectory(surface, name, lr, steps, start=tuple(start))
    # the explorer's momentum slider: SGD with that momentum, stepped as trajectory
    s = SURFACES[surface]
    theta = Parameter(np.array(start, dtype=np.float64))
    opt = (
        SGD([theta], lr, momentum=beta) if beta else make_optimizer("sgd", [theta], lr)
    )
    path = [theta.data.copy()]
    for _ in range(steps):
        theta.grad = s.grad(theta.data)
        opt.step()
        if not np.all(np.isfinite(theta.data)) or np.abs(theta.data).max() > 1e6:
            break
        path.append(theta.data.copy())
    return np.array(path)


def _check_optim(el, seen: list) -> dict:
    last = _last(el)
    for name, path in last["paths"].items():
        ref = _reference_path(
            last["surface"], name, last["lr"], last["momentum"], last["steps"],
            last["start"],
        )  # fmt: skip
        got = np.array(path)
        assert got.shape == ref.shape, (name, last["lr"], got.shape, ref.shape)
        np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL, err_msg=name)
        seen.append(float(np.abs(got - ref).max()))
    return last


def test_optimizer_explorer_runs_the_package_rules(browser, base_url):  # noqa: F811
    ctx, page, el, errors = _open(browser, base_url, "book/backprop", "optim")
    try:
        seen: list[float] = []
        _check_optim(el, seen)
        for surface in ("rosenbrock", "ravine"):
            _set(el, "surface", surface)
            last = _check_optim(el, seen)
            assert last["surface"] == surface
            assert last["start"] == list(SURFACES[surface].start)
            for name, values in {
                "lr": [-3, -1.5, -0.6, -1],
                "momentum": [0.5, 0.0, 0.95, 0.9],
                "steps": [20, 200, 80],
                "start1": [-1.0, 1.2],
                "start2": [0.5, -0.3],
            }.items():
                for v in values:
                    before = _last(el)
                    _set(el, name, v)
                    last = _check_optim(el, seen)
                    assert last["paths"] != before["paths"], (
                        f"{name}={v} changed nothing"
                    )
        # keyboard
        for name, key in (("lr", "ArrowLeft"), ("momentum", "ArrowDown"),
                          ("steps", "ArrowRight"), ("start1", "ArrowRight"),
                          ("start2", "ArrowUp")):  # fmt: skip
            el.locator(f'input[name="{name}"]').focus()
            for _ in range(2):
                before = _last(el)
                page.keyboard.press(key)
                last = _check_optim(el, seen)
                assert last["paths"] != before["paths"], f"{name} {key} changed nothing"
        el.locator('select[name="surface"]').focus()
        page.keyboard.press("ArrowDown")
        assert _last(el)["surface"] == "rosenbrock"
        _check_optim(el, seen)
        assert not errors, errors
        print(
            f"optimizer explorer: {len(seen)} paths, largest |JS − package| "
            f"{max(seen):.2e}"
        )
    finally:
        ctx.close()


# ----------------------------------------------------------------------------------
# pooling: window, stride, type and a shift of the input
# ----------------------------------------------------------------------------------
def _check_pool(images, el, seen: list) -> dict:
    last = _last(el)
    x = images[last["image"]][None, None]
    moved = shift(x, last["dy"], last["dx"])
    y0 = pool(x, last["kind"], last["kernel"], last["stride"])[0, 0]
    y1 = pool(moved, last["kind"], last["kernel"], last["stride"])[0, 0]
    got0 = np.array(last["y"]).reshape(last["OH"], last["OW"])
    got1 = np.array(last["yShifted"]).reshape(last["OH"], last["OW"])
    assert got0.shape == y0.shape, (got0.shape, y0.shape)
    np.testing.assert_allclose(got0, y0, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got1, y1, rtol=RTOL, atol=ATOL)
    num, den = np.sum((y1 - y0) ** 2), np.sum(y0**2)
    rel = 0.0 if num == den == 0 else np.sqrt(num / den)  # the chapter's r_n(T)
    np.testing.assert_allclose(last["relative"], rel, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(last["changed"], np.mean(y0 != y1), atol=1e-12)
    seen.append(float(max(np.abs(got0 - y0).max(), np.abs(got1 - y1).max())))
    return last


def _check_route(images, last: dict) -> None:
    x = shift(images[last["image"]][None, None], last["dy"], last["dx"])
    K, s = last["kernel"], last["stride"]
    forward = max_pool2d_forward if last["kind"] == "max" else avg_pool2d_forward
    backward = max_pool2d_backward if last["kind"] == "max" else avg_pool2d_backward
    y, cache = forward(x, K, s)
    dy = np.zeros_like(y)
    dy[0, 0, last["selected"][0], last["selected"][1]] = 1.0
    dx = backward(dy, cache)[0, 0]
    got = np.zeros_like(dx)
    for r, c, weight in last["route"]:
        got[r, c] += weight
    np.testing.assert_allclose(got, dx, rtol=RTOL, atol=ATOL)


def test_pool_explorer_computes_what_the_package_computes(browser, base_url):  # noqa: F811
    ctx, page, el, errors = _open(browser, base_url, "book/pooling", "pool")
    try:
        payload = el.evaluate(
            "e => JSON.parse(e.querySelector('script.cnnbook-live-data').textContent)"
        )
        images = {
            n: decode_array(a).astype(np.float64) for n, a in payload["images"].items()
        }
        seen: list[float] = []
        _check_pool(images, el, seen)
        for image in [*images][::-1]:
            _set(el, "image", image)
            for name, values in {
                "kind": ["avg", "max"],
                "kernel": [3, 1, 8, 2],
                "stride": [1, 3, 8, 2],
                "dy": [1, 5, 0],
                "dx": [2, 0, 7, 1],
            }.items():
                for v in values:
                    before = _last(el)
                    _set(el, name, v)
                    last = _check_pool(images, el, seen)
                    assert last[name] == v and last["image"] == image
                    assert (last["y"], last["yShifted"]) != (
                        before["y"], before["yShifted"],
                    ), f"{name}={v} changed nothing"  # fmt: skip
        for name, key in (("kernel", "ArrowRight"), ("stride", "ArrowLeft"),
                          ("dx", "ArrowRight"), ("dy", "ArrowUp")):  # fmt: skip
            el.locator(f'input[name="{name}"]').focus()
            before = _last(el)
            page.keyboard.press(key)
            last = _check_pool(images, el, seen)
            assert last[name] != before[name], (name, key)
        el.locator('select[name="kind"]').focus()
        page.keyboard.press("ArrowDown")
        assert _last(el)["kind"] == "avg"
        _check_pool(images, el, seen)
        # where a pooled value's gradient goes: the package's backward pass
        target = el.locator("canvas.pooled-shifted")
        for kind in ("max", "avg"):
            _set(el, "kind", kind)
            target.focus()
            for key in ("ArrowRight", "ArrowDown", "ArrowDown", "ArrowRight"):
                page.keyboard.press(key)
                _check_route(images, _last(el))
            box = target.bounding_box()
            target.click(position={"x": box["width"] * 0.7, "y": box["height"] * 0.3})
            last = _last(el)
            assert last["selected"] != [2, 2], "a click selected nothing"
            _check_route(images, last)
        assert not errors, errors
        print(
            f"pool explorer: {len(seen)} settings, largest |JS − package| "
            f"{max(seen):.2e}"
        )
    finally:
        ctx.close()


# ----------------------------------------------------------------------------------
# what a CNN sees: LeNet-5's forward and backward passes in the page
# ----------------------------------------------------------------------------------
def _sees_setup(el):
    payload = el.evaluate(
        "e => JSON.parse(e.querySelector('script.cnnbook-live-data').textContent)"
    )
    model = models.lenet5(dtype=np.float64)  # the page's float32 weights, in float64
    model.load_state_dict({k: decode_array(v) for k, v in payload["weights"].items()})
    model.eval()
    images = decode_array(payload["images"]).astype(np.float64)
    noise = decode_array(payload["noise"]).astype(np.float64)
    return payload, model, images, noise


def _check_sees(el, payload, model, images, noise, seen: list) -> dict:
    last = _last(el)
    x = images[last["digit"] : last["digit"] + 1]
    with no_grad():
        s = model(x)[0]
    np.testing.assert_allclose(last["scores"], s, rtol=RTOL, atol=ATOL)
    assert last["pred"] == int(s.argmax())
    want = _map(model, x, last["cls"], last["method"], noise=noise,
                sigma=payload["sigma"], patch=payload["patch"],
                stride=payload["stride"])[0]  # fmt: skip
    got = np.array(last["map"]).reshape(28, 28)
    scale = max(1.0, float(np.abs(want).max()))
    what = f"{last['method']} of digit {last['digit']}"
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL * scale, err_msg=what)
    seen.append(float(np.abs(got - want).max() / scale))
    # the map canvas shows that map: orange scaled from 0 to its largest |value|
    red = el.evaluate(
        """e => { const c = e.querySelector('canvas.map');
                  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
                  return Array.from(d.data).filter((_, n) => n % 4 === 0); }"""
    )
    hi = np.abs(want).max()
    shown = np.round(255 * np.minimum(1, np.maximum(want, 0) / hi)) if hi else 0 * want
    assert np.abs(np.array(red).reshape(28, 28) - shown).max() <= 1, "canvas != map"
    return last


def test_sees_explorer_runs_the_package_network(browser, base_url):  # noqa: F811
    ctx, page, el, errors = _open(browser, base_url, "book/sees", "sees")
    try:
        args = _sees_setup(el)
        seen: list[float] = []
        first = _check_sees(el, *args, seen)
        assert first["method"] == "saliency" and first["cls"] == first["pred"]
        maps = set()
        for method in METHODS:
            _set(el, "method", method)
            last = _check_sees(el, *args, seen)
            assert last["method"] == method
            maps.add(tuple(np.round(last["map"][::7], 6)))
        assert len(maps) == len(METHODS), "two methods drew the same map"
        for digit in ("3", "9", "0"):
            before = _last(el)
            _set(el, "digit", digit)
            last = _check_sees(el, *args, seen)
            assert last["digit"] == int(digit) and last["map"] != before["map"]
        for cls in ("2", "7", "pred"):
            _set(el, "cls", cls)
            last = _check_sees(el, *args, seen)
            assert last["cls"] == (last["pred"] if cls == "pred" else int(cls))
        # keyboard: the three menus with the arrow keys
        for name, key, field in (("method", "ArrowUp", "method"),
                                 ("digit", "ArrowDown", "digit"),
                                 ("cls", "ArrowDown", "cls")):  # fmt: skip
            el.locator(f'select[name="{name}"]').focus()
            before = _last(el)
            page.keyboard.press(key)
            last = _check_sees(el, *args, seen)
            assert last[field] != before[field], (name, key)
        assert not errors, errors
        print(
            f"sees explorer: {len(seen)} maps, largest |JS − package| / scale "
            f"{max(seen):.2e}"
        )
    finally:
        ctx.close()


# ----------------------------------------------------------------------------------
# activations: f, f' and saturation (live); the deep network (precomputed states)
# ----------------------------------------------------------------------------------
def _check_curve(el, seen: list) -> dict:
    last = _last(el)
    x = np.linspace(-last["range"], last["range"], last["points"])
    np.testing.assert_array_equal(np.array(last["x"]), x)
    f, d = A.curve(last["activation"], x)
    np.testing.assert_allclose(last["f"], f, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(last["d"], d, rtol=RTOL, atol=ATOL)
    f0, d0 = A.curve(last["activation"], np.array([last["at"]], dtype=np.float64))
    np.testing.assert_allclose([last["fAt"], last["dAt"]], [f0[0], d0[0]],
                               rtol=RTOL, atol=ATOL)  # fmt: skip
    flat = np.abs(d) < last["threshold"]
    assert last["count"] == flat.sum(), (last["activation"], last["count"], flat.sum())
    np.testing.assert_allclose(last["saturated"], flat.mean())
    # the saturated intervals are the runs of flat grid points
    edges = np.flatnonzero(np.diff(np.r_[0, flat.astype(int), 0]))
    want = [[x[a], x[b - 1]] for a, b in zip(edges[::2], edges[1::2], strict=True)]
    np.testing.assert_allclose(np.array(last["intervals"]).reshape(-1, 2),
                               np.array(want).reshape(-1, 2))  # fmt: skip
    text = el.locator(".cnnbook-live-formula").inner_text()
    assert f"{100 * flat.mean():.1f} % of [−{last['range']:g}" in text, text
    assert f"({flat.sum()} of {len(x)} points)" in text, text
    seen.append(float(max(np.abs(np.array(last["f"]) - f).max(),
                          np.abs(np.array(last["d"]) - d).max())))  # fmt: skip
    return last


def test_activation_explorer_computes_what_the_package_computes(browser, base_url):  # noqa: F811
    ctx, page, el, errors = _open(browser, base_url, "book/activations", "act")
    try:
        seen: list[float] = []
        first = _check_curve(el, seen)
        assert first["activation"] == "gelu" and first["range"] == 6
        # the chapter's table: GELU is flat (|f'| < 0.01) on 24.8 % of [-6, 6]
        assert round(100 * first["saturated"], 1) == 24.8, first["saturated"]
        names = el.evaluate(
            "e => Array.from(e.querySelectorAll('select[name=activation] option'),"
            " o => o.value)"
        )
        assert names == list(A.CURVES), names
        for name in names:
            _set(el, "activation", name)
            for setting, values in {"range": [10, 2.5, 6], "threshold": [-1, -3.5, -2],
                                    "at": [-4.2, 0, 1.35, 0.5]}.items():  # fmt: skip
                for v in values:
                    before = _last(el)
                    _set(el, setting, v)
                    last = _check_curve(el, seen)
                    assert last["activation"] == name
                    if setting == "range" or (setting == "at" and name != "relu"):
                        assert (last["f"], last["fAt"]) != (
                            before["f"],
                            before["fAt"],
                        ), f"{name}: {setting}={v} changed nothing"
        # the threshold moves the shaded region of the sigmoid
        _set(el, "activation", "sigmoid")
        shares = []
        for v in (-3, -2, -1):
            _set(el, "threshold", v)
            shares.append(_check_curve(el, seen)["saturated"])
        assert shares[0] < shares[1] < shares[2], shares
        # keyboard
        for name, key in (("range", "ArrowLeft"), ("threshold", "ArrowRight"),
                          ("at", "ArrowRight")):  # fmt: skip
            el.locator(f'input[name="{name}"]').focus()
            before = _last(el)
            page.keyboard.press(key)
            last = _check_curve(el, seen)
            assert last != before, (name, key)
        el.locator('select[name="activation"]').focus()
        page.keyboard.press("ArrowDown")
        assert _last(el)["activation"] == "tanh"  # the one after sigmoid
        _check_curve(el, seen)
        # the canvas shows the plot: a blue curve, an orange one and grey shading
        colours = el.evaluate(
            """e => { const c = e.querySelector('canvas.curve');
                      const d = c.getContext('2d')
                        .getImageData(0, 0, c.width, c.height).data;
                      const n = {blue: 0, orange: 0, grey: 0};
                      for (let i = 0; i < d.length; i += 4) {
                        const [r, b] = [d[i], d[i + 2]];
                        if (r < 60 && b > 120) n.blue++;
                        if (r > 150 && b < 60) n.orange++;
                        if (Math.abs(r - b) < 4 && r > 180 && r < 235) n.grey++;
                      }
                      return n; }"""
        )
        assert min(colours.values()) > 50, colours
        assert not errors, errors
        print(f"activation explorer: {len(seen)} settings, largest |JS − package| "
              f"{max(seen):.2e}")  # fmt: skip
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def digits_128():
    return A.standardized_digits(128)[0]  # the chapter's X


def test_deep_stack_explorer_shows_deep_stats(browser, base_url, digits_128):  # noqa: F811
    ctx, page, el, errors = _open(browser, base_url, "book/activations", "actstack")
    try:
        note = el.locator(".cnnbook-live-note").inner_text()
        assert "Precomputed" in note, note
        payload = el.evaluate(
            "e => JSON.parse(e.querySelector('script.cnnbook-live-data').textContent)"
        )
        scales = payload["scales"]
        assert scales == [0.5, 1.0, 2.0, 3.0], scales
        cache: dict = {}
        seen: list[float] = []

        def check():
            last = _last(el)
            key = (last["activation"], last["init"], last["scale"])
            if key not in cache:
                cache[key] = A.deep_stats(digits_128, 30, *key)
            s = cache[key]
            pairs = {"std": s.std, "gradStd": s.grad_std, "mean": s.mean}
            for name, want in pairs.items():
                got = np.array(last[name])
                np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-30,
                                           err_msg=f"{key} {name}")  # fmt: skip
                rel = np.abs(got - want) / np.abs(want).clip(1e-300)
                seen.append(float(rel.max()))
            i = last["layer"] - 1
            q = A.stack_quantiles(s)[:, i]
            # to float32 on the layer's scale: GELU's far negative tail, x·(1 + erf)/2
            # with 1 + erf a few ulps of 1, is rounding noise far below it
            np.testing.assert_allclose(last["at"]["quantiles"], q, rtol=RTOL,
                                       atol=RTOL * s.std[i], err_msg=key)  # fmt: skip
            assert last["at"]["std"] == last["std"][i]
            text = el.locator(".cnnbook-live-formula").inner_text()
            assert f"layer {i + 1}: std = " in text and "std h_1 = " in text, text
            return last

        first = check()
        assert (first["activation"], first["init"], first["scale"]) == ("relu", "he", 1)
        assert first["layer"] == 30
        for act in A.ACTIVATIONS:
            _set(el, "activation", act)
            for init in A.INITS:
                _set(el, "init", init)
                for k in (0, 3):
                    before = _last(el)
                    _set(el, "scale", k)
                    last = check()
                    assert last["scale"] == scales[k]
                    if before["scale"] != last["scale"]:
                        assert last["std"] != before["std"], "scale changed nothing"
        for layer in (1, 15):
            _set(el, "layer", layer)
            assert check()["layer"] == layer
        # the chapter's claim, read off the page: tanh, Glorot x 3 explodes its gradient
        _set(el, "activation", "tanh")
        _set(el, "init", "xavier")
        _set(el, "scale", 3)
        assert check()["gradStd"][0] > 100
        # keyboard
        for name, key in (("scale", "ArrowLeft"), ("layer", "ArrowRight")):
            el.locator(f'input[name="{name}"]').focus()
            before = _last(el)
            page.keyboard.press(key)
            last = check()
            assert last[name] != before[name], (name, key)
        el.locator('select[name="init"]').focus()
        page.keyboard.press("ArrowDown")
        assert _last(el)["init"] == "he"
        check()
        assert not errors, errors
        print(f"deep-network explorer: {len(cache)} states, largest relative "
              f"|page − deep_stats| {max(seen):.2e}")  # fmt: skip
    finally:
        ctx.close()


# ----------------------------------------------------------------------------------
# deep architectures: gradient norms (precomputed grid)
# ----------------------------------------------------------------------------------
def _js_exp(v: float) -> str:
    """v as JavaScript's toExponential(2) writes it: 1.57e-1, 2.10e+0."""
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{v:.2e}")


def _toggle(el, name: str, on: bool) -> None:
    el.evaluate(
        """(e, [name, on]) => { const c = e.querySelector(`[name="${name}"]`);
             c.checked = on; c.dispatchEvent(new Event('change')); }""",
        [name, on],
    )


def test_gradient_explorer_shows_gradient_norms(browser, base_url):  # noqa: F811
    ctx, page, el, errors = _open(
        browser, base_url, "book/deep_architectures", "gradnorm"
    )
    try:
        assert "Precomputed" in el.locator(".cnnbook-live-note").inner_text()
        (X, y), _ = digits(seed=0)
        Xg, yg = X[:32], y[:32]  # the chapter's batch
        seen: list[float] = []

        def check():
            last = _last(el)
            want = Dp.gradient_norms(Xg, yg, last["activation"], last["batchNorm"],
                                     last["skip"], last["depth"])  # fmt: skip
            twin = Dp.gradient_norms(Xg, yg, last["activation"], last["batchNorm"],
                                     not last["skip"], last["depth"])  # fmt: skip
            np.testing.assert_allclose(last["norms"], want, rtol=RTOL)
            np.testing.assert_allclose(last["twin"], twin, rtol=RTOL)
            np.testing.assert_allclose(last["ratio"], want[0] / want[-1], rtol=RTOL)
            text = el.locator(".cnnbook-live-formula").inner_text()
            ratio = _js_exp(want[0] / want[-1])
            assert f"layer 1 / layer {last['depth']} = {ratio}" in text, text
            assert f"largest {_js_exp(want.max())} (layer {want.argmax() + 1})" in text
            seen.append(float(np.max(np.abs(np.array(last["norms"]) - want) / want)))
            return last

        first = check()
        assert (first["depth"], first["skip"], first["batchNorm"]) == (30, False, False)
        settings = [("sigmoid", False, False, 10), ("sigmoid", False, True, 30),
                    ("relu", True, True, 20), ("relu", True, False, 30),
                    ("sigmoid", True, False, 20)]  # fmt: skip
        for act, bn, skip, depth in settings:
            before = _last(el)
            _set(el, "activation", act)
            _toggle(el, "batch_norm", bn)
            _toggle(el, "skip", skip)
            _set(el, "depth", str(depth))
            last = check()
            got = (last["activation"], last["batchNorm"], last["skip"], last["depth"])
            assert got == (act, bn, skip, depth), got
            assert last["norms"] != before["norms"]
        # the chapter's claims, read off the page
        _set(el, "activation", "sigmoid")
        _toggle(el, "batch_norm", False)
        _toggle(el, "skip", False)
        _set(el, "depth", "30")
        assert check()["ratio"] < 1e-12  # plain sigmoid: vanishing
        _toggle(el, "skip", True)
        assert check()["ratio"] > 1e-2  # skip connections stop it
        # keyboard: space toggles a checkbox, arrows change a list
        el.locator('input[name="skip"]').focus()
        page.keyboard.press("Space")
        assert check()["skip"] is False
        el.locator('input[name="batch_norm"]').focus()
        page.keyboard.press("Space")
        assert check()["batchNorm"] is True
        el.locator('select[name="depth"]').focus()
        page.keyboard.press("ArrowUp")
        assert check()["depth"] == 20
        # the plot: the chosen setting in blue
        blue = el.evaluate(
            """e => { const c = e.querySelector('canvas.norms');
                      const d = c.getContext('2d')
                        .getImageData(0, 0, c.width, c.height).data;
                      let n = 0;
                      for (let i = 0; i < d.length; i += 4)
                        if (d[i] < 60 && d[i + 2] > 120) n++;
                      return n; }"""
        )
        assert blue > 100, blue
        assert not errors, errors
        print(f"gradient explorer: {len(seen)} settings, largest relative "
              f"|page − package| {max(seen):.2e}")  # fmt: skip
    finally:
        ctx.close()


# ----------------------------------------------------------------------------------
# phone width, script weight
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "docname, kind",
    [
        ("book/convolution", "conv"),
        ("book/convolution", "convstep"),
        ("book/backprop", "optim"),
        ("book/pooling", "pool"),
        ("book/activations", "act"),
        ("book/activations", "actstack"),
        ("book/deep_architectures", "gradnorm"),
        ("book/sees", "sees"),
    ],
)
def test_explorer_fits_a_phone(browser, base_url, docname, kind):  # noqa: F811
    ctx, page, el, errors = _open(browser, base_url, docname, kind, width=390)
    try:
        el.scroll_into_view_if_needed()
        box = el.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 391, box
        o = page.evaluate(OVERFLOW)
        assert o["scrollWidth"] <= o["vw"] + 1 and not o["culprits"], o
        # plots draw their labels at 12 canvas px: at least 9 CSS px on the phone
        for c in el.locator("canvas.plot").all():
            scale = c.bounding_box()["width"] / c.evaluate("c => c.width")
            assert 12 * scale >= 9, (kind, scale)
        assert not errors, errors
    finally:
        ctx.close()


def test_explorer_scripts_are_small_and_only_where_used(base_url):  # noqa: F811
    scripts = sorted(EXPLORERS.glob("*.js"))
    assert scripts, f"no explorer scripts in {EXPLORERS}"
    total = sum(p.stat().st_size for p in scripts)
    assert total <= MAX_SCRIPT_BYTES, f"explorer scripts weigh {total:,} bytes"
    # common.js: the helpers of the scripts that call window.cnnbookLive
    users = {p.stem for p in scripts if "window.cnnbookLive" in p.read_text("utf-8")}
    assert users >= {"act", "actstack", "gradnorm"}, users
    for page in HTML.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        kinds = set(re.findall(r'data-cnnbook-live="([a-z_]+)"', text))
        for script in scripts:
            loaded = f"_static/explorers/{script.name}" in text
            kind = script.stem
            used = bool(kinds & users) if kind == "common" else kind in kinds
            assert loaded == used, (page.name, script.name, loaded, used)
        if kinds & users:  # deferred scripts run in order: the helpers first
            first = min(text.index(f"_static/explorers/{k}.js") for k in kinds & users)
            assert text.index("_static/explorers/common.js") < first, page.name
