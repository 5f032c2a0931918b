"""The chapter companion cnnbook_book.modern: multiply-add counting, the
blocks (mlpconv, inception, bottleneck, pre-activation, dense, separable),
the chapter's small network and its training runner."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from cnnbook_book import modern as M

from cnnbook import nn
from cnnbook.gradcheck import numerical_gradient, rel_error


def test_count_macs_matches_the_formulas_and_leaves_the_model_alone():
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, rng=0)
    assert M.count_macs(conv, (4, 9, 9)) == 5 * 5 * 6 * 2 * 9
    net = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.Flatten(), nn.Linear(8, 3, rng=1))
    assert M.count_macs(net, (1, 4, 4)) == 2 * 2 * 2 * 9 + 8 * 3
    assert net.training and not any(m._forward_hooks for m in net.modules())
    with pytest.raises(RuntimeError, match="no forward pass"):
        net.backward(np.ones((1, 3), dtype=np.float32))  # nothing was recorded


def test_blocks_shapes_and_parameter_counts():
    x = np.zeros((2, 8, 6, 6), dtype=np.float32)
    with nn.no_grad():
        assert M.mlpconv(8, (5, 4), 3, rng=0)(x).shape == (2, 4, 6, 6)
        inc = M.inception(8, 2, 3, 4, 1, 2, 3, rng=0)
        assert inc(x).shape == (2, 2 + 4 + 2 + 3, 6, 6)
        assert (
            M.inception(8, 2, 3, 4, 1, 2, 3, reduce=False)(x).shape[1] == 2 + 4 + 2 + 8
        )
        assert M.bottleneck(8, 2, rng=0)(x).shape == x.shape
        assert M.preact_block(8, rng=0)(x).shape == x.shape
        assert M.dense_block(8, 3, 2, rng=0)(x).shape == (2, 14, 6, 6)
        assert M.separable_conv(8, 5, rng=0)(x).shape == (2, 5, 6, 6)
    sep = M.separable_conv(8, 5, 3)
    assert Fraction(sep.num_parameters(), 9 * 8 * 5) == Fraction(1, 5) + Fraction(1, 9)


def test_zero_last_preact_block_is_the_identity_both_ways():
    blk = M.preact_block(3, rng=0, zero_last=True).to(dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 4))
    assert np.array_equal(blk(x), x)
    assert np.array_equal(blk.backward(x), x)


def test_dense_block_gradient_matches_finite_differences():
    blk = M.dense_block(2, 2, 2, rng=0).to(dtype=np.float64)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 2, 4, 4))
    dy = rng.normal(size=(3, 6, 4, 4))
    blk(x)
    dx = blk.backward(dy)

    def f(v):
        with nn.no_grad():
            return float(np.sum(blk(v) * dy))

    assert rel_error(dx, numerical_gradient(f, x)) < 1e-6


@pytest.mark.parametrize("norm", list(M.NORMS))
@pytest.mark.parametrize("separable", [False, True])
def test_small_cnn_and_norm_layers(norm, separable):
    net = M.small_cnn((4, 8, 8), separable=separable, norm=norm, seed=0)
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    assert net(x).shape == (2, 10)
    assert net.backward(np.ones((2, 10), dtype=np.float32)) is None  # input_grad=False
    flat = M.small_cnn((4, 8, 8), norm=norm, head="flatten", seed=0)
    assert flat(x).shape == (2, 10)
    with pytest.raises(ValueError, match="head must be"):
        M.small_cnn(head="dense")
    with pytest.raises(ValueError, match="unknown 'instance'"):
        M.norm_layer("instance", 8)


def test_train_runs_is_seeded_and_restores_running_statistics():
    rng = np.random.default_rng(0)
    X = rng.random((40, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 40)

    def make(seed):
        return M.small_cnn((2, 4, 4), norm="batch", seed=seed)

    a = M.train_runs(make, (X, y), (X[:8], y[:8]), seeds=(0, 1), epochs=1, batch_size=4)
    b = M.train_runs(make, (X, y), (X[:8], y[:8]), seeds=(0,), epochs=1, batch_size=4)
    assert len(a) == 2 and a[0].history.train_loss == b[0].history.train_loss
    assert a[0].val == b[0].val and 0 <= a[0].val_batch_stats["accuracy"] <= 1


@pytest.mark.parametrize("norm", ["batch", "group", "layer"])
def test_mlp(norm):
    net = M.mlp(norm, hidden=8, seed=0)
    assert net(np.zeros((3, 1, 28, 28), dtype=np.float32)).shape == (3, 10)
    assert net.num_parameters() == 784 * 8 + 8 + 2 * 8 + 8 * 10 + 10
    with pytest.raises(ValueError, match="unknown norm"):
        M.mlp("instance")
