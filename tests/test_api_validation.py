"""Bad inputs are refused before any kernel runs, with a message that names the argument, what was expected
and what was given; float inputs of another precision are cast to the model's dtype."""

import numpy as np
import pytest

import graphrnn

T, B, I, H = 4, 3, 2, 3


def lstm(**kw):
    return graphrnn.LSTM(I, H, seed=0, **kw)


def gru(**kw):
    return graphrnn.GRU(I, H, seed=0, **kw)


def x_ok(dtype=np.float32):
    return np.ones((T, B, I), dtype=dtype)


def h_ok(L=1, D=1, b=B):
    return np.zeros((L * D, b, H), np.float32)


def message_names(exc, *parts, any_of=()):
    """The message contains every one of ``parts`` and, when given, at least one of ``any_of``."""
    msg = str(exc.value)
    for p in parts:
        assert p in msg, f"message {msg!r} does not mention {p!r}"
    if any_of:
        assert any(p in msg for p in any_of), f"message {msg!r} mentions none of {any_of}"


# ----------------------------------------------------------------------------------------------------- x


@pytest.mark.parametrize("executor", ("dynamic", "static"))
@pytest.mark.parametrize(
    "bad, given",
    [
        (np.ones((T, B, I), dtype=np.int64), "int64"),
        (np.ones((T, B, I), dtype=bool), "bool"),
        (np.ones((T, B, I), dtype=np.complex128), "complex128"),
        (np.ones((T, B, I), dtype=object), "object"),
        ([[[1, 2]] * B] * T, "int"),  # a nested list of ints
    ],
    ids=["int", "bool", "complex", "object", "int-list"],
)
def test_non_float_x_is_a_type_error_naming_x_and_its_dtype(bad, given, executor):
    m = gru()
    with pytest.raises(TypeError) as e:
        m(bad, executor=executor)
    message_names(e, "x", given, any_of=("float",))
    with pytest.raises(TypeError):
        m.forward(bad, executor=executor)


@pytest.mark.parametrize("shape", [(T,), (2, T, B, I), ()], ids=["1-D", "4-D", "0-D"])
def test_x_of_the_wrong_rank_is_a_value_error(shape):
    with pytest.raises(ValueError) as e:
        gru()(np.ones(shape, np.float32))
    message_names(e, "x", str(shape), any_of=("(T, B, I)", "3", "(T, I)"))


def test_x_with_the_wrong_feature_count_is_a_value_error_naming_both_counts():
    with pytest.raises(ValueError) as e:
        gru()(np.ones((T, B, I + 3), np.float32))
    message_names(e, "x", str(I), str(I + 3))
    with pytest.raises(ValueError) as e:
        gru()(np.ones((T, I + 3), np.float32))  # unbatched
    message_names(e, "x", str(I), str(I + 3))


# ----------------------------------------------------------------------------------------------- lengths


@pytest.mark.parametrize(
    "lengths, given",
    [
        (np.array([2, -1, 3]), "-1"),
        (np.array([2, T + 1, 3]), str(T + 1)),
        (np.array([2, 3]), "(2,)"),
        (np.array([2, 3, 1, 1]), "(4,)"),
        (np.array([[2, 3, 1]]), "(1, 3)"),
    ],
    ids=["negative", "longer-than-T", "too-few", "too-many", "2-D"],
)
def test_bad_lengths_are_a_value_error_naming_lengths_and_the_value(lengths, given):
    for executor in ("dynamic", "static"):
        with pytest.raises(ValueError) as e:
            gru()(x_ok(), lengths, executor=executor)
        message_names(e, "lengths", given)


def test_lengths_longer_than_T_message_names_T():
    with pytest.raises(ValueError) as e:
        gru()(x_ok(), np.array([2, T + 1, 3]))
    message_names(e, "lengths", str(T))


@pytest.mark.parametrize("lengths", [np.array([2.0, 3.0, 1.0]), [2.5, 3, 1], np.array([True, True, False])],
                         ids=["float-array", "float-list", "bool"])
def test_non_integer_lengths_are_refused_naming_lengths(lengths):
    with pytest.raises((TypeError, ValueError)) as e:
        gru()(x_ok(), lengths)
    message_names(e, "lengths", any_of=("int",))


def test_lengths_with_unbatched_input_is_a_value_error():
    with pytest.raises(ValueError) as e:
        gru()(np.ones((T, I), np.float32), np.array([T]))
    message_names(e, "lengths", "unbatched")


# ---------------------------------------------------------------------------------------------------- hx


