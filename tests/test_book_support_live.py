"""The live explorers' Python side (issue 11): the HTML and JSON payload the page's
scripts read, without a browser (``test_book_live_explorers.py`` runs the scripts)."""

from __future__ import annotations

import numpy as np
import pytest
from cnnbook_book import backprop as E
from cnnbook_book import convolution as C
from cnnbook_book.live import MARKER, decode_array, encode_array, payload_of


def test_arrays_travel_as_float32():
    a = np.random.default_rng(0).normal(size=(3, 5))
    back = decode_array(encode_array(a))
    assert back.dtype == np.float32 and back.shape == (3, 5)
    np.testing.assert_array_equal(back, a.astype(np.float32))


def test_kernel_explorer_payload():
    image = np.random.default_rng(1).random((16, 12))
    html = C.live_kernel_explorer(image, kernel="sharpen").data
    assert f'{MARKER}="conv"' in html
    p = payload_of(html)
    np.testing.assert_array_equal(decode_array(p["image"]), image.astype(np.float32))
    assert list(p["presets"]) == list(C.KERNELS) and p["kernel"] == "sharpen"
    for name, k in C.KERNELS.items():
        np.testing.assert_array_equal(decode_array(p["presets"][name]), k.astype("f4"))
    # every control labelled; the chosen preset selected, its entries in the text box
    for name in ("preset", "kernel", "stride", "padding", "dilation"):
        assert f'name="{name}"' in html
    assert '<option value="sharpen" selected>' in html
    assert C.kernel_text(C.KERNELS["sharpen"]) in html
    assert html.count("<label") == 5
    with pytest.raises(ValueError, match="no preset"):
        C.live_kernel_explorer(image, kernel="nope")


def test_optimizer_explorer_payload():
    html = E.live_optimizer_explorer(lr=0.1).data
    assert f'{MARKER}="optim"' in html
    p = payload_of(html)
    assert set(p["surfaces"]) == {"ravine", "rosenbrock"}
    for name, s in p["surfaces"].items():
        ref = E.SURFACES[name]
        assert s["start"] == list(ref.start) and s["minimum"] == list(ref.minimum)
        assert s["xlim"] == list(ref.xlim) and s["levels"] == list(ref.levels)
    assert p["betas"] == [0.9, 0.999] and p["eps"] == 1e-8
    assert 'name="lr" min="-4" max="0" step="0.1" value="-1.0"' in html
    assert html.count("<label") == 6
    with pytest.raises(ValueError, match="no live surface"):
        E.live_optimizer_explorer(surfaces=("bowl",))


def test_json_cannot_close_its_script():
    from cnnbook_book.live import live_html

    html = live_html("demo", {"a": "</script><b>"}, "", "demo")
    assert html.count("</script>") == 1 and payload_of(html)["a"] == "</script><b>"


def test_pool_explorer_payload():
    from cnnbook_book import pooling as P

    images = {"a": np.arange(12.0).reshape(3, 4), "b": np.ones((5, 5))}
    html = P.live_pool_explorer(images, kind="avg").data
    assert f'{MARKER}="pool"' in html
    p = payload_of(html)
    for name, a in images.items():
        np.testing.assert_array_equal(decode_array(p["images"][name]), a)
    assert '<option value="avg" selected>' in html and html.count("<label") == 6
    with pytest.raises(ValueError, match="max or avg"):
        P.live_pool_explorer(images, kind="global")


def test_step_explorer_payload():
    x, k = np.arange(25.0).reshape(5, 5), np.ones((3, 3))
    html = C.live_step_explorer(x, k, stride=2, padding=1).data
    p = payload_of(html)
    assert f'{MARKER}="convstep"' in html and (p["stride"], p["padding"]) == (2, 1)
    np.testing.assert_array_equal(decode_array(p["x"]), x)
    assert 'name="i" min="0" max="2"' in html and 'name="j" min="0" max="2"' in html


def test_curve_explorer_payload():
    from cnnbook_book import activations as A

    html = A.live_curve_explorer("tanh", threshold=0.001).data
    assert f'{MARKER}="act"' in html
    p = payload_of(html)
    # the package's defaults travel to the script, not copies of them
    assert p == {"points": 6001, "leaky_slope": 0.01, "elu_alpha": 1.0}
    assert '<option value="tanh" selected>' in html
    assert html.count("<option") == len(A.CURVES) == 7
    assert 'name="threshold" min="-4" max="-0.5" step="0.1" value="-3.0"' in html
    assert html.count("<label") == 4
    with pytest.raises(ValueError, match="no activation"):
        A.live_curve_explorer("swish")


def test_stack_explorer_payload():
    from cnnbook_book import activations as A

    x = np.random.default_rng(0).normal(size=(16, 8))
    states = {
        (a, i, s): A.deep_stats(x, 3, a, i, s, width=8, samples=40)
        for a in ("relu", "tanh")
        for i in A.INITS
        for s in (0.5, 1.0)
    }
    html = A.live_stack_explorer(states).data
    assert f'{MARKER}="actstack"' in html and "Precomputed" in html
    p = payload_of(html)
    assert p["scales"] == [0.5, 1.0] and p["depth"] == 3
    s = states["tanh", "he", 0.5]
    got = p["states"]["tanh|he|0.5"]
    np.testing.assert_array_equal(decode_array(got["std"]), s.std.astype("f4"))
    np.testing.assert_array_equal(
        decode_array(got["grad_std"]), s.grad_std.astype("f4")
    )
    q = decode_array(got["q"])
    assert q.shape == (len(A.QUANTILES), 3)
    np.testing.assert_array_equal(
        q, np.quantile(s.samples, A.QUANTILES, axis=1).astype("f4")
    )
    assert html.count("<label") == 4
    del states["relu", "he", 1.0]
    with pytest.raises(ValueError, match="missing"):
        A.live_stack_explorer(states)


def test_gradient_explorer_payload():
    from cnnbook_book import deep as Dp

    X = np.random.default_rng(0).random((8, 1, 8, 8))
    grid = Dp.gradient_grid(X, np.arange(8), depths=(2, 3), width=4)
    html = Dp.live_gradient_explorer(grid).data
    assert f'{MARKER}="gradnorm"' in html and "Precomputed" in html
    p = payload_of(html)
    assert p["depths"] == [2, 3] and len(p["norms"]) == len(grid) == 16
    np.testing.assert_array_equal(
        decode_array(p["norms"]["sigmoid|1|0|3"]),
        grid["sigmoid", True, False, 3].astype("f4"),
    )
    assert html.count("<label") == 4 and html.count('type="checkbox"') == 2
    del grid["relu", False, False, 2]
    with pytest.raises(ValueError, match="missing"):
        Dp.live_gradient_explorer(grid)
