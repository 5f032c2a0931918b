"""cnnbook.nn: Module bookkeeping, layers against the functional core, hooks."""

from __future__ import annotations

import re

import numpy as np
import pytest

import cnnbook.backend as B
from cnnbook import functional as F
from cnnbook import nn
from cnnbook.nn import init


def _placed(backend, a):
    """a lives in backend's library, on its device."""
    ref = backend.asarray(np.zeros(1))
    return type(a) is type(ref) and B.device_of(a) == B.device_of(ref)


def _close(a, b, tol=1e-6):
    a, b = B.to_numpy(a), B.to_numpy(b)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_parameters_registered_in_order_with_pytorch_keys(backend):
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, rng=0), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3, rng=1)
    )
    assert [k for k, _ in net.named_parameters()] == [
        "0.weight",
        "0.bias",
        "3.weight",
        "3.bias",
    ]
    assert net.num_parameters() == 2 * 9 + 2 + 8 * 3 + 3
    bn = nn.BatchNorm2d(4)
    assert list(bn.state_dict()) == [
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    assert B.namespace("t", a=net[0].weight.data) is not None
    assert _placed(backend, net[0].weight.data)


def test_default_dtype_float32_and_to_float64(backend):
    net = nn.Sequential(nn.Linear(3, 2, rng=0), nn.BatchNorm1d(2))
    assert B.numpy_dtype(net[0].weight.dtype) == np.float32
    net.to(dtype=np.float64)
    for _, p in net.named_parameters():
        assert B.numpy_dtype(p.dtype) == np.float64
    assert B.numpy_dtype(net[1].running_mean.dtype) == np.float64
    assert B.numpy_dtype(net[1].num_batches_tracked.dtype) == np.int64


def test_to_moves_between_backends(backend):
    net = nn.Linear(3, 2, rng=0)
    before = net.state_dict()
    net.to("numpy")
    assert isinstance(net.weight.data, np.ndarray)
    net.to(backend.name)
    assert _placed(backend, net.weight.data)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        net.to("tpu")


def test_state_dict_round_trip_and_checks():
    a, b = nn.Linear(3, 2, rng=0), nn.Linear(3, 2, rng=1)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    sd = a.state_dict()
    sd["weight"] = np.zeros((5, 5))
    before = b.state_dict()
    with pytest.raises(ValueError, match="weight has shape"):
        b.load_state_dict(sd)
    with pytest.raises(KeyError, match="missing keys \\['bias'\\]"):
        b.load_state_dict({"weight": a.state_dict()["weight"]})
    for k, v in b.state_dict().items():  # nothing half-loaded
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_from_arrays_on_any_backend(backend):
    source, target = nn.Linear(3, 2, rng=0), nn.Linear(3, 2, rng=1)
    on_backend = {k: backend.asarray(v) for k, v in source.state_dict().items()}
    target.to("numpy").load_state_dict(on_backend)
    for k, v in target.state_dict().items():
        np.testing.assert_array_equal(v, source.state_dict()[k])


def test_zero_grad_train_eval_and_accumulation(backend):
    layer = nn.Linear(3, 2, rng=0)
    x = backend.asarray(np.ones((4, 3)), np.float32)
    dy = backend.asarray(np.ones((4, 2)), np.float32)
    layer(x)
    layer.backward(dy)
    g1 = B.to_numpy(layer.weight.grad).copy()
    layer.backward(dy)
    np.testing.assert_allclose(B.to_numpy(layer.weight.grad), 2 * g1)
    layer.zero_grad()
    assert layer.weight.grad is None
    net = nn.Sequential(layer, nn.Dropout(0.5))
    net.eval()
    assert not net[1].training and not net.training
    net.train()
    assert net[1].training


@pytest.mark.parametrize(
    "make, forward, backward, shape",
    [
        (lambda: nn.ReLU(), F.relu_forward, F.relu_backward, (2, 3, 4, 4)),
        (lambda: nn.Sigmoid(), F.sigmoid_forward, F.sigmoid_backward, (2, 5)),
        (lambda: nn.Tanh(), F.tanh_forward, F.tanh_backward, (2, 5)),
        (
            lambda: nn.LeakyReLU(0.2),
            lambda x: F.leaky_relu_forward(x, 0.2),
            F.leaky_relu_backward,
            (2, 5),
        ),
        (
            lambda: nn.MaxPool2d(2),
            lambda x: F.max_pool2d_forward(x, 2),
            F.max_pool2d_backward,
            (2, 3, 6, 6),
        ),
        (
            lambda: nn.AvgPool2d(3, 2, 1),
            lambda x: F.avg_pool2d_forward(x, 3, 2, 1),
            F.avg_pool2d_backward,
            (2, 3, 7, 7),
        ),
        (
            lambda: nn.GlobalAvgPool2d(),
            F.global_avg_pool2d_forward,
            F.global_avg_pool2d_backward,
            (2, 3, 5, 4),
        ),
    ],
)
def test_parameter_free_layers_match_functional(
    backend, make, forward, backward, shape
):
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.normal(size=shape), np.float64)
    layer = make()
    y = layer(x)
    y_ref, cache = forward(x)
    _close(y, y_ref, 0)
    dy = backend.asarray(rng.normal(size=tuple(y.shape)), np.float64)
    _close(layer.backward(dy), backward(dy, cache), 0)


