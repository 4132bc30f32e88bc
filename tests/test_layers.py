"""Linear and Embedding: forward values, gradients vs central finite differences (float64), validation."""

import numpy as np
import pytest
from gradcheck import assert_close, numeric_grad

from graphrnn.layers import Embedding, Linear


def test_linear_computes_x_times_weight_transposed_plus_bias_on_the_last_axis():
    lin = Linear(3, 2, dtype=np.float64, seed=0)
    x = np.arange(24, dtype=np.float64).reshape(2, 4, 3)
    expected = x @ lin.params["weight"].T + lin.params["bias"]
    assert_close(lin(x), expected, "Linear forward", rtol=1e-15, atol=1e-13)
    assert lin(x).shape == (2, 4, 2)


def test_linear_initialisation_is_uniform_within_one_over_sqrt_fan_in_and_seeded():
    a, b = Linear(16, 8, seed=3), Linear(16, 8, seed=3)
    for name in ("weight", "bias"):
        assert np.array_equal(a.params[name], b.params[name])
        assert np.abs(a.params[name]).max() <= 1 / 4
        assert a.params[name].dtype == np.float32
    assert not np.array_equal(a.params["weight"], Linear(16, 8, seed=4).params["weight"])


@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradients_match_central_finite_differences(bias):
    rng = np.random.default_rng(0)
    lin = Linear(4, 3, bias=bias, dtype=np.float64, seed=1)
    x = rng.standard_normal((2, 5, 4))
    g_out = rng.standard_normal((2, 5, 3))
    y, tape = lin.forward(x)
    grads = lin.backward(tape, g_out)
    assert set(grads) == set(lin.params) | {"input"}

    def f():
        return float(np.sum(lin(x) * g_out))

    for name, p in lin.params.items():
        assert_close(grads[name], numeric_grad(f, p), f"d/d{name}", rtol=1e-6, atol=1e-8)
    assert_close(grads["input"], numeric_grad(f, x), "d/dinput", rtol=1e-6, atol=1e-8)


def test_linear_keeps_float32_when_built_float32_and_casts_float64_input():
    lin = Linear(3, 2, seed=0)
    y, tape = lin.forward(np.ones((4, 3), dtype=np.float64))
    assert y.dtype == np.float32
    grads = lin.backward(tape, np.ones((4, 2)))
    assert all(g.dtype == np.float32 for g in grads.values())


def test_embedding_looks_up_rows_for_any_index_shape():
    emb = Embedding(5, 3, dtype=np.float64, seed=0)
    idx = np.array([[0, 4], [2, 2], [1, 3]])
    out = emb(idx)
    assert out.shape == (3, 2, 3)
    assert np.array_equal(out[1, 0], emb.params["weight"][2])


def test_embedding_gradient_adds_repeated_indices_and_matches_finite_differences():
    rng = np.random.default_rng(1)
    emb = Embedding(4, 3, dtype=np.float64, seed=2)
    idx = np.array([[1, 1], [3, 1], [0, 1]])
    g_out = rng.standard_normal((3, 2, 3))
    _, tape = emb.forward(idx)
    grads = emb.backward(tape, g_out)
    expected_row1 = g_out[0, 0] + g_out[0, 1] + g_out[1, 1] + g_out[2, 1]
    assert_close(grads["weight"][1], expected_row1, "row 1", rtol=1e-14, atol=1e-14)
    assert np.array_equal(grads["weight"][2], np.zeros(3)), "an unused row gets no gradient"

    def f():
        return float(np.sum(emb(idx) * g_out))

    assert_close(grads["weight"], numeric_grad(f, emb.params["weight"]), "d/dweight", rtol=1e-6, atol=1e-8)


def test_load_state_dict_copies_in_place_and_is_strict_on_names_and_shapes():
    lin = Linear(3, 2, seed=0)
    w = lin.params["weight"]
    lin.load_state_dict({"weight": np.ones((2, 3)), "bias": np.zeros(2)})
    assert lin.params["weight"] is w and np.array_equal(w, np.ones((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"missing \['bias'\]"):
        lin.load_state_dict({"weight": np.ones((2, 3))})
    with pytest.raises(ValueError, match=r"state\['weight'\] must have shape \(2, 3\), got \(3, 2\)"):
        lin.load_state_dict({"weight": np.ones((3, 2)), "bias": np.zeros(2)})


@pytest.mark.parametrize(
    "make, exc, pattern",
    [
        (lambda: Linear(0, 2), ValueError, r"in_features must be an int >= 1, got 0"),
        (lambda: Linear(2.0, 2), TypeError, r"in_features must be an int >= 1, got float 2.0"),
        (lambda: Linear(2, 2, bias="yes"), TypeError, r"bias must be a bool, got str"),
        (lambda: Linear(2, 2, dtype=np.int32), TypeError, r"dtype must be float32 or float64, got int32"),
        (lambda: Embedding(3, -1), ValueError, r"embedding_dim must be an int >= 1, got -1"),
    ],
)
def test_bad_constructor_arguments_name_the_argument_and_what_was_given(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_bad_inputs_name_the_argument_expected_and_given():
    lin = Linear(3, 2)
    with pytest.raises(TypeError, match=r"x must be a float array, got dtype int64"):
        lin(np.ones((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\), got \(2, 4\)"):
        lin(np.ones((2, 4)))
    _, tape = lin.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"grad_output must have shape \(2, 2\), got \(2, 3\)"):
        lin.backward(tape, np.ones((2, 3)))
    emb = Embedding(5, 2)
    with pytest.raises(TypeError, match=r"indices must be an integer array, got dtype float64"):
        emb(np.array([1.0]))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 5\), got values in \[0, 5\]"):
        emb(np.array([0, 5]))
