"""Inputs the models take that are legal but unusual: non-contiguous, read-only, byte-swapped and
broadcast arrays (accepted, copied only when needed, never written), and NaN / inf values (the NaN
policy: they propagate exactly as in the NumPy reference; nothing crashes, nothing hangs)."""

import itertools

import numpy as np
import pytest
from graphrnn.kernels import reference

import graphrnn
from graphrnn.modules import as_float_array

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
EXECUTORS = ("dynamic", "static")
T, B, I, H = 5, 3, 3, 4


def make(cell, **kw):
    kw.setdefault("seed", 0)
    if cell == "lstm":
        return graphrnn.LSTM(I, H, **kw)
    if cell == "gru":
        return graphrnn.GRU(I, H, **kw)
    return graphrnn.RNN(I, H, nonlinearity=cell[4:], **kw)


def states(m, state):
    return list(state) if m.spec.has_cell_state else [state]


def hx_of(m, h, c):
    return (h, c) if m.spec.has_cell_state else h


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)


# ----------------------------------------------------------------------------------- unusual layouts


def fortran(a):
    return np.asfortranarray(a)


def strided(a):
    """The same values as a view with gaps between elements (every other entry of a bigger array)."""
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def reversed_view(a):
    """The same values through a view with negative strides."""
    return np.flip(np.flip(a, 0).copy(), 0)


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def byte_swapped(a):
    return a.astype(a.dtype.newbyteorder(">" if a.dtype.byteorder in "=<|" else "<"))


LAYOUTS = {
    "fortran": fortran,
    "strided": strided,
    "negative-strides": reversed_view,
    "read-only": read_only,
    "byte-swapped": byte_swapped,
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("executor", EXECUTORS)
def test_unusual_layouts_of_every_input_give_the_same_results_as_contiguous_arrays(layout, executor):
    change = LAYOUTS[layout]
    rng = np.random.default_rng(0)
    for cell, batch_first in (("lstm", False), ("gru", True)):
        m = make(cell, num_layers=2, bidirectional=True, batch_first=batch_first)
        x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(np.float32)
        h = rng.standard_normal((4, B, H)).astype(np.float32)
        c = rng.standard_normal((4, B, H)).astype(np.float32)
        lengths = np.array([5, 0, 3])
        out, st, tape = m.forward(x, lengths, hx_of(m, h, c), executor=executor)
        g_out = rng.standard_normal(out.shape).astype(np.float32)
        grads = m.backward(tape, g_out, hx_of(m, h, c))
        args = [change(a) for a in (x, h, c, g_out)]
        out2, st2, tape2 = m.forward(args[0], change(lengths), hx_of(m, args[1], args[2]), executor=executor)
        grads2 = m.backward(tape2, args[3], hx_of(m, args[1], args[2]))
        np.testing.assert_array_equal(out2, out)
        for a, b in zip(states(m, st2), states(m, st)):
            np.testing.assert_array_equal(a, b)
        for k in grads:
            np.testing.assert_array_equal(grads2[k], grads[k], err_msg=k)
        assert out2.flags.c_contiguous and out2.flags.writeable and out2.dtype == np.float32


@pytest.mark.parametrize("executor", EXECUTORS)
def test_broadcast_inputs_with_zero_strides_are_accepted(executor):
    m = make("gru")
    x = np.broadcast_to(np.linspace(-1, 1, I, dtype=np.float32), (T, B, I))  # read-only, strides 0
    h = np.broadcast_to(np.float32(0.5), (1, B, H))
    out, h_n = m(x, None, h, executor=executor)
    want, _ = m(np.ascontiguousarray(x), None, np.full((1, B, H), 0.5, np.float32), executor=executor)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(out[:, 0], out[:, 1])  # identical rows stay identical


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cell", ("lstm", "rnn_tanh"))
def test_no_input_is_ever_written(cell, executor):
    """Every input made read-only: a write anywhere would raise; the values are unchanged afterwards."""
    m = make(cell, num_layers=2, bidirectional=True, dropout=0.5)
    rng = np.random.default_rng(1)
    arrays = [
        read_only(rng.standard_normal(s).astype(np.float32))
        for s in ((T, B, I), (4, B, H), (4, B, H), (T, B, 2 * H), (4, B, H))
    ]
    x, h, c, g_out, g_h = arrays
    lengths = read_only(np.array([2, 5, 0]))
    before = [a.copy() for a in arrays + [lengths]]
    out, _, tape = m.forward(x, lengths, hx_of(m, h, c), executor=executor, train=True)
    m.backward(tape, g_out, hx_of(m, g_h, g_h))
    for a, b in zip(arrays + [lengths], before):
        np.testing.assert_array_equal(a, b)


def test_a_contiguous_array_of_the_models_dtype_is_used_as_is_and_others_are_copied_once():
    x = read_only(np.ones((T, B, I), np.float32))
    assert as_float_array("x", x, np.float32) is x  # read-only is fine: nothing writes to it
    for other in (
        strided(np.ones((T, B, I), np.float32)),
        fortran(np.ones((T, B, I), np.float32)),
        np.ones((T, B, I), np.float64),
        byte_swapped(np.ones((T, B, I), np.float32)),
    ):
        got = as_float_array("x", other, np.float32)
        assert got is not other and got.flags.c_contiguous and got.dtype == np.float32
        assert not np.shares_memory(got, other)


def test_float16_and_longdouble_inputs_are_cast_like_any_other_float():
    m = make("gru")
    x = np.random.default_rng(0).standard_normal((T, B, I))
    want, _ = m(x.astype(np.float16).astype(np.float32))
    got, _ = m(x.astype(np.float16))
    np.testing.assert_array_equal(got, want)
    got, _ = m(x.astype(np.longdouble))
    np.testing.assert_array_equal(got, m(x.astype(np.float32))[0])


# ------------------------------------------------------------------------------------------ NaN policy


def with_non_finite(dtype):
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)
    x[2, 0, 1] = np.nan  # row 0 turns NaN from t = 2 on
    x[1, 1, 0] = np.inf  # row 1: tanh/sigmoid saturate; relu keeps inf, and inf - inf is NaN
    x[3, 2, 2] = -np.inf
    return x


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=("f32", "f64"))
@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cell", CELLS)
def test_nan_and_inf_propagate_exactly_as_in_the_numpy_reference(cell, executor, dtype):
    m = make(cell, num_layers=2, bidirectional=True, dtype=dtype)
    x = with_non_finite(dtype)
    h0 = np.zeros((4, B, H), dtype)
    h0[:, 2] = np.nan  # a NaN initial state of a length-0 row comes back unchanged
    lengths = np.array([5, 4, 0])
    c0 = np.zeros_like(h0) if cell == "lstm" else None
    with np.errstate(all="ignore"):
        want, want_h, _ = reference.stack_forward(
            m.spec,
            m.params,
            np.where((np.arange(T)[:, None] < lengths)[..., None], x, 0).astype(dtype),
            lengths,
            h0,
            c0,
            None,
        )
    with np.errstate(invalid="ignore"):  # relu keeps inf, and NumPy warns about the inf - inf it meets
        out, state, tape = m.forward(x, lengths, hx_of(m, h0, c0), executor=executor)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
    np.testing.assert_allclose(out, want, **tol(dtype), equal_nan=True)
    np.testing.assert_allclose(states(m, state)[0], want_h, **tol(dtype), equal_nan=True)
    assert np.isnan(out[2:, 0, :H]).all(), "the forward direction of row 0 is NaN from the NaN step on"
    assert not np.isnan(out[:, 1]).any() or cell == "rnn_relu"
    assert (out[:, 2] == 0).all() and np.isnan(states(m, state)[0][:, 2]).all()
    with np.errstate(all="ignore"):
        grads = m.backward(tape, np.ones_like(out))
    assert set(grads) >= set(m.params) and all(g.dtype == dtype for g in grads.values())