def test_flatten_and_identity(backend):
    x = backend.asarray(np.arange(24.0).reshape(2, 3, 2, 2))
    f = nn.Flatten()
    y = f(x)
    assert tuple(y.shape) == (2, 12)
    assert tuple(f.backward(y).shape) == (2, 3, 2, 2)
    assert nn.Identity()(x) is x


def test_conv_and_linear_match_functional(backend):
    rng = np.random.default_rng(1)
    conv = nn.Conv2d(3, 4, (3, 2), stride=2, padding=1, rng=0).to(dtype=np.float64)
    x = backend.asarray(rng.normal(size=(2, 3, 7, 6)), np.float64)
    y = conv(x)
    # the layer runs the fast kernels: equal to the reference up to rounding
    y_ref, cache = F.conv2d_forward(x, conv.weight.data, conv.bias.data, 2, 1)
    _close(y, y_ref, 1e-13)
    dy = backend.asarray(rng.normal(size=tuple(y.shape)), np.float64)
    dx = conv.backward(dy)
    dx_ref, dw_ref, db_ref = F.conv2d_backward(dy, cache)
    _close(dx, dx_ref, 1e-13)
    _close(conv.weight.grad, dw_ref, 1e-13)
    _close(conv.bias.grad, db_ref, 1e-13)
    # input_grad=False: a documented choice of the layer, shown in its repr
    first = nn.Conv2d(3, 4, 3, input_grad=False, rng=0).to(dtype=np.float64)
    assert "input_grad=False" in repr(first)
    y = first(x)
    assert first.backward(backend.asarray(np.ones(tuple(y.shape)))) is None
    assert first.weight.grad is not None
    lin = nn.Linear(5, 3, bias=False, rng=0)
    assert lin.bias is None
    assert [k for k, _ in lin.named_parameters()] == ["weight"]
    lin(backend.asarray(rng.normal(size=(4, 5)), np.float32))
    lin.backward(backend.asarray(np.ones((4, 3)), np.float32))
    assert tuple(lin.weight.grad.shape) == (3, 5)


