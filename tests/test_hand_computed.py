"""Trajectories and statistics computed by hand, so that the suite catches a
wrong update rule without PyTorch installed.

Each expected number is written out from the textbook formula (in the
comments), not from the package: Nesterov's look-ahead, Adam's bias
correction, AdamW's decay before the step, OneCycle's peak step, batch norm's
running statistics (unbiased variance, as PyTorch) and its evaluation mode.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnbook import nn, optim


def _run(opt, p, grads):
    out = []
    for g in grads:
        p.grad = np.array([g])
        opt.step()
        out.append(float(p.data[0]))
    return out


def test_sgd_nesterov_three_steps():
    p = nn.Parameter(np.array([1.0]))
    opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    # b1 = 1, g' = 1 + .9·1 = 1.9, θ = 1 − .19 = .81
    # b2 = .9·1 + 2 = 2.9, g' = 2 + .9·2.9 = 4.61, θ = .81 − .461 = .349
    # b3 = .9·2.9 − 1 = 1.61, g' = −1 + .9·1.61 = .449, θ = .349 − .0449 = .3041
    assert _run(opt, p, [1.0, 2.0, -1.0]) == pytest.approx([0.81, 0.349, 0.3041])


def test_sgd_heavy_ball_with_dampening_two_steps():
    p = nn.Parameter(np.array([1.0]))
    opt = optim.SGD([p], lr=0.1, momentum=0.5, dampening=0.5)
    # b1 = g1 = 2 (no dampening on the first step), θ = 1 − .2 = .8
    # b2 = .5·2 + .5·4 = 3, θ = .8 − .3 = .5
    assert _run(opt, p, [2.0, 4.0]) == pytest.approx([0.8, 0.5])


def test_adam_bias_correction_two_steps():
    p = nn.Parameter(np.array([1.0]))
    opt = optim.Adam([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    # t=1: m = .1, v = .001; m̂ = 1, v̂ = 1 -> step .1/(1 + 1e-8)
    theta1 = 1 - 0.1 * 1 / (1 + 1e-8)
    # t=2 (g = 2): m = .09 + .2 = .29, v = .000999 + .004 = .004999
    m_hat, v_hat = 0.29 / (1 - 0.9**2), 0.004999 / (1 - 0.999**2)
    theta2 = theta1 - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8)
    got = _run(opt, p, [1.0, 2.0])
    assert got == pytest.approx([theta1, theta2], rel=1e-12)
    assert got[1] == pytest.approx(0.803481, abs=1e-6)
    assert opt.state[0]["step"] == 2


def test_adamw_decays_before_the_step():
    p = nn.Parameter(np.array([1.0]))
    opt = optim.AdamW([p], lr=0.1, weight_decay=0.5)
    # θ ← θ(1 − ηλ) = .95, then θ ← θ − η·m̂/(√v̂ + ε) with m̂/√v̂ = 1: .85
    # (decay after the step would give .855; Adam's coupled L2 .9)
    # t=2, same g: .85·.95 = .8075, minus .1 -> .7075
    assert _run(opt, p, [1.0, 1.0]) == pytest.approx([0.85, 0.7075], abs=1e-7)


def test_adam_coupled_weight_decay():
    p = nn.Parameter(np.array([1.0]))
    opt = optim.Adam([p], lr=0.1, weight_decay=0.5)
    # g ← g + λθ = 1.5; one Adam step moves by η (m̂/√v̂ = 1): .9
    assert _run(opt, p, [1.0]) == pytest.approx([0.9], abs=1e-7)


def test_one_cycle_peak_and_ends():
    p = nn.Parameter(np.array([1.0]))
    opt = optim.SGD([p], lr=1.0, momentum=0.9)
    sched = optim.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.3)
    # peak step = .3·10 − 1 = 2; start 1/25 = .04; halfway up: (.04 + 1)/2
    lrs, moms = [opt.lr], [opt.momentum]
    for _ in range(9):
        sched.step()
        lrs.append(opt.lr)
        moms.append(opt.momentum)
    assert lrs[0] == pytest.approx(0.04)
    assert lrs[1] == pytest.approx(0.52)
    assert lrs[2] == pytest.approx(1.0) and max(lrs) == lrs[2]
    assert moms[2] == pytest.approx(0.85) and moms[0] == pytest.approx(0.95)
    assert lrs[9] == pytest.approx(0.04 / 1e4)
    # halfway down (step 2 + 3.5 = 5.5 is not a step; step 9 ends at min)
    assert lrs[3] == pytest.approx(4e-6 + (1 - 4e-6) * (1 + math.cos(math.pi / 7)) / 2)


def test_batch_norm_running_statistics_closed_form():
    bn = nn.BatchNorm1d(2, momentum=0.1).to(dtype=np.float64)
    x = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    with nn.no_grad():
        y = bn(x)
    # mean (2.5, 25); biased variance (1.25, 125) normalises the batch
    np.testing.assert_allclose(y[:, 0], (x[:, 0] - 2.5) / math.sqrt(1.25 + 1e-5))
    # running ← .9·running + .1·batch, the variance unbiased (×4/3), as PyTorch
    np.testing.assert_allclose(bn.running_mean, [0.25, 2.5])
    np.testing.assert_allclose(bn.running_var, [0.9 + 0.1 * 5 / 3, 0.9 + 0.1 * 500 / 3])
    with nn.no_grad():
        bn(x + 1.0)  # mean (3.5, 26), same variances
    np.testing.assert_allclose(bn.running_mean, [0.9 * 0.25 + 0.35, 0.9 * 2.5 + 2.6])
    rv = 0.9 * np.array([0.9 + 0.1 * 5 / 3, 0.9 + 0.1 * 500 / 3]) + [1 / 6, 50 / 3]
    np.testing.assert_allclose(bn.running_var, rv)
    assert int(bn.num_batches_tracked) == 2
    # evaluation: the running statistics normalise, and stay unchanged
    bn.eval()
    bn.weight.data[:] = [2.0, 3.0]
    bn.bias.data[:] = [0.5, -1.0]
    rm = bn.running_mean.copy()
    with nn.no_grad():
        y = bn(x)
    expected = (x - rm) / np.sqrt(rv + 1e-5) * [2.0, 3.0] + [0.5, -1.0]
    np.testing.assert_allclose(y, expected)
    np.testing.assert_array_equal(bn.running_mean, rm)
    assert int(bn.num_batches_tracked) == 2
    # backward in evaluation: y is affine in x, dx = dy·γ/√(rv + ε)
    bn(x)
    dx = bn.backward(np.ones_like(x))
    np.testing.assert_allclose(
        dx, np.broadcast_to([2.0, 3.0] / np.sqrt(rv + 1e-5), x.shape)
    )
