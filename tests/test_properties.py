"""Property tests over random configurations, shapes and lengths (hypothesis), edge cases included.

Properties: static == dynamic; permuting the batch permutes the results; values in padded positions
change nothing; nothing crashes. Shapes stay tiny: the point is coverage of configurations, not size.
"""

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphrnn

CELLS = {"rnn_tanh": (graphrnn.RNN, {"nonlinearity": "tanh"}), "rnn_relu": (graphrnn.RNN, {"nonlinearity": "relu"}),
         "lstm": (graphrnn.LSTM, {}), "gru": (graphrnn.GRU, {})}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cases(draw):
    cell = draw(st.sampled_from(sorted(CELLS)))
    cls, extra = CELLS[cell]
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    model = cls(draw(st.integers(1, 4)), draw(st.integers(1, 5)), num_layers=draw(st.integers(1, 2)),
                bidirectional=draw(st.booleans()), bias=draw(st.booleans()), dtype=dtype,
                seed=draw(st.integers(0, 2**16)), **extra)
    T, B = draw(st.integers(0, 6)), draw(st.integers(0, 5))
    lengths = np.array(draw(st.lists(st.integers(0, T), min_size=B, max_size=B)), dtype=np.int64)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((T, B, model.spec.input_size)).astype(dtype)
    return model, x, lengths, rng


def _state_list(state):
    return list(state) if isinstance(state, tuple) else [state]


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)


@FUZZ
@given(cases())
def test_static_equals_dynamic_forward_and_backward(case):
    model, x, lengths, rng = case
    results = []
    for executor in ("dynamic", "static"):
        out, state, tape = model.forward(x, lengths, executor=executor)
        g_out = np.random.default_rng(1).standard_normal(out.shape)
        grads = model.backward(tape, g_out)
        results.append((out, _state_list(state), grads))
    (o1, s1, g1), (o2, s2, g2) = results
    t = tol(model.dtype)
    np.testing.assert_allclose(o1, o2, **t)
    for a, b in zip(s1, s2):
        np.testing.assert_allclose(a, b, **t)
    assert g1.keys() == g2.keys()
    for name in g1:
        np.testing.assert_allclose(g1[name], g2[name], **t, err_msg=f"gradient {name}")


@FUZZ
@given(cases(), st.sampled_from(["dynamic", "static"]))
def test_permuting_the_batch_permutes_the_results(case, executor):
    model, x, lengths, rng = case
    perm = rng.permutation(x.shape[1])
    out, state = model(x, lengths, executor=executor)
    out_p, state_p = model(x[:, perm], lengths[perm], executor=executor)
    t = tol(model.dtype)
    np.testing.assert_allclose(out_p, out[:, perm], **t)
    for a, b in zip(_state_list(state_p), _state_list(state)):
        np.testing.assert_allclose(a, b[:, perm], **t)


@FUZZ
@given(cases(), st.sampled_from(["dynamic", "static"]))
def test_values_in_padded_positions_change_nothing(case, executor):
    model, x, lengths, rng = case
    out, state = model(x, lengths, executor=executor)
    noisy = x.copy()
    pad = np.arange(x.shape[0])[:, None] >= lengths[None, :]
    noisy[pad] = rng.choice([1e4, -1e4, np.nan, np.inf], size=(int(pad.sum()), x.shape[2]))
    out_n, state_n = model(noisy, lengths, executor=executor)
    assert np.array_equal(out, out_n)
    for a, b in zip(_state_list(state), _state_list(state_n)):
        assert np.array_equal(a, b)
    assert not out[pad].any(), "padded outputs must be exactly zero"


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(sorted(CELLS)), st.sampled_from([np.float32, np.float64]), st.sampled_from([1e4, -1e4]))
def test_large_inputs_stay_finite_without_overflow_warnings(cell, dtype, scale):
    cls, extra = CELLS[cell]
    model = cls(3, 4, dtype=dtype, seed=0, **extra)
    x = (np.random.default_rng(0).standard_normal((5, 2, 3)) * scale).astype(dtype)
    with np.errstate(all="raise"):  # an overflow anywhere in NumPy code raises instead of warning
        out, _, tape = model.forward(x)
        grads = model.backward(tape, np.ones_like(out))
    if cell != "rnn_relu":  # relu is unbounded by definition; the others saturate
        assert np.isfinite(out).all()
        assert all(np.isfinite(g).all() for g in grads.values())