def test_batchnorm_training_and_eval(backend):
    rng = np.random.default_rng(2)
    bn = nn.BatchNorm2d(3).to(dtype=np.float64)
    x = backend.asarray(rng.normal(2.0, 3.0, size=(4, 3, 5, 5)), np.float64)
    with nn.no_grad():  # running statistics update, nothing recorded
        y = B.to_numpy(bn(x))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    mean = B.to_numpy(x).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(B.to_numpy(bn.running_mean), 0.1 * mean)
    assert int(B.to_numpy(bn.num_batches_tracked)) == 1
    bn.eval()
    bn(x)
    assert int(B.to_numpy(bn.num_batches_tracked)) == 1
    dx = bn.backward(backend.asarray(np.ones((4, 3, 5, 5))))
    assert tuple(dx.shape) == (4, 3, 5, 5)
    with pytest.raises(
        ValueError, match=r"BatchNorm2d\(3.*expects input \(N, 3, H, W\)"
    ):
        bn(backend.asarray(np.ones((4, 2, 5, 5))))
    with pytest.raises(ValueError, match=r"expects input \(N, 3\)"):
        nn.BatchNorm1d(3)(backend.asarray(np.ones((4, 3, 2, 2)), np.float32))


def test_dropout_seeded_and_identity_in_eval(backend):
    x = backend.asarray(np.ones((8, 10)), np.float32)
    a, b = nn.Dropout(0.5, rng=3), nn.Dropout(0.5, rng=3)
    ya, yb = B.to_numpy(a(x)), B.to_numpy(b(x))
    np.testing.assert_array_equal(ya, yb)
    assert set(np.unique(ya)) <= {0.0, 2.0}
    np.testing.assert_array_equal(B.to_numpy(a.backward(x)), ya)
    a.eval()
    np.testing.assert_array_equal(B.to_numpy(a(x)), 1.0)
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.5)


def test_dropout_backward_before_forward_is_a_clear_error(backend):
    dy = backend.asarray(np.ones((2, 3)), np.float32)
    for training in (True, False):
        layer = nn.Dropout(0.5, rng=0).train(training)
        with pytest.raises(
            RuntimeError, match=r"Dropout\.backward: no forward pass .* first"
        ):
            layer.backward(dy)
    layer(dy)  # after a forward in eval mode the cache is empty: the identity
    np.testing.assert_array_equal(B.to_numpy(layer.backward(2 * dy)), 2.0)
    layer.train()
    y = B.to_numpy(layer(dy))
    np.testing.assert_array_equal(B.to_numpy(layer.backward(dy)), y)


def test_residual_sums_branches_and_gradients(backend):
    rng = np.random.default_rng(0)
    body = nn.Linear(4, 4, rng=0).to(dtype=np.float64)
    res = nn.Residual(body)
    x = backend.asarray(rng.normal(size=(3, 4)), np.float64)
    y = res(x)
    with nn.no_grad():  # a second pass that backward must not go through
        _close(y, B.to_numpy(body(x)) + B.to_numpy(x), 1e-12)
    dy = backend.asarray(rng.normal(size=(3, 4)), np.float64)
    res.zero_grad()
    dx = res.backward(dy)
    _close(dx, B.to_numpy(dy) @ B.to_numpy(body.weight.data) + B.to_numpy(dy), 1e-12)
    bad = nn.Residual(nn.Linear(4, 3, rng=0))
    with pytest.raises(ValueError, match="projection shortcut"):
        bad(backend.asarray(np.ones((2, 4)), np.float32))


def _inception(c_in=3, dtype=np.float64):
    """A small inception block: 1×1, 1×1–3×3, 1×1–5×5, 3×3 max-pool–1×1."""
    return nn.Concat(
        nn.Conv2d(c_in, 2, 1, rng=0),
        nn.Sequential(
            nn.Conv2d(c_in, 2, 1, rng=1),
            nn.ReLU(),
            nn.Conv2d(2, 3, 3, padding=1, rng=2),
        ),
        nn.Sequential(
            nn.Conv2d(c_in, 1, 1, rng=3),
            nn.ReLU(),
            nn.Conv2d(1, 2, 5, padding=2, rng=4),
        ),
        nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(c_in, 2, 1, rng=5)
        ),
    ).to(dtype=dtype)


