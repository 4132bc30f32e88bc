"""Property tests over random configurations, shapes and lengths (hypothesis), edge cases included.

Properties: static == dynamic; permuting the batch permutes the results; values in padded positions
change nothing; nothing crashes. Shapes stay tiny: the point is coverage of configurations, not size.
"""

import threading

import numpy as np
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
