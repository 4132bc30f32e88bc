"""Kernel and executor cases run with NUMBA_BOUNDSCHECK=1 (by tests/test_boundscheck.py, in a subprocess
with a fresh NUMBA_CACHE_DIR): an out-of-bounds index in any jitted kernel then raises IndexError instead of
reading or writing past an array. Not collected by a plain ``pytest`` (the file name has no ``test_``
prefix); run it directly with ``NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR=$(mktemp -d) pytest
tests/boundscheck_cases.py``.

Few configurations, chosen so every jitted kernel compiles once per dtype: every cell, both executors, two
layers, both directions, unsorted lengths with 0, the dynamic executor's in-jit time loop (B <= 8) and its
per-step path (B > 8), inference and training (forward and backward), float32 and float64.
"""

import os

import numpy as np
import pytest
from graphrnn.kernels import cpu, masked, reference

import graphrnn
from graphrnn import dynamic

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
DTYPES = (np.float32, np.float64)
T, I, H = 5, 3, 4
SMALL = np.array([3, 0, 5])  # B = 3: the in-jit time loop
LARGE = np.array([5, 0, 2, 5, 1, 3, 0, 4, 5, 2])  # B = 10 > JIT_LOOP_MAX_BATCH: the per-step path
assert len(LARGE) > dynamic.JIT_LOOP_MAX_BATCH >= len(SMALL)


def make(cell, dtype):
    kw = dict(num_layers=2, bidirectional=True, dtype=dtype, seed=1)
    if cell == "lstm":
        return graphrnn.LSTM(I, H, **kw)
    if cell == "gru":
        return graphrnn.GRU(I, H, **kw)
    return graphrnn.RNN(I, H, nonlinearity=cell[4:], **kw)


def tol(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-10)


def test_bounds_checking_is_on_and_the_kernels_were_compiled_with_it():
    """A deliberately out-of-range row count must raise (a kernel served unchecked from a warm cache
    would read past the end instead). The arrays are views into larger ones, so the unchecked read
    would still touch valid memory."""
    assert os.environ.get("NUMBA_BOUNDSCHECK") == "1"
    big = np.zeros((4, H))
    xw, gh, h, out = big[:2].copy(), big[:2].copy(), np.zeros((4, H))[:2], np.zeros((4, H))[:2]
    with pytest.raises(IndexError):
        cpu.rnn_cell_forward(xw, gh, 3, False, h, out)  # nb = 3 rows of a 2-row batch


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
def test_both_executors_match_the_reference_forward_and_backward_with_bounds_checks(cell, dtype):
    m = make(cell, dtype)
    rng = np.random.default_rng(0)
    for lengths in (SMALL, LARGE):
        B = len(lengths)
        x = rng.standard_normal((T, B, I)).astype(dtype)
        x[np.arange(T)[:, None] >= lengths[None, :]] = 0
        want, want_h, _ = reference.stack_forward(m.spec, m.params, x, lengths, None, None, None)
        g_out = rng.standard_normal(want.shape)
        grads = {}
        for executor in ("dynamic", "static") if B == len(SMALL) else ("dynamic",):
            out, state = m(x, lengths, executor=executor)  # inference: scratch buffers of one step
            np.testing.assert_allclose(out, want, **tol(dtype))
            out, state, tape = m.forward(x, lengths, executor=executor)
            np.testing.assert_allclose(out, want, **tol(dtype))
            h_n = state[0] if cell == "lstm" else state
            np.testing.assert_allclose(h_n, want_h, **tol(dtype))
            grads[executor] = m.backward(tape, g_out, state)  # grad_state of the right structure
        if "static" in grads:
            for k in grads["dynamic"]:
                np.testing.assert_allclose(grads["dynamic"][k], grads["static"][k], **tol(dtype), err_msg=k)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_length_1_sequences_and_batch_of_one_run_with_bounds_checks(dtype):
    for cell in CELLS:
        m = make(cell, dtype)
        x = np.ones((1, 1, I), dtype)
        for executor in ("dynamic", "static"):
            out, _, tape = m.forward(x, executor=executor)
            m.backward(tape, np.ones_like(out))
            assert np.isfinite(out).all()


def test_masked_kernels_keep_masked_rows_with_bounds_checks():
    """The static executor's fused kernels called directly, mask with zeros, both dtypes (the same
    compiled signatures the static plans use)."""
    for dtype in DTYPES:
        rng = np.random.default_rng(0)
        B = 4
        mask = np.array([1, 0, 1, 0], np.uint8)
        h_prev = rng.standard_normal((B, H)).astype(dtype)
        xw, gh = (rng.standard_normal((B, 4 * H)).astype(dtype) for _ in range(2))
        c_prev = rng.standard_normal((B, H)).astype(dtype)
        h, c, gates = np.empty((B, H), dtype), np.empty((B, H), dtype), np.empty((B, 4 * H), dtype)
        masked.lstm_masked_fwd(xw, gh, c_prev, h_prev, mask, h, c, gates)
        np.testing.assert_array_equal(h[1], h_prev[1])
        np.testing.assert_array_equal(c[3], c_prev[3])
