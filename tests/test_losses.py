"""Softmax cross-entropy and MSE: values, gradients vs central differences (float64), masking, stability."""

import math

import numpy as np
import pytest
from gradcheck import assert_close, numeric_grad

from graphrnn.losses import cross_entropy, log_softmax, mse_loss, softmax


def test_cross_entropy_is_the_mean_negative_log_probability_of_the_targets():
    z = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, -1.0]])
    y = np.array([2, 0])
    loss, _ = cross_entropy(z, y)
    expected = -(math.log(softmax(z)[0, 2]) + math.log(softmax(z)[1, 0])) / 2
    assert loss == pytest.approx(expected, rel=1e-14)


def test_cross_entropy_gradient_matches_finite_differences_for_rows():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 5))
    y = rng.integers(0, 5, 6)
    _, grad = cross_entropy(z, y)
    assert_close(grad, numeric_grad(lambda: cross_entropy(z, y)[0], z), "d/dlogits", rtol=1e-6, atol=1e-9)


def test_time_major_cross_entropy_with_lengths_averages_over_valid_positions_only():
    rng = np.random.default_rng(1)
    T, B, C = 4, 3, 5
    z = rng.standard_normal((T, B, C))
    y = rng.integers(0, C, (T, B))
    lengths = np.array([4, 0, 2])
    y[3, 2] = -7  # padding may hold anything: never read
    loss, grad = cross_entropy(z, y, lengths)
    valid = np.arange(T)[:, None] < lengths
    picked = log_softmax(z)[valid, :][np.arange(valid.sum()), y[valid]]
    assert loss == pytest.approx(-picked.mean(), rel=1e-13)
    assert np.array_equal(grad[~valid], np.zeros((int((~valid).sum()), C))), (
        "padded positions get zero gradient"
    )
    assert_close(
        grad, numeric_grad(lambda: cross_entropy(z, y, lengths)[0], z), "d/dlogits", rtol=1e-6, atol=1e-9
    )


def test_mask_gives_the_same_result_as_lengths_and_sum_reduction_scales_by_the_count():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((3, 2, 4))
    y = rng.integers(0, 4, (3, 2))
    lengths = np.array([3, 1])
    mask = np.arange(3)[:, None] < lengths
    a, ga = cross_entropy(z, y, lengths)
    b, gb = cross_entropy(z, y, mask=mask)
    s, gs = cross_entropy(z, y, lengths, reduction="sum")
    assert a == b and np.array_equal(ga, gb)
    assert s == pytest.approx(a * 4, rel=1e-14)
    assert_close(gs, ga * 4, "sum gradient", rtol=1e-14, atol=1e-15)


def test_cross_entropy_is_finite_for_huge_logits_and_keeps_float32():
    z = np.array([[1e4, -1e4, 0.0], [-1e38, 1e38, 0.0]], dtype=np.float32)
    loss, grad = cross_entropy(z, np.array([0, 0]))
    assert math.isfinite(loss) and np.isfinite(grad).all()
    assert grad.dtype == np.float32
    assert loss == pytest.approx(2e38 / 2, rel=1e-6)  # mean of 0 and (logsumexp - z[0]) = 1e38 - (-1e38)


def test_no_valid_position_gives_zero_loss_and_zero_gradient():
    z = np.ones((2, 3, 4))
    loss, grad = cross_entropy(z, np.zeros((2, 3), dtype=int), np.zeros(3, dtype=int))
    assert loss == 0.0 and not grad.any()


def test_log_softmax_is_stable_and_normalised():
    z = np.array([[1000.0, 1000.0], [-1000.0, 0.0]])
    ls = log_softmax(z)
    assert np.isfinite(ls).all()
    assert_close(np.exp(ls).sum(axis=1), np.ones(2), "probabilities sum to 1", rtol=1e-15, atol=1e-15)
    assert ls[0, 0] == pytest.approx(-math.log(2))


def test_mse_value_and_gradient_match_finite_differences_with_and_without_mask():
    rng = np.random.default_rng(3)
    p, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    mask = rng.random((3, 4)) > 0.4
    loss, grad = mse_loss(p, t)
    assert loss == pytest.approx(np.mean((p - t) ** 2), rel=1e-14)
    assert_close(grad, numeric_grad(lambda: mse_loss(p, t)[0], p), "d/dpred", rtol=1e-6, atol=1e-9)
    loss_m, grad_m = mse_loss(p, t, mask=mask)
    assert loss_m == pytest.approx(np.mean((p - t)[mask] ** 2), rel=1e-14)
    assert_close(
        grad_m, numeric_grad(lambda: mse_loss(p, t, mask=mask)[0], p), "masked d/dpred", rtol=1e-6, atol=1e-9
    )


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (
            lambda: cross_entropy(np.ones((2, 3), dtype=int), np.zeros(2, int)),
            TypeError,
            r"logits must be a float array, got dtype int64",
        ),
        (
            lambda: cross_entropy(np.ones((2, 3)), np.zeros(2)),
            TypeError,
            r"targets must be an integer array, got dtype float64",
        ),
        (
            lambda: cross_entropy(np.ones((2, 3)), np.zeros(3, int)),
            ValueError,
            r"targets must have shape \(2,\) \(logits without the class axis\), got \(3,\)",
        ),
        (
            lambda: cross_entropy(np.ones((2, 3)), np.array([0, 3])),
            ValueError,
            r"targets must lie in \[0, 3\) at valid positions, got values in \[0, 3\]",
        ),
        (
            lambda: cross_entropy(np.ones((2, 2, 3)), np.zeros((2, 2), int), np.array([1, 3])),
            ValueError,
            r"lengths must lie in \[0, 2\], got values in \[1, 3\]",
        ),
        (
            lambda: cross_entropy(np.ones((2, 3)), np.zeros(2, int), np.array([1, 1])),
            ValueError,
            r"lengths needs time-major logits",
        ),
        (
            lambda: cross_entropy(np.ones(3), np.zeros((), int)),
            ValueError,
            r"logits must have shape \(N, C\) or \(T, B, C\), got \(3,\)",
        ),
        (
            lambda: cross_entropy(np.ones((2, 3)), np.zeros(2, int), reduction="max"),
            ValueError,
            r"reduction must be 'mean' or 'sum', got 'max'",
        ),
        (
            lambda: mse_loss(np.ones(3), np.ones(4)),
            ValueError,
            r"target must have pred's shape \(3,\), got \(4,\)",
        ),
        (
            lambda: mse_loss(np.ones(3), np.ones(3), mask=np.ones(3)),
            TypeError,
            r"mask must be a bool array, got dtype float64",
        ),
    ],
)
def test_bad_inputs_name_the_argument_expected_and_given(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()
