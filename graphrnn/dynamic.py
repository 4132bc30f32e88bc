"""Dynamic executor: one jitted cell kernel in a loop whose bound is this batch's own longest sequence.

No graph and no fixed T: each call sorts its batch by length (longest first) so the rows still running
at step t are a prefix, runs each layer and direction for exactly max(lengths) steps without computing
finished rows, and undoes the sort at the end. The reverse direction runs forward over every row
reversed within its own length. See kernels/cpu.py for the layout and graphrnn/executors.py for the
contract. Roughly equivalent to ``kernels.reference.stack_forward``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from graphrnn.kernels import cpu

# At or below this many rows the whole time loop runs inside one jitted kernel with an in-jit product;
# above it, a Python loop calls NumPy's BLAS for h W_hh^T and a jitted kernel for the gate maths.
# (PERF-NOTES: BLAS from NumPy wins from B ~ 16; per-step Python overhead dominates at B = 1.)
JIT_LOOP_MAX_BATCH = 8
# Inference projects this many elements of x W_ih^T at a time (4 Mi: 16 MB in float32, still one big GEMM).
INFERENCE_CHUNK_ELEMENTS = 1 << 22


@dataclass
class _DirTape:
    out: np.ndarray  # (T, B, H) outputs in processing order (reversed rows for the reverse direction)
    h0: np.ndarray  # (B, H)
    c0: np.ndarray | None
    gates: np.ndarray | None  # activated gates (T, B, G*H); None for RNN (its output is enough)
    c_all: np.ndarray | None  # LSTM cell states (T, B, H)
    ghn: np.ndarray | None  # GRU W_hn h + b_hn (T, B, H)


@dataclass
class Tape:
    spec: object
    params: dict
    order: np.ndarray | None  # sort permutation (sorted row i is row order[i]); None if already sorted
    batch_sizes: np.ndarray  # (T,) rows still running at each step
    rev_idx: np.ndarray | None  # (T, B) time index of each row reversed within its length
    T_in: int  # the input's T; the executor ran only T = max(lengths) <= T_in steps
    inputs: list = field(default_factory=list)  # per layer, its input (T, B, I_l) in sorted order
    masks: list | None = None  # dropout factors, sorted order
    dirs: list = field(default_factory=list)  # per layer * D + d, a _DirTape


def _reverse_index(lengths_sorted: np.ndarray, T: int) -> np.ndarray:
    """idx[t, b] = len_b - 1 - t for t < len_b, else t: reverses each row within its length (involution)."""
    t = np.arange(T)[:, None]
    return np.where(t < lengths_sorted[None, :], lengths_sorted[None, :] - 1 - t, t)


def _gather_time(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """a (T, B, F) -> a[idx[t, b], b] (T, B, F), contiguous."""
    return a[idx, np.arange(a.shape[1])[None, :]]


def _input_projection(inp, W_ih, bias):
    """Hoisted: x W_ih^T + bias for all steps in one GEMM."""
    T, B, I = inp.shape
    xw = (inp.reshape(T * B, I) @ W_ih.T).reshape(T, B, -1)
    if bias is not None:
        xw += bias
    return xw


def _rows(a, order, axis=1):
    """a with its batch axis in sorted order: a view when the batch is already sorted, else a copy."""
    return a if order is None else a.take(order, axis=axis)


def _run_direction(spec, inp, W_ih, b_ih, W_hh, b_hh, batch_sizes, h, c, keep):
    """Run one layer and direction over inp (T, B, I); h, c are updated in place to the final state.

    Training projects all T steps in one GEMM and keeps every step's activations. Inference projects a
    chunk of steps at a time, so its memory stays bounded by the output instead of growing with G*H*T.
    """
    T, B, _ = inp.shape
    H, GH = spec.hidden_size, W_hh.shape[0]
    dt = inp.dtype
    out = np.zeros((T, B, H), dtype=dt)
    steps = T if keep else 1
    relu = spec.cell == "rnn_relu"
    gates = c_all = ghn = None
    if spec.cell == "lstm":
        gates = np.empty((steps, B, GH), dtype=dt)
        c_all = np.zeros((T if keep else 0, B, H), dtype=dt)
    elif spec.cell == "gru":
        gates = np.empty((steps, B, GH), dtype=dt)
        ghn = np.empty((steps, B, H), dtype=dt)
        b_hh = np.zeros(GH, dtype=dt) if b_hh is None else b_hh
    # RNN and LSTM fold b_hh into the hoisted projection; GRU's b_hn sits inside the reset gate
    bias = None if b_ih is None else (b_ih if spec.cell == "gru" else b_ih + b_hh)
    in_jit = B <= JIT_LOOP_MAX_BATCH
    W_hhT = np.ascontiguousarray(W_hh.T) if in_jit else W_hh.T  # BLAS reads the transposed view as is
    gh = np.empty((B, GH), dtype=dt)
    chunk = max(1, T if keep else INFERENCE_CHUNK_ELEMENTS // (B * GH))
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        xw = _input_projection(inp[t0:t1], W_ih, bias)
        bs, o = batch_sizes[t0:t1], out[t0:t1]
        if in_jit:
            if spec.cell == "lstm":
                cpu.lstm_forward_seq(xw, W_hhT, bs, h, c, o, c_all, gates)
            elif spec.cell == "gru":
                cpu.gru_forward_seq(xw, W_hhT, b_hh, bs, h, o, gates, ghn)
            else:
                cpu.rnn_forward_seq(xw, W_hhT, bs, relu, h, o)
            continue
        for t in range(t1 - t0):
            nb = int(bs[t])
            np.matmul(h[:nb], W_hhT, out=gh[:nb])
            s = t0 + t if keep else 0
            if spec.cell == "lstm":
                cpu.lstm_cell_forward(xw[t], gh, nb, h, c, o[t], gates[s])
                if keep:
                    c_all[s, :nb] = c[:nb]
            elif spec.cell == "gru":
                cpu.gru_cell_forward(xw[t], gh, b_hh, nb, h, o[t], gates[s], ghn[s])
            else:
                cpu.rnn_cell_forward(xw[t], gh, nb, relu, h, o[t])
    return out, gates, c_all, ghn


def forward(spec, params, x, lengths, h0, c0, masks, keep):
    """The executor contract's forward (graphrnn/executors.py)."""
    T_in, B, _ = x.shape
    H, D, L = spec.hidden_size, spec.directions, spec.num_layers
    # The loop bound is this batch's own longest sequence: steps past it are all padding.
    T = int(lengths.max()) if B else 0
    order = np.argsort(-lengths, kind="stable")
    if (order == np.arange(B)).all():
        order = None  # already sorted (always, without lengths): no permutation copies
    lengths_sorted = _rows(lengths, order, 0)
    batch_sizes = (lengths_sorted[None, :] > np.arange(T)[:, None]).sum(axis=1).astype(np.int64)
    rev_idx = _reverse_index(lengths_sorted, T) if D == 2 else None
    masks_sorted = [_rows(m[:T], order) for m in masks] if masks is not None else None
    tape = Tape(spec, params, order, batch_sizes, rev_idx, T_in, masks=masks_sorted) if keep else None

    h_n = np.empty_like(h0)
    c_n = np.empty_like(c0) if c0 is not None else None
    layer_in = _rows(x[:T], order)
    for layer in range(L):
        if keep:
            tape.inputs.append(layer_in)
        layer_out = np.empty((T, B, D * H), dtype=x.dtype)
        for d in range(D):
            k = layer * D + d
            W_ih, W_hh, b_ih, b_hh = spec.layer_params(params, layer, d)
            inp = layer_in if d == 0 else _gather_time(layer_in, rev_idx)
            h = _rows(h0[k], order, 0).copy()  # updated in place: never the caller's array
            c = _rows(c0[k], order, 0).copy() if c0 is not None else None
            if keep:
                h0_k, c0_k = h.copy(), (c.copy() if c is not None else None)
            out, gates, c_all, ghn = _run_direction(spec, inp, W_ih, b_ih, W_hh, b_hh, batch_sizes, h, c, keep)
            if keep:
                tape.dirs.append(_DirTape(out, h0_k, c0_k, gates, c_all, ghn))
            layer_out[:, :, d * H : (d + 1) * H] = out if d == 0 else _gather_time(out, rev_idx)
            h_n[k] = h
            if c_n is not None:
                c_n[k] = c
        if masks_sorted is not None and layer < L - 1:
            layer_out *= masks_sorted[layer]
        layer_in = layer_out

    inv = None if order is None else np.argsort(order)
    if T == T_in and inv is None:
        out = layer_in
    else:
        out = np.zeros((T_in, B, D * H), dtype=x.dtype)
        out[:T] = _rows(layer_in, inv)
    return out, _rows(h_n, inv), (_rows(c_n, inv) if c_n is not None else None), tape


