"""Ring 1: every jitted CPU kernel against its plain NumPy twin (kernels/reference.py).

Rows < nb are computed; rows >= nb must be left untouched (finished sequences in a sorted batch).
"""

import numpy as np
import pytest

from graphrnn.kernels import cpu
from graphrnn.kernels import reference as ref

DTYPES = [np.float32, np.float64]
# (B, H, nb): one row; odd H; a batch whose tail rows have finished
SHAPES = [(1, 1, 1), (1, 5, 1), (4, 7, 2), (3, 3, 0)]


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)


def assert_close(actual, expected, dtype, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if actual.size:
        diff = np.abs(actual.astype(np.float64) - expected)
        where = np.unravel_index(np.argmax(diff), diff.shape)
        np.testing.assert_allclose(actual, expected, **tol(dtype),
                                   err_msg=f"{what}: largest difference {diff.max():.3g} at {where}")


def rand(rng, *shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,H,nb", SHAPES)
@pytest.mark.parametrize("relu", [False, True])
def test_rnn_cell_forward_and_backward_match_twin(dtype, B, H, nb, relu):
    rng = np.random.default_rng(1)
    xw, gh = rand(rng, B, H, dtype=dtype), rand(rng, B, H, dtype=dtype)
    h, out = rand(rng, B, H, dtype=dtype), np.zeros((B, H), dtype)
    h_before = h.copy()
    cpu.rnn_cell_forward(xw, gh, nb, relu, h, out)
    want = ref.rnn_step(xw[:nb], gh[:nb], "relu" if relu else "tanh")
    assert_close(h[:nb], want, dtype, "h'")
    assert_close(out[:nb], want, dtype, "out")
    assert np.array_equal(h[nb:], h_before[nb:]), "finished rows changed"

    g_out, dh, dpre = rand(rng, B, H, dtype=dtype), rand(rng, B, H, dtype=dtype), np.zeros((B, H), dtype)
    dh_in = dh.copy()
    cpu.rnn_cell_backward(g_out, out, nb, relu, dh, dpre)
    assert_close(dpre[:nb], ref.rnn_step_backward(g_out[:nb] + dh_in[:nb], out[:nb], "relu" if relu else "tanh"),
                 dtype, "dpre")
    assert not dpre[nb:].any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,H,nb", SHAPES)
def test_lstm_cell_forward_and_backward_match_twin(dtype, B, H, nb):
    rng = np.random.default_rng(2)
    xw, gh = rand(rng, B, 4 * H, dtype=dtype), rand(rng, B, 4 * H, dtype=dtype)
    h, c = rand(rng, B, H, dtype=dtype), rand(rng, B, H, dtype=dtype)
    c_prev, h_before = c.copy(), h.copy()
    out, gates = np.zeros((B, H), dtype), np.zeros((B, 4 * H), dtype)
    cpu.lstm_cell_forward(xw, gh, nb, h, c, out, gates)
    h_w, c_w, gates_w = ref.lstm_step(xw[:nb], gh[:nb], c_prev[:nb])
    assert_close(h[:nb], h_w, dtype, "h'")
    assert_close(c[:nb], c_w, dtype, "c'")
    assert_close(out[:nb], h_w, dtype, "out")
    assert_close(gates[:nb], gates_w, dtype, "gates")
    assert np.array_equal(h[nb:], h_before[nb:]) and np.array_equal(c[nb:], c_prev[nb:])

    g_out, dh, dc = (rand(rng, B, H, dtype=dtype) for _ in range(3))
    dh_in, dc_in, dpre = dh.copy(), dc.copy(), np.zeros((B, 4 * H), dtype)
    cpu.lstm_cell_backward(g_out, gates, c, c_prev, nb, dh, dc, dpre)
    dpre_w, dc_w = ref.lstm_step_backward(g_out[:nb] + dh_in[:nb], dc_in[:nb], gates_w, c_w, c_prev[:nb])
    assert_close(dpre[:nb], dpre_w, dtype, "dpre")
    assert_close(dc[:nb], dc_w, dtype, "dc_prev")
    assert np.array_equal(dc[nb:], dc_in[nb:])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,H,nb", SHAPES)
def test_gru_cell_forward_and_backward_match_twin(dtype, B, H, nb):
    rng = np.random.default_rng(3)
    xw, gh, b_hh = rand(rng, B, 3 * H, dtype=dtype), rand(rng, B, 3 * H, dtype=dtype), rand(rng, 3 * H, dtype=dtype)
    h = rand(rng, B, H, dtype=dtype)
    h_prev = h.copy()
    out, gates, ghn = np.zeros((B, H), dtype), np.zeros((B, 3 * H), dtype), np.zeros((B, H), dtype)
    cpu.gru_cell_forward(xw, gh, b_hh, nb, h, out, gates, ghn)
    h_w, gates_w = ref.gru_step(xw[:nb], gh[:nb] + b_hh, h_prev[:nb])
    assert_close(h[:nb], h_w, dtype, "h'")
    assert_close(gates[:nb], gates_w, dtype, "gates")
    assert_close(ghn[:nb], (gh[:, 2 * H:] + b_hh[2 * H:])[:nb], dtype, "W_hn h + b_hn")
    assert np.array_equal(h[nb:], h_prev[nb:])

    g_out, dh = rand(rng, B, H, dtype=dtype), rand(rng, B, H, dtype=dtype)
    dh_in = dh.copy()
    dxw, dgh = np.zeros((B, 3 * H), dtype), np.zeros((B, 3 * H), dtype)
    cpu.gru_cell_backward(g_out, gates, ghn, h_prev, nb, dh, dxw, dgh)
    dxw_w, dgh_w, direct_w = ref.gru_step_backward(g_out[:nb] + dh_in[:nb], gates_w, ghn[:nb], h_prev[:nb])
    assert_close(dxw[:nb], dxw_w, dtype, "dxw")
    assert_close(dgh[:nb], dgh_w, dtype, "dgh")
    assert_close(dh[:nb], direct_w, dtype, "direct dh")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("accumulate", [False, True])
def test_matmul_rows_matches_numpy_on_prefix(dtype, accumulate):
    rng = np.random.default_rng(4)
    a, w, out = rand(rng, 5, 7, dtype=dtype), rand(rng, 7, 9, dtype=dtype), rand(rng, 5, 9, dtype=dtype)
    before = out.copy()
    cpu.matmul_rows(a, w, 3, out, accumulate)
    want = a[:3].astype(np.float64) @ w + (before[:3] if accumulate else 0)
    assert_close(out[:3], want, dtype, "a @ w")
    assert np.array_equal(out[3:], before[3:])


def _seq_case(rng, cell, T, B, H, dtype):
    """A sorted-by-length batch (the layout the dynamic executor hands the sequence kernels)."""
    G = {"lstm": 4, "gru": 3}.get(cell, 1)
    lengths = np.sort(rng.integers(0, T + 1, size=B))[::-1].copy()
    lengths[0] = T
    batch_sizes = (lengths[None, :] > np.arange(T)[:, None]).sum(1).astype(np.int64)
    W_hh = rand(rng, G * H, H, dtype=dtype) * dtype(0.5)
    xw = rand(rng, T, B, G * H, dtype=dtype)
    return lengths, batch_sizes, W_hh, xw


def _twin_sequence(cell, xw, W_hh, b_hh, lengths, h0, c0):
    """The whole-sequence twin: a masked loop over NumPy steps."""
    T, B, _ = xw.shape
    h, c = h0.copy(), (c0.copy() if c0 is not None else None)
    out = np.zeros((T, B, h.shape[1]), dtype=xw.dtype)
    for t in range(T):
        run = (t < lengths)[:, None]
        gh = h @ W_hh.T + (b_hh if b_hh is not None else 0)
        if cell == "lstm":
            hn, cn, _ = ref.lstm_step(xw[t], gh, c)
            c = np.where(run, cn, c)
        elif cell == "gru":
            hn, _ = ref.gru_step(xw[t], gh, h)
        else:
            hn = ref.rnn_step(xw[t], gh, "relu" if cell == "rnn_relu" else "tanh")
        h = np.where(run, hn, h)
        out[t] = np.where(run, hn, 0)
    return out, h, c


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("T,B,H", [(1, 1, 3), (6, 4, 5)])
@pytest.mark.parametrize("keep", [True, False])
def test_sequence_kernels_match_masked_twin_loop(dtype, cell, T, B, H, keep):
    rng = np.random.default_rng(5)
    lengths, batch_sizes, W_hh, xw = _seq_case(rng, cell, T, B, H, dtype)
    h0 = rand(rng, B, H, dtype=dtype)
    h, c = h0.copy(), rand(rng, B, H, dtype=dtype)
    c0 = c.copy()
    out = np.zeros((T, B, H), dtype)
    W_hhT = np.ascontiguousarray(W_hh.T)
    steps = T if keep else 1
    b_hh = None
    if cell == "lstm":
        c_all = np.zeros((T if keep else 0, B, H), dtype)
        cpu.lstm_forward_seq(xw, W_hhT, batch_sizes, h, c, out, c_all, np.zeros((steps, B, 4 * H), dtype))
    elif cell == "gru":
        b_hh = rand(rng, 3 * H, dtype=dtype)
        cpu.gru_forward_seq(xw, W_hhT, b_hh, batch_sizes, h, out, np.zeros((steps, B, 3 * H), dtype),
                            np.zeros((steps, B, H), dtype))
    else:
        cpu.rnn_forward_seq(xw, W_hhT, batch_sizes, cell == "rnn_relu", h, out)
    out_w, h_w, c_w = _twin_sequence(cell, xw, W_hh, b_hh, lengths, h0, c0 if cell == "lstm" else None)
    assert_close(out, out_w, dtype, "out")
    assert_close(h, h_w, dtype, "h_n")
    if cell == "lstm":
        assert_close(c, c_w, dtype, "c_n")


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_sequence_backward_kernels_agree_with_python_step_loop(cell):
    """The in-jit time loop and the Python loop over cell kernels (+ NumPy product) give the same BPTT."""
    from graphrnn import dynamic
    from graphrnn.cells import StackSpec, init_params

    rng = np.random.default_rng(6)
    spec = StackSpec(cell, 3, 4, dtype="float64")
    params = init_params(spec, rng)
    results = []
    for limit in (10**6, 0):  # everything in jit, then everything through the Python loop
        old, dynamic.JIT_LOOP_MAX_BATCH = dynamic.JIT_LOOP_MAX_BATCH, limit
        try:
            x = np.random.default_rng(7).standard_normal((5, 3, 3))
            lengths = np.array([2, 5, 0])
            h0 = np.zeros((1, 3, 4))
            c0 = np.zeros((1, 3, 4)) if cell == "lstm" else None
            out, h_n, c_n, tape = dynamic.forward(spec, params, x, lengths, h0, c0, None, True)
            g = np.random.default_rng(8)
            grads = dynamic.backward(tape, g.standard_normal(out.shape), g.standard_normal(h_n.shape),
                                     g.standard_normal(h_n.shape) if cell == "lstm" else None)
            results.append((out, h_n, grads))
        finally:
            dynamic.JIT_LOOP_MAX_BATCH = old
    (o1, h1, g1), (o2, h2, g2) = results
    assert_close(o1, o2, np.float64, "out")
    assert_close(h1, h2, np.float64, "h_n")
    for name in g1:
        assert_close(g1[name], g2[name], np.float64, f"grad {name}")
