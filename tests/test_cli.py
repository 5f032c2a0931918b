"""The command line: python -m cnnbook train / evaluate."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cnnbook import checkpoint, cli


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for opt in (
        "--model",
        "--epochs",
        "--batch-size",
        "--lr",
        "--weight-decay",
        "--optimizer",
        "--schedule",
        "--augment-shift",
        "--data",
        "--seed",
        "--backend",
        "--out",
        "--no-progress",
    ):
        assert opt in out
    assert "lenet5: data=mnist5k, epochs=20" in " ".join(out.split())


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "required"),
        (["train"], "--model"),
        (["train", "--model", "alexnet"], "invalid choice: 'alexnet'"),
        (["train", "--model", "lenet5", "--epochs", "0"], "positive integer"),
        (["train", "--model", "lenet5", "--lr", "fast"], "expected a number"),
        (["train", "--model", "lenet5", "--backend", "tpu"], "invalid choice"),
        (["train", "--model", "lenet5", "--bogus"], "unrecognized arguments"),
        (["evaluate"], "checkpoint"),
    ],
)
def test_bad_options_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "net.npz"
    code = cli.main(
        [
            "train",
            "--model",
            "resnet",
            "--data",
            "digits",
            "--epochs",
            "1",
            "--no-progress",
            "--out",
            str(out),
            "--seed",
            "3",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "test accuracy:" in printed and "%" in printed
    info = checkpoint.read_meta(out)
    assert info["config"]["name"] == "resnet" and info["meta"]["seed"] == 3
    assert info["meta"]["recipe"]["epochs"] == 1
    acc = printed.split("test accuracy: ")[1].split("%")[0]
    assert cli.main(["evaluate", str(out)]) == 0
    assert f"test accuracy: {acc}%" in capsys.readouterr().out


def test_evaluate_missing_or_corrupt_checkpoint_exits_1(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "none.npz")]) == 1
    assert "no checkpoint" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    assert cli.main(["evaluate", str(bad)]) == 1
    assert "truncated or corrupt" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    run = subprocess.run(
        [sys.executable, "-m", "cnnbook", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and "train" in run.stdout and "evaluate" in run.stdout
    run = subprocess.run(
        [sys.executable, "-m", "cnnbook", "train", "--model", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "invalid choice" in run.stderr


@pytest.mark.parametrize(
    "config, message",
    [
        ({"kwargs": {"seed": 0}}, "no 'name'"),
        ({"name": "lenet5"}, "no 'kwargs'"),
        ("lenet5", "not a dict"),
        ({"name": "lenet5", "kwargs": [0]}, "'kwargs'.*not a dict"),
        ({"name": "lenet5", "kwargs": {"bogus": 1}}, "cannot build 'lenet5'.*bogus"),
    ],
)
def test_evaluate_checkpoint_with_broken_config_exits_1(
    tmp_path, capsys, config, message
):
    from cnnbook.models import lenet5

    net = lenet5(seed=0)
    net.config = config
    path = tmp_path / "a.npz"
    checkpoint.save(path, net)
    assert cli.main(["evaluate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cnnbook evaluate: error: ") and str(path) in err
    assert "model config" in err
    assert re.search(message, err), err