@pytest.mark.parametrize("executor", EXECUTORS)
def test_nan_propagates_quietly_without_floating_point_warnings(executor):
    """NaN operands raise no IEEE 'invalid' flag: even np.errstate(all='raise') lets them through."""
    for cell, dtype in itertools.product(CELLS, (np.float32, np.float64)):
        m = make(cell, num_layers=2, dtype=dtype)
        x = np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)
        x[1, 0, 0] = np.nan
        with np.errstate(all="raise"):
            out, _, tape = m.forward(x, executor=executor)
            m.backward(tape, np.ones_like(out))
        assert np.isnan(out[1:, 0]).all() and np.isfinite(out[:, 1:]).all()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_nan_row_never_leaks_into_other_rows_of_the_batch(executor):
    m = make("lstm", num_layers=2, bidirectional=True)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, 12, I)).astype(np.float32)  # 12 rows: the dynamic per-step path too
    clean, _ = m(x, executor=executor)
    x[:, 5] = np.nan
    dirty, (h_n, c_n) = m(x, executor=executor)
    others = np.arange(12) != 5
    np.testing.assert_array_equal(dirty[:, others], clean[:, others])
    assert np.isnan(dirty[:, 5]).all() and np.isnan(h_n[:, 5]).all() and np.isnan(c_n[:, 5]).all()


@pytest.mark.parametrize("cell", CELLS)
def test_nan_weights_give_nan_outputs_and_step_propagates_nan(cell):
    m = make(cell)
    m.params["weight_hh_l0"][0, 0] = np.nan
    out, _ = m(np.ones((T, B, I), np.float32))
    assert np.isnan(out[1:, :, 0]).all()  # the first unit sees W_hh[0, 0] * h from step 1 on
    out_t, _ = graphrnn.GRU(I, H, seed=0).step(np.full((B, I), np.nan, np.float32))
    assert np.isnan(out_t).all()


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cell", CELLS)
def test_grad_output_at_padded_positions_changes_nothing_even_nan(cell, executor):
    m = make(cell, num_layers=2, bidirectional=True, dtype=np.float64)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((T, B, I))
    lengths = np.array([2, 5, 0])
    g_out = rng.standard_normal((T, B, 2 * H))
    pad = np.arange(T)[:, None] >= lengths[None, :]
    _, _, tape = m.forward(x, lengths, executor=executor)
    clean = m.backward(tape, np.where(pad[..., None], 0.0, g_out))
    _, _, tape = m.forward(x, lengths, executor=executor)
    noisy = m.backward(tape, np.where(pad[..., None], np.nan, g_out))
    for k in clean:
        np.testing.assert_array_equal(noisy[k], clean[k], err_msg=k)
