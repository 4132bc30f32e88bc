"""Plain NumPy twins of the kernels: slow, obvious, and the reference every test compares against.

Cell steps work on rows (B, .); ``stack_forward`` runs a whole stack with per-sequence lengths by the
plainest loop there is (a mask per step, the reverse direction walking t = T-1 .. 0 and starting to
update only at each row's own last valid step), independent of the tricks the fast executors use.
Gate order is PyTorch's: LSTM i, f, g, o; GRU r, z, n.
"""

from __future__ import annotations

import numpy as np


def sigmoid(v):
    # exp of a non-positive number only: no overflow for any finite input
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(v.dtype, copy=False)


def rnn_step(xw, gh, nonlinearity="tanh"):
    """xw = W_ih x + b_ih (B, H), gh = W_hh h + b_hh (B, H) -> h' (B, H)."""
    pre = xw + gh
    return np.tanh(pre) if nonlinearity == "tanh" else np.maximum(pre, 0)


def lstm_step(xw, gh, c):
    """xw, gh (B, 4H) pre-activations; c (B, H) -> (h', c', gates (B, 4H) activated i, f, g, o)."""
    H = c.shape[1]
    pre = xw + gh
    i, f, g, o = (pre[:, k * H : (k + 1) * H] for k in range(4))
    i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)
    return h_new, c_new, np.concatenate([i, f, g, o], axis=1)


def gru_step(xw, gh, h):
    """xw = W_ih x + b_ih, gh = W_hh h + b_hh (B, 3H); h (B, H) -> (h', gates (B, 3H) activated r, z, n)."""
    H = h.shape[1]
    r = sigmoid(xw[:, :H] + gh[:, :H])
    z = sigmoid(xw[:, H : 2 * H] + gh[:, H : 2 * H])
    n = np.tanh(xw[:, 2 * H :] + r * gh[:, 2 * H :])
    return (1 - z) * n + z * h, np.concatenate([r, z, n], axis=1)


def rnn_step_backward(g_h, h_new, nonlinearity="tanh"):
    """dL/dpre (B, H) from dL/dh' and the step's output h'."""
    return g_h * (1 - h_new * h_new) if nonlinearity == "tanh" else g_h * (h_new > 0)


def lstm_step_backward(g_h, g_c, gates, c_new, c_prev):
    """From dL/dh', dL/dc' (B, H), activated gates (B, 4H) and c', c -> (dL/dpre (B, 4H), dL/dc (B, H))."""
    H = c_new.shape[1]
    i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))
    tc = np.tanh(c_new)
    gc = g_c + g_h * o * (1 - tc * tc)
    dpre = np.concatenate([gc * g * i * (1 - i), gc * c_prev * f * (1 - f), gc * i * (1 - g * g),
                           g_h * tc * o * (1 - o)], axis=1)
    return dpre, gc * f


def gru_step_backward(g_h, gates, ghn, h_prev):
    """From dL/dh' (B, H), gates r, z, n (B, 3H), ghn = W_hn h + b_hn and h -> (dxw, dgh (B, 3H), direct dL/dh).

    dxw is the gradient of x W_ih^T + b_ih, dgh that of h W_hh^T + b_hh; the full dL/dh = direct + dgh W_hh.
    """
    H = h_prev.shape[1]
    r, z, n = (gates[:, k * H : (k + 1) * H] for k in range(3))
    dn = g_h * (1 - z) * (1 - n * n)
    dz = g_h * (h_prev - n) * z * (1 - z)
    dr = dn * ghn * r * (1 - r)
    return np.concatenate([dr, dz, dn], axis=1), np.concatenate([dr, dz, dn * r], axis=1), g_h * z


def cell_step(cell, x, h, c, W_ih, W_hh, b_ih, b_hh):
    """One step of any cell from raw inputs: x (B, I), h, c (B, H) -> (h', c') (c' None unless LSTM)."""
    G = W_hh.shape[0]
    zeros = np.zeros(G, dtype=x.dtype)
    xw = x @ W_ih.T + (zeros if b_ih is None else b_ih)
    gh = h @ W_hh.T + (zeros if b_hh is None else b_hh)
    if cell == "lstm":
        h_new, c_new, _ = lstm_step(xw, gh, c)
        return h_new, c_new
    if cell == "gru":
        return gru_step(xw, gh, h)[0], None
    return rnn_step(xw, gh, "relu" if cell == "rnn_relu" else "tanh"), None


