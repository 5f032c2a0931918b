"""The companion of *What a CNN sees*: input gradients, attribution maps, class
visualisation and attacks, checked against finite differences and closed forms
(linear models, a global-average-pooling head), and its errors on bad input."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from cnnbook_book import sees as S
from cnnbook_book.live import decode_array, payload_of

from cnnbook import models, nn
from cnnbook.gradcheck import rel_error

matplotlib.use("Agg")


def _lenet(seed=0, dtype=np.float64, **kw):
    return models.lenet5(seed=seed, dtype=dtype, **kw)


def _linear(seed=0, dtype=np.float64):
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3, rng=seed, dtype=dtype))


def _gap(seed=0):  # conv - ReLU - global average pooling - linear
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, rng=seed, dtype=np.float64),
        nn.ReLU(),
        nn.GlobalAvgPool2d(),
        nn.Linear(4, 3, rng=seed + 1, dtype=np.float64),
    )


def _scores(model, x):
    with nn.no_grad():
        return model(x)


def test_score_grad_matches_finite_differences(rng):
    model = _lenet()
    x = rng.random((2, 1, 28, 28))  # no flat background: no max-pool ties
    c = np.array([3, 7])
    s, g = S.score_grad(model, x, c)
    assert s.shape == (2, 10) and g.shape == x.shape
    h = 1e-6
    for n in range(2):
        for p in rng.choice(784, 6, replace=False):
            e = np.zeros(784)
            e[p] = h
            e = e.reshape(1, 1, 28, 28)
            up = _scores(model, x[n : n + 1] + e)[0, c[n]]
            down = _scores(model, x[n : n + 1] - e)[0, c[n]]
            num = (up - down) / (2 * h)
            assert abs(num - g[n].ravel()[p]) <= 1e-6 * max(1.0, abs(num))


def test_score_grad_restores_the_mode_and_an_int_class_broadcasts(rng):
    model = _lenet()
    model.train()
    x = rng.random((3, 1, 28, 28))
    _, g = S.score_grad(model, x, 4)
    _, g4 = S.score_grad(model, x, np.array([4, 4, 4]))
    assert model.training
    np.testing.assert_array_equal(g, g4)


def test_saliency_is_the_channel_max_of_the_absolute_gradient(rng):
    model = nn.Sequential(
        nn.Conv2d(3, 2, 3, rng=0, dtype=np.float64), nn.Flatten(),
        nn.Linear(2 * 4 * 4, 5, rng=1, dtype=np.float64),
    )  # fmt: skip
    x = rng.random((2, 3, 6, 6))
    _, g = S.score_grad(model, x, 1)
    np.testing.assert_allclose(S.saliency(model, x, 1), np.abs(g).max(axis=1))


def test_smoothgrad_is_the_mean_saliency_over_the_noisy_copies(rng):
    model = _lenet()
    x = rng.random((2, 1, 28, 28))
    np.testing.assert_allclose(
        S.smoothgrad(model, x, 2, sigma=0.0, samples=3), S.saliency(model, x, 2)
    )
    noise = rng.standard_normal((4, 1, 28, 28))
    spread = x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3))
    scale = 0.2 * spread[:, None, None, None]
    want = np.mean([S.saliency(model, x + scale * e, 2) for e in noise], axis=0)
    got = S.smoothgrad(model, x, 2, sigma=0.2, noise=noise)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    a = S.smoothgrad(model, x, 2, samples=5, seed=3)
    np.testing.assert_array_equal(a, S.smoothgrad(model, x, 2, samples=5, seed=3))


def test_grad_cam_is_the_class_activation_map_for_a_gap_head(rng):
    model = _gap()
    x = rng.random((3, 2, 5, 5))
    c = np.array([0, 2, 1])
    cam = S.grad_cam(model, x, c, model[1])
    with nn.Recorder(model) as rec:
        model(x)
    model.clear_cache()
    A = rec.activations["1"]  # (3, 4, 5, 5)
    w = model[3].weight.data  # (3, 4)
    want = np.maximum(np.einsum("nk,nkhw->nhw", w[c] / 25, A), 0)
    np.testing.assert_allclose(cam, want, rtol=1e-10, atol=1e-12)
    # before the ReLU the map sums to s_c − b_c; where nothing is negative, after too
    s = _scores(model, x)
    pre = np.einsum("nk,nkhw->nhw", w[c] / 25, A)
    np.testing.assert_allclose(
        pre.sum(axis=(1, 2)), s[np.arange(3), c] - model[3].bias.data[c], rtol=1e-10
    )


def test_upsample_places_entries_at_receptive_field_centres():
    m = np.arange(6, dtype=float).reshape(1, 2, 3)
    up = S.upsample(m, (5, 7), stride=2, offset=1)
    assert up.shape == (1, 5, 7)
    assert up[0, 1, 1] == m[0, 0, 0] and up[0, 3, 5] == m[0, 1, 2]
    assert up[0, 2, 2] == pytest.approx(0.5 * (m[0, 0, 0] + m[0, 1, 1]))  # bilinear
    assert up[0, 0, 0] == m[0, 0, 0] and up[0, 4, 6] == m[0, 1, 2]  # held at the ends


def test_occlusion_of_a_linear_model_by_hand(rng):
    model = _linear()
    x = rng.random((2, 1, 4, 4))
    w = model[1].weight.data[1].reshape(4, 4)
    got = S.occlusion(model, x, 1, patch=2, stride=2)
    # stride = patch: each pixel lies in one square, whose drop is sum(w · x) over it
    for n in range(2):
        for t in (0, 2):
            for le in (0, 2):
                drop = (w * x[n, 0])[t : t + 2, le : le + 2].sum()
                np.testing.assert_allclose(got[n, t : t + 2, le : le + 2], drop)
    # overlapping squares: the mean of the drops of the squares covering a pixel
    got = S.occlusion(model, x[:1], 1, patch=3, stride=1)
    drops = {(t, le): (w * x[0, 0])[t : t + 3, le : le + 3].sum()
             for t in (0, 1) for le in (0, 1)}  # fmt: skip
    np.testing.assert_allclose(got[0, 0, 0], drops[0, 0])
    np.testing.assert_allclose(got[0, 1, 1], np.mean(list(drops.values())))


def test_class_visualisation_of_a_linear_model_reaches_the_closed_form(rng):
    model = _linear()
    start = rng.random((1, 4, 4))
    x, trace = S.class_visualisation(model, 2, start, steps=300, lr=0.5, l2=0.5)
    w = model[1].weight.data[2].reshape(1, 4, 4)
    np.testing.assert_allclose(x, start + w / (2 * 0.5), rtol=1e-8, atol=1e-10)
    assert trace.shape == (301,) and (np.diff(trace) >= -1e-12).all()


def test_fgsm_follows_the_sign_of_the_cross_entropy_gradient(rng):
    model = _linear()
    x = rng.random((3, 1, 4, 4))
    y = np.array([0, 1, 2])
    W = model[1].weight.data
    s = _scores(model, x)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    grad = ((p - np.eye(3)[y]) @ W).reshape(x.shape)  # ∂L_n/∂x_n by hand
    L, g = S.loss_grad(model, x, y)
    np.testing.assert_allclose(g, grad, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(L, -np.log(p[np.arange(3), y]), rtol=1e-10)
    adv = S.fgsm(model, x, y, 0.1, clip=None)
    np.testing.assert_allclose(adv, x + 0.1 * np.sign(grad))
    # a linear score moves by exactly ε‖w‖₁ along sign(w)
    w = W[1]
    moved = x[:1] + 0.1 * np.sign(w).reshape(1, 1, 4, 4)
    change = _scores(model, moved)[0, 1] - _scores(model, x[:1])[0, 1]
    assert change == pytest.approx(0.1 * np.abs(w).sum(), rel=1e-12)
    clipped = S.fgsm(model, x, y, 0.5)
    assert clipped.min() >= 0 and clipped.max() <= 1


def test_pgd_stays_in_the_box_and_one_full_step_is_fgsm(rng):
    model = _lenet(dtype=np.float32)
    x = rng.random((4, 1, 28, 28)).astype(np.float32)
    y = np.array([1, 2, 3, 4])
    adv = S.pgd(model, x, y, 0.1, steps=5)
    assert adv.dtype == np.float32
    assert np.abs(adv - x).max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    np.testing.assert_array_equal(
        S.pgd(model, x, y, 0.1, steps=1, alpha=0.1), S.fgsm(model, x, y, 0.1)
    )
    L0 = S.loss_grad(model, x, y)[0]
    assert (S.loss_grad(model, adv, y)[0] > L0).all()  # the attack raises every loss


def test_adversarial_epoch_trains(rng):
    from cnnbook import optim

    model = _lenet(dtype=np.float32)
    X = rng.random((40, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 40)
    before = model[0].weight.data.copy()
    loss = S.adversarial_epoch(model, X, y, optim.SGD(model.parameters(), 0.1), 0.1, 16)
    assert np.isfinite(loss) and not np.array_equal(before, model[0].weight.data)


def test_bad_inputs_are_refused(rng):
    model = _lenet(dtype=np.float32)
    x = rng.random((2, 1, 28, 28)).astype(np.float32)
    y = np.array([1, 2])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        S.saliency(model, x[0], 1)
    with pytest.raises(ValueError, match="no images"):
        S.saliency(model, x[:0], 1)
    with pytest.raises(ValueError, match=r"in \[0, 10\)"):
        S.saliency(model, x, 10)
    with pytest.raises(TypeError, match="int"):
        S.saliency(model, x, 1.5)
    with pytest.raises(ValueError, match="one class per image"):
        S.saliency(model, x, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="eps"):
        S.fgsm(model, x, y, -0.1)
    with pytest.raises(TypeError, match="steps"):
        S.pgd(model, x, y, 0.1, steps=2.5)
    with pytest.raises(ValueError, match="samples"):
        S.smoothgrad(model, x, y, samples=0)
    with pytest.raises(ValueError, match="noise"):
        S.smoothgrad(model, x, y, noise=np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match="larger than the image"):
        S.occlusion(model, x, y, patch=29)
    with pytest.raises(ValueError, match="module of the model"):
        S.grad_cam(model, x, y, nn.ReLU())
    with pytest.raises(ValueError, match="start"):
        S.class_visualisation(model, 3, x)
    with pytest.raises(ValueError, match="lr"):
        S.class_visualisation(model, 3, x[0], lr=0)
    with pytest.raises(ValueError, match="input_grad=True"):
        S.saliency(_lenet(dtype=np.float32, input_grad=False), x, 1)
    with pytest.raises(ValueError, match="LeNet-5"):
        S.live_sees_explorer(_linear(), x, y, x)
    # a refused class leaves nothing recorded: the next pass works
    S.saliency(model, x, y)


def test_live_explorer_carries_the_weights_digits_and_noise(rng):
    model = _lenet(dtype=np.float32)
    x = rng.random((3, 1, 28, 28)).astype(np.float32)
    noise = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    html = S.live_sees_explorer(model, x, np.array([4, 5, 6]), noise).data
    assert 'data-cnnbook-live="sees"' in html
    for name in ('name="digit"', 'name="cls"', 'name="method"'):
        assert name in html
    payload = payload_of(html)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(decode_array(payload["weights"][k]), v)
    np.testing.assert_array_equal(decode_array(payload["images"]), x)
    np.testing.assert_array_equal(decode_array(payload["noise"]), noise)
    assert payload["labels"] == [4, 5, 6]


def test_maps_agree_between_methods_on_a_trained_direction(rng):
    """The explorer's dispatcher returns each method's map at the input's size."""
    model = _lenet(dtype=np.float32)
    x = rng.random((2, 1, 28, 28)).astype(np.float32)
    for method in S.METHODS:
        m = S._map(model, x, 3, method, noise=rng.standard_normal((2, 1, 28, 28)))
        assert m.shape == (2, 28, 28) and np.isfinite(m).all()
    with pytest.raises(ValueError, match="unknown method"):
        S._map(model, x, 3, "lime")
    assert rel_error(S._map(model, x, 3, "saliency"), S.saliency(model, x, 3)) == 0


def test_plot_maps_draws_one_row_per_map(rng):
    import matplotlib.pyplot as plt

    x = rng.random((3, 1, 28, 28))
    fig = S.plot_maps(x, {"a": x[:, 0], "b": x[:, 0]}, ["x", "y", "z"])
    assert len(fig.axes) == 9
    plt.close(fig)
