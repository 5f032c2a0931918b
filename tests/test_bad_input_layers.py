"""Bad input to layers, optimizers, data and the CLI: a clear error naming the
operation and the argument, never a silent wrong answer or a traceback.

Each case of ``SILENT`` was accepted before (a wrong answer or a wrong
setting); each of ``UNCLEAR`` raised an error that did not say what was wrong.
NumPy integers are integers and an empty batch gives an empty output, as in
PyTorch.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import cnnbook.backend as B
from cnnbook import cli, nn, optim
from cnnbook import data as D
from cnnbook import train as T
from cnnbook.files import atomic_write, check_writable

BAD = (ValueError, TypeError)
P = [nn.Parameter(np.zeros(2))]


def _sched(cls, **kw):
    return lambda: cls(optim.SGD([nn.Parameter(np.zeros(2))], lr=0.1), **kw)


SILENT = {
    "ReLU(5, foo=1)": (lambda: nn.ReLU(5, foo=1), "ReLU: takes no arguments"),
    "GlobalAvgPool2d(7)": (lambda: nn.GlobalAvgPool2d(7), "GlobalAvgPool2d"),
    "SGD momentum -1": (lambda: optim.SGD(P, 0.1, momentum=-1), "SGD: momentum"),
    "SGD lr inf": (lambda: optim.SGD(P, math.inf), "SGD: lr"),
    "SGD lr nan": (lambda: optim.SGD(P, math.nan), "SGD: lr"),
    "SGD weight_decay -1": (
        lambda: optim.SGD(P, 0.1, weight_decay=-1),
        "SGD: weight_decay",
    ),
    "Adam eps -1": (lambda: optim.Adam(P, eps=-1), "Adam: eps"),
    "Adam betas 1": (lambda: optim.Adam(P, betas=(1.0, 0.9)), r"Adam: betas\[0\]"),
    "AdamW lr inf": (lambda: optim.AdamW(P, lr=math.inf), "AdamW: lr"),
    "OneCycle max_lr -1": (
        _sched(optim.OneCycleLR, max_lr=-1, total_steps=10),
        "OneCycleLR: max_lr",
    ),
    "OneCycle max_lr inf": (
        _sched(optim.OneCycleLR, max_lr=math.inf, total_steps=10),
        "OneCycleLR: max_lr",
    ),
    "BatchNorm eps -1": (lambda: nn.BatchNorm2d(3, eps=-1), "BatchNorm2d: eps"),
    "BatchNorm eps 0": (lambda: nn.BatchNorm2d(3, eps=0), "BatchNorm2d: eps"),
    "BatchNorm momentum 2": (
        lambda: nn.BatchNorm2d(3, momentum=2),
        "BatchNorm2d: momentum",
    ),
    "Dropout p 1.5": (lambda: nn.Dropout(1.5), "Dropout: p"),
    "LeakyReLU slope str": (lambda: nn.LeakyReLU("a"), "LeakyReLU: negative_slope"),
    "MaxPool2d kernel 0": (lambda: nn.MaxPool2d(0), "MaxPool2d: kernel_size"),
    "RandomShift 1.5": (lambda: D.RandomShift(1.5), "RandomShift: max_shift"),
    "DataLoader complex X": (
        lambda: D.DataLoader(np.ones((4, 2), complex), np.zeros(4, np.int64)),
        "DataLoader: X",
    ),
    "state dict complex": (
        lambda: nn.Linear(2, 2).load_state_dict(
            {"weight": np.ones((2, 2), complex), "bias": np.ones(2)}
        ),
        r"Linear\.load_state_dict: weight is complex128",
    ),
    "state dict int64 weights": (
        lambda: nn.Linear(2, 2).load_state_dict(
            {"weight": np.ones((2, 2), np.int64), "bias": np.ones(2)}
        ),
        r"Linear\.load_state_dict: weight is int64",
    ),
}


@pytest.mark.parametrize("case", sorted(SILENT))
def test_formerly_accepted_settings_are_refused(case):
    call, message = SILENT[case]
    with pytest.raises(BAD, match=rf"^{message}"):
        call()


def test_wrongly_shaped_grad_is_refused_before_any_update():
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones((2, 2)))
    a.grad, b.grad = np.ones(3), np.ones(2)  # b's would broadcast
    opt = optim.SGD([a, b], lr=0.1)
    with pytest.raises(ValueError, match=r"SGD\.step: parameter 1 has shape \(2, 2\)"):
        opt.step()
    np.testing.assert_array_equal(a.data, 1.0)


def test_random_shift_larger_than_the_image():
    with pytest.raises(ValueError, match=r"RandomShift: max_shift 100 .*28×28"):
        D.RandomShift(100)(np.ones((2, 1, 28, 28), np.float32), np.random.default_rng())


def test_flatten_start_and_end_dim(backend):
    x = backend.asarray(np.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5))
    f = nn.Flatten(start_dim=2)
    y = f(x)
    assert tuple(y.shape) == (2, 3, 20)
    assert tuple(f.backward(y).shape) == (2, 3, 4, 5)
    assert tuple(nn.Flatten(0, 1)(x).shape) == (6, 4, 5)
    assert tuple(nn.Flatten(1, -2)(x).shape) == (2, 12, 5)
    with pytest.raises(ValueError, match=r"Flatten: start_dim=4.*\(2, 3, 4, 5\)"):
        nn.Flatten(start_dim=4)(x)
    with pytest.raises(TypeError, match="Flatten: start_dim"):
        nn.Flatten(1.5)


INTS = [np.int64(3), np.int32(3), np.uint8(3)]


@pytest.mark.parametrize("n", INTS, ids=lambda v: type(v).__name__)
def test_numpy_integers_are_integers(n):
    assert nn.Conv2d(n, n, n).kernel_size == (3, 3)
    assert nn.Linear(n, n).in_features == 3
    assert nn.BatchNorm2d(n).num_features == 3
    assert isinstance(nn.Conv2d(n, 2, 1).in_channels, int)
    D.DataLoader(np.ones((4, 1)), np.zeros(4), batch_size=n)
    D.RandomShift(n)


def test_empty_batch_gives_empty_output(backend):
    x = backend.asarray(np.zeros((0, 3, 8, 8)), np.float32)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 2),
    )
    y = net(x)
    assert tuple(y.shape) == (0, 2)
    dx = net.backward(backend.asarray(np.zeros((0, 2)), np.float32))
    assert tuple(dx.shape) == (0, 3, 8, 8)
    assert float(B.to_numpy(net[1].running_mean).sum()) == 0.0  # untouched


NOT_ARRAYS = {"None": None, "list": [[1.0, 2.0]], "str": "abc", "float": 1.5}


@pytest.mark.parametrize("what", sorted(NOT_ARRAYS))
@pytest.mark.parametrize(
    "layer",
    [
        lambda: nn.Conv2d(3, 2, 3),
        lambda: nn.Linear(2, 2),
        lambda: nn.ReLU(),
        lambda: nn.MaxPool2d(2),
        lambda: nn.Flatten(),
        lambda: nn.BatchNorm1d(2),
        lambda: nn.Dropout(0.5),
    ],
    ids=["Conv2d", "Linear", "ReLU", "MaxPool2d", "Flatten", "BatchNorm1d", "Dropout"],
)
def test_non_arrays_are_named(layer, what):
    m = layer()
    with pytest.raises(
        TypeError, match=rf"^{type(m).__name__}: input must be an array"
    ):
        m(NOT_ARRAYS[what])


def test_complex_input_is_refused():
    x = np.ones((1, 1, 4, 4), complex)
    with pytest.raises(TypeError, match="conv2d_forward: x must be a floating-point"):
        nn.Conv2d(1, 1, 1)(x)
    with pytest.raises(TypeError, match="relu_forward: x must be a floating-point"):
        nn.ReLU()(x)


def test_cli_diverging_run_exits_1(capsys):
    argv = ["train", "--model", "lenet5", "--epochs", "1", "--lr", "1e30"]
    assert cli.main([*argv, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "cnnbook train: error: fit: the loss became" in err
    assert "Traceback" not in err


def test_cli_batch_size_too_large_names_the_options(capsys):
    argv = ["train", "--model", "lenet5", "--epochs", "1", "--batch-size", "5000"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "--batch-size 5000" in err and "--epochs 1" in err
    assert "OneCycleLR" not in err


def test_cli_checks_out_before_training(tmp_path, capsys, monkeypatch):
    import cnnbook.recipes as R

    monkeypatch.setattr(R, "train_recipe", lambda *a, **k: pytest.fail("trained"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["train", "--model", "lenet5", "--epochs", "1"]
    assert cli.main([*argv, "--out", str(blocker / "x.npz")]) == 1
    assert "--out: cannot write" in capsys.readouterr().err
    assert cli.main([*argv, "--out", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_check_writable_accepts_new_folders(tmp_path):
    assert check_writable("save", tmp_path / "a" / "b.npz") == tmp_path / "a" / "b.npz"


def test_cli_bad_backend_environment_exits_1():
    env = dict(os.environ, CNNBOOK_BACKEND="bogus")
    run = subprocess.run(
        [sys.executable, "-m", "cnnbook", "evaluate", "missing.npz"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    assert "CNNBOOK_BACKEND='bogus' is not a backend" in run.stderr
    assert "Traceback" not in run.stderr


def test_stale_temporaries_are_removed(tmp_path):
    target = tmp_path / "model.npz"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = tmp_path / f".model.npz.{int(dead.stdout)}.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    live = tmp_path / f".model.npz.{os.getpid()}.zzz.tmp"  # a save in progress
    live.write_bytes(b"")
    other = tmp_path / ".other.npz.1.abc.tmp"
    other.write_bytes(b"")
    with atomic_write(target) as f:
        f.write(b"new")
    assert not stale.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, other.name, "model.npz"]
    )


def test_fit_refuses_a_bad_model_and_epochs():
    opt = optim.SGD(P, 0.1)
    with pytest.raises(TypeError, match="fit: model must be a Module"):
        T.fit(object(), [], None, opt, 1, progress=False)
    with pytest.raises(TypeError, match="fit: epochs"):
        T.fit(nn.Linear(2, 2), [], None, opt, 1.5, progress=False)