def stack_forward(spec, params, x, lengths=None, h0=None, c0=None, masks=None):
    """Reference for the executor contract (see graphrnn.executors): x (T, B, I) -> (out, h_n, c_n).

    Roughly what both executors compute, written as the plainest loop.
    """
    T, B, _ = x.shape
    H, D, L = spec.hidden_size, spec.directions, spec.num_layers
    dt = x.dtype
    lengths = np.full(B, T, dtype=np.int64) if lengths is None else np.asarray(lengths)
    if h0 is None:
        h0 = np.zeros((L * D, B, H), dtype=dt)
    if c0 is None and spec.cell == "lstm":
        c0 = np.zeros((L * D, B, H), dtype=dt)
    h_n = np.zeros((L * D, B, H), dtype=dt)
    c_n = np.zeros((L * D, B, H), dtype=dt) if spec.cell == "lstm" else None
    layer_in = x
    for layer in range(L):
        outs = []
        for d in range(D):
            W_ih, W_hh, b_ih, b_hh = spec.layer_params(params, layer, d)
            k = layer * D + d
            h = h0[k].copy()
            c = c0[k].copy() if c_n is not None else None
            out = np.zeros((T, B, H), dtype=dt)
            for t in range(T - 1, -1, -1) if d == 1 else range(T):
                valid = (t < lengths)[:, None]
                h_new, c_new = cell_step(spec.cell, layer_in[t], h, c, W_ih, W_hh, b_ih, b_hh)
                h = np.where(valid, h_new, h)
                if c is not None:
                    c = np.where(valid, c_new, c)
                out[t] = np.where(valid, h_new, 0)
            h_n[k] = h
            if c_n is not None:
                c_n[k] = c
            outs.append(out)
        layer_in = np.concatenate(outs, axis=2)
        if masks is not None and layer < L - 1:
            layer_in = layer_in * masks[layer]
    return layer_in, h_n, c_n


# --- masked one-step twins of kernels/masked.py (static executor): rows with mask 0 keep their state ---


def rnn_masked_step(xw, gh, h_prev, mask, nonlinearity="tanh"):
    """xw, gh, h_prev (B, H); mask (B,) -> h' (B, H): the new state on valid rows, h_prev on masked rows."""
    return np.where(mask[:, None] != 0, rnn_step(xw, gh, nonlinearity), h_prev)


def lstm_masked_step(xw, gh, c_prev, h_prev, mask):
    """xw, gh (B, 4H); c_prev, h_prev (B, H); mask (B,) -> (h', c' (B, H), gates (B, 4H), 0 where masked)."""
    valid = mask[:, None] != 0
    h, c, gates = lstm_step(xw, gh, c_prev)
    return np.where(valid, h, h_prev), np.where(valid, c, c_prev), np.where(valid, gates, 0).astype(xw.dtype)


def gru_masked_step(xw, gh, h_prev, mask):
    """xw, gh (B, 3H); h_prev (B, H); mask (B,) -> (h' (B, H), gates (B, 3H) r, z, n, 0 on masked rows)."""
    valid = mask[:, None] != 0
    h, gates = gru_step(xw, gh, h_prev)
    return np.where(valid, h, h_prev), np.where(valid, gates, 0).astype(xw.dtype)


def rnn_masked_step_bwd(dh, h, mask, nonlinearity="tanh"):
    """dh, h (the step's output state) (B, H) -> (dpre, dh_prev (B, H)); masked rows pass dh through."""
    valid = mask[:, None] != 0
    deriv = (h > 0).astype(h.dtype) if nonlinearity == "relu" else 1 - h * h
    return np.where(valid, dh * deriv, 0).astype(dh.dtype), np.where(valid, 0, dh).astype(dh.dtype)


def lstm_masked_step_bwd(dh, dc, gates, c, c_prev, mask):
    """dh, dc (B, H); gates (B, 4H), c (B, H) outputs; c_prev (B, H) -> (dpre (B, 4H), dh_prev, dc_prev).

    dh_prev is only the masked rows' pass-through; the valid rows' part is dpre @ W_hh.
    """
    H = dh.shape[1]
    valid = mask[:, None] != 0
    i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))
    tc = np.tanh(c)
    dct = dc + dh * o * (1 - tc * tc)
    di, df = dct * g * i * (1 - i), dct * c_prev * f * (1 - f)
    dg, do = dct * i * (1 - g * g), dh * tc * o * (1 - o)
    dpre = np.concatenate([di, df, dg, do], axis=1)
    dt = dh.dtype
    return (np.where(valid, dpre, 0).astype(dt), np.where(valid, 0, dh).astype(dt),
            np.where(valid, dct * f, dc).astype(dt))


def gru_masked_step_bwd(dh, gates, h_prev, gh, mask):
    """dh (B, H); gates (B, 3H), h_prev (B, H), gh (B, 3H) -> (dxw, dgh (B, 3H), dh_prev (B, H))."""
    H = dh.shape[1]
    valid = mask[:, None] != 0
    r, z, n = (gates[:, k * H : (k + 1) * H] for k in range(3))
    dn = dh * (1 - z) * (1 - n * n)
    dr = dn * gh[:, 2 * H :] * r * (1 - r)
    dz = dh * (h_prev - n) * z * (1 - z)
    dt = dh.dtype
    return (np.where(valid, np.concatenate([dr, dz, dn], axis=1), 0).astype(dt),
            np.where(valid, np.concatenate([dr, dz, dn * r], axis=1), 0).astype(dt),
            np.where(valid, dh * z, dh).astype(dt))
