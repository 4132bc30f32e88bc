"""The finite-difference checker: it passes a correct gradient and rejects wrong ones."""

import numpy as np
import pytest
from gradcheck import assert_close, check_grads, tolerance


def f(p):
    """sum(sin(a) * b**2) + sum(a @ W) with a (3, 4), b (3, 4), W (4, 50)."""
    return float(np.sum(np.sin(p["a"]) * p["b"] ** 2) + np.sum(p["a"] @ p["W"]))


def true_grads(p):
    return {
        "a": np.cos(p["a"]) * p["b"] ** 2 + p["W"].sum(axis=1)[None, :],
        "b": 2 * np.sin(p["a"]) * p["b"],
        "W": np.repeat(p["a"].sum(axis=0)[:, None], p["W"].shape[1], axis=1),
    }


@pytest.fixture
def point():
    rng = np.random.default_rng(1)
    return {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=(3, 4)), "W": rng.normal(size=(4, 50))}


def test_checker_passes_a_correct_gradient_at_every_coordinate_and_in_random_directions(point):
    worst = check_grads(f, point, true_grads(point))  # a, b: every coordinate; W (200 > 32): directions
    assert set(worst) == {"a", "b", "W", "<all>"}
    assert max(worst.values()) < 1e-8


def test_checker_rejects_one_wrong_coordinate_and_names_it(point):
    g = true_grads(point)
    g["b"][2, 1] += 1e-3
    with pytest.raises(AssertionError, match=r"'b' wrong at index \(2, 1\)"):
        check_grads(f, point, g)


def test_checker_rejects_a_wrong_gradient_of_a_large_array_through_random_directions(point):
    g = true_grads(point)
    g["W"][1, 7] += 0.5  # one coordinate out of 200, seen only through directions
    with pytest.raises(AssertionError, match=r"'W' wrong at random direction"):
        check_grads(f, point, g)


def test_checker_rejects_gradients_swapped_between_arguments(point):
    g = true_grads(point)
    g["a"], g["b"] = g["b"], g["a"]
    with pytest.raises(AssertionError, match="wrong at"):
        check_grads(f, point, g)


def test_checker_rejects_a_wrong_shape_and_a_nan(point):
    g = true_grads(point)
    with pytest.raises(AssertionError, match="shape"):
        check_grads(f, point, {"a": g["a"].T})
    g["a"][0, 0] = np.nan
    with pytest.raises(AssertionError, match=r"'a' wrong at index \(0, 0\)"):
        check_grads(f, point, {"a": g["a"]})


def test_checker_does_not_modify_its_arguments(point):
    before = {k: v.copy() for k, v in point.items()}
    check_grads(f, point, true_grads(point))
    for k in point:
        assert np.array_equal(point[k], before[k])


def test_assert_close_reports_the_largest_difference_and_its_index():
    expected = np.zeros((2, 3), np.float32)
    actual = expected.copy()
    actual[1, 2] = 1e-2
    actual[0, 0] = 1e-3
    with pytest.raises(AssertionError, match=r"largest difference 1\.000e-02 at index \(1, 2\)"):
        assert_close(actual, expected, "out")
    assert_close(expected + tolerance(np.float32) / 2, expected, "out")
    assert tolerance(np.float64) < 1e-9 < tolerance(np.float32) < 1e-4
