"""cnnbook.models: shapes, registry, errors, and whole-model parity with PyTorch."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import cnnbook.backend as B
from cnnbook import models, nn


def _rel(a, b):
    a, b = np.asarray(B.to_numpy(a)), np.asarray(b)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


@pytest.mark.parametrize(
    "name, kw, shape",
    [
        ("lenet5", {}, (2, 1, 28, 28)),
        ("vgg", {"widths": (4, 8), "hidden": 16}, (2, 1, 28, 28)),
        (
            "vgg",
            {
                "widths": (4,),
                "in_channels": 3,
                "input_size": 8,
                "batch_norm": True,
                "dropout": 0.5,
            },
            (2, 3, 8, 8),
        ),
        ("resnet", {"blocks_per_stage": (1, 1), "widths": (4, 8)}, (2, 1, 12, 12)),
        ("plainnet", {"blocks_per_stage": (1, 1), "widths": (4, 8)}, (2, 1, 12, 12)),
    ],
)
def test_models_forward_backward_shapes(backend, name, kw, shape):
    net = models.get_model(name, seed=0, **kw)
    x = backend.asarray(np.random.default_rng(0).random(shape), np.float32)
    y = net(x)
    assert tuple(y.shape) == (2, 10)
    dx = net.backward(backend.asarray(np.ones((2, 10)), np.float32))
    assert tuple(dx.shape) == shape
    assert all(p.grad is not None for p in net.parameters())
    assert net.config == {"name": name, "kwargs": {"seed": 0, **kw}}


def test_seed_fixes_weights():
    a, b = models.lenet5(seed=3), models.lenet5(seed=3)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        np.testing.assert_array_equal(v, w, err_msg=k)
    assert not np.array_equal(a[0].weight.data, models.lenet5(seed=4)[0].weight.data)


def test_unknown_model_lists_known_ones():
    with pytest.raises(ValueError, match="known models: lenet5, plainnet, resnet, vgg"):
        models.get_model("alexnet")


def test_wrong_input_shape_names_the_layer(backend):
    net = models.lenet5(seed=0)
    with pytest.raises(ValueError, match=r"layer '0' \(Conv2d\).*\(N, 1, H, W\)"):
        net(backend.asarray(np.zeros((2, 3, 28, 28)), np.float32))
    with pytest.raises(
        ValueError, match=r"layer '7' \(Linear\).*\(N, 400\).*\(2, 576\)"
    ):
        net(backend.asarray(np.zeros((2, 1, 32, 32)), np.float32))
    res = models.resnet(blocks_per_stage=(1,), widths=(4,), seed=0)
    with pytest.raises(ValueError, match=r"layer 'stem\.0' \(Conv2d\)"):
        res(backend.asarray(np.zeros((2, 2, 8, 8)), np.float32))


def test_resnet_has_projection_shortcuts_and_plain_twin_none():
    res = models.resnet(seed=0)
    keys = list(res.state_dict())
    assert "layer2.0.0.shortcut.0.weight" in keys  # 1×1 projection, stride 2
    assert res["layer2"][0][0].shortcut[0].kernel_size == (1, 1)
    assert "layer1.0.0.shortcut.0.weight" not in keys  # identity
    plain = models.plainnet(seed=0)
    assert not any("shortcut" in k for k in plain.state_dict())
    with pytest.raises(ValueError, match="same length"):
        models.resnet(blocks_per_stage=(1, 1), widths=(4,))


# ----------------------------------------------------------------------------
# parity with PyTorch (float64)
# ----------------------------------------------------------------------------
def _torch_lenet(torch):
    tnn = torch.nn
    return tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Flatten(),
        tnn.Linear(400, 120),
        tnn.ReLU(),
        tnn.Linear(120, 84),
        tnn.ReLU(),
        tnn.Linear(84, 10),
    )


def _torch_resnet(torch, widths=(4, 8), blocks=(1, 2)):
    tnn = torch.nn

    class Residual(tnn.Module):
        def __init__(self, body, shortcut):
            super().__init__()
            self.body = body
            self.shortcut = shortcut if shortcut is not None else tnn.Identity()

        def forward(self, x):
            return self.body(x) + self.shortcut(x)

    def conv_bn(cin, cout, stride):
        return [tnn.Conv2d(cin, cout, 3, stride, 1, bias=False), tnn.BatchNorm2d(cout)]

    parts = OrderedDict(stem=tnn.Sequential(*conv_bn(1, widths[0], 1), tnn.ReLU()))
    c = widths[0]
    for i, (n, w) in enumerate(zip(blocks, widths, strict=True)):
        stage = []
        for j in range(n):
            s = 2 if i > 0 and j == 0 else 1
            body = tnn.Sequential(*conv_bn(c, w, s), tnn.ReLU(), *conv_bn(w, w, 1))
            sc = None
            if s != 1 or c != w:
                sc = tnn.Sequential(
                    tnn.Conv2d(c, w, 1, s, bias=False), tnn.BatchNorm2d(w)
                )
            stage.append(tnn.Sequential(Residual(body, sc), tnn.ReLU()))
            c = w
        parts[f"layer{i + 1}"] = tnn.Sequential(*stage)
    parts["pool"] = tnn.Sequential(tnn.AdaptiveAvgPool2d(1), tnn.Flatten())
    parts["fc"] = tnn.Linear(c, 10)
    return tnn.Sequential(parts)


def _parity(backend, torch, tnet, net, x, y, train_mode):
    torch.manual_seed(0)
    tnet = tnet.double()
    with torch.no_grad():  # non-trivial BN affine parameters and statistics
        for m in tnet.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    net.to(dtype=np.float64)
    net.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    tnet.train(train_mode)
    net.train(train_mode)
    xt = torch.tensor(x, requires_grad=True)
    logits_t = tnet(xt)
    loss_t = torch.nn.functional.cross_entropy(logits_t, torch.tensor(y))
    loss_t.backward()
    crit = nn.CrossEntropyLoss()
    logits = net(backend.asarray(x, np.float64))
    loss = crit(logits, backend.asarray(y))
    dx = net.backward(crit.backward())
    errors = {
        "logits": _rel(logits, logits_t.detach().numpy()),
        "loss": abs(float(loss) - loss_t.item()) / loss_t.item(),
        "dx": _rel(dx, xt.grad.numpy()),
    }
    tparams = dict(tnet.named_parameters())
    for name, p in net.named_parameters():
        errors[name] = _rel(p.grad, tparams[name].grad.numpy())
    tstate = tnet.state_dict()
    for name, a in net.state_dict().items():
        if "running" in name or "num_batches" in name:
            errors[name] = _rel(a, tstate[name].numpy())
    return errors


def test_lenet5_parity_with_pytorch(backend):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    rng = np.random.default_rng(0)
    x, y = rng.random((6, 1, 28, 28)), rng.integers(0, 10, 6)
    errors = _parity(
        backend, torch, _torch_lenet(torch), models.lenet5(seed=0), x, y, True
    )
    assert len(errors) == 3 + 10
    assert max(errors.values()) < 1e-10, errors


@pytest.mark.parametrize("train_mode", [True, False])
def test_resnet_parity_with_pytorch(backend, train_mode):
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 1, 10, 10)), rng.integers(0, 10, 5)
    net = models.resnet(blocks_per_stage=(1, 2), widths=(4, 8), seed=0)
    errors = _parity(backend, torch, _torch_resnet(torch), net, x, y, train_mode)
    assert any("running_var" in k for k in errors)
    assert any("shortcut.0.weight" in k for k in errors)
    assert max(errors.values()) < 1e-10, errors


def test_whole_model_finite_differences():
    """Every parameter gradient of a small model (conv, BN, pool, residual,
    dense) against central differences of the loss, in float64."""
    rng = np.random.default_rng(0)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, bias=False, rng=0),
        nn.BatchNorm2d(3),
        nn.Tanh(),
        nn.Residual(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, rng=1), nn.Sigmoid())),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(12, 4, rng=2),
    ).to(dtype=np.float64)
    x, y = rng.normal(size=(3, 2, 4, 4)), np.array([0, 3, 1])
    crit = nn.CrossEntropyLoss()
    snapshot = net.state_dict()

    def loss_at():
        net.load_state_dict(snapshot)  # same running stats each call
        return float(crit(net(x), y))

    loss_at()
    net.zero_grad()
    net.backward(crit.backward())
    grads = {k: p.grad.copy() for k, p in net.named_parameters()}
    eps = 1e-6
    for key, g in grads.items():
        num = np.zeros_like(g)
        base = snapshot[key].copy()
        for i in np.ndindex(g.shape):
            for sign in (1, -1):
                snapshot[key] = base.copy()
                snapshot[key][i] += sign * eps
                num[i] += sign * loss_at() / (2 * eps)
        snapshot[key] = base
        err = np.linalg.norm(num - g) / max(
            np.linalg.norm(num) + np.linalg.norm(g), 1e-300
        )
        assert err < 1e-7, (key, err)
