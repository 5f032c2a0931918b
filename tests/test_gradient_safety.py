"""Gradients are never silently wrong: a module used twice in one forward pass,
a second forward pass before backward, ``no_grad``, and an interrupted step.

A shared module gets correct gradients (checked against finite differences in
float64); a new forward pass before backward makes backward raise
StaleForwardError; ``no_grad`` records nothing; an optimizer step is applied to
every parameter or to none, even when Ctrl-C arrives inside it.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest

import cnnbook.backend as B
from cnnbook import nn, optim
from cnnbook import train as T
from cnnbook.gradcheck import numerical_gradient, rel_error


def _param_grads_vs_numeric(backend, net, x, dy):
    """Analytic dx and parameter gradients of sum(net(x)·dy) vs central
    differences; returns the worst relative error."""
    net.zero_grad()
    net(x)
    dx = net.backward(dy)

    def loss(_: object = None) -> float:
        with nn.no_grad():
            return float(B.to_numpy(net(x) * dy).sum())

    worst = 0.0
    for _, p in net.named_parameters():

        def at(v, p=p):
            saved, p.data = p.data, v
            try:
                return loss()
            finally:
                p.data = saved

        worst = max(worst, rel_error(p.grad, numerical_gradient(at, p.data)))

    def at_x(v):
        with nn.no_grad():
            return float(B.to_numpy(net(v) * dy).sum())

    return max(worst, rel_error(dx, numerical_gradient(at_x, x)))


def _data(backend, shape, seed=0):
    rng = np.random.default_rng(seed)
    return backend.asarray(rng.normal(size=shape), np.float64)


def test_shared_relu_in_sequential_gets_correct_gradients(backend):
    relu = nn.ReLU()
    net = nn.Sequential(
        nn.Linear(5, 6, rng=0), relu, nn.Linear(6, 6, rng=1), relu, nn.Linear(6, 3)
    ).to(dtype=np.float64)
    x, dy = _data(backend, (4, 5)), _data(backend, (4, 3), 1)
    assert _param_grads_vs_numeric(backend, net, x, dy) < 1e-7


def test_module_shared_by_both_residual_branches(backend):
    lin = nn.Linear(4, 4, rng=0).to(dtype=np.float64)
    net = nn.Sequential(nn.Residual(nn.Sequential(lin, nn.Tanh()), lin), nn.Tanh())
    x, dy = _data(backend, (3, 4)), _data(backend, (3, 4), 1)
    assert _param_grads_vs_numeric(backend, net, x, dy) < 1e-7


def test_module_shared_by_concat_branches_and_a_concat_used_twice(backend):
    lin = nn.Linear(4, 4, rng=0).to(dtype=np.float64)
    cat = nn.Concat(nn.Sequential(lin, nn.Tanh()), lin, nn.Identity())
    net = nn.Sequential(cat, nn.Tanh(), nn.Linear(12, 4, rng=1).to(dtype=np.float64))
    x, dy = _data(backend, (3, 4)), _data(backend, (3, 4), 1)
    assert _param_grads_vs_numeric(backend, net, x, dy) < 1e-7
    # one Concat applied twice in a forward pass: its tape keeps both
    # records (branch sizes) and backward takes them back in reverse
    twice = nn.Concat(nn.Linear(4, 2, rng=2), nn.Linear(4, 2, rng=3))
    net = nn.Sequential(twice, nn.Tanh(), twice).to(dtype=np.float64)
    assert _param_grads_vs_numeric(backend, net, x, dy) < 1e-7


def test_concat_new_forward_before_backward_raises(backend):
    cat = nn.Concat(nn.Linear(3, 2, rng=0), nn.ReLU()).to(dtype=np.float64)
    xa, xb, dy = (
        _data(backend, (4, 3)),
        _data(backend, (4, 3), 1),
        _data(backend, (4, 5)),
    )
    cat(xa)
    cat(xb)
    with pytest.raises(nn.StaleForwardError):
        cat.backward(dy)
    with nn.no_grad():
        cat(xa)
    with pytest.raises(RuntimeError, match=r"Concat\.backward: no forward pass"):
        cat.backward(dy)


def test_second_backward_adds_the_same_gradient_again(backend):
    relu = nn.ReLU()
    net = nn.Sequential(nn.Linear(3, 3, rng=0), relu, relu).to(dtype=np.float64)
    x, dy = _data(backend, (2, 3)), _data(backend, (2, 3), 1)
    net(x)
    dx1 = B.to_numpy(net.backward(dy))
    g1 = B.to_numpy(net[0].weight.grad).copy()
    dx2 = B.to_numpy(net.backward(dy))
    np.testing.assert_array_equal(dx1, dx2)
    np.testing.assert_allclose(B.to_numpy(net[0].weight.grad), 2 * g1)


def test_new_forward_before_backward_raises_then_recovers(backend):
    net = nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU()).to(dtype=np.float64)
    xa, xb, dy = (
        _data(backend, (4, 3)),
        _data(backend, (4, 3), 1),
        _data(backend, (4, 2)),
    )
    net(xa)
    net(xb)  # e.g. a validation batch in training mode
    with pytest.raises(nn.StaleForwardError, match=r"ReLU\.backward.*no_grad"):
        net.backward(dy)
    net(xa)  # the error dropped every record: a fresh pass works
    net.zero_grad()
    net.backward(dy)
    expected = B.to_numpy(net[0].weight.grad).copy()
    net.zero_grad()
    net(xa)
    with nn.no_grad():
        net(xb)  # a forward under no_grad leaves the unfinished pass alone
    net.backward(dy)
    np.testing.assert_array_equal(B.to_numpy(net[0].weight.grad), expected)


def test_clear_cache_drops_an_unfinished_pass(backend):
    net = nn.Sequential(nn.Linear(3, 2, rng=0))
    x = backend.asarray(np.ones((2, 3)), np.float32)
    net(x)
    net.clear_cache()
    net(x)
    assert tuple(net.backward(backend.asarray(np.ones((2, 2)), np.float32)).shape) == (
        2,
        3,
    )


def test_no_grad_records_nothing(backend):
    net = nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU(), nn.Dropout(0.5, rng=0))
    x, dy = backend.asarray(np.ones((2, 3)), np.float32), None
    dy = backend.asarray(np.ones((2, 2)), np.float32)
    assert nn.is_grad_enabled()
    with nn.no_grad():
        assert not nn.is_grad_enabled()
        net(x)
    assert nn.is_grad_enabled()
    assert all(not m._tape for _, m in net.named_modules())
    with pytest.raises(RuntimeError, match="no forward pass"):
        net.backward(dy)
    net(x)
    net.backward(dy)  # a finished pass ...
    with nn.no_grad():
        net(x)  # ... is dropped by a no_grad pass: backward cannot reuse it
    with pytest.raises(RuntimeError, match="no forward pass"):
        net.backward(dy)


def test_evaluate_and_predict_record_nothing(backend):
    net = nn.Sequential(nn.Linear(3, 2, rng=0))
    X = np.ones((5, 3), dtype=np.float32)
    y = np.zeros(5, dtype=np.int64)
    T.evaluate(net, (X, y))
    T.predict(net, X)
    assert not net[0]._tape


def _three_params():
    rng = np.random.default_rng(0)
    ps = [nn.Parameter(rng.normal(size=(3,))) for _ in range(3)]
    for p in ps:
        p.grad = rng.normal(size=(3,))
    return ps


def test_error_inside_a_step_applies_nothing(monkeypatch):
    ps = _three_params()
    opt = optim.Adam(ps, lr=0.1)
    opt.step()
    before = [p.data.copy() for p in ps]
    calls = []
    real = optim.Adam._update

    def update(self, theta, g, state):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, theta, g, state)

    monkeypatch.setattr(optim.Adam, "_update", update)
    with pytest.raises(KeyboardInterrupt):
        opt.step()
    for p, b in zip(ps, before, strict=True):
        np.testing.assert_array_equal(p.data, b)
    assert [s["step"] for s in opt.state] == [1, 1, 1] and opt.step_count == 1


def test_ctrl_c_inside_a_step_waits_for_the_whole_step(monkeypatch):
    ps = _three_params()
    opt = optim.Adam(ps, lr=0.1)
    before = [p.data.copy() for p in ps]
    calls = []
    real = optim.Adam._update

    def update(self, theta, g, state):
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C in the middle
        return real(self, theta, g, state)

    monkeypatch.setattr(optim.Adam, "_update", update)
    with pytest.raises(KeyboardInterrupt):
        opt.step()
    assert [s["step"] for s in opt.state] == [1, 1, 1] and opt.step_count == 1
    assert all(not np.array_equal(p.data, b) for p, b in zip(ps, before, strict=True))


def test_fit_interrupted_leaves_whole_steps(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=40)
    net = nn.Sequential(nn.Linear(4, 5, rng=0), nn.ReLU(), nn.Linear(5, 3, rng=1))
    opt = optim.Adam(net.parameters(), lr=0.01)
    calls = []
    real = optim.Adam._update

    def update(self, theta, g, state):
        calls.append(1)
        if len(calls) == 4 * 3 + 2:  # batch 4, third parameter of four
            signal.raise_signal(signal.SIGINT)
        return real(self, theta, g, state)

    monkeypatch.setattr(optim.Adam, "_update", update)
    loader = [(X[i : i + 8], y[i : i + 8]) for i in range(0, 40, 8)]
    with pytest.raises(KeyboardInterrupt):
        T.fit(net, loader, nn.CrossEntropyLoss(), opt, epochs=1, progress=False)
    assert [s["step"] for s in opt.state] == [4, 4, 4, 4] and opt.step_count == 4


def test_fit_on_zero_batches_raises():
    net = nn.Sequential(nn.Linear(4, 3, rng=0))
    opt = optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"fit: train_data gave no batches"):
        T.fit(net, [], nn.CrossEntropyLoss(), opt, epochs=1, progress=False)


def test_fit_drops_a_pass_recorded_before_it():
    net = nn.Sequential(nn.Linear(4, 3, rng=0))
    X = np.ones((8, 4), dtype=np.float32)
    net(X)  # looked at, never gone back through
    opt = optim.SGD(net.parameters(), lr=0.1)
    T.fit(
        net, (X, np.zeros(8, np.int64)), nn.CrossEntropyLoss(), opt, 1, progress=False
    )