def test_concat_joins_branches_and_splits_the_gradient(backend):
    rng = np.random.default_rng(0)
    a, b = nn.Linear(4, 3, rng=0), nn.Linear(4, 2, rng=1)
    cat = nn.Concat(a, b).to(dtype=np.float64)
    x = backend.asarray(rng.normal(size=(5, 4)), np.float64)
    y = cat(x)
    assert _placed(backend, y) and tuple(y.shape) == (5, 5)
    with nn.no_grad():
        _close(y[:, :3], a(x), 1e-12)
        _close(y[:, 3:], b(x), 1e-12)
    dy = rng.normal(size=(5, 5))
    cat.zero_grad()
    dx = cat.backward(backend.asarray(dy, np.float64))
    wa, wb = B.to_numpy(a.weight.data), B.to_numpy(b.weight.data)
    _close(dx, dy[:, :3] @ wa + dy[:, 3:] @ wb, 1e-12)  # the slices, summed
    xh = B.to_numpy(x)
    _close(a.weight.grad, dy[:, :3].T @ xh, 1e-12)
    _close(b.weight.grad, dy[:, 3:].T @ xh, 1e-12)
    # the identity as a branch: a dense-block layer, y = [x, f(x)]
    dense = nn.Concat(nn.Identity(), nn.Linear(4, 2, rng=2)).to(dtype=np.float64)
    y = dense(x)
    _close(y[:, :4], x, 0)
    assert tuple(dense.backward(backend.asarray(np.ones((5, 6)))).shape) == (5, 4)
    assert [k for k, _ in cat.named_parameters()] == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
    ]
    assert repr(nn.Concat({"a": nn.ReLU()}, dim=-1)) == "Concat(\n  (a): ReLU()\n)"


def test_concat_channels_match_finite_differences_and_pytorch(backend):
    from cnnbook.gradcheck import numerical_gradient, rel_error

    rng = np.random.default_rng(1)
    block = _inception()
    x = backend.asarray(rng.normal(size=(2, 3, 6, 6)), np.float64)
    y = block(x)
    assert tuple(y.shape) == (2, 2 + 3 + 2 + 2, 6, 6)
    dy = backend.asarray(rng.normal(size=tuple(y.shape)), np.float64)
    block.zero_grad()
    dx = block.backward(dy)

    def at_x(v):
        with nn.no_grad():
            return float(B.to_numpy(block(v) * dy).sum())

    assert rel_error(dx, numerical_gradient(at_x, x)) < 1e-7
    w = block[1][2].weight

    def at_w(v):
        saved, w.data = w.data, v
        try:
            return at_x(x)
        finally:
            w.data = saved

    assert rel_error(w.grad, numerical_gradient(at_w, w.data)) < 1e-7

    torch = pytest.importorskip("torch")
    tnn = torch.nn
    branches = [
        tnn.Conv2d(3, 2, 1),
        tnn.Sequential(tnn.Conv2d(3, 2, 1), tnn.ReLU(), tnn.Conv2d(2, 3, 3, padding=1)),
        tnn.Sequential(tnn.Conv2d(3, 1, 1), tnn.ReLU(), tnn.Conv2d(1, 2, 5, padding=2)),
        tnn.Sequential(tnn.MaxPool2d(3, stride=1, padding=1), tnn.Conv2d(3, 2, 1)),
    ]
    tblock = tnn.ModuleList(branches).double()
    state = {k: torch.tensor(v) for k, v in block.state_dict().items()}
    tblock.load_state_dict(state)
    xt = torch.tensor(B.to_numpy(x), requires_grad=True)
    yt = torch.cat([br(xt) for br in tblock], dim=1)
    yt.backward(torch.tensor(B.to_numpy(dy)))
    _close(y, yt.detach().numpy(), 1e-12)
    _close(dx, xt.grad.numpy(), 1e-12)
    tgrads = dict(tblock.named_parameters())
    for name, p in block.named_parameters():
        _close(p.grad, tgrads[name].grad.numpy(), 1e-12)


