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
dtypes (float32 or float64), no aliasing between inputs and outputs.
"""

from __future__ import annotations

import math

from graphrnn.kernels._jit import jit


@jit
def _sigmoid(v, one):
    # exp(-v) overflows to inf for very negative v, and 1 / inf is the exact limit 0: no NaN
    return one / (one + math.exp(-v))


@jit
def rnn_masked_fwd(xw, gh, h_prev, mask, relu, h_out):
    """h_out[b] = act(xw[b] + gh[b]) where mask[b], else h_prev[b]; all (B, H), act = relu or tanh."""
    B, H = h_out.shape
    zero = h_out.dtype.type(0)
    for b in range(B):
        if mask[b]:
            for j in range(H):
                v = xw[b, j] + gh[b, j]
                h_out[b, j] = max(v, zero) if relu else math.tanh(v)
        else:
            for j in range(H):
                h_out[b, j] = h_prev[b, j]


@jit
def rnn_masked_bwd(dh, h, mask, relu, dpre, dh_prev):
    """dh, h = the step's output state (B, H) -> dpre (B, H), dh_prev (B, H) (pass-through of masked rows)."""
    B, H = dh.shape
    zero = dh.dtype.type(0)
    one = dh.dtype.type(1)
    for b in range(B):
        if mask[b]:
            for j in range(H):
                hv = h[b, j]
                dpre[b, j] = dh[b, j] * ((one if hv > zero else zero) if relu else one - hv * hv)
                dh_prev[b, j] = zero
        else:
            for j in range(H):
                dpre[b, j] = zero
                dh_prev[b, j] = dh[b, j]


@jit
def lstm_masked_fwd(xw, gh, c_prev, h_prev, mask, h_out, c_out, gates_out):
    """xw, gh (B, 4H); c_prev, h_prev (B, H); mask (B,) -> h_out, c_out (B, H), gates_out (B, 4H) i, f, g, o.

    c' = f * c + i * g, h' = o * tanh(c') on valid rows; masked rows copy h_prev, c_prev (gates: zero).
    """
    B, H = h_out.shape
    zero = h_out.dtype.type(0)
    one = h_out.dtype.type(1)
    for b in range(B):
        if mask[b]:
            for j in range(H):
                i = _sigmoid(xw[b, j] + gh[b, j], one)
                f = _sigmoid(xw[b, H + j] + gh[b, H + j], one)
                g = math.tanh(xw[b, 2 * H + j] + gh[b, 2 * H + j])
                o = _sigmoid(xw[b, 3 * H + j] + gh[b, 3 * H + j], one)
                c = f * c_prev[b, j] + i * g
                c_out[b, j] = c
                h_out[b, j] = o * math.tanh(c)
                gates_out[b, j] = i
                gates_out[b, H + j] = f
                gates_out[b, 2 * H + j] = g
                gates_out[b, 3 * H + j] = o
        else:
            for j in range(H):
                c_out[b, j] = c_prev[b, j]
                h_out[b, j] = h_prev[b, j]
            for j in range(4 * H):
                gates_out[b, j] = zero


@jit
def lstm_masked_bwd(dh, dc, gates, c, c_prev, mask, dpre, dh_prev, dc_prev):
    """dh, dc (B, H) into the step's outputs; gates (B, 4H), c (B, H) its outputs; c_prev (B, H) its input.

    -> dpre (B, 4H) gradient of the pre-activations (same for xw and gh), dh_prev (B, H) the pass-through
    of masked rows (0 on valid rows: their h_prev gradient is dpre @ W_hh, computed outside), dc_prev (B, H).
    """
    B, H = dh.shape
    zero = dh.dtype.type(0)
    one = dh.dtype.type(1)
    for b in range(B):
        if mask[b]:
            for j in range(H):
                i = gates[b, j]
                f = gates[b, H + j]
                g = gates[b, 2 * H + j]
                o = gates[b, 3 * H + j]
                tc = math.tanh(c[b, j])
                d_h = dh[b, j]
                dct = dc[b, j] + d_h * o * (one - tc * tc)
                dpre[b, j] = dct * g * i * (one - i)
                dpre[b, H + j] = dct * c_prev[b, j] * f * (one - f)
                dpre[b, 2 * H + j] = dct * i * (one - g * g)
                dpre[b, 3 * H + j] = d_h * tc * o * (one - o)
                dc_prev[b, j] = dct * f
                dh_prev[b, j] = zero
        else:
            for j in range(4 * H):
                dpre[b, j] = zero
            for j in range(H):
                dc_prev[b, j] = dc[b, j]
                dh_prev[b, j] = dh[b, j]


@jit
def gru_masked_fwd(xw, gh, h_prev, mask, h_out, gates_out):
    """xw, gh (B, 3H); h_prev (B, H); mask (B,) -> h_out (B, H), gates_out (B, 3H) r, z, n.

    n = tanh(xw_n + r * gh_n) (reset gate applied to W_hn h + b_hn), h' = (1 - z) * n + z * h.
    """
    B, H = h_out.shape
    zero = h_out.dtype.type(0)
    one = h_out.dtype.type(1)
    for b in range(B):
        if mask[b]:
            for j in range(H):
                r = _sigmoid(xw[b, j] + gh[b, j], one)
                z = _sigmoid(xw[b, H + j] + gh[b, H + j], one)
                n = math.tanh(xw[b, 2 * H + j] + r * gh[b, 2 * H + j])
                h_out[b, j] = (one - z) * n + z * h_prev[b, j]
                gates_out[b, j] = r
                gates_out[b, H + j] = z
                gates_out[b, 2 * H + j] = n
        else:
            for j in range(H):
                h_out[b, j] = h_prev[b, j]
            for j in range(3 * H):
                gates_out[b, j] = zero


@jit
def gru_masked_bwd(dh, gates, h_prev, gh, mask, dxw, dgh, dh_prev):
    """dh (B, H); gates (B, 3H), h_prev (B, H), gh (B, 3H) of the step -> dxw, dgh (B, 3H), dh_prev (B, H).

    dgh differs from dxw in the n block (multiplied by r); dh_prev is z * dh on valid rows (the part not
    through W_hh), dh on masked rows.
    """
    B, H = dh.shape
    zero = dh.dtype.type(0)
    one = dh.dtype.type(1)
    for b in range(B):
        if mask[b]:
            for j in range(H):
                r = gates[b, j]
                z = gates[b, H + j]
                n = gates[b, 2 * H + j]
                d_h = dh[b, j]
                dn = d_h * (one - z) * (one - n * n)
                dr = dn * gh[b, 2 * H + j] * r * (one - r)
                dz = d_h * (h_prev[b, j] - n) * z * (one - z)
                dxw[b, j] = dr
                dxw[b, H + j] = dz
                dxw[b, 2 * H + j] = dn
                dgh[b, j] = dr
                dgh[b, H + j] = dz
                dgh[b, 2 * H + j] = dn * r
                dh_prev[b, j] = d_h * z
        else:
            for j in range(3 * H):
                dxw[b, j] = zero
                dgh[b, j] = zero
            for j in range(H):
                dh_prev[b, j] = dh[b, j]