@pytest.mark.parametrize("shape", [(1, B + 1, H), (2, B, H), (1, B, H + 1), (B, H)])
def test_hx_of_the_wrong_shape_is_a_value_error_naming_hx_and_both_shapes(shape):
    with pytest.raises(ValueError) as e:
        gru()(x_ok(), None, np.zeros(shape, np.float32))
    message_names(e, "hx", str(shape), str((1, B, H)))


def test_lstm_h0_or_c0_of_the_wrong_shape_is_a_value_error():
    bad = np.zeros((1, B, H + 1), np.float32)
    for hx in ((bad, h_ok()), (h_ok(), bad)):
        with pytest.raises(ValueError) as e:
            lstm()(x_ok(), None, hx)
        message_names(e, "hx", str(bad.shape), str((1, B, H)))


@pytest.mark.parametrize("hx", [h_ok(), (h_ok(), None), (None, h_ok()), (h_ok(),)],
                         ids=["bare-array", "c0-None", "h0-None", "1-tuple"])
def test_lstm_hx_must_be_a_tuple_of_two_arrays(hx):
    with pytest.raises(TypeError) as e:
        lstm()(x_ok(), None, hx)
    message_names(e, "hx", any_of=("tuple",))


def test_gru_hx_given_as_a_tuple_is_a_type_error():
    with pytest.raises(TypeError) as e:
        gru()(x_ok(), None, (h_ok(),))
    message_names(e, "hx", "tuple")


def test_integer_hx_is_a_type_error():
    with pytest.raises(TypeError) as e:
        gru()(x_ok(), None, np.zeros((1, B, H), np.int32))
    message_names(e, "hx", "int32")


# ------------------------------------------------------------------------------------------- executor etc


@pytest.mark.parametrize("executor", ["Dynamic", "cuda-typo", "", None, 1])
def test_unknown_executor_is_a_value_error_listing_the_choices(executor):
    with pytest.raises(ValueError) as e:
        gru()(x_ok(), executor=executor)
    message_names(e, "executor", "dynamic", "static", repr(executor))


@pytest.mark.parametrize("static_len", [0, -2])
def test_static_len_below_1_is_a_value_error(static_len):
    with pytest.raises(ValueError) as e:
        gru()(x_ok(), executor="static", static_len=static_len)
    message_names(e, "static_len", str(static_len))


# ------------------------------------------------------------------------------------------------ backward


@pytest.mark.parametrize("batch_first", (False, True))
def test_grad_output_of_the_wrong_shape_is_a_value_error_naming_both_shapes(batch_first):
    m = gru(batch_first=batch_first)
    x = np.ones((B, T, I) if batch_first else (T, B, I), np.float32)
    out, _, tape = m.forward(x)
    wrong = out.transpose(1, 0, 2)  # the other layout
    with pytest.raises(ValueError) as e:
        m.backward(tape, wrong)
    message_names(e, "grad_output", str(wrong.shape), str(out.shape))


def test_grad_state_of_the_wrong_shape_is_a_value_error():
    m = lstm()
    _, _, tape = m.forward(x_ok())
    bad = np.zeros((1, B + 1, H), np.float32)
    with pytest.raises(ValueError) as e:
        m.backward(tape, None, (bad, None))
    message_names(e, "grad_state", str(bad.shape), str((1, B, H)))
    m = gru()
    _, _, tape = m.forward(x_ok())
    with pytest.raises(ValueError) as e:
        m.backward(tape, None, bad)
    message_names(e, "grad_state", str(bad.shape), str((1, B, H)))


def test_integer_grad_output_is_a_type_error():
    m = gru()
    out, _, tape = m.forward(x_ok())
    with pytest.raises(TypeError) as e:
        m.backward(tape, np.zeros(out.shape, np.int64))
    message_names(e, "grad_output", "int64")


def test_backward_without_a_tape_is_a_type_error():
    m = gru()
    with pytest.raises(TypeError) as e:
        m.backward(None, np.zeros((T, B, H), np.float32))
    message_names(e, "tape")


# ---------------------------------------------------------------------------------------------- state_dict


def test_load_state_dict_with_a_missing_key_names_it():
    m = lstm()
    sd = m.state_dict()
    del sd["weight_hh_l0"]
    with pytest.raises(ValueError) as e:
        m.load_state_dict(sd)
    message_names(e, "weight_hh_l0", "missing")


def test_load_state_dict_with_an_extra_key_names_it():
    m = lstm()
    sd = m.state_dict()
    sd["weight_ih_l1"] = np.zeros((4 * H, H), np.float32)
    with pytest.raises(ValueError) as e:
        m.load_state_dict(sd)
    message_names(e, "weight_ih_l1", any_of=("unexpected", "extra"))