def test_concat_errors_name_the_branches(backend):
    x = backend.asarray(np.ones((2, 3, 6, 6)), np.float32)
    bad = nn.Concat(nn.Conv2d(3, 2, 1, rng=0), nn.Conv2d(3, 2, 3, rng=1))
    with pytest.raises(ValueError, match=r"0: \(2, 2, 6, 6\), 1: \(2, 2, 4, 4\)"):
        bad(x)
    with pytest.raises(ValueError, match=r"layer '1' \(Conv2d\)"):
        nn.Concat(nn.Identity(), nn.Conv2d(4, 2, 1, rng=0))(x)
    with pytest.raises(ValueError, match="out of range"):
        nn.Concat(nn.Identity(), dim=4)(x)
    with pytest.raises(ValueError, match="at least one branch"):
        nn.Concat()
    with pytest.raises(TypeError, match="branch 1 must be a Module"):
        nn.Concat(nn.ReLU(), 3)
    with pytest.raises(TypeError, match="dim must be an int"):
        nn.Concat(nn.ReLU(), dim=1.0)
    frozen = nn.Concat(
        nn.Conv2d(3, 2, 1, rng=0, input_grad=False),
        nn.Conv2d(3, 2, 1, rng=1, input_grad=False),
    )
    frozen(x)
    assert frozen.backward(backend.asarray(np.ones((2, 4, 6, 6)), np.float32)) is None
    mixed = nn.Concat(nn.Conv2d(3, 2, 1, rng=0, input_grad=False), nn.Identity())
    mixed(x)
    with pytest.raises(RuntimeError, match="some branches return no input gradient"):
        mixed.backward(backend.asarray(np.ones((2, 5, 6, 6)), np.float32))


def test_sequential_names_failing_layer():
    net = nn.Sequential(
        {
            "features": nn.Sequential(nn.Conv2d(1, 2, 3, rng=0)),
            "head": nn.Linear(8, 2, rng=0),
        }
    )
    with pytest.raises(
        ValueError,
        match=r"layer 'features\.0' \(Conv2d\).*\(N, 1, H, W\)"
        r".*\(2, 3, 6, 6\)",
    ):
        net(np.zeros((2, 3, 6, 6), np.float32))
    with pytest.raises(TypeError, match="must be a Module"):
        nn.Sequential(nn.ReLU(), "relu")
    assert len(net) == 2 and net["head"] is net[1]
    head = net[1:]
    assert isinstance(head, nn.Sequential) and head["head"] is net["head"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: nn.Conv2d(1, 6, 0), "Conv2d: kernel_height must be a positive int"),
        (lambda: nn.Conv2d(1, 6, (3, 3, 3)), "kernel_size must be an int or a pair"),
        (lambda: nn.Conv2d(0, 6, 3), "in_channels must be a positive int, got 0"),
        (lambda: nn.Linear(0, 3), "Linear: in_features must be a positive int"),
        (lambda: nn.Linear(4, 2.5), "out_features must be a positive int, got 2.5"),
    ],
)
def test_bad_layer_sizes_named(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


@pytest.mark.parametrize(
    "layer, args",
    [
        (nn.Conv2d, (1, 2, 3)),
        (nn.Linear, (3, 2)),
        (nn.MaxPool2d, (2,)),
        (nn.BatchNorm2d, (2,)),
        (nn.ReLU, ()),
        (nn.LeakyReLU, ()),
        (nn.Flatten, ()),
        (nn.GlobalAvgPool2d, ()),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_backward_before_forward_says_so(layer, args):
    with pytest.raises(RuntimeError, match=f"{layer.__name__}.backward: no forward"):
        layer(*args).backward(np.ones((1, 2), np.float32))


def test_repr_and_summary():
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=0),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 10, rng=0),
    )
    text = repr(net)
    assert "(0): Conv2d(1, 4, kernel_size=(3, 3), padding=1)" in text
    assert "(4): Linear(in_features=64, out_features=10)" in text
    table = net.summary((1, 1, 8, 8))
    assert "(1, 4, 4, 4)" in table and "650" in table
    assert table.splitlines()[-1] == "total parameters: 690"
    assert net.training  # summary restores the mode


