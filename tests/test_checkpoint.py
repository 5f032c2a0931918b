"""cnnbook.checkpoint: atomic, verified, cross-backend checkpoints."""

from __future__ import annotations

import os

import numpy as np
import pytest

import cnnbook.backend as B
from cnnbook import checkpoint, models, nn, optim
from cnnbook.history import History


def _trained(seed=0):
    net = models.resnet(blocks_per_stage=(1, 1), widths=(4, 8), seed=seed)
    opt = optim.Adam(net.parameters(), lr=1e-2)
    crit = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    x = B.asarray(rng.random((4, 1, 8, 8)), dtype=np.float32)
    y = B.asarray(np.array([0, 1, 2, 3]))
    for _ in range(2):
        crit(net(x), y)
        net.zero_grad()
        net.backward(crit.backward())
        opt.step()
    return net, opt


def _same(a: dict, b: dict):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_round_trip_is_bit_identical(backend, tmp_path):
    net, opt = _trained()
    hist = History(
        epoch=[1, 2],
        train_loss=[1.0, 0.5],
        train_acc=[0.1, 0.2],
        val_loss=[1.1, 0.6],
        val_acc=[0.1, float("nan")],
        lr=[0.1, 0.1],
        seconds=[1.0, 1.0],
    )
    path = tmp_path / "ck.npz"
    checkpoint.save(path, net, opt, hist)
    net2, _ = _trained(seed=5)
    opt2 = optim.Adam(net2.parameters(), lr=0.5)
    got = checkpoint.load(path, net2, opt2)
    _same(net.state_dict(), net2.state_dict())
    _same(opt.state_dict(), opt2.state_dict())
    assert got.train_loss == [1.0, 0.5] and np.isnan(got.val_acc[1])
    assert checkpoint.load(path, net2) is not None
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]  # no temp files


def test_saved_on_one_backend_loads_on_another(backend, tmp_path):
    B.use("numpy")
    net = models.lenet5(seed=0)
    checkpoint.save(tmp_path / "a.npz", net)
    B.use(backend.name)
    other = models.lenet5(seed=1)
    checkpoint.load(tmp_path / "a.npz", other)
    w = other[0].weight.data
    ref = backend.asarray(np.zeros(1))
    assert type(w) is type(ref) and B.device_of(w) == B.device_of(ref)
    _same(net.state_dict(), other.state_dict())
    checkpoint.save(tmp_path / "b.npz", other)  # and back
    B.use("numpy")
    third = models.lenet5(seed=2)
    checkpoint.load(tmp_path / "b.npz", third)
    _same(net.state_dict(), third.state_dict())


def test_different_architecture_names_the_parameter(tmp_path):
    checkpoint.save(tmp_path / "a.npz", models.lenet5(seed=0))
    wide = models.lenet5(num_classes=5, seed=0)
    before = wide.state_dict()
    with pytest.raises(checkpoint.CheckpointError, match=r"'11\.weight' has shape"):
        checkpoint.load(tmp_path / "a.npz", wide)
    _same(before, wide.state_dict())
    with pytest.raises(checkpoint.CheckpointError, match=r"'0\.weight'.*does not have"):
        checkpoint.load(tmp_path / "a.npz", models.resnet(seed=0))


def test_corrupt_or_truncated_file_gives_clear_error_and_loads_nothing(tmp_path):
    net = models.lenet5(seed=0)
    path = tmp_path / "a.npz"
    checkpoint.save(path, net)
    raw = path.read_bytes()
    other = models.lenet5(seed=1)
    before = other.state_dict()
    for bad in (raw[: len(raw) // 2], b"not a zip file", raw[:100]):
        path.write_bytes(bad)
        with pytest.raises(checkpoint.CheckpointError, match="truncated or corrupt"):
            checkpoint.load(path, other)
    _same(before, other.state_dict())
    np.savez(path, x=np.zeros(3))
    with pytest.raises(checkpoint.CheckpointError, match="not a"):
        checkpoint.load(path, other)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpoint.load(tmp_path / "missing.npz", other)


def test_failed_save_leaves_existing_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "a.npz"
    checkpoint.save(path, models.lenet5(seed=0))
    raw = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, models.lenet5(seed=1))
    assert path.read_bytes() == raw
    assert os.listdir(tmp_path) == ["a.npz"]


def test_saved_file_has_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        checkpoint.save(tmp_path / "a.npz", models.lenet5(seed=0))
    finally:
        os.umask(mask)
    assert (tmp_path / "a.npz").stat().st_mode & 0o777 == 0o644


def test_optimizer_checks(tmp_path):
    net, opt = _trained()
    checkpoint.save(tmp_path / "no_opt.npz", net)
    with pytest.raises(checkpoint.CheckpointError, match="no optimizer state"):
        checkpoint.load(tmp_path / "no_opt.npz", net, opt)
    checkpoint.save(tmp_path / "adam.npz", net, opt)
    net2, _ = _trained(seed=3)
    sgd = optim.SGD(net2.parameters(), lr=0.1)
    before = net2.state_dict()
    with pytest.raises(checkpoint.CheckpointError, match="holds Adam state, not SGD"):
        checkpoint.load(tmp_path / "adam.npz", net2, sgd)
    _same(before, net2.state_dict())


def test_meta_and_config(tmp_path):
    net = models.get_model("lenet5", seed=0)
    checkpoint.save(tmp_path / "a.npz", net, meta={"note": "hi"})
    info = checkpoint.read_meta(tmp_path / "a.npz")
    assert info["config"] == {"name": "lenet5", "kwargs": {"seed": 0}}
    assert info["meta"] == {"note": "hi"}
    assert info["signature"][0] == ["0.weight", [6, 1, 5, 5], "<f4"]


def _rewrite_info(path, **changes):
    """Rewrite the JSON part of the checkpoint at ``path`` (None deletes a key)."""
    import json

    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    info = json.loads(bytes(arrays["info"]).decode())
    for k, v in changes.items():
        if v is None:
            info.pop(k, None)
        else:
            info[k] = v
    arrays["info"] = np.frombuffer(json.dumps(info).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    "signature", [None, "lenet", [["0.weight", [6, 1, 5, 5]]], [["0.weight", 6, "<f4"]]]
)
def test_missing_or_malformed_signature_gives_clear_error_and_loads_nothing(
    tmp_path, signature
):
    path = tmp_path / "a.npz"
    checkpoint.save(path, models.lenet5(seed=0))
    _rewrite_info(path, signature=signature)
    other = models.lenet5(seed=1)
    before = other.state_dict()
    with pytest.raises(checkpoint.CheckpointError, match=r"cnnbook\.load: .*signature"):
        checkpoint.load(path, other)
    _same(before, other.state_dict())
