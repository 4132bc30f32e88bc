"""Fused, masked gate kernels for one time step of a padded batch (the static executor's cell nodes).

Each forward kernel takes the two pre-activation halves ``xw = W_ih x + b_ih`` and ``gh = W_hh h + b_hh``
(B, G*H) (the products themselves run in BLAS outside), the previous state (B, H) and a per-row mask
(B,) uint8, and writes the new state and the activated gates. Rows with ``mask[b] == 0`` are padding:
they keep their previous state exactly and get zero gate gradients, so a padded step is a no-op.
Backward kernels take the gradients flowing into the step's outputs and give the gradient of the
pre-activations and the pass-through part of the previous state's gradient; the recurrent part
``dgh @ W_hh`` is again a BLAS product outside.

Gate order is PyTorch's (LSTM i, f, g, o; GRU r, z, n). NumPy twins: ``graphrnn.kernels.reference``
(``*_masked_step`` and ``*_masked_step_bwd``). The kernels trust their callers: C-ordered rows, matching
dtypes (float32 or float64), no aliasing between inputs and outputs. The per-row equations are
kernels/gates.py, shared with the dynamic executor's kernels; a valid row's state is first copied to its
output row and updated there in place, the shape that vectorises.
"""

from __future__ import annotations

import numpy as np

from graphrnn.kernels import gates
from graphrnn.kernels._jit import jit


@jit
def _copy_row(src, dst):
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@jit
def _zero_row(dst):
    zero = dst.dtype.type(0)
    for j in range(dst.shape[0]):
        dst[j] = zero


@jit
def rnn_masked_fwd(xw, gh, h_prev, mask, relu, h_out):
    """h_out[b] = act(xw[b] + gh[b]) where mask[b], else h_prev[b]; all (B, H), act = relu or tanh."""
    for b in range(h_out.shape[0]):
        if mask[b]:
            gates.rnn_row_forward(xw[b], gh[b], relu, h_out[b])
        else:
            _copy_row(h_prev[b], h_out[b])


@jit
def rnn_masked_bwd(dh, h, mask, relu, dpre, dh_prev):
    """dh, h = the step's output state (B, H) -> dpre (B, H), dh_prev (B, H) (pass-through of masked rows)."""
    for b in range(dh.shape[0]):
        if not mask[b]:
            _zero_row(dpre[b])
            _copy_row(dh[b], dh_prev[b])
            continue
        gates.rnn_row_backward(dh[b], h[b], relu, dpre[b])
        _zero_row(dh_prev[b])


@jit
def lstm_masked_fwd(xw, gh, c_prev, h_prev, mask, h_out, c_out, gates_out):
    """xw, gh (B, 4H); c_prev, h_prev (B, H); mask (B,) -> h_out, c_out (B, H), gates_out (B, 4H) i, f, g, o.

    c' = f * c + i * g, h' = o * tanh(c') on valid rows; masked rows copy h_prev, c_prev (gates: zero).
    """
    for b in range(h_out.shape[0]):
        if mask[b]:
            _copy_row(c_prev[b], c_out[b])
            gates.lstm_row_forward(xw[b], gh[b], c_out[b], h_out[b], gates_out[b])
        else:
            _copy_row(h_prev[b], h_out[b])
            _copy_row(c_prev[b], c_out[b])
            _zero_row(gates_out[b])


@jit
def lstm_masked_bwd(dh, dc, acts, c, c_prev, mask, dpre, dh_prev, dc_prev):
    """dh, dc (B, H) into the step's outputs; acts (B, 4H) its gates, c (B, H) its c_t, c_prev (B, H) c_{t-1}.

    -> dpre (B, 4H) gradient of the pre-activations (same for xw and gh), dh_prev (B, H) the pass-through
    of masked rows (0 on valid rows: their h_prev gradient is dpre @ W_hh, computed outside), dc_prev (B, H).
    """
    for b in range(dh.shape[0]):
        if not mask[b]:
            _zero_row(dpre[b])
            _copy_row(dh[b], dh_prev[b])
            _copy_row(dc[b], dc_prev[b])
            continue
        _copy_row(dc[b], dc_prev[b])
        gates.lstm_row_backward(dh[b], dc_prev[b], acts[b], c[b], c_prev[b], dpre[b])
        _zero_row(dh_prev[b])


@jit
def gru_masked_fwd(xw, gh, h_prev, mask, h_out, gates_out):
    """xw, gh (B, 3H); h_prev (B, H); mask (B,) -> h_out (B, H), gates_out (B, 3H) r, z, n.

    n = tanh(xw_n + r * gh_n) (reset gate applied to W_hn h + b_hn), h' = (1 - z) * n + z * h.
    """
    B, H = h_out.shape
    no_bias = np.zeros(3 * H, dtype=h_out.dtype)  # gh already holds b_hh here
    hn = np.empty(H, dtype=h_out.dtype)  # W_hn h + b_hn: the backward reads it back out of gh
    for b in range(B):
        if mask[b]:
            _copy_row(h_prev[b], h_out[b])
            gates.gru_row_forward(xw[b], gh[b], no_bias, h_out[b], gates_out[b], hn)
        else:
            _copy_row(h_prev[b], h_out[b])
            _zero_row(gates_out[b])


@jit
def gru_masked_bwd(dh, acts, h_prev, gh, mask, dxw, dgh, dh_prev):
    """dh (B, H); the step's gates acts (B, 3H), h_prev (B, H), gh (B, 3H) -> dxw, dgh (B, 3H), dh_prev.

    dgh differs from dxw in the n block (multiplied by r); dh_prev is z * dh on valid rows (the part not
    through W_hh), dh on masked rows.
    """
    H = dh.shape[1]
    for b in range(dh.shape[0]):
        if not mask[b]:
            _zero_row(dxw[b])
            _zero_row(dgh[b])
            _copy_row(dh[b], dh_prev[b])
            continue
        _copy_row(dh[b], dh_prev[b])
        gates.gru_row_backward(dh_prev[b], acts[b], gh[b, 2 * H :], h_prev[b], dxw[b], dgh[b])