def test_recorder_collects_activations_and_grad_norms(backend):
    net = nn.Sequential(nn.Linear(3, 4, rng=0), nn.ReLU(), nn.Linear(4, 2, rng=1))
    x = backend.asarray(np.ones((5, 3)), np.float32)
    dy = backend.asarray(np.ones((5, 2)), np.float32)
    with nn.Recorder(net) as rec:
        net(x)
        net.backward(dy)
    assert rec.activations["2"].shape == (5, 2)
    assert rec.grad_norms["2"] == pytest.approx(np.sqrt(10.0))
    assert set(rec.param_grad_norms) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    n = len(rec.activations)
    net(x)  # hooks removed on exit
    assert len(rec.activations) == n and not net[0]._forward_hooks


def test_hook_handles_remove():
    layer = nn.ReLU()
    seen = []
    h = layer.register_forward_hook(lambda m, x, y: seen.append("f"))
    g = layer.register_backward_hook(lambda m, dy, dx: seen.append("b"))
    x = np.ones(3)
    layer.backward(layer(x))
    h.remove()
    g.remove()
    layer.backward(layer(x))
    assert seen == ["f", "b"]


def test_losses(backend):
    crit = nn.CrossEntropyLoss()
    with pytest.raises(RuntimeError, match="call the loss first"):
        crit.backward()
    logits = backend.asarray(np.array([[2.0, 0.0], [0.0, 1.0]]))
    loss = crit(logits, backend.asarray(np.array([0, 1])))
    ref, d = F.softmax_cross_entropy(logits, backend.asarray(np.array([0, 1])))
    assert float(loss) == float(ref)
    _close(crit.backward(), d, 0)
    mse = nn.MSELoss()
    assert float(mse(logits, backend.asarray(np.zeros((2, 2))))) == pytest.approx(1.25)
    assert tuple(mse.backward().shape) == (2, 2)


def test_init_statistics_and_seeding():
    w = init.kaiming_normal((256, 128, 3, 3), rng=0)
    assert w.std() == pytest.approx(np.sqrt(2 / (128 * 9)), rel=0.02)
    w = init.xavier_uniform((300, 200), rng=0)
    assert np.abs(w).max() <= np.sqrt(6 / 500)
    assert w.std() == pytest.approx(np.sqrt(2 / 500), rel=0.02)
    w, b = init.pytorch_default((16, 6, 5, 5), rng=0)
    assert np.abs(w).max() <= 1 / np.sqrt(150) and np.abs(b).max() <= 1 / np.sqrt(150)
    np.testing.assert_array_equal(
        init.kaiming_uniform((4, 3), rng=5), init.kaiming_uniform((4, 3), rng=5)
    )
    init.manual_seed(7)
    a = nn.Linear(3, 3).weight.data
    init.manual_seed(7)
    np.testing.assert_array_equal(a, nn.Linear(3, 3).weight.data)
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="unknown init"):
        nn.Conv2d(1, 1, 3, init="orthogonal")
    p = nn.Conv2d(2, 3, 3, init="he", rng=0)
    assert float(np.abs(p.bias.data).max()) == 0.0
    init.xavier_normal_(p.weight, rng=0)
    assert p.weight.data.dtype == np.float32


def test_init_fill_keeps_backend(backend):
    layer = nn.Linear(4, 3, rng=0)
    init.kaiming_uniform_(layer.weight, rng=1)
    assert _placed(backend, layer.weight.data)
    assert B.numpy_dtype(layer.weight.dtype) == np.float32
