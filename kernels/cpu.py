"""Jitted CPU kernels of the dynamic executor: cell steps and whole-sequence loops, forward and BPTT.

Layout shared by every kernel here (the dynamic executor prepares it):
- the batch is sorted by length, longest first, so the rows still running at step t are the prefix
  [0, nb) with nb = batch_sizes[t] (as in a packed sequence); finished rows are never computed;
- the reverse direction is run as a forward pass over each row reversed within its own length, so
  every kernel walks t = 0 .. T-1 and h_{t-1} of a running row is always out[t-1] (or h0);
- the input projection xw = x W_ih^T + b_ih (+ b_hh for RNN and LSTM) of all steps is hoisted out as one
  GEMM; a kernel adds only the recurrent product gh = h W_hh^T (+ b_hh for GRU, where the reset gate
  multiplies W_hn h + b_hn);
- state arrays h, c (B, H) are updated in place: they enter as h0, c0 and leave as h_n, c_n, and in the
  backward kernels dh, dc enter as dL/dh_n, dL/dc_n and leave as dL/dh0, dL/dc0.

Two ways to drive a sequence: ``*_forward_seq``/``*_backward_seq`` keep the time loop inside jitted code
with a hand-written row product (fastest at small batch, where per-step Python overhead dominates);
``*_cell_forward``/``*_cell_backward`` do one step's gate math and are called from a Python loop whose
recurrent product runs in NumPy's BLAS (fastest at larger batch). Both share the same cell functions.
Every kernel expects T >= 1 and B >= 1 (the executor handles empty inputs).
Letters: T steps, B batch, H hidden, G gates (RNN 1, LSTM 4 in order i f g o, GRU 3 in order r z n).
"""

from __future__ import annotations

import numpy as np

from graphrnn.kernels import gates
from graphrnn.kernels._jit import jit

# ------------------------------------------------------------------------------------- row products


@jit
def matmul_rows(a, w, nb, out, accumulate):
    """out[:nb] (+)= a[:nb] @ w for a (B, K), w (K, N), out (B, N): the in-jit product for small batch.

    The inner loop runs along contiguous rows of w and out, so LLVM vectorises it. Four rows of w at a
    time serve every batch row while they sit in L1, and cut the loads and stores of the out rows (the
    bottleneck of this axpy form) fourfold.
    """
    K, N = w.shape
    zero = out.dtype.type(0)
    if not accumulate:
        for b in range(nb):
            orow = out[b]
            for j in range(N):
                orow[j] = zero
    k = 0
    while k + 3 < K:
        w0, w1, w2, w3 = w[k], w[k + 1], w[k + 2], w[k + 3]
        for b in range(nb):
            orow, ar = out[b], a[b]
            a0, a1, a2, a3 = ar[k], ar[k + 1], ar[k + 2], ar[k + 3]
            for j in range(N):
                orow[j] += a0 * w0[j] + a1 * w1[j] + a2 * w2[j] + a3 * w3[j]
        k += 4
    while k < K:
        w0 = w[k]
        for b in range(nb):
            orow = out[b]
            a0 = a[b, k]
            for j in range(N):
                orow[j] += a0 * w0[j]
        k += 1


# One step over the running rows; the per-row equations are in kernels/gates.py (shared with masked.py).


@jit
def rnn_cell_forward(xw_t, gh, nb, relu, h, out_t):
    """h[:nb] = act(xw_t + gh) for rows < nb; out_t[:nb] = h[:nb]. xw_t, gh, h, out_t (B, H)."""
    for b in range(nb):
        gates.rnn_row_forward(xw_t[b], gh[b], relu, h[b])
        _copy(h[b], out_t[b])


@jit
def rnn_cell_backward(g_out_t, out_t, nb, relu, dh, dpre_t):
    """dpre_t[:nb] = (g_out_t + dh) * act'(.) from the saved output out_t. dh (B, H) is dL/dh_t in
    (excluding g_out_t) and is clobbered: the caller then sets dh[:nb] = dpre_t[:nb] @ W_hh.
    """
    for b in range(nb):
        _add(g_out_t[b], dh[b])
        gates.rnn_row_backward(dh[b], out_t[b], relu, dpre_t[b])


@jit
def lstm_cell_forward(xw_t, gh, nb, h, c, out_t, gates_t):
    """One LSTM step on rows < nb. xw_t, gh (B, 4H) pre-activations; h, c (B, H) state in place;
    out_t (B, H) gets h'; gates_t (B, 4H) gets the activated i, f, g, o for backward."""
    for b in range(nb):
        gates.lstm_row_forward(xw_t[b], gh[b], c[b], h[b], gates_t[b])
        _copy(h[b], out_t[b])


@jit
def lstm_cell_backward(g_out_t, gates_t, c_t, c_prev, nb, dh, dc, dpre_t):
    """BPTT through one LSTM step on rows < nb.

    dh, dc (B, H): dL/dh_t, dL/dc_t in (excluding g_out_t); dc leaves as dL/dc_{t-1} and dh is clobbered.
    dpre_t (B, 4H) gets the pre-activation gradients; the caller then sets dh[:nb] = dpre_t[:nb] @ W_hh.
    """
    for b in range(nb):
        _add(g_out_t[b], dh[b])
        gates.lstm_row_backward(dh[b], dc[b], gates_t[b], c_t[b], c_prev[b], dpre_t[b])


