"""SGD, Adam and global-norm clipping: hand-computed and in-place updates, state round trip, validation."""

import math

import numpy as np
import pytest

from graphrnn.optim import SGD, Adam, clip_grad_norm


def test_plain_sgd_subtracts_lr_times_the_gradient_in_place():
    w = np.array([1.0, -2.0])
    params = {"w": w}
    SGD(params, lr=0.5).step({"w": np.array([0.2, 0.4]), "input": np.zeros(7)})  # extra keys are ignored
    assert params["w"] is w
    assert np.array_equal(w, [0.9, -2.2])


def test_sgd_momentum_follows_pytorchs_buffer_rule():
    w = np.array([1.0])
    opt = SGD({"w": w}, lr=0.1, momentum=0.9)
    g1, g2 = np.array([1.0]), np.array([2.0])
    opt.step({"w": g1})  # v = g1
    opt.step({"w": g2})  # v = 0.9 g1 + g2
    assert w[0] == pytest.approx(1.0 - 0.1 * 1.0 - 0.1 * (0.9 * 1.0 + 2.0), rel=1e-15)
    assert opt.steps == 2


def test_adam_first_steps_match_the_bias_corrected_formula():
    w = np.array([0.5, -0.5])
    opt = Adam({"w": w}, lr=0.01, betas=(0.9, 0.99), eps=1e-8)
    grads = [np.array([1.0, -2.0]), np.array([0.5, 3.0])]
    m = v = np.zeros(2)
    expected = np.array([0.5, -0.5])
    for t, g in enumerate(grads, 1):
        m = 0.9 * m + 0.1 * g
        v = 0.99 * v + 0.01 * g * g
        expected = expected - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.99**t)) + 1e-8)
        opt.step({"w": g})
    assert np.allclose(w, expected, rtol=1e-14, atol=1e-15), f"{w} vs {expected}"


def test_adam_keeps_float32_parameters_float32_and_minimises_a_quadratic():
    w = np.array([3.0, -4.0], dtype=np.float32)
    opt = Adam({"w": w}, lr=0.1)
    for _ in range(300):
        opt.step({"w": 2 * w})  # gradient of |w|^2
    assert w.dtype == np.float32
    assert np.abs(w).max() < 0.05


@pytest.mark.parametrize("make", [lambda p: Adam(p, lr=0.01), lambda p: SGD(p, lr=0.1, momentum=0.9)])
def test_optimizer_state_arrays_round_trip_continues_identically(make):
    rng = np.random.default_rng(0)
    grads = [{"a": rng.standard_normal(3), "b": rng.standard_normal((2, 2))} for _ in range(6)]
    p1 = {"a": np.ones(3), "b": np.zeros((2, 2))}
    o1 = make(p1)
    for g in grads[:3]:
        o1.step(g)
    p2 = {k: v.copy() for k, v in p1.items()}
    o2 = make(p2)
    o2.load_state({k: v.copy() for k, v in o1.state_arrays().items()}, o1.steps)
    for g in grads[3:]:
        o1.step(g)
        o2.step(g)
    for k in p1:
        assert np.array_equal(p1[k], p2[k]), k


def test_load_state_is_strict_on_names_and_shapes():
    opt = Adam({"w": np.zeros(2)})
    with pytest.raises(ValueError, match=r"missing \['exp_avg_sq/w'\]"):
        opt.load_state({"exp_avg/w": np.zeros(2)}, 1)
    with pytest.raises(ValueError, match=r"optimizer state 'exp_avg/w' must have shape \(2,\), got \(3,\)"):
        opt.load_state({"exp_avg/w": np.zeros(3), "exp_avg_sq/w": np.zeros(2)}, 1)


def test_clip_grad_norm_scales_to_max_norm_and_returns_the_norm_before():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    total = math.sqrt(sum(float((g**2).sum()) for g in grads.values()))
    assert total == pytest.approx(1.0, rel=1e-5)
    assert grads["a"][0] == pytest.approx(0.6, rel=1e-5)


def test_clip_grad_norm_leaves_small_gradients_untouched():
    grads = {"a": np.array([0.3, 0.4], dtype=np.float32)}
    assert clip_grad_norm(grads, 1.0) == pytest.approx(0.5, rel=1e-6)
    assert np.array_equal(grads["a"], np.array([0.3, 0.4], dtype=np.float32))


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: SGD({"w": np.zeros(1)}, lr=-1), ValueError, r"lr must lie in \(0.0, inf\], got -1"),
        (lambda: SGD({"w": np.zeros(1)}, lr="fast"), TypeError, r"lr must be a number, got str 'fast'"),
        (
            lambda: SGD({"w": np.zeros(1)}, momentum=1.5),
            ValueError,
            r"momentum must lie in \[0.0, 1.0\], got 1.5",
        ),
        (lambda: Adam({"w": np.zeros(1)}, betas=(0.9, 1.0)), ValueError, r"betas must lie in \[0, 1\)"),
        (lambda: Adam({}), TypeError, r"params must be a non-empty dict"),
        (lambda: Adam({"w": np.zeros(1, dtype=int)}), TypeError, r"params\['w'\] must be a float ndarray"),
        (
            lambda: Adam({"w": np.zeros(2)}).step({}),
            ValueError,
            r"grads must hold every parameter name; missing \['w'\]",
        ),
        (
            lambda: Adam({"w": np.zeros(2)}).step({"w": np.zeros(3)}),
            ValueError,
            r"grads\['w'\] must have shape \(2,\), got \(3,\)",
        ),
        (
            lambda: clip_grad_norm({"w": np.zeros(2)}, 0),
            ValueError,
            r"max_norm must lie in \(0.0, inf\], got 0",
        ),
    ],
)
def test_bad_inputs_name_the_argument_expected_and_given(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()
