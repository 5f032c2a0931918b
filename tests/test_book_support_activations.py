"""The chapter companion cnnbook_book.activations: curves, composed linear
maps, deep random networks, and the explorer's drawing code."""

from __future__ import annotations

import math
from itertools import pairwise

import matplotlib
import numpy as np
import pytest
from cnnbook_book import activations as A

import cnnbook.functional as F
from cnnbook.gradcheck import numerical_gradient, rel_error

matplotlib.use("Agg")

GRID = np.linspace(-6.0, 6.0, 241) + 1e-3  # no grid point at the kinks


def _erf_gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _tanh_gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


REFERENCE = {
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "gelu": _erf_gelu,  # the exact form, PyTorch's default (was the tanh form)
}


@pytest.mark.parametrize("name", list(A.ACTIVATIONS))
def test_curve_values_match_the_definitions(backend, name):
    y, d = A.curve(name, backend.asarray(GRID))
    assert tuple(d.shape) == GRID.shape
    np.testing.assert_allclose(backend.to_numpy(y), REFERENCE[name](GRID), atol=1e-12)


@pytest.mark.parametrize("name", list(A.ACTIVATIONS))
def test_curve_derivative_is_the_finite_difference(name):
    _, d = A.curve(name, GRID)
    f = REFERENCE[name]
    numeric = (f(GRID + 1e-6) - f(GRID - 1e-6)) / 2e-6
    np.testing.assert_allclose(d, numeric, atol=1e-7)


def test_relu_subgradient_at_zero_is_zero():
    _, d = A.curve("relu", np.array([-1e-300, 0.0, 1e-300]))
    assert d.tolist() == [0.0, 0.0, 1.0]


def test_sigmoid_derivative_at_most_a_quarter():
    x = np.linspace(-50, 50, 100001)
    _, d = A.curve("sigmoid", x)
    assert d.max() <= 0.25 and d[x.size // 2] == 0.25


def test_gelu_is_exact_and_the_tanh_form_within_5e_4_of_it():
    from cnnbook import functional as F

    x = np.linspace(-8, 8, 16001)
    y, _ = A.curve("gelu", x)
    assert np.abs(y - _erf_gelu(x)).max() < 1e-14
    approx = F.gelu_forward(x, approximate="tanh")[0]
    np.testing.assert_allclose(approx, _tanh_gelu(x), rtol=1e-14, atol=1e-15)
    assert 4e-4 < np.abs(approx - _erf_gelu(x)).max() < 5e-4


def test_gelu_equals_torch_gelu():
    torch = pytest.importorskip("torch")
    x = np.linspace(-8, 8, 1601)
    y, d = A.curve("gelu", x)
    t = torch.tensor(x, requires_grad=True)
    out = torch.nn.functional.gelu(t)
    out.sum().backward()
    np.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(d, t.grad.numpy(), rtol=1e-12, atol=1e-13)


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        A.curve("swish", GRID)


def test_compose_linear_equals_the_stack(backend):
    rng = np.random.default_rng(0)
    sizes = [7, 5, 9, 3, 4]
    ws = [backend.asarray(rng.normal(size=(o, i))) for i, o in pairwise(sizes)]
    bs = [backend.asarray(rng.normal(size=o)) for o in sizes[1:]]
    x = backend.asarray(rng.normal(size=(6, 7)))
    h = x
    for w, b in zip(ws, bs, strict=True):
        h, _ = F.linear_forward(h, w, b)
    W, b = A.compose_linear(ws, bs)
    assert tuple(W.shape) == (4, 7) and tuple(b.shape) == (4,)
    y, _ = F.linear_forward(x, W, b)
    assert rel_error(backend.to_numpy(y), backend.to_numpy(h)) < 1e-12


def test_compose_linear_needs_matching_lists():
    with pytest.raises(ValueError, match="as many biases"):
        A.compose_linear([np.eye(2)], [])


@pytest.mark.parametrize(
    ("init", "std"), [("he", math.sqrt(2 / 400)), ("xavier", math.sqrt(2 / 700))]
)
def test_init_weights_scaling(init, std):
    (w,) = A.init_weights([400, 300], init, scale=1.0, rng=0)
    assert w.shape == (300, 400)
    assert abs(w.std() / std - 1) < 0.01
    (w3,) = A.init_weights([400, 300], init, scale=3.0, rng=0)
    np.testing.assert_allclose(w3, 3 * w)


def test_init_weights_rejects_unknown_scheme():
    with pytest.raises(ValueError, match="init must be one of"):
        A.init_weights([2, 2], "lecun")


def test_mlp_backward_is_the_gradient():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4))
    ws = A.init_weights([4, 6, 6, 3], "he", rng=2)
    dtop = rng.normal(size=(5, 3))
    for name in A.ACTIVATIONS:
        _, caches = A.mlp_forward(x, ws, name)
        dx = A.mlp_backward(dtop, caches, name)[0]

        def loss(v, name=name):
            return float((A.mlp_forward(v, ws, name)[0][-1] * dtop).sum())

        assert rel_error(dx, numerical_gradient(loss, x)) < 1e-7, name


def test_deep_stats_runs_on_every_backend(backend):
    x = np.random.default_rng(0).normal(size=(16, 8))
    s = A.deep_stats(backend.asarray(x), depth=3, width=10, samples=50)
    ref = A.deep_stats(x, depth=3, width=10, samples=50)
    assert s.std.shape == (3,) and s.samples.shape == (3, 50)
    np.testing.assert_allclose(s.std, ref.std, rtol=1e-12)
    np.testing.assert_allclose(s.grad_std, ref.grad_std, rtol=1e-12)


def test_he_keeps_relu_second_moment_and_xavier_halves_it():
    X, _ = A.standardized_digits(128)
    he = A.deep_stats(X, 20, "relu", "he")
    xav = A.deep_stats(X, 20, "relu", "xavier")
    m_he = he.std**2 + he.mean**2
    m_xa = xav.std**2 + xav.mean**2
    assert 0.5 < m_he[-1] / m_he[0] < 2
    rate = (m_xa[-1] / m_xa[0]) ** (1 / 19)
    assert 0.45 < rate < 0.55
    assert 0.4 < he.zero_fraction.mean() < 0.6


def test_sigmoid_gradients_vanish():
    X, _ = A.standardized_digits(64)
    s = A.deep_stats(X, 20, "sigmoid", "xavier")
    assert s.grad_std[0] / s.grad_std[-1] < 0.25**19 * 10


def test_standardized_digits():
    X, y = A.standardized_digits(100)
    assert X.shape == (100, 64) and y.shape == (100,)
    assert np.abs(X.mean(axis=0)).max() < 1e-12


def test_draw_state_and_static_animation():
    import matplotlib.pyplot as plt

    X, _ = A.standardized_digits(32)
    states = [A.deep_stats(X, 4, name, "he", width=16) for name in ("relu", "tanh")]
    fig, axes = plt.subplots(1, 3)
    A.draw_state(axes, states[0], [1, 4])
    assert axes[2].get_legend().get_texts()[1].get_text() == "layer 4"
    plt.close(fig)
    html = A.animation_html(states, [1, 4], dpi=30)
    assert "<script" in html and html.count("data:image/png;base64") == 2


def test_explorer_builds_widgets():
    pytest.importorskip("ipywidgets")
    X, _ = A.standardized_digits(16)
    shown = A.explorer(X, max_depth=5)
    names = {w.description for w in shown.widget.children[:-1]}
    assert names == {"activation", "init", "scale", "depth"}