def test_load_state_dict_with_a_wrong_shape_names_the_key_and_both_shapes():
    m = lstm()
    before = m.state_dict()
    sd = m.state_dict()
    sd["bias_ih_l0"] = np.zeros(4 * H + 1, np.float32)
    sd["weight_ih_l0"] = sd["weight_ih_l0"] + 1  # must not be half-loaded when another key fails
    with pytest.raises(ValueError) as e:
        m.load_state_dict(sd)
    message_names(e, "bias_ih_l0", str((4 * H + 1,)), str((4 * H,)))
    for k, v in before.items():
        assert np.array_equal(m.params[k], v), f"{k} changed by a failed load_state_dict"


def test_load_state_dict_with_integer_arrays_is_a_type_error():
    m = gru()
    sd = {k: np.zeros(v.shape, np.int64) for k, v in m.state_dict().items()}
    with pytest.raises(TypeError) as e:
        m.load_state_dict(sd)
    message_names(e, "int64")


def test_load_state_dict_casts_float64_arrays_and_keeps_the_parameter_arrays():
    m = gru()
    live = dict(m.params)
    sd = {k: np.full(v.shape, 0.25, np.float64) for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    for k in live:
        assert m.params[k] is live[k], f"{k}: load_state_dict replaced the live array (optimisers hold it)"
        assert m.params[k].dtype == np.float32 and np.all(m.params[k] == 0.25)


# ------------------------------------------------------------------------------------------------- casting


@pytest.mark.parametrize("executor", ("dynamic", "static"))
@pytest.mark.parametrize("cls", (graphrnn.RNN, graphrnn.LSTM, graphrnn.GRU))
def test_float64_inputs_to_a_float32_model_are_cast_and_outputs_are_float32(cls, executor):
    m = cls(I, H, num_layers=2, seed=0)
    x64 = np.random.default_rng(0).normal(size=(T, B, I))
    h64 = np.zeros((2, B, H))
    hx = (h64, h64) if cls is graphrnn.LSTM else h64
    out, st, tape = m.forward(x64, np.array([4, 0, 2]), hx, executor=executor)
    out32, _ = m(x64.astype(np.float32), np.array([4, 0, 2]), executor=executor)
    assert out.dtype == np.float32
    states = st if isinstance(st, tuple) else (st,)
    assert all(s.dtype == np.float32 for s in states)
    np.testing.assert_array_equal(out, out32)
    grads = m.backward(tape, np.ones(out.shape, np.float64))
    for k, g in grads.items():
        assert g.dtype == np.float32, f"grads[{k!r}] dtype {g.dtype}"


def test_float32_inputs_to_a_float64_model_give_float64():
    m = graphrnn.GRU(I, H, dtype=np.float64, seed=0)
    out, h_n = m(x_ok(np.float32), None, h_ok())
    assert out.dtype == np.float64 and h_n.dtype == np.float64


def test_step_on_a_bidirectional_model_is_refused():
    m = graphrnn.GRU(I, H, bidirectional=True, seed=0)
    with pytest.raises(ValueError) as e:
        m.step(np.ones((B, I), np.float32))
    message_names(e, "bidirectional")


@pytest.mark.parametrize("kw, name", [({"hidden_size": 0}, "hidden_size"), ({"num_layers": 0}, "num_layers"),
                                      ({"dropout": 1.5}, "dropout"), ({"dropout": -0.1}, "dropout")])
def test_bad_constructor_arguments_are_value_errors_naming_them(kw, name):
    args = dict(input_size=I, hidden_size=H)
    args.update(kw)
    with pytest.raises(ValueError) as e:
        graphrnn.LSTM(**args)
    message_names(e, name, str(kw[name]))


def test_unknown_nonlinearity_is_a_value_error():
    with pytest.raises(ValueError) as e:
        graphrnn.RNN(I, H, nonlinearity="sigmoid")
    message_names(e, "nonlinearity", "sigmoid", "tanh", "relu")


def test_step_with_the_wrong_feature_count_names_x_t_and_the_shape_given():
    with pytest.raises(ValueError, match=r"x_t must have shape \(B, 4\) or \(4,\), got \(2, 3\)"):
        graphrnn.LSTM(4, 5).step(np.ones((2, 3), np.float32))


@pytest.mark.parametrize("path", [123, None])
def test_load_of_a_non_path_is_a_type_error_naming_the_argument(path):
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        graphrnn.load(path)
