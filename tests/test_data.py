"""cnnbook.data: embedded data sets, IDX files, the download path, batching."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import socket
import struct
import threading

import numpy as np
import pytest

import cnnbook.backend as B
from cnnbook import data as D


def test_mnist5k_split_is_fixed_stratified_and_scaled():
    (X, y), (Xt, yt) = D.mnist5k()
    assert X.shape == (4000, 1, 28, 28) and Xt.shape == (1000, 1, 28, 28)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert X.min() >= 0 and X.max() == 1.0
    assert np.bincount(y).tolist() == [400] * 10
    assert np.bincount(yt).tolist() == [100] * 10
    assert len(set(y[:20].tolist())) > 3  # not sorted by class
    (X2, y2), _ = D.mnist5k()
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    rows = {r.tobytes() for r in X.reshape(4000, -1)}
    assert not any(r.tobytes() in rows for r in Xt.reshape(1000, -1))


def test_digits_and_stratified_split():
    (X, _y), (Xt, _yt) = D.digits()
    assert X.shape[1:] == (1, 8, 8) and len(X) + len(Xt) == 1797
    assert X.max() == 1.0
    tr, te = D.stratified_split(np.repeat(np.arange(3), 10), 0.3, seed=1)
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(30))
    assert np.bincount(np.repeat(np.arange(3), 10)[te]).tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match="test_fraction"):
        D.stratified_split(np.zeros(4), 1.5)


def test_photos_by_name():
    cam = D.photo("camera")
    assert cam.shape == (512, 512) and cam.dtype == np.float32 and cam.max() <= 1
    assert D.photo("astronaut").shape == (512, 512, 3)
    assert D.photo("astronaut", gray=True).shape == (512, 512)
    with pytest.raises(ValueError, match="known: astronaut, brick, camera"):
        D.photo("lena")


def _idx_bytes(a: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[a.dtype]
    head = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + a.tobytes()


def _fake_mnist(folder, n=6, gz=True):
    """Small IDX files in MNIST's names; returns {name: sha256}."""
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 2, dtype=np.uint8),
    }
    sums = {}
    for name, a in files.items():
        raw = _idx_bytes(a)
        payload = gzip.compress(raw) if gz else raw
        fname = name + (".gz" if gz else "")
        (folder / fname).write_bytes(payload)
        sums[name + ".gz"] = hashlib.sha256(payload).hexdigest()
    return files, sums


def test_read_idx_gzip_raw_and_bad_files(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(_idx_bytes(a))
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx_bytes(a)))
    np.testing.assert_array_equal(D.read_idx(tmp_path / "a"), a)
    np.testing.assert_array_equal(D.read_idx(tmp_path / "a.gz"), a)
    b = np.arange(5, dtype=">i4")
    (tmp_path / "b").write_bytes(_idx_bytes(b))
    assert D.read_idx(tmp_path / "b").tolist() == list(range(5))
    (tmp_path / "bad").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an IDX file"):
        D.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(_idx_bytes(a)[:-3])
    with pytest.raises(ValueError, match="truncated"):
        D.read_idx(tmp_path / "short")


