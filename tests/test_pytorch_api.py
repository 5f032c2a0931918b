"""The parts of PyTorch's module and optimizer API a user reaches for:
ModuleList, modules(), apply(), zero_grad(set_to_none=...), param_groups,
RMSprop and Adagrad (hand-computed, and against PyTorch where installed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnbook.backend as B
from cnnbook import nn, optim


def test_module_list_modules_and_apply():
    blocks = nn.ModuleList([nn.Linear(2, 2, rng=i) for i in range(2)])
    blocks.append(nn.ReLU())
    assert len(blocks) == 3 and isinstance(blocks[2], nn.ReLU)
    assert [k for k, _ in blocks.named_parameters()] == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
    ]
    with pytest.raises(NotImplementedError, match=r"ModuleList\.forward"):
        blocks(np.ones((1, 2)))
    with pytest.raises(TypeError, match="ModuleList: item 3 must be a Module"):
        blocks.append(3)
    net = nn.Sequential(blocks, nn.Linear(2, 1))
    assert [type(m).__name__ for m in net.modules()] == [
        "Sequential",
        "ModuleList",
        "Linear",
        "Linear",
        "ReLU",
        "Linear",
    ]
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen[-1] == "Sequential" and seen[0] == "Linear"  # children first


def test_zero_grad_set_to_none(backend):
    lin = nn.Linear(2, 2, rng=0)
    x = backend.asarray(np.ones((3, 2)), np.float32)
    lin(x)
    lin.backward(backend.asarray(np.ones((3, 2)), np.float32))
    lin.zero_grad(set_to_none=False)
    assert float(B.to_numpy(lin.weight.grad).sum()) == 0.0
    opt = optim.SGD(lin.parameters(), lr=0.1)
    opt.zero_grad()
    assert lin.weight.grad is None


def test_param_groups_have_their_own_rates():
    a, b = nn.Parameter(np.array([1.0])), nn.Parameter(np.array([1.0]))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad = b.grad = np.array([1.0])
    opt.step()
    assert float(a.data[0]) == pytest.approx(0.9)
    assert float(b.data[0]) == pytest.approx(0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    opt.param_groups[1]["lr"] = 0.25
    opt.step()
    assert float(b.data[0]) == pytest.approx(0.25)
    restored = optim.SGD([{"params": [a]}, {"params": [b], "lr": 9.0}], lr=0.1)
    restored.load_state_dict(opt.state_dict())
    assert restored.param_groups[1]["lr"] == 0.25
    with pytest.raises(ValueError, match="SGD: a parameter appears in two groups"):
        optim.SGD([{"params": [a]}, {"params": [a]}], lr=0.1)
    with pytest.raises(ValueError, match="SGD: lr"):
        optim.SGD([{"params": [a], "lr": -1}], lr=0.1)


def test_rmsprop_and_adagrad_first_steps_by_hand():
    p = nn.Parameter(np.array([1.0]))
    opt = optim.RMSprop([p], lr=0.01, alpha=0.9)
    p.grad = np.array([2.0])
    opt.step()  # v = .1·4 = .4; θ = 1 − .01·2/(√.4 + 1e-8)
    assert float(p.data[0]) == pytest.approx(1 - 0.02 / (math.sqrt(0.4) + 1e-8))
    q = nn.Parameter(np.array([1.0]))
    opt = optim.Adagrad([q], lr=0.1, lr_decay=0.5)
    for g in (2.0, 1.0):
        q.grad = np.array([g])
        opt.step()
    # s = 4 -> θ = 1 − .1·2/2 = .9; s = 5, η₂ = .1/1.5 -> θ = .9 − (.1/1.5)/√5
    assert float(q.data[0]) == pytest.approx(0.9 - (0.1 / 1.5) / math.sqrt(5))


CASES = [
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.1}),
    (
        "Adagrad",
        {
            "lr": 0.1,
            "lr_decay": 0.01,
            "weight_decay": 0.1,
            "initial_accumulator_value": 0.5,
        },
    ),
]


@pytest.mark.parametrize("name, kw", CASES)
def test_optimizers_match_pytorch(backend, name, kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(3, 4))
    grads = rng.normal(size=(4, 3, 4))
    p = nn.Parameter(backend.asarray(theta, np.float64))
    ours = getattr(optim, name)([p], **kw)
    t = torch.tensor(theta, requires_grad=True)
    theirs = getattr(torch.optim, name)([t], **kw)
    for g in grads:
        p.grad = backend.asarray(g, np.float64)
        ours.step()
        t.grad = torch.tensor(g)
        theirs.step()
    np.testing.assert_allclose(B.to_numpy(p.data), t.detach().numpy(), rtol=1e-12)
