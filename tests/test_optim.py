"""cnnbook.optim: update rules and schedules side by side with PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnbook.backend as B
from cnnbook import optim
from cnnbook.nn import Parameter


def _grad(theta):
    """A gradient that depends on the parameters, so the trajectories differ."""
    return np.sin(3 * theta) + 0.1 * theta**2


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.03, betas=(0.85, 0.95), weight_decay=0.2)),
]


@pytest.mark.parametrize("name, kw", CONFIGS)
def test_optimizers_match_pytorch(backend, name, kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    init = [rng.normal(size=(3, 4)), rng.normal(size=(5,))]
    ours = [Parameter(backend.asarray(a, np.float64)) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    opt = getattr(optim, name)(ours, **kw)
    topt = getattr(torch.optim, name)(theirs, **kw)
    for _ in range(7):
        for p, t in zip(ours, theirs, strict=True):
            p.grad = backend.asarray(_grad(B.to_numpy(p.data)))
            t.grad = torch.tensor(_grad(t.detach().numpy()))
        opt.step()
        topt.step()
    for p, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(
            B.to_numpy(p.data), t.detach().numpy(), rtol=1e-12, atol=1e-14
        )
    assert opt.step_count == 7


def test_params_without_grad_are_skipped_and_zero_grad():
    p, q = Parameter(np.ones(2)), Parameter(np.ones(2))
    p.grad = np.ones(2)
    opt = optim.SGD([p, q], lr=0.5)
    opt.step()
    np.testing.assert_array_equal(p.data, 0.5)
    np.testing.assert_array_equal(q.data, 1.0)
    opt.zero_grad()
    assert p.grad is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="not a Parameter"):
        optim.Adam([np.ones(3)])
    with pytest.raises(ValueError, match="lr must be >= 0"):
        optim.SGD([Parameter(np.ones(1))], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([Parameter(np.ones(1))], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([Parameter(np.ones(1))], betas=(1.0, 0.9))


def test_state_dict_round_trip_continues_identically(backend):
    def run(split):
        p = Parameter(backend.asarray(np.linspace(-1, 1, 6), np.float64))
        opt = optim.Adam([p], lr=0.05, weight_decay=0.01)
        for k in range(6):
            if k == split:
                sd = opt.state_dict()
                opt = optim.Adam([p], lr=0.9)
                opt.load_state_dict(sd)
            p.grad = backend.asarray(_grad(B.to_numpy(p.data)))
            opt.step()
        return B.to_numpy(p.data)

    np.testing.assert_array_equal(run(split=3), run(split=-1))
    opt = optim.SGD([Parameter(np.ones(3))], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="has shape"):
        opt.load_state_dict(
            {
                "step_count": 1,
                "lr": 0.1,
                "momentum": 0.9,
                "dampening": 0.0,
                "weight_decay": 0.0,
                "state.0.momentum_buffer": np.ones(4),
            }
        )
    with pytest.raises(KeyError, match="missing entries"):
        opt.load_state_dict({"lr": 0.1})


def _torch_lrs(torch, make, steps, per):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    sched = make(opt)
    lrs, moms = [], []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    return lrs, moms


@pytest.mark.parametrize("kind", ["step", "cosine", "onecycle"])
def test_schedules_match_pytorch(kind):
    torch = pytest.importorskip("torch")
    S = torch.optim.lr_scheduler
    steps = 40
    makers = {
        "step": (lambda o: S.StepLR(o, 7, 0.5), lambda o: optim.StepLR(o, 7, 0.5)),
        "cosine": (
            lambda o: S.CosineAnnealingLR(o, 13, 1e-3),
            lambda o: optim.CosineAnnealingLR(o, 13, 1e-3),
        ),
        "onecycle": (
            lambda o: S.OneCycleLR(o, 0.4, total_steps=steps),
            lambda o: optim.OneCycleLR(o, 0.4, total_steps=steps),
        ),
    }
    t_lrs, t_moms = _torch_lrs(torch, makers[kind][0], steps, None)
    opt = optim.SGD([Parameter(np.zeros(1))], lr=0.1, momentum=0.9)
    sched = makers[kind][1](opt)
    lrs, moms = [], []
    for _ in range(steps):
        lrs.append(opt.lr)
        moms.append(opt.momentum)
        sched.step()
    np.testing.assert_allclose(lrs, t_lrs, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(moms, t_moms, rtol=1e-12)
    assert sched.get_last_lr() == [opt.lr]


@pytest.mark.parametrize("kind", ["step", "cosine", "onecycle"])
def test_schedules_scale_each_group_from_its_own_base_rate_as_pytorch(kind):
    torch = pytest.importorskip("torch")
    S = torch.optim.lr_scheduler
    steps = 30
    makers = {
        "step": (lambda o: S.StepLR(o, 7, 0.5), lambda o: optim.StepLR(o, 7, 0.5)),
        "cosine": (
            lambda o: S.CosineAnnealingLR(o, 13, 1e-4),
            lambda o: optim.CosineAnnealingLR(o, 13, 1e-4),
        ),
        "onecycle": (
            lambda o: S.OneCycleLR(o, [0.4, 0.04], total_steps=steps),
            lambda o: optim.OneCycleLR(o, [0.4, 0.04], total_steps=steps),
        ),
    }
    a, b = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    t_opt = torch.optim.SGD(
        [{"params": [a]}, {"params": [b], "lr": 0.01}], lr=0.1, momentum=0.9
    )
    t_sched = makers[kind][0](t_opt)
    opt = optim.SGD(
        [
            {"params": [Parameter(np.zeros(1))]},
            {"params": [Parameter(np.zeros(1))], "lr": 0.01},
        ],
        lr=0.1,
        momentum=0.9,
    )
    sched = makers[kind][1](opt)
    for _ in range(steps):
        want = [(g["lr"], g["momentum"]) for g in t_opt.param_groups]
        got = [(g["lr"], g["momentum"]) for g in opt.param_groups]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(
            sched.get_last_lr(), t_sched.get_last_lr(), rtol=1e-12
        )
        t_opt.step()
        t_sched.step()
        sched.step()


def test_schedules_keep_the_ratio_between_groups_hand_computed():
    groups = [
        {"params": [Parameter(np.zeros(1))]},
        {"params": [Parameter(np.zeros(1))], "lr": 0.1},
    ]
    opt = optim.SGD(groups, lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    seen = []
    for _ in range(5):
        seen.append(sched.get_last_lr())
        sched.step()
    assert seen == [[1.0, 0.1], [1.0, 0.1], [0.5, 0.05], [0.5, 0.05], [0.25, 0.025]]
    assert sched.state_dict() == {"last_epoch": 5, "base_lrs": [1.0, 0.1]}
    # a fresh schedule on a fresh optimizer picks up where the saved one was
    again = optim.StepLR(optim.SGD(groups, lr=1.0), step_size=2, gamma=0.5)
    again.load_state_dict(sched.state_dict())
    assert again.get_last_lr() == [0.25, 0.025] and again.last_epoch == 5
    with pytest.raises(ValueError, match="2 base rates, the optimizer 1 parameter"):
        optim.StepLR(optim.SGD(groups[:1], lr=1.0), 2).load_state_dict(
            sched.state_dict()
        )
    # make_scheduler's one-cycle peaks at each group's own rate
    opt = optim.SGD(groups, lr=1.0, momentum=0.9)
    one = optim.make_scheduler("onecycle", opt, epochs=1, steps_per_epoch=10)
    assert one.base_lrs == [1.0, 0.1]
    assert one.get_last_lr() == pytest.approx([1.0 / 25, 0.1 / 25])
    with pytest.raises(ValueError, match="max_lr has 3 rates but the optimizer has 2"):
        optim.OneCycleLR(opt, [1.0, 2.0, 3.0], total_steps=10)


def test_onecycle_cycles_adam_beta1_and_stops_after_total_steps():
    opt = optim.Adam([Parameter(np.zeros(1))], lr=1.0)
    sched = optim.OneCycleLR(opt, max_lr=1e-2, total_steps=10)
    assert opt.lr == pytest.approx(1e-2 / 25) and opt.betas[0] == pytest.approx(0.95)
    for _ in range(10):
        sched.step()
    with pytest.raises(ValueError, match="total_steps is 10"):
        sched.step()
    assert optim.OneCycleLR.per_batch and not optim.StepLR.per_batch
    state = sched.state_dict()
    again = optim.OneCycleLR(opt, max_lr=1e-2, total_steps=10)
    again.load_state_dict(state)
    assert again.last_epoch == 10


def test_cosine_closed_form():
    opt = optim.SGD([Parameter(np.zeros(1))], lr=1.0)
    sched = optim.CosineAnnealingLR(opt, T_max=4)
    got = []
    for _ in range(5):
        got.append(opt.lr)
        sched.step()
    np.testing.assert_allclose(
        got, [(1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)]
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda o: optim.StepLR(o, step_size=0),
            r"StepLR: step_size must be >= 1, got 0",
        ),
        (lambda o: optim.StepLR(o, step_size=2.5), r"StepLR: step_size must be an int"),
        (lambda o: optim.StepLR(o, 3, gamma=0), r"StepLR: gamma must be > 0, got 0"),
        (lambda o: optim.StepLR(o, 3, gamma=-0.5), r"StepLR: gamma must be > 0"),
        (
            lambda o: optim.CosineAnnealingLR(o, T_max=0),
            r"CosineAnnealingLR: T_max must be >= 1, got 0",
        ),
        (
            lambda o: optim.OneCycleLR(o, 0.1, total_steps=0),
            r"OneCycleLR: total_steps must be >= 2, got 0",
        ),
        (
            lambda o: optim.OneCycleLR(o, 0.1, total_steps=10, pct_start=0),
            r"OneCycleLR: pct_start must be in \(0, 1\), got 0",
        ),
        (
            lambda o: optim.OneCycleLR(o, 0.1, total_steps=10, pct_start=1.0),
            r"OneCycleLR: pct_start must be in \(0, 1\), got 1\.0",
        ),
        (  # 0.1 * 10 = 1: a warm-up of zero steps, which divided by zero
            lambda o: optim.OneCycleLR(o, 0.1, total_steps=10, pct_start=0.1),
            r"OneCycleLR: pct_start \* total_steps must be > 1 .* 0\.1 \* 10 = 1;",
        ),
        (
            lambda o: optim.OneCycleLR(o, 0.1, total_steps=3),
            r"OneCycleLR: pct_start \* total_steps must be > 1 .* 0\.3 \* 3 = 0\.9;",
        ),
    ],
)
def test_scheduler_bad_arguments_name_the_scheduler_and_change_nothing(make, message):
    opt = optim.SGD([Parameter(np.zeros(1))], lr=0.5)
    with pytest.raises(ValueError, match=message):
        make(opt)
    assert opt.lr == 0.5


def test_onecycle_short_warm_up_still_works():
    opt = optim.SGD([Parameter(np.zeros(1))], lr=0.5)
    sched = optim.OneCycleLR(opt, 0.1, total_steps=4)  # warm-up of 0.2 steps
    assert opt.lr == pytest.approx(0.1 / 25)
    for _ in range(4):
        sched.step()
    assert np.isfinite(opt.lr)
