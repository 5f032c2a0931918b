"""Tests for the backpropagation chapter's companion, cnnbook_book.backprop."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from cnnbook_book import backprop as E

from cnnbook.functional import conv2d_backward, conv2d_forward, softmax_cross_entropy
from cnnbook.gradcheck import rel_error
from cnnbook.history import History

matplotlib.use("Agg")
import matplotlib.pyplot as plt

GEOMETRIES = [  # (H, W, KH, KW, stride, padding)
    (6, 5, 3, 2, 1, 0),
    (7, 7, 3, 3, 2, 1),
    (8, 9, 4, 3, 3, 2),
    (6, 6, 2, 3, (2, 1), (1, 0)),
    (5, 5, 5, 5, 1, 2),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_conv_backward_identities_match_conv2d_backward(backend, rng, geometry):
    H, W, KH, KW, stride, padding = geometry
    x = backend.asarray(rng.normal(size=(2, 3, H, W)))
    w = backend.asarray(rng.normal(size=(4, 3, KH, KW)))
    y, cache = conv2d_forward(x, w, None, stride=stride, padding=padding)
    dy = backend.asarray(rng.normal(size=tuple(y.shape)))
    dx, dw, _ = conv2d_backward(dy, cache)
    dw2 = E.conv2d_weight_grad(x, dy, (KH, KW), stride, padding)
    dx2 = E.conv2d_input_grad(dy, w, (H, W), stride, padding)
    assert tuple(dw2.shape) == (4, 3, KH, KW)
    assert tuple(dx2.shape) == (2, 3, H, W)
    assert rel_error(dw, dw2) < 1e-12
    assert rel_error(dx, dx2) < 1e-12


def test_conv_input_grad_is_full_convolution_with_flipped_kernel():
    # one channel, one pixel of dy at (0, 0): dX is the kernel itself, placed at
    # the top left; the full convolution of a delta with w reproduces w
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    dy = np.zeros((1, 1, 3, 3))
    dy[0, 0, 0, 0] = 1.0
    dx = E.conv2d_input_grad(dy, w, (5, 5))
    assert np.array_equal(dx[0, 0, :3, :3], w[0, 0])
    assert dx[0, 0, 3:, :].sum() == 0 and dx[0, 0, :, 3:].sum() == 0


def test_naive_cross_entropy_agrees_then_overflows(backend):
    logits = backend.asarray(np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]]))
    targets = backend.asarray(np.array([0, 2]), dtype=np.int64)
    stable, _ = softmax_cross_entropy(logits, targets)
    naive = E.naive_cross_entropy(logits, targets)
    assert abs(float(naive) - float(stable)) < 1e-12
    big = logits * 1000.0
    with np.errstate(over="ignore", invalid="ignore"):
        broken = float(E.naive_cross_entropy(big, targets))
    assert not np.isfinite(broken)
    assert np.isfinite(float(softmax_cross_entropy(big, targets)[0]))


@pytest.mark.parametrize("lr", [0.01, 0.1, 0.19])
def test_sgd_on_the_ravine_follows_the_closed_form(lr):
    # θ_k = (1 − lr·λ)^k θ_0 per axis, λ = (1, 10)
    path = E.trajectory("ravine", "sgd", lr, steps=30)
    k = np.arange(31)[:, None]
    expected = (1 - lr * np.array([1.0, 10.0])) ** k * np.array([-4.0, 1.5])
    assert np.allclose(path, expected, rtol=1e-12, atol=1e-12)


def test_learning_rate_threshold_two_over_lambda_max():
    below = E.trajectory("ravine", "sgd", 0.19, steps=300)
    above = E.trajectory("ravine", "sgd", 0.21, steps=300)
    assert len(below) == 301 and np.linalg.norm(below[-1]) < 1e-6
    assert len(above) < 301  # stopped when |θ| passed the blow-up bound


@pytest.mark.parametrize("name", E.OPTIMIZERS)
def test_each_optimizer_reaches_the_ravine_minimum(name):
    lr = {"sgd": 0.1, "momentum": 0.05, "adam": 0.1}[name]
    path = E.trajectory("ravine", name, lr, steps=400)
    assert np.linalg.norm(path[-1]) < 1e-2


def test_rosenbrock_gradient_matches_finite_differences():
    s = E.SURFACES["rosenbrock"]
    theta, eps = np.array([-0.7, 1.3]), 1e-6
    numeric = [
        (s.f(*(theta + eps * e)) - s.f(*(theta - eps * e))) / (2 * eps)
        for e in np.eye(2)
    ]
    assert rel_error(s.grad(theta), np.array(numeric)) < 1e-8


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        E.trajectory("ravine", "lion", 0.1)


def test_plots_return_figures(rng):
    figs = [
        E.plot_trajectories("rosenbrock", {"a": np.zeros((3, 2))}).figure,
        E.trajectory_grid("ravine", {"sgd": [0.1, 0.25]}, steps=10),
        E.plot_confusion_matrix(np.eye(3, dtype=int) * 5).figure,
        E.plot_digits(rng.random((3, 1, 28, 28)), ["a", "b", "c"], ncols=2),
        E.plot_filters(rng.normal(size=(6, 1, 5, 5)), title="filters"),
        E.plot_feature_maps(rng.random((6, 28, 28)), ncols=3),
    ]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs)
    grid = figs[1]
    assert "diverg" in grid.axes[1].get_title()  # 0.25 > 2/10
    plt.close("all")


def test_trajectory_snapshots_show_each_path_up_to_each_step_count():
    runs = {"sgd": ("sgd", 0.1), "adam": ("adam", 0.1)}
    fig = E.trajectory_snapshots("ravine", runs, at=(2, 5))
    assert [ax.get_title() for ax in fig.axes] == ["after 2 steps", "after 5 steps"]
    for ax, steps in zip(fig.axes, (2, 5), strict=True):
        lines = [ln for ln in ax.get_lines() if ln.get_label() in runs]
        assert [ln.get_label() for ln in lines] == ["sgd", "adam"]
        for ln, (opt, lr) in zip(lines, runs.values(), strict=True):
            want = E.trajectory("ravine", opt, lr, steps)
            np.testing.assert_array_equal(np.c_[ln.get_xdata(), ln.get_ydata()], want)
    assert not any(ax.get_legend() for ax in fig.axes)  # one legend, below
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["sgd", "adam"]
    plt.close(fig)


def test_explorer_builds_and_redraws():
    box = E.trajectory_explorer(steps=10)
    controls = [w for row in box.children[:2] for w in row.children]
    surface, optimizer, lr = controls[0], controls[1], controls[2]
    surface.value, optimizer.value, lr.value = "rosenbrock", "adam", 0.01
    assert box.children[2].__class__.__name__ == "Output"
    plt.close("all")


def test_live_curves_figure_spans_all_epochs():
    live = E.LiveCurves(epochs=5, target=0.9)
    h = History(
        [1, 2],
        [0.9, 0.5],
        [0.7, 0.8],
        [0.8, 0.4],
        [0.75, 0.85],
        [1e-3, 1e-3],
        [1.0, 1.0],
    )
    fig = live.figure(h)
    assert fig.axes[0].get_xlim() == (0.5, 5.5)
    assert live(2, h) is None and live.calls == 1
    plt.close("all")