def test_calls_from_several_threads_match_serial_calls():
    model = graphrnn.LSTM(4, 8, num_layers=2, bidirectional=True, seed=3)
    rng = np.random.default_rng(0)
    jobs = [(rng.standard_normal((7, 3, 4)).astype(np.float32), rng.integers(0, 8, 3), ex)
            for ex in ("dynamic", "static") for _ in range(6)]
    serial = [model(x, lengths, executor=ex) for x, lengths, ex in jobs]
    results = [None] * len(jobs)

    def work(i):
        x, lengths, ex = jobs[i]
        results[i] = model(x, lengths, executor=ex)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for (o1, (h1, c1)), (o2, (h2, c2)) in zip(serial, results):
        assert np.array_equal(o1, o2) and np.array_equal(h1, h2) and np.array_equal(c1, c2)


# ------------------------------------------------------------------------ layouts, non-finite, bad input


LAYOUTS = {
    "fortran": np.asfortranarray,
    "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2] if a.size else a,
    "reversed": lambda a: np.flip(np.flip(a, 0).copy(), 0),
    "byte-swapped": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "read-only": lambda a: _read_only(a),
}


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@FUZZ
@given(cases(), st.sampled_from(["dynamic", "static"]), st.sampled_from(sorted(LAYOUTS)))
def test_any_memory_layout_gives_bit_identical_results(case, executor, layout):
    model, x, lengths, rng = case
    change = LAYOUTS[layout]
    out, state = model(x, lengths, executor=executor)
    out2, state2 = model(change(x), change(lengths), executor=executor)
    assert np.array_equal(out, out2)
    for a, b in zip(_state_list(state), _state_list(state2)):
        assert np.array_equal(a, b)


@FUZZ
@given(cases(), st.data())
def test_non_finite_inputs_give_the_same_nan_pattern_in_both_executors(case, data):
    model, x, lengths, rng = case
    if x.size:
        k = data.draw(st.integers(1, min(4, x.size)))
        flat = x.reshape(-1)
        flat[rng.choice(x.size, k, replace=False)] = rng.choice([np.nan, np.inf, -np.inf], size=k)
    results = []
    for executor in ("dynamic", "static"):
        with np.errstate(invalid="ignore"):  # relu keeps inf, and inf - inf is NaN (NumPy warns)
            out, state = model(x, lengths, executor=executor)
        results.append([out] + _state_list(state))
    for a, b in zip(*results):
        assert np.array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, **tol(model.dtype), equal_nan=True)


BAD_KINDS = ("x-dtype", "x-rank", "x-features", "x-ragged", "lengths-dtype", "lengths-range", "lengths-count",
             "lengths-ragged", "hx-shape", "hx-dtype", "hx-structure", "static_len", "executor", "train",
             "grad_output-shape", "grad_output-dtype", "grad_state-shape")


