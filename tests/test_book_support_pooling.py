"""The Pooling chapter's companion: transforms, features, the measure, pictures."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from cnnbook_book import pooling as P

matplotlib.use("Agg")


def test_shift_moves_content_and_fills_zeros(backend, rng):
    host = rng.normal(size=(2, 3, 5, 6))
    x = backend.asarray(host)
    for dy, dx in [(0, 0), (1, 2), (-2, 1), (0, -3), (5, 0), (0, 6)]:
        got = backend.to_numpy(P.shift(x, dy, dx))
        want = np.zeros_like(host)
        H, W = host.shape[-2:]
        for i in range(H):
            for j in range(W):
                if 0 <= i - dy < H and 0 <= j - dx < W:
                    want[..., i, j] = host[..., i - dy, j - dx]
        np.testing.assert_array_equal(got, want)


def test_zoom_identity_and_centre(backend):
    x = np.zeros((1, 1, 9, 9))
    x[0, 0, 3:6, 3:6] = 1.0
    got = backend.to_numpy(P.zoom(backend.asarray(x), 1.0))
    np.testing.assert_allclose(got, x)
    big = backend.to_numpy(P.zoom(backend.asarray(x), 2.0))[0, 0]
    assert big[4, 4] == 1.0 and big[1:8, 1:8].sum() > x.sum() * 3
    np.testing.assert_allclose(big, big[::-1, ::-1])  # stays centred
    small = backend.to_numpy(P.zoom(backend.asarray(x), 0.5))[0, 0]
    assert small.sum() < x.sum() and small[4, 4] == 1.0


def test_zoom_rejects_bad_factor():
    with pytest.raises(ValueError, match="factor"):
        P.zoom(np.zeros((1, 1, 3, 3)), 0.0)


def test_features_shapes_and_pooling(backend, rng):
    x = backend.asarray(rng.random((2, 1, 12, 12)), dtype=np.float32)
    w = P.random_filters(4, K=3)
    w2 = P.random_filters(5, C=4, K=3, seed=1)
    assert P.features(x, [w]).shape == (2, 4, 12, 12)
    assert P.features(x, [w], "max", 3).shape == (2, 4, 4, 4)
    assert P.features(x, [w, w2], "avg", 2).shape == (2, 5, 3, 3)
    g = P.features(x, [w], "global")
    full = backend.to_numpy(P.features(x, [w]))
    np.testing.assert_allclose(backend.to_numpy(g), full.mean(axis=(2, 3)), rtol=1e-5)
    with pytest.raises(ValueError, match="kind"):
        P.pool(x, "median")


def test_global_pooling_ignores_shifts_inside_the_canvas(backend, rng):
    x = np.zeros((3, 1, 20, 20), dtype=np.float32)
    x[:, :, 6:14, 6:14] = rng.random((3, 1, 8, 8))
    x = backend.asarray(x)
    w = P.random_filters(4, K=3)
    moved = P.shift(x, 2, -3)

    def change(kind):  # largest relative change of the features, over the images
        a = backend.to_numpy(P.features(x, [w], kind)).reshape(3, -1)
        b = backend.to_numpy(P.features(moved, [w], kind)).reshape(3, -1)
        return (np.linalg.norm(b - a, axis=1) / np.linalg.norm(a, axis=1)).max()

    assert change("none") > 0.1  # the maps move ...
    assert change("global") < 1e-5  # ... their means do not


def test_random_filters_are_seeded_zero_mean_unit_norm():
    w = P.random_filters(6, C=2, K=5, seed=3)
    np.testing.assert_array_equal(w, P.random_filters(6, C=2, K=5, seed=3))
    np.testing.assert_allclose(w.sum(axis=(1, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose((w**2).sum(axis=(1, 2, 3)), 1, rtol=1e-6)


def test_pictures():
    import matplotlib.pyplot as plt

    image = np.linspace(0, 1, 64).reshape(8, 8)
    fig = P.plot_pooling(image, 3, 2, "max")
    assert "3×3" in fig.axes[1].get_title()
    states = [(2, 2, "max"), (3, 2, "avg"), (4, 4, "max")]
    fig = P.states_grid(image, states)
    assert len(fig.axes) == 3
    plt.close("all")
    html = P.states_animation(image, states, dpi=20, name="t1")
    assert html == P.states_animation(image, states, dpi=20, name="t1")
    assert "anim_imgt1" in html and html.count("data:image/png") == 3
    w = P.explorer({"ramp": image})
    assert [c.description for c in w.children[1:4]] == ["kernel", "stride", "type"]
    plt.close("all")
