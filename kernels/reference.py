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