def _backward_direction(spec, dtape, g, W_hh, batch_sizes, dh, dc):
    """BPTT over one layer and direction. g (T, B, H) output gradient in processing order; dh, dc enter
    as g_hn, g_cn and leave as g_h0, g_c0. Returns (dxw, dgh), the input- and hidden-side pre-activation
    gradients (T, B, G*H) (the same array for RNN and LSTM)."""
    T, B, H = g.shape
    GH = W_hh.shape[0]
    relu = spec.cell == "rnn_relu"
    dxw = np.zeros((T, B, GH), dtype=g.dtype)
    dgh = np.zeros((T, B, GH), dtype=g.dtype) if spec.cell == "gru" else dxw
    if B <= JIT_LOOP_MAX_BATCH:
        if spec.cell == "lstm":
            cpu.lstm_backward_seq(W_hh, g, dtape.gates, dtape.c_all, dtape.c0, batch_sizes, dh, dc, dxw)
        elif spec.cell == "gru":
            cpu.gru_backward_seq(W_hh, g, dtape.out, dtape.h0, dtape.gates, dtape.ghn, batch_sizes, dh, dxw, dgh)
        else:
            cpu.rnn_backward_seq(W_hh, g, dtape.out, batch_sizes, relu, dh, dxw)
        return dxw, dgh
    dh_rec = np.empty((B, H), dtype=g.dtype)
    for t in range(T - 1, -1, -1):
        nb = int(batch_sizes[t])
        if spec.cell == "lstm":
            c_prev = dtape.c_all[t - 1] if t > 0 else dtape.c0
            cpu.lstm_cell_backward(g[t], dtape.gates[t], dtape.c_all[t], c_prev, nb, dh, dc, dxw[t])
            np.matmul(dxw[t, :nb], W_hh, out=dh[:nb])
        elif spec.cell == "gru":
            h_prev = dtape.out[t - 1] if t > 0 else dtape.h0
            cpu.gru_cell_backward(g[t], dtape.gates[t], dtape.ghn[t], h_prev, nb, dh, dxw[t], dgh[t])
            np.matmul(dgh[t, :nb], W_hh, out=dh_rec[:nb])
            dh[:nb] += dh_rec[:nb]
        else:
            cpu.rnn_cell_backward(g[t], dtape.out[t], nb, relu, dh, dxw[t])
            np.matmul(dxw[t, :nb], W_hh, out=dh[:nb])
    return dxw, dgh


