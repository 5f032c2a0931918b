"""The chapter companion cnnbook_book.deep: receptive fields, the deep test
network and its gradient norms, the training-experiment runners, the drawing
code and the explorer."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
from cnnbook_book import deep as Dp

from cnnbook import models, nn
from cnnbook.gradcheck import numerical_gradient

matplotlib.use("Agg")


def _batch(n=8, c=1, s=8, seed=0):
    g = np.random.default_rng(seed)
    return g.random((n, c, s, s), dtype=np.float32), g.integers(0, 10, n)


# ----------------------------------------------------------------------------
# receptive fields
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("L", [1, 2, 3, 5])
def test_stacked_3x3_receptive_field_is_2L_plus_1(L):
    assert Dp.receptive_fields([(3, 1)] * L)[-1] == (2 * L + 1, 1)


def test_receptive_field_with_strides_and_pooling():
    # 3x3 s1, 3x3 s2, 3x3 s1: 3, 5, then jump 2 -> 5 + 2*2 = 9
    assert Dp.receptive_fields([(3, 1), (3, 2), (3, 1)]) == [(3, 1), (5, 2), (9, 2)]
    assert Dp.receptive_fields([(5, 1), (2, 2), (5, 1), (2, 2)])[-1] == (16, 4)
    with pytest.raises(ValueError, match="k, s >= 1"):
        Dp.receptive_fields([(0, 1)])


def test_layer_geometry_reads_the_vgg_model():
    net = models.vgg((4, 8), 2, seed=0)
    geo = Dp.layer_geometry(net)
    assert [(k, s) for _, k, s in geo] == [(3, 1), (3, 1), (2, 2)] * 2
    assert geo[0][0] == "block1.0" and geo[2][0] == "block1.4"
    assert Dp.receptive_fields([(k, s) for _, k, s in geo])[-1] == (16, 4)


@pytest.mark.parametrize("layers", [[1], [1, 1], [1, 1, 1], [1, 2, 1]])
def test_gradient_footprint_matches_the_formula(backend, layers):
    convs = [
        nn.Conv2d(1 if i == 0 else 2, 2, 3, stride=s, padding=1, rng=i)
        for i, s in enumerate(layers)
    ]
    net = nn.Sequential(*convs).to(dtype=np.float64)
    mask = Dp.gradient_footprint(net, (1, 1, 17, 17))
    r, _ = Dp.receptive_fields([(3, s) for s in layers])[-1]
    assert mask.shape == (17, 17) and mask.sum() == r * r
    rows, cols = np.nonzero(mask)
    assert rows.max() - rows.min() + 1 == r and cols.max() - cols.min() + 1 == r
    assert all(p.grad is None for p in net.parameters())


# ----------------------------------------------------------------------------
# the deep network and its gradient norms
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("bn", [False, True])
def test_deep_net_structure(skip, bn):
    net = Dp.deep_net(5, width=4, batch_norm=bn, skip=skip, seed=0)
    convs = [m for _, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    assert all((m.bias is None) == bn for m in convs)
    n_res = sum(isinstance(m, nn.Residual) for _, m in net.named_modules())
    assert n_res == (4 if skip else 0)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for _, m in net.named_modules())
    assert n_bn == (5 if bn else 0)


def test_deep_net_init_and_scale():
    he = Dp.deep_net(3, width=64, init="he", seed=0)
    xa = Dp.deep_net(3, width=64, init="xavier", seed=0)
    big = Dp.deep_net(3, width=64, init="he", scale=2.0, seed=0)
    w_he, w_xa, w_big = (n[1][0].weight.data for n in (he, xa, big))
    assert abs(w_he.std() - math.sqrt(2 / (64 * 9))) < 0.05 * math.sqrt(2 / 576)
    assert abs(w_xa.std() - math.sqrt(2 / (2 * 64 * 9))) < 0.05 * math.sqrt(1 / 576)
    np.testing.assert_allclose(w_big, 2 * w_he, rtol=1e-6)


def test_deep_net_rejects_bad_settings():
    with pytest.raises(ValueError, match="depth"):
        Dp.deep_net(0)
    with pytest.raises(ValueError, match="activation"):
        Dp.deep_net(2, activation="gelu")
    with pytest.raises(ValueError, match="init"):
        Dp.deep_net(2, init="default")


def test_deep_net_is_seeded():
    X = _batch()[0].astype(np.float64)  # deep_net is float64 by default
    assert Dp.deep_net(2).parameters()[0].data.dtype == np.float64
    a, b = Dp.deep_net(4, seed=3), Dp.deep_net(4, seed=3)
    np.testing.assert_array_equal(a(X), b(X))
    assert not np.array_equal(a(X), Dp.deep_net(4, seed=4)(X))


def test_conv_grad_norms_are_the_weight_gradients():
    X, y = _batch()
    net = Dp.deep_net(4, width=4, skip=True, batch_norm=True, seed=0).to(
        dtype=np.float64
    )
    norms = Dp.conv_grad_norms(net, X.astype(np.float64), y)
    crit = nn.CrossEntropyLoss()
    crit(net(X.astype(np.float64)), y)
    net.zero_grad()
    net.backward(crit.backward())
    convs = [m for _, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    expected = [np.linalg.norm(m.weight.grad) for m in convs]
    np.testing.assert_allclose(norms, expected, rtol=1e-12)
    # ... which are the true derivatives of the loss (finite differences)
    w = convs[1].weight

    def loss(v):
        old = w.data
        w.data = v
        try:
            return crit(net(X.astype(np.float64)), y)
        finally:
            w.data = old

    numeric = numerical_gradient(loss, w.data.copy())
    assert abs(np.linalg.norm(numeric) - norms[1]) < 1e-6 * norms[1]


def test_conv_grad_norms_same_on_every_backend(backend):
    X, y = _batch()
    host = Dp.deep_net(3, width=4, skip=True, seed=0).to("numpy")
    ref = Dp.conv_grad_norms(host, X, y)
    net = Dp.deep_net(3, width=4, skip=True, seed=0)  # created on ``backend``
    norms = Dp.conv_grad_norms(net, backend.asarray(X), backend.asarray(y))
    np.testing.assert_allclose(norms, ref, rtol=1e-4)
    assert all(p.grad is None for p in net.parameters())


def test_sigmoid_gradients_vanish_and_residuals_carry_them():
    X, y = _batch(32)
    grid = Dp.gradient_grid(X, y, depths=(12,), activations=("sigmoid",))
    plain = grid["sigmoid", False, False, 12]
    res = grid["sigmoid", False, True, 12]
    assert plain[0] / plain[-1] < 1e-4  # vanishing through 11 sigmoid layers
    assert res[0] / res[-1] > 1e-2  # the identity path carries the gradient
    assert set(grid) == {("sigmoid", bn, s, 12) for bn in (0, 1) for s in (0, 1)}


def test_gradient_norms_is_one_cell_of_the_grid():
    X, y = _batch(16)
    grid = Dp.gradient_grid(X, y, depths=(3, 4), width=4)
    for act, bn, skip, depth in [("relu", True, False, 3), ("sigmoid", False, True, 4)]:
        one = Dp.gradient_norms(X, y, act, bn, skip, depth, width=4)
        np.testing.assert_array_equal(one, grid[act, bn, skip, depth])
    # a different setting gives different numbers
    assert not np.array_equal(
        grid["relu", True, False, 3], grid["relu", False, False, 3]
    )


# ----------------------------------------------------------------------------
# training experiments
# ----------------------------------------------------------------------------
def _tiny_data(n=40, seed=0):
    X, y = _batch(n, seed=seed)
    return X, y % 3


# ----------------------------------------------------------------------------
# drawing and the explorer
# ----------------------------------------------------------------------------
def test_draw_grid_one_panel_per_activation_and_bn():
    import matplotlib.pyplot as plt

    X, y = _batch()
    grid = Dp.gradient_grid(X, y, depths=(2, 3), width=4)
    fig = Dp.draw_grid(grid)
    assert len(fig.axes) == 4
    assert all(len(ax.lines) == 4 for ax in fig.axes)  # 2 depths x skip on/off
    plt.close(fig)


def test_explorer_builds_and_recomputes():
    import matplotlib.pyplot as plt

    X, y = _batch()
    box = Dp.explorer(X, y, depths=(2, 3), width=4)
    depth, skip, bn, act, _out = box.children
    assert depth.value == 3 and act.options == ("relu", "sigmoid")
    skip.value, bn.value, act.value = True, True, "sigmoid"  # each change re-runs
    plt.close("all")


@pytest.mark.parametrize("scale", [0.8, 1.25])
def test_scaled_relu_net_scales_weight_gradients_by_s_to_the_l_minus_1(scale):
    # positive homogeneity: with the same upstream gradient, scaling every
    # convolution by s scales every weight gradient by exactly s**(L - 1)
    L = 6
    X = np.random.default_rng(0).random((4, 1, 8, 8))
    dz = np.random.default_rng(1).normal(size=(4, 10))
    base = Dp.conv_grad_norms(Dp.deep_net(L, seed=0), X, None, dlogits=dz)
    scaled = Dp.conv_grad_norms(Dp.deep_net(L, scale=scale, seed=0), X, None, dz)
    np.testing.assert_allclose(scaled / base, scale ** (L - 1), rtol=1e-10)


def test_load_experiment_and_experiment_module():
    res = Dp.load_experiment("regularization")
    assert res["experiment"] == "regularization" and res["runs"]
    with pytest.raises(FileNotFoundError, match=r"load_experiment: .*nothing\.json"):
        Dp.load_experiment("nothing")
    runner = Dp.experiment("runner")
    assert (runner.RESULTS / "regularization.json").is_file()
    assert Dp.experiment("regularization").CONFIG == res["config"]
