"""Checkpoints and downloads under hostile or broken input.

Everything is checked before any parameter changes; sizes and dtypes are
checked before arrays are read; every failure of the zip and npy layers is a
CheckpointError. download() fetches https only (plain http from this machine),
follows redirects on the same host only, caps the size, and cached files are
checked against their digest again.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import zipfile

import numpy as np
import pytest

from cnnbook import checkpoint, nn, optim
from cnnbook import data as D
from cnnbook.checkpoint import CheckpointError


def _net(seed=0):
    return nn.Sequential(nn.Linear(3, 4, rng=seed), nn.BatchNorm1d(4))


def _params(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def _assert_untouched(model, before):
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def _rewrite(path, edit):
    """Rewrite the checkpoint at ``path`` with ``edit(info, arrays)``."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    info = json.loads(bytes(arrays.pop("info")).decode())
    edit(info, arrays)
    arrays["info"] = np.frombuffer(json.dumps(info).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "net.npz"
    checkpoint.save(path, _net(1), history=None)
    return path


@pytest.mark.parametrize(
    "history",
    [
        {"epoch": [1, 2], "train_loss": [0.5]},  # lengths differ
        {"epoch": "one"},
        {"nonsense": [1]},
        [1, 2],
        {"epoch": [None]},
    ],
)
def test_malformed_history_loads_nothing(saved, history):
    def edit(info, arrays):
        info["history"] = history

    _rewrite(saved, edit)
    model = _net(2)
    before = _params(model)
    with pytest.raises(CheckpointError, match="malformed history"):
        checkpoint.load(saved, model)
    _assert_untouched(model, before)


@pytest.mark.parametrize("dtype", [np.int64, np.complex128])
def test_weights_of_the_wrong_kind_are_refused(saved, dtype):
    def edit(info, arrays):
        arrays["model/0.weight"] = arrays["model/0.weight"].astype(dtype)

    _rewrite(saved, edit)
    model = _net(2)
    before = _params(model)
    with pytest.raises(CheckpointError, match=r"0\.weight|complex"):
        checkpoint.load(saved, model)
    _assert_untouched(model, before)


def _zip_with(path, name, payload, compression=zipfile.ZIP_STORED):
    """A checkpoint-like zip whose member ``name`` holds ``payload`` bytes."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        zf.writestr(name, payload)


def _npy_header(shape, dtype="<f4"):
    buf = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def test_huge_header_shape_is_refused_without_allocating(tmp_path):
    path = tmp_path / "huge.npz"
    _zip_with(path, "info.npy", _npy_header((2**40,)) + b"\0" * 64)
    with pytest.raises(CheckpointError, match=r"claims shape \(1099511627776,\)"):
        checkpoint.read_meta(path)


def test_zip_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.npz"
    payload = _npy_header((8 * 2**20,), "|u1") + bytes(8 * 2**20)
    _zip_with(path, "info.npy", payload, zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match="zip bomb"):
        checkpoint.read_meta(path)


def test_total_size_is_capped(tmp_path, monkeypatch, saved):
    monkeypatch.setattr(checkpoint, "MAX_BYTES", 100)
    with pytest.raises(CheckpointError, match="MAX_BYTES"):
        checkpoint.load(saved, _net(2))


def _corrupt_member(path, method):
    """A zip of one member compressed with ``method``, its data damaged."""
    payload = _npy_header((256,), "|u1") + bytes(range(256))
    _zip_with(path, "info.npy", payload, method)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode())
    for i in range(start + 2, start + 12):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "method",
    [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA],
    ids=["stored", "deflate", "bzip2", "lzma"],
)
def test_damaged_members_give_checkpoint_error(tmp_path, method):
    path = tmp_path / "bad.npz"
    _corrupt_member(path, method)
    with pytest.raises(CheckpointError):
        checkpoint.read_meta(path)


def test_unsupported_compression_gives_checkpoint_error(tmp_path):
    path = tmp_path / "odd.npz"
    _zip_with(path, "info.npy", _npy_header((4,), "|u1") + b"abcd")
    raw = bytearray(path.read_bytes())
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # local and central headers
        i = raw.index(sig)
        offset = 8 if sig == b"PK\x03\x04" else 10  # compression method field
        raw[i + offset : i + offset + 2] = (77).to_bytes(2, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError):
        checkpoint.read_meta(path)


def test_optimizer_state_that_does_not_fit_leaves_the_model(tmp_path):
    path = tmp_path / "opt.npz"
    model = _net(1)
    opt = optim.Adam(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad = np.ones(p.shape, np.float32)
    opt.step()
    checkpoint.save(path, model, opt)

    def edit(info, arrays):
        arrays["optimizer/state.0.exp_avg"] = np.zeros((7,), np.float32)

    _rewrite(path, edit)
    target = _net(2)
    before = _params(target)
    opt2 = optim.Adam(target.parameters(), lr=0.1)
    with pytest.raises(CheckpointError, match=r"optimizer state.*left as it was"):
        checkpoint.load(path, target, opt2)
    _assert_untouched(target, before)
    assert opt2.state == [{} for _ in opt2.params]


def test_bad_last_entry_of_a_state_dict_changes_nothing():
    model = _net(1)
    before = _params(model)
    state = _net(2).state_dict()
    last = list(state)[-1]
    state[last] = np.zeros((5, 5), state[last].dtype)  # the LAST entry is bad
    with pytest.raises(ValueError, match=last):
        model.load_state_dict(state)
    _assert_untouched(model, before)


def test_load_state_dict_not_strict_reports_keys():
    model = _net(1)
    state = _net(2).state_dict()
    del state["0.bias"]
    state["extra"] = np.zeros(1)
    with pytest.raises(KeyError):
        model.load_state_dict(state)


# -- downloads -----------------------------------------------------------------
@pytest.fixture
def redirecting_server(tmp_path):
    """Loopback server: /file.bin (1000 bytes), /same -> /file.bin on the
    same host, /other -> the same file on http://localhost (another name)."""
    body = bytes(range(250)) * 4

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            port = self.server.server_address[1]
            if self.path == "/file.bin":
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            target = {
                "/same": f"http://127.0.0.1:{port}/file.bin",
                "/other": f"http://localhost:{port}/file.bin",
                "/file": "file:///etc/passwd",
            }[self.path]
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", body
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_follows_only_same_host_redirects(redirecting_server, tmp_path):
    url, body = redirecting_server
    digest = hashlib.sha256(body).hexdigest()
    assert D.download(url + "/same", tmp_path / "a.bin", digest).read_bytes() == body
    with pytest.raises(ValueError, match="redirects to another host"):
        D.download(url + "/other", tmp_path / "b.bin", digest)
    with pytest.raises((ValueError, RuntimeError), match="file:///etc/passwd"):
        D.download(url + "/file", tmp_path / "c.bin", digest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_download_caps_the_size(redirecting_server, tmp_path):
    url, body = redirecting_server
    digest = hashlib.sha256(body).hexdigest()
    with pytest.raises(ValueError, match="limit of 999"):
        D.download(url + "/file.bin", tmp_path / "a.bin", digest, max_bytes=999)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/x.gz",
        "http://example.com/x.gz",
        "https:///x.gz",
    ],
)
def test_download_refuses_other_schemes(tmp_path, url):
    with pytest.raises(ValueError, match="download: refusing"):
        D.download(url, tmp_path / "x.gz", "0" * 64)


def test_dataset_urls_are_https():
    assert all(u.startswith("https://") for u in D._URLS.values())


def test_cached_files_are_checked_again(tmp_path):
    root = tmp_path / "mnist"
    root.mkdir()
    sums = {}
    for name in D._IDX_FILES:
        (root / name).write_bytes(b"not the published file")
        sums[name] = "0" * 64
    with pytest.raises(ValueError, match="does not have the SHA-256"):
        D.load_mnist(root, sha256=sums)


def test_load_state_dict_returns_the_keys():
    model = _net(1)
    state = _net(2).state_dict()
    assert repr(model.load_state_dict(state)) == "<All keys matched successfully>"
    del state["0.bias"]
    state["extra"] = np.zeros(1)
    keys = model.load_state_dict(state, strict=False)
    assert keys.missing_keys == ["0.bias"] and keys.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(model[0].weight.data, state["0.weight"])
