"""cnnbook.train: fit / evaluate / predict, determinism, non-finite losses."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnbook.backend as B
from cnnbook import data as D
from cnnbook import models, nn, optim
from cnnbook import train as T


@pytest.fixture(scope="module")
def small_digits():
    (X, y), (Xt, yt) = D.digits()
    return (X[:400], y[:400]), (Xt[:200], yt[:200])


def _net(seed=0):
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, rng=seed),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 16, 10, rng=seed + 1),
    )


def _fit(data, seed=0, epochs=3, **kw):
    (X, y), test = data
    net = _net(seed)
    opt = optim.Adam(net.parameters(), lr=1e-2)
    loader = D.DataLoader(
        X, y, batch_size=32, shuffle=True, seed=seed, augment=D.RandomShift(1)
    )
    sched = optim.OneCycleLR(opt, 1e-2, total_steps=epochs * len(loader))
    hist = T.fit(
        net,
        loader,
        nn.CrossEntropyLoss(),
        opt,
        epochs,
        val_data=test,
        scheduler=sched,
        progress=False,
        **kw,
    )
    return net, hist


def test_fit_learns_and_records_history(backend, small_digits):
    net, hist = _fit(small_digits)
    assert len(hist) == 3 and hist.epoch == [1, 2, 3]
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert hist.val_acc[-1] > 0.5  # chance is 0.1
    assert hist.lr[0] == pytest.approx(1e-2 / 25)
    assert all(s > 0 for s in hist.seconds)
    metrics = T.evaluate(net, small_digits[1])
    assert metrics["accuracy"] == pytest.approx(hist.val_acc[-1])
    assert "3 epochs" in repr(hist)


def test_fit_is_deterministic(small_digits):
    _, a = _fit(small_digits, seed=1, epochs=2)
    _, b = _fit(small_digits, seed=1, epochs=2)
    for field in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        assert getattr(a, field) == getattr(b, field)
    _, c = _fit(small_digits, seed=2, epochs=2)
    assert a.train_loss != c.train_loss


def test_non_finite_loss_stops_and_keeps_last_good_parameters(backend, small_digits):
    (X, y), _ = small_digits
    X = X.copy()
    X[70] = np.nan  # third batch of 32 (not shuffled)
    net = _net()
    opt = optim.SGD(net.parameters(), lr=0.05)
    loader = D.DataLoader(X, y, batch_size=32)
    with pytest.raises(T.NonFiniteLossError, match="epoch 1, batch 3") as info:
        T.fit(net, loader, nn.CrossEntropyLoss(), opt, 2, progress=False)
    assert (info.value.epoch, info.value.batch) == (1, 3)
    for name, p in net.named_parameters():
        assert np.isfinite(B.to_numpy(p.data)).all(), name
    assert math.isfinite(T.evaluate(net, (X[:64], y[:64]))["loss"])


def test_progress_bar_can_be_turned_off(small_digits, capsys):
    _fit(small_digits, epochs=1)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    (X, y), _ = small_digits
    net = _net()
    T.fit(
        net,
        (X[:64], y[:64]),
        nn.CrossEntropyLoss(),
        optim.SGD(net.parameters(), lr=0.01),
        1,
        progress=True,
    )
    assert "epoch 1/1" in capsys.readouterr().err


def test_callbacks_can_stop_and_bad_epochs(small_digits):
    seen = []

    def stop_after_two(epoch, hist):
        seen.append(epoch)
        return epoch == 2

    _, hist = _fit(small_digits, epochs=3, callbacks=[stop_after_two])
    assert seen == [1, 2] and len(hist) == 2
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        T.fit(
            _net(),
            small_digits[0],
            nn.CrossEntropyLoss(),
            optim.SGD(_net().parameters(), lr=0.1),
            0,
            progress=False,
        )


def test_predict_and_evaluate_restore_mode(backend, small_digits):
    net, _ = _fit(small_digits, epochs=1)
    X, y = small_digits[1]
    net.train()
    labels = T.predict(net, X, batch_size=64)
    proba = T.predict(net, X, proba=True)
    assert labels.shape == (200,) and labels.dtype.kind == "i"
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(proba.argmax(axis=1), labels)
    assert T.evaluate(net, (X, y))["accuracy"] == pytest.approx(np.mean(labels == y))
    assert net.training
    with pytest.raises(ValueError, match="no samples"):
        T.evaluate(net, (X[:0], y[:0]))


def test_history_plot_and_dict_round_trip(small_digits):
    import matplotlib

    matplotlib.use("Agg")
    _, hist = _fit(small_digits, epochs=1)
    fig = hist.plot()
    assert len(fig.axes) == 2
    assert fig.axes[0].get_ylabel() == "loss"
    assert type(hist).from_dict(hist.to_dict()) == hist


def test_recipes_and_smoke_train(backend):
    from cnnbook import recipes as R

    r = R.recipe("lenet5")
    assert r["epochs"] == 20 and r["schedule"] == "onecycle" and r["augment_shift"] == 2
    assert R.recipe("lenet5", epochs=3)["epochs"] == 3
    with pytest.raises(ValueError, match="no recipe for 'alexnet'"):
        R.recipe("alexnet")
    with pytest.raises(ValueError, match="unknown settings"):
        R.recipe("lenet5", momentum=0.9)
    assert set(R.RECIPES) == set(models.MODELS)
    assert {r["optimizer"] for r in R.RECIPES.values()} <= set(optim.OPTIMIZERS)
    model, hist, test = R.train_recipe(
        "resnet", data="digits", epochs=1, progress=False, backend=backend.name
    )
    assert len(hist) == 1 and 0.0 <= test["accuracy"] <= 1.0
    assert model.config["name"] == "resnet"
    # the recipe's model, not fit, chose to skip the data's gradient
    assert model.stem[0].input_grad is False
    with pytest.raises(ValueError, match="needs 28×28"):
        R.train_recipe("lenet5", data="digits", epochs=1, progress=False)


def test_train_recipe_can_watch_a_validation_split_instead_of_the_test_set():
    from cnnbook import recipes as R

    model, hist, test = R.train_recipe(
        "resnet", data="digits", epochs=1, progress=False, val_fraction=0.2
    )
    (X, y), (X_test, y_test) = D.digits()
    _, (X_val, y_val) = D.train_val_split(X, y, 0.2, seed=0)
    # the history's last validation numbers are the final model on the val split
    val = T.evaluate(model, (X_val, y_val))
    assert hist.val_acc[-1] == pytest.approx(val["accuracy"])
    assert hist.val_loss[-1] == pytest.approx(val["loss"], rel=1e-5)
    assert test == T.evaluate(model, D.DataLoader(X_test, y_test, 500))
    assert hist.val_acc[-1] != pytest.approx(test["accuracy"])  # not the test set
    with pytest.raises(ValueError, match="train_val_split: val_fraction"):
        R.train_recipe("resnet", data="digits", epochs=1, val_fraction=1.5)


def test_fit_leaves_the_first_layers_input_grad_alone(small_digits):
    """Skipping dx of the first layer is the model's documented choice
    (``Conv2d(input_grad=...)``); fit neither sets nor resets it."""
    model, _ = _fit(small_digits, epochs=1)
    first = next(m for _, m in model.named_modules() if isinstance(m, nn.Conv2d))
    assert first.input_grad is True


def test_make_optimizer_and_scheduler():
    params = _net().parameters()
    assert isinstance(optim.make_optimizer("adamw", params, 1e-3), optim.AdamW)
    sgd = optim.make_optimizer("sgd", params, 0.1, 1e-4)
    assert not sgd.nesterov and sgd.momentum == 0 and sgd.weight_decay == 1e-4
    nesterov = optim.make_optimizer("nesterov", params, 0.1)
    assert nesterov.nesterov and nesterov.momentum == 0.9
    assert optim.make_optimizer("momentum", params, 0.1).momentum == 0.9
    rms = optim.make_optimizer("rmsprop", params, 0.01, 1e-4)
    assert isinstance(rms, optim.RMSprop) and rms.alpha == 0.99
    assert rms.weight_decay == 1e-4
    assert isinstance(optim.make_optimizer("adagrad", params, 0.1), optim.Adagrad)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.make_optimizer("lion", params, 0.1)
    assert isinstance(
        optim.make_scheduler("cosine", sgd, 5, 10), optim.CosineAnnealingLR
    )
    assert isinstance(optim.make_scheduler("step", sgd, 6, 10), optim.StepLR)
    assert optim.make_scheduler("none", sgd, 5, 10) is None
    with pytest.raises(ValueError, match="unknown schedule"):
        optim.make_scheduler("warmup", sgd, 5, 10)


def test_evaluate_and_predict_follow_the_model_backend():
    """Plain (X, y) arrays go where the model's parameters are, not to the
    default backend: a model moved to the strict device evaluates while the
    default stays NumPy."""
    import numpy as np

    from cnnbook import backend as B
    from cnnbook import nn
    from cnnbook.train import evaluate, predict

    pytest.importorskip("array_api_strict")
    assert B.current() == "numpy"
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, rng=0)).to("strict")
    X = np.random.default_rng(0).normal(size=(10, 1, 2, 2)).astype(np.float32)
    y = np.arange(10) % 3
    result = evaluate(model, (X, y))
    assert 0.0 <= result["accuracy"] <= 1.0
    assert predict(model, X).shape == (10,)