@jit
def gru_cell_forward(xw_t, gh, b_hh, nb, h, out_t, gates_t, ghn_t):
    """One GRU step on rows < nb. xw_t (B, 3H) = x W_ih^T + b_ih; gh (B, 3H) = h W_hh^T (bias added here);
    h (B, H) state in place; out_t gets h'; gates_t (B, 3H) gets r, z, n; ghn_t (B, H) gets W_hn h + b_hn."""
    for b in range(nb):
        gates.gru_row_forward(xw_t[b], gh[b], b_hh, h[b], gates_t[b], ghn_t[b])
        _copy(h[b], out_t[b])


@jit
def gru_cell_backward(g_out_t, gates_t, ghn_t, h_prev, nb, dh, dxw_t, dgh_t):
    """BPTT through one GRU step on rows < nb.

    dh (B, H): dL/dh_t in (excluding g_out_t), leaves holding the direct part dL/dh_{t-1} = dh * z; the
    caller then adds dgh_t[:nb] @ W_hh. dxw_t, dgh_t (B, 3H): gradients of the input-side and hidden-side
    pre-activations (they differ in the n block, where the reset gate multiplies the hidden side).
    """
    for b in range(nb):
        _add(g_out_t[b], dh[b])
        gates.gru_row_backward(dh[b], gates_t[b], ghn_t[b], h_prev[b], dxw_t[b], dgh_t[b])


@jit
def _copy(src, dst):
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@jit
def _add(src, dst):
    for j in range(dst.shape[0]):
        dst[j] += src[j]


# ---------------------------------------------------------------------------- whole sequences in jit


@jit
def rnn_forward_seq(xw, W_hhT, batch_sizes, relu, h, out):
    """xw (T, B, H) with both biases folded in; W_hhT (H, H); h (B, H) h0 -> h_n; out (T, B, H) zeros."""
    T = xw.shape[0]
    gh = np.empty_like(h)
    for t in range(T):
        nb = batch_sizes[t]
        matmul_rows(h, W_hhT, nb, gh, False)
        rnn_cell_forward(xw[t], gh, nb, relu, h, out[t])


@jit
def rnn_backward_seq(W_hh, g_out, out, batch_sizes, relu, dh, dpre):
    """dh (B, H) g_hn -> g_h0; dpre (T, B, H) zeros, gets the pre-activation gradients."""
    for t in range(g_out.shape[0] - 1, -1, -1):
        nb = batch_sizes[t]
        rnn_cell_backward(g_out[t], out[t], nb, relu, dh, dpre[t])
        matmul_rows(dpre[t], W_hh, nb, dh, False)


@jit
def lstm_forward_seq(xw, W_hhT, batch_sizes, h, c, out, c_all, gates):
    """xw (T, B, 4H) with both biases folded in; W_hhT (H, 4H); h, c (B, H) h0, c0 -> h_n, c_n.

    out (T, B, H) zeros. Training: c_all (T, B, H) and gates (T, B, 4H) keep every step for backward.
    Inference: pass c_all with 0 steps and gates with 1 step (a scratch row, overwritten each step).
    """
    T = xw.shape[0]
    keep = c_all.shape[0] == T
    gh = np.empty((h.shape[0], xw.shape[2]), dtype=h.dtype)
    for t in range(T):
        nb = batch_sizes[t]
        matmul_rows(h, W_hhT, nb, gh, False)
        lstm_cell_forward(xw[t], gh, nb, h, c, out[t], gates[t if keep else 0])
        if keep:
            c_all[t, :nb] = c[:nb]


@jit
def lstm_backward_seq(W_hh, g_out, gates, c_all, c0, batch_sizes, dh, dc, dpre):
    """dh, dc (B, H) g_hn, g_cn -> g_h0, g_c0; dpre (T, B, 4H) zeros, gets pre-activation gradients."""
    for t in range(g_out.shape[0] - 1, -1, -1):
        nb = batch_sizes[t]
        c_prev = c_all[t - 1] if t > 0 else c0
        lstm_cell_backward(g_out[t], gates[t], c_all[t], c_prev, nb, dh, dc, dpre[t])
        matmul_rows(dpre[t], W_hh, nb, dh, False)


@jit
def gru_forward_seq(xw, W_hhT, b_hh, batch_sizes, h, out, gates, ghn):
    """xw (T, B, 3H) = x W_ih^T + b_ih; W_hhT (H, 3H); b_hh (3H,); h (B, H) h0 -> h_n; out zeros.

    Training: gates (T, B, 3H) and ghn (T, B, H) keep every step; inference: one scratch step each.
    """
    T = xw.shape[0]
    keep = gates.shape[0] == T
    gh = np.empty((h.shape[0], xw.shape[2]), dtype=h.dtype)
    for t in range(T):
        nb = batch_sizes[t]
        matmul_rows(h, W_hhT, nb, gh, False)
        s = t if keep else 0
        gru_cell_forward(xw[t], gh, b_hh, nb, h, out[t], gates[s], ghn[s])


@jit
def gru_backward_seq(W_hh, g_out, out, h0, gates, ghn, batch_sizes, dh, dxw, dgh):
    """dh (B, H) g_hn -> g_h0; dxw, dgh (T, B, 3H) zeros, get input- and hidden-side gradients."""
    for t in range(g_out.shape[0] - 1, -1, -1):
        nb = batch_sizes[t]
        h_prev = out[t - 1] if t > 0 else h0
        gru_cell_backward(g_out[t], gates[t], ghn[t], h_prev, nb, dh, dxw[t], dgh[t])
        matmul_rows(dgh[t], W_hh, nb, dh, True)