def backward(tape, g_out, g_hn, g_cn):
    """The executor contract's backward (graphrnn/executors.py)."""
    spec, params, order = tape.spec, tape.params, tape.order
    H, D, L = spec.hidden_size, spec.directions, spec.num_layers
    T, B = len(tape.batch_sizes), g_out.shape[1]
    if T == 0:  # every length is 0: h_n = h0 and nothing else depends on anything
        grads = {name: np.zeros_like(p) for name, p in params.items()}
        grads["input"] = np.zeros((tape.T_in,) + tape.inputs[0].shape[1:], dtype=g_out.dtype)
        grads["h0"] = g_hn.copy()
        if g_cn is not None:
            grads["c0"] = g_cn.copy()
        return grads
    grads = {}
    g_h0 = np.empty_like(g_hn)
    g_c0 = np.empty_like(g_cn) if g_cn is not None else None
    g_layer = _rows(g_out[:T], order)
    for layer in range(L - 1, -1, -1):
        inp = tape.inputs[layer]
        g_in = np.zeros_like(inp)
        for d in range(D):
            k = layer * D + d
            s = spec.suffix(layer, d)
            W_ih, W_hh, b_ih, _ = spec.layer_params(params, layer, d)
            dtape = tape.dirs[k]
            g = g_layer[:, :, d * H : (d + 1) * H]
            g = np.ascontiguousarray(g) if d == 0 else _gather_time(g, tape.rev_idx)
            dh = _rows(g_hn[k], order, 0).copy()
            dc = _rows(g_cn[k], order, 0).copy() if g_cn is not None else None
            dxw, dgh = _backward_direction(spec, dtape, g, W_hh, tape.batch_sizes, dh, dc)

            # Parameter gradients as whole-sequence GEMMs (inactive rows contribute zeros).
            h_prev = np.concatenate([dtape.h0[None], dtape.out[:-1]], axis=0)
            dxw2, dgh2 = dxw.reshape(T * B, -1), dgh.reshape(T * B, -1)
            x_dir = inp if d == 0 else _gather_time(inp, tape.rev_idx)
            grads["weight_ih" + s] = dxw2.T @ x_dir.reshape(T * B, -1)
            grads["weight_hh" + s] = dgh2.T @ h_prev.reshape(T * B, H)
            if b_ih is not None:
                grads["bias_ih" + s] = dxw2.sum(axis=0)
                grads["bias_hh" + s] = dgh2.sum(axis=0)
            g_x = (dxw2 @ W_ih).reshape(T, B, -1)
            g_in += g_x if d == 0 else _gather_time(g_x, tape.rev_idx)
            g_h0[k] = dh
            if g_c0 is not None:
                g_c0[k] = dc
        g_layer = g_in * tape.masks[layer - 1] if (layer > 0 and tape.masks is not None) else g_in

    inv = None if order is None else np.argsort(order)
    if T == tape.T_in and inv is None:
        grads["input"] = g_layer
    else:
        grads["input"] = np.zeros((tape.T_in,) + g_layer.shape[1:], dtype=g_out.dtype)
        grads["input"][:T] = _rows(g_layer, inv)
    grads["h0"] = _rows(g_h0, inv)
    if g_c0 is not None:
        grads["c0"] = _rows(g_c0, inv)
    return grads