def test_load_mnist_from_local_folder(tmp_path):
    files, _ = _fake_mnist(tmp_path, gz=False)
    (X, y), (Xt, _yt) = D.load_mnist(tmp_path)
    assert X.shape == (6, 1, 28, 28) and X.dtype == np.float32
    np.testing.assert_array_equal(y, files["train-labels-idx1-ubyte"])
    np.testing.assert_allclose(Xt[:, 0] * 255, files["t10k-images-idx3-ubyte"])
    with pytest.raises(FileNotFoundError, match="download_missing=True"):
        D.load_mnist(tmp_path / "empty")
    with pytest.raises(ValueError, match="known: mnist, fashion-mnist"):
        D.load_mnist(tmp_path, dataset="cifar")


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server serving tmp_path/'served'."""
    root = tmp_path / "served"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_verifies_checksum(server, tmp_path):
    root, url = server
    files, sums = _fake_mnist(root)
    cache = tmp_path / "cache"
    reordered = dict(reversed(sums.items()))  # the files' roles come from their names
    (_X, y), _ = D.load_mnist(
        cache, download_missing=True, base_url=url, sha256=reordered
    )
    np.testing.assert_array_equal(y, files["train-labels-idx1-ubyte"])
    with pytest.raises(ValueError, match=r"no digest for t10k-labels-idx1-ubyte\.gz"):
        D.load_mnist(cache, sha256={k: sums[k] for k in list(sums)[:3]})
    assert sorted(p.name for p in cache.iterdir()) == sorted(sums)
    # a second call reads the cache (server content no longer matters)
    for p in root.iterdir():
        p.unlink()
    D.load_mnist(cache, download_missing=True, base_url=url, sha256=sums)
    # a wrong checksum keeps nothing
    _fake_mnist(root)
    bad = dict(sums)
    bad["train-images-idx3-ubyte.gz"] = "0" * 64
    cache2 = tmp_path / "cache2"
    with pytest.raises(ValueError, match="SHA-256"):
        D.load_mnist(cache2, download_missing=True, base_url=url, sha256=bad)
    assert list(cache2.iterdir()) == []


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_downloaded_file_has_the_usual_permissions(server, tmp_path, mask, mode):
    root, url = server
    (root / "x.bin").write_bytes(b"some bytes")
    digest = hashlib.sha256(b"some bytes").hexdigest()
    old = os.umask(mask)
    try:
        got = D.download(url + "x.bin", tmp_path / "cache" / "x.bin", digest)
    finally:
        os.umask(old)
    assert got.read_bytes() == b"some bytes"
    assert oct(got.stat().st_mode & 0o777) == oct(mode)


def test_download_offline_gives_clear_error(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RuntimeError, match=r"offline.*mnist5k"):
        D.download(
            f"http://127.0.0.1:{port}/x.gz", tmp_path / "x.gz", "0" * 64, timeout=5
        )
    assert list(tmp_path.iterdir()) == []


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNBOOK_DATA", str(tmp_path))
    assert D.cache_dir() == tmp_path


def test_dataloader_batches_and_placement(backend):
    X = np.arange(10 * 4, dtype=np.float64).reshape(10, 1, 2, 2)
    y = np.arange(10)
    loader = D.DataLoader(X, y, batch_size=4)
    batches = list(loader)
    assert [int(xb.shape[0]) for xb, _ in batches] == [4, 4, 2] and len(loader) == 3
    xb, yb = batches[0]
    ref = backend.asarray(np.zeros(1))
    assert type(xb) is type(ref) and B.device_of(xb) == B.device_of(ref)
    assert B.numpy_dtype(xb.dtype) == np.float32 and B.numpy_dtype(yb.dtype) == np.int64
    assert B.to_numpy(yb).tolist() == [0, 1, 2, 3]
    assert len(list(D.DataLoader(X, y, batch_size=4, drop_last=True))) == 2


def test_dataloader_seeded_shuffle():
    X, y = np.arange(20.0).reshape(20, 1, 1, 1), np.arange(20)

    def epochs(seed):
        loader = D.DataLoader(X, y, batch_size=5, shuffle=True, seed=seed)
        return [np.concatenate([B.to_numpy(yb) for _, yb in loader]) for _ in range(2)]

    a, b = epochs(0), epochs(0)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])
    assert sorted(a[0].tolist()) == list(range(20))
    assert not np.array_equal(a[0], epochs(1)[0])


def test_dataloader_bad_arguments():
    with pytest.raises(ValueError, match="X has 3 samples but y has 2"):
        D.DataLoader(np.zeros((3, 1)), np.zeros(2))
    with pytest.raises(ValueError, match="batch_size"):
        D.DataLoader(np.zeros((3, 1)), np.zeros(3), batch_size=0)
    with pytest.raises(ValueError, match="unknown backend"):
        D.DataLoader(np.zeros((3, 1)), np.zeros(3), backend="tpu")


def test_random_shift_moves_content_and_is_seeded():
    x = np.zeros((50, 1, 7, 7), np.float32)
    x[:, 0, 3, 3] = 1.0
    out = D.RandomShift(2)(x, np.random.default_rng(0))
    pos = np.argwhere(out[:, 0] == 1.0)
    assert len(pos) == 50  # one pixel each, still inside
    assert (
        np.all(np.abs(pos[:, 1:] - 3) <= 2) and len({tuple(p) for p in pos[:, 1:]}) > 5
    )
    again = D.RandomShift(2)(x, np.random.default_rng(0))
    np.testing.assert_array_equal(out, again)
    np.testing.assert_array_equal(D.RandomShift(0)(x, np.random.default_rng(0)), x)
    with pytest.raises(ValueError, match="max_shift"):
        D.RandomShift(-1)


def test_crop_flip_compose_and_loader_augmentation():
    x = np.arange(2 * 16, dtype=np.float32).reshape(2, 1, 4, 4)
    rng = np.random.default_rng(0)
    assert D.RandomCrop(4, padding=1)(x, rng).shape == (2, 1, 4, 4)
    assert D.RandomCrop(2)(x, rng).shape == (2, 1, 2, 2)
    with pytest.raises(ValueError, match="exceeds"):
        D.RandomCrop(9)(x, rng)
    flipped = D.RandomHorizontalFlip(1.0)(x, rng)
    np.testing.assert_array_equal(flipped, x[..., ::-1])
    aug = D.Compose([D.RandomHorizontalFlip(1.0), D.RandomHorizontalFlip(1.0)])
    np.testing.assert_array_equal(aug(x, rng), x)
    loader = D.DataLoader(
        x, np.zeros(2, int), batch_size=2, augment=D.RandomHorizontalFlip(1.0)
    )
    np.testing.assert_array_equal(B.to_numpy(next(iter(loader))[0]), x[..., ::-1])
    assert "RandomHorizontalFlip(p=1.0)" in repr(loader)


def test_train_val_split_is_stratified_disjoint_and_seeded():
    (X, y), _ = D.digits()
    (X_tr, y_tr), (X_val, y_val) = D.train_val_split(X, y, 0.2, seed=0)
    assert len(X_tr) + len(X_val) == len(X) and X_val.shape[1:] == X.shape[1:]
    # each class keeps its proportion (to the rounding of one sample)
    expected = np.round(np.bincount(y) * 0.2)
    np.testing.assert_allclose(np.bincount(y_val), expected, atol=1)
    # disjoint, together the whole training set, labels still attached
    rows = {r.tobytes(): lab for r, lab in zip(X.reshape(len(X), -1), y, strict=True)}
    val_rows = {r.tobytes() for r in X_val.reshape(len(X_val), -1)}
    assert not any(r.tobytes() in val_rows for r in X_tr.reshape(len(X_tr), -1))
    for r, lab in zip(X_val.reshape(len(X_val), -1), y_val, strict=True):
        assert rows[r.tobytes()] == lab
    assert len(set(y_val[:20].tolist())) > 3  # not sorted by class
    (_, y_tr2), (X_val2, _) = D.train_val_split(X, y, 0.2, seed=0)
    np.testing.assert_array_equal(X_val, X_val2)
    np.testing.assert_array_equal(y_tr, y_tr2)
    (_, _), (X_val3, _) = D.train_val_split(X, y, 0.2, seed=1)
    assert not np.array_equal(X_val, X_val3)


@pytest.mark.parametrize(
    ("X", "y", "kw", "error", "match"),
    [
        (np.zeros((10, 2)), np.arange(9) % 2, {}, ValueError,
         r"train_val_split: X has 10 samples \(shape \(10, 2\)\) but y has 9"),
        (np.zeros((10, 2)), np.zeros((10, 1), int), {}, ValueError,
         r"train_val_split: y must be 1-D labels \(N,\), got shape \(10, 1\)"),
        (np.float64(1.0), np.zeros(1, int), {}, ValueError,
         "train_val_split: X must have a sample axis"),
        (np.zeros((10, 2)), np.linspace(0, 1, 10), {}, TypeError,
         "train_val_split: y must hold integer class labels, got dtype float64"),
        (np.zeros((10, 2)), np.arange(10) % 2, {"val_fraction": 1.0}, ValueError,
         r"train_val_split: val_fraction must be a number in \(0, 1\), got 1.0"),
        (np.zeros((10, 2)), np.arange(10) % 2, {"val_fraction": True}, ValueError,
         "val_fraction must be a number"),
        (np.zeros((10, 2)), np.arange(10) % 2, {"seed": 0.5}, TypeError,
         "train_val_split: seed must be an int, got 0.5"),
        (np.zeros((11, 2)), np.r_[np.arange(10) % 2, 2], {}, ValueError,
         r"train_val_split: class 2 has 1 sample\(s\); val_fraction 0.2 puts none"),
        (np.zeros((4, 2)), np.array([0, 0, 1, 1]), {"val_fraction": 0.8}, ValueError,
         "puts all of them in the validation set"),
    ],
)  # fmt: skip
def test_train_val_split_bad_input(X, y, kw, error, match):
    with pytest.raises(error, match=match):
        D.train_val_split(X, y, **kw)