def _bad_calls(draw, kind, model, x, lengths):
    """One invalid call of this kind: (argument named in the message, callable)."""
    T, B, _ = x.shape
    L = model.spec.num_layers * model.spec.directions
    H = model.spec.hidden_size
    lstm = model.spec.has_cell_state
    wrong_dtype = draw(st.sampled_from([np.int32, np.int64, np.uint8, bool, np.complex64, object, "U3"]))
    h = np.zeros((L, B, H), model.dtype)

    def backward_with(**kw):
        out, _, tape = model.forward(x, lengths)
        return lambda: model.backward(tape, **kw)

    if kind == "x-dtype":
        return "x", lambda: model(x.astype(wrong_dtype))
    if kind == "x-rank":
        shape = draw(st.sampled_from([(), (3,), (1, 1, 1, 1), (2, 1, 1, 1, 1)]))
        return "x", lambda: model(np.zeros(shape, model.dtype))
    if kind == "x-features":
        features = model.spec.input_size + draw(st.sampled_from([-1, 1, 5]))  # 0 features when I = 1
        return "x", lambda: model(np.zeros((T, B, features), model.dtype))
    if kind == "x-ragged":
        return "x", lambda: model([[[0.0] * model.spec.input_size], [[0.0]] * 2])
    if kind == "lengths-dtype":
        return "lengths", lambda: model(x, np.asarray(lengths).astype(draw(st.sampled_from(
            [np.float32, np.float64, np.complex128, object, "U3"]))) if B else [0.5])
    if kind == "lengths-range":
        bad = draw(st.sampled_from([-1, T + 1, 2**40, -(2**40)]))
        return "lengths", lambda: model(x, np.full(max(B, 1), bad) if B else np.array([bad]))
    if kind == "lengths-count":
        n = draw(st.sampled_from([B + 1, B + 3] + ([B - 1] if B else [])))
        return "lengths", lambda: model(x, np.zeros(n, np.int64))
    if kind == "lengths-ragged":
        return "lengths", lambda: model(x, [[1], [1, 2]])
    if kind == "hx-shape":
        shape = draw(st.sampled_from([(L + 1, B, H), (L, B + 1, H), (L, B, H + 1), (B, H), (L, B, H, 1)]))
        bad = np.zeros(shape, model.dtype)
        return "hx", lambda: model(x, lengths, (bad, h) if lstm else bad)
    if kind == "hx-dtype":
        bad = h.astype(wrong_dtype)
        return "hx", lambda: model(x, lengths, (h, bad) if lstm else bad)
    if kind == "hx-structure":
        bad = draw(st.sampled_from(["list-of-one", "none-inside", "triple", "dict", "bare-or-tuple"]))
        value = {"list-of-one": [h], "none-inside": (h, None), "triple": (h, h, h), "dict": {"h": h},
                 "bare-or-tuple": h if lstm else (h, h)}[bad]
        return "hx", lambda: model(x, lengths, value)
    if kind == "static_len":
        bad = draw(st.sampled_from([0, -3, 2.5, "7", True] + ([T - 1] if T > 1 else [])))
        return "static_len", lambda: model(x, lengths, executor="static", static_len=bad)
    if kind == "executor":
        bad = draw(st.sampled_from(["Static", "", None, 3, "gpu"]))
        return "executor", lambda: model(x, lengths, executor=bad)
    if kind == "train":
        bad = draw(st.sampled_from([1, 0, "yes", None]))
        return "train", lambda: model.forward(x, lengths, train=bad)
    if kind == "grad_output-shape":
        return "grad_output", backward_with(grad_output=np.zeros((T + 1, B, model.spec.directions * H)))
    if kind == "grad_output-dtype":
        return "grad_output", backward_with(grad_output=np.zeros((T, B, model.spec.directions * H),
                                                                  wrong_dtype))
    bad = np.zeros((L, B + 1, H))
    return "grad_state", backward_with(grad_state=(bad, None) if lstm else bad)


@pytest.mark.parametrize("kind", BAD_KINDS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.data())
def test_any_bad_argument_is_a_type_or_value_error_naming_it(kind, case, data):
    model, x, lengths, _ = case
    name, call = _bad_calls(data.draw, kind, model, x, lengths)
    try:
        call()
    except (TypeError, ValueError) as e:
        assert name in str(e), f"{name!r} not named in {e!r}"
    else:
        raise AssertionError(f"a bad {name} was accepted")
