"""A catalogue of bad inputs to the public entry points that the other validation tests leave out: ragged
nested lists, empty class axes, read-only parameters, optimizer state of the wrong kind, forged tapes.
Each is a TypeError or ValueError (never a NumPy or Python error that names nothing) whose message names
the argument and what was expected."""

import numpy as np
import pytest

import graphrnn
from graphrnn.layers import Embedding, Linear
from graphrnn.losses import cross_entropy, log_softmax, mse_loss, softmax
from graphrnn.optim import SGD, Adam, clip_grad_norm

RAGGED = [[1.0, 2.0], [1.0]]


def lstm():
    return graphrnn.LSTM(2, 3, seed=0)


def linear_tape():
    layer = Linear(2, 3, seed=0)
    return layer, layer.forward(np.ones((4, 2)))[1]


def adam_state(**change):
    state = {"exp_avg/w": np.zeros(2), "exp_avg_sq/w": np.zeros(2)}
    state.update(change)
    return state


BAD = {
    # models and executors
    "x ragged": (
        lambda: lstm()(RAGGED),
        ValueError,
        r"^x must be a float array, got a list that NumPy cannot",
    ),
    "x_t ragged": (lambda: lstm().step(RAGGED), ValueError, r"^x_t must be a float array"),
    "lengths ragged": (
        lambda: lstm()(np.ones((3, 2, 2)), [[1], [1, 2]]),
        ValueError,
        r"^lengths must be an integer array of shape \(2,\), got a list",
    ),
    "grad_output ragged": (
        lambda: (lambda m: m.backward(m.forward(np.ones((3, 2, 2)))[2], RAGGED))(lstm()),
        ValueError,
        r"^grad_output must be a float array",
    ),
    "state_dict value ragged": (
        lambda: (lambda m: m.load_state_dict({k: RAGGED for k in m.params}))(lstm()),
        ValueError,
        r"^state_dict\['weight_ih_l0'\] must be a float array",
    ),
    # losses
    "logits ragged": (lambda: cross_entropy(RAGGED, [0, 1]), ValueError, r"^logits must be a float array"),
    "targets ragged": (
        lambda: cross_entropy(np.ones((2, 3)), [[0], [1, 2]]),
        ValueError,
        r"^targets must be an integer array",
    ),
    "loss lengths ragged": (
        lambda: cross_entropy(np.ones((2, 2, 3)), np.zeros((2, 2), int), [[1], [1, 2]]),
        ValueError,
        r"^lengths must be an integer array of shape \(2,\)",
    ),
    "loss mask ragged": (
        lambda: cross_entropy(np.ones((2, 3)), [0, 1], mask=[[True], [True, False]]),
        ValueError,
        r"^mask must be a bool array",
    ),
    "no classes": (
        lambda: cross_entropy(np.ones((2, 0)), np.zeros(2, int)),
        ValueError,
        r"^logits must have at least one class along axis -1, got shape \(2, 0\)",
    ),
    "log_softmax no classes": (lambda: log_softmax(np.ones((2, 0))), ValueError, r"at least one class"),
    "softmax of a scalar": (lambda: softmax(np.float64(1.0)), ValueError, r"at least one class"),
    "mse pred ragged": (lambda: mse_loss(RAGGED, np.ones(2)), ValueError, r"^pred must be a float array"),
    "mse target object": (
        lambda: mse_loss(np.ones(2), np.array([1, None])),
        TypeError,
        r"^target must be a float array, got dtype object",
    ),
    # optimizers
    "read-only parameter": (
        lambda: Adam({"w": np.broadcast_to(np.zeros(1), (2,))}),
        ValueError,
        r"^params\['w'\] must be a writable array",
    ),
    "gradient None": (
        lambda: SGD({"w": np.zeros(2)}, lr=0.1).step({"w": None}),
        TypeError,
        r"^grads\['w'\] must be a float array, got dtype object",
    ),
    "gradient ragged": (
        lambda: Adam({"w": np.zeros(2)}).step({"w": RAGGED}),
        ValueError,
        r"^grads\['w'\] must be a float array",
    ),
    "gradient complex": (
        lambda: Adam({"w": np.zeros(2)}).step({"w": np.zeros(2, complex)}),
        TypeError,
        r"^grads\['w'\] must be a float array, got dtype complex128",
    ),
    "optimizer state of objects": (
        lambda: Adam({"w": np.zeros(2)}).load_state(adam_state(**{"exp_avg/w": np.array([None, None])}), 1),
        TypeError,
        r"^optimizer state 'exp_avg/w' must be a float array, got dtype object",
    ),
    "optimizer state of ints": (
        lambda: Adam({"w": np.zeros(2)}).load_state(adam_state(**{"exp_avg/w": np.zeros(2, int)}), 1),
        TypeError,
        r"must be a float array, got dtype int64",
    ),
    "optimizer state of strings": (
        lambda: Adam({"w": np.zeros(2)}).load_state(adam_state(**{"exp_avg/w": np.array(["a", "b"])}), 1),
        TypeError,
        r"must be a float array, got dtype <U1",
    ),
    "negative second moment": (
        lambda: Adam({"w": np.zeros(2)}).load_state(adam_state(**{"exp_avg_sq/w": -np.ones(2)}), 1),
        ValueError,
        r"^optimizer state 'exp_avg_sq/w' \(a running mean of squares\) must be >= 0",
    ),
    "clip a list": (
        lambda: clip_grad_norm({"w": [1.0]}, 1.0),
        TypeError,
        r"^grads\['w'\] must be a float ndarray",
    ),
    # layers
    "linear x ragged": (lambda: Linear(2, 3)(RAGGED), ValueError, r"^x must be a float array"),
    "linear 0-d x": (
        lambda: Linear(2, 3)(np.float32(1)),
        ValueError,
        r"^x must have shape \(\.\.\., 2\), got \(\)",
    ),
    "linear grad_output ragged": (
        lambda: (lambda lt: lt[0].backward(lt[1], RAGGED))(linear_tape()),
        ValueError,
        r"^grad_output must be a float array",
    ),
    "linear tape None": (
        lambda: Linear(2, 3).backward(None, np.ones((4, 3))),
        TypeError,
        r"^tape must be the second value returned by this Linear's forward\(\), got NoneType",
    ),
    "embedding tape forged": (
        lambda: Embedding(5, 3).backward("x", np.ones((2, 3))),
        TypeError,
        r"^tape must be the second value returned by this Embedding's forward\(\), got str",
    ),
    "embedding indices ragged": (
        lambda: Embedding(5, 3)([[1], [1, 2]]),
        ValueError,
        r"^indices must be an integer array",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_input_is_a_type_or_value_error_naming_the_argument(case):
    call, exc, pattern = BAD[case]
    with pytest.raises(exc, match=pattern) as e:
        call()
    assert type(e.value) in (TypeError, ValueError), type(e.value)


def test_a_failed_optimizer_step_changes_no_parameter():
    params = {"a": np.ones(2), "b": np.ones(3)}
    opt = Adam(params, lr=0.1)
    with pytest.raises(ValueError):
        opt.step({"a": np.ones(2), "b": RAGGED})
    assert opt.steps == 0 and all((p == 1).all() for p in params.values())
