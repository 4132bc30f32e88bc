"""Write the PyTorch golden fixtures that tests/test_golden.py reads (the tests themselves need no torch).

Run from the repository root with the pinned PyTorch (CPU is enough):

    pip install torch==2.13.0 && python tests/golden/make_golden.py

Each fixture is one small ``.npz`` (T = 5, B = 4, I = 2, H = 3) holding:

    meta                 JSON as a uint8 array: cell, layers, bidirectional, bias, batch_first, dtype, sizes,
                         unbatched, has_lengths, hx_given, grad_state ("full", "none", or "h_only" for LSTM)
    param/<name>         the state_dict, PyTorch names
    x, lengths, h0, c0   the inputs (x in the module's layout; lengths only when has_lengths; c0 only in LSTM)
    g_out, g_h, g_c      the cotangents (g_out in the output's layout; zeros where grad_state leaves them out)
    out, h_n, c_n        PyTorch's results; with lengths, out comes from pad_packed_sequence(total_length=T),
                         so it is exactly 0 at padded positions
    grad/<name>          d/d(name) of sum(out*g_out) + sum(h_n*g_h) [+ sum(c_n*g_c)] for every parameter,
    grad/input, grad/h0, grad/c0

Which configurations: for every cell (rnn_tanh, rnn_relu, lstm, gru) in float64, the 8-row fractional
factorial 2^(6-3) over (layers {1,2}, bidirectional, lengths {none, unsorted >= 1}, batch_first, bias,
hx given), with batch_first = layers XOR bidirectional, bias = NOT (layers XOR lengths),
hx = NOT (bidirectional XOR lengths): every pair of options appears in all four combinations. Rows 2 and 6
pass grad_state=None, LSTM row 5 passes (g_h, None). Plus one unbatched (T, I) fixture per cell (2 layers,
bidirectional), and three float32 fixtures per cell (rows 3, 5, 6). index.json lists each fixture, its meta.

PyTorch rejects length 0 and T = 0; those cases are checked against kernels.reference in test_contract.py.
"""

from __future__ import annotations

import itertools
import json
import pathlib

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

HERE = pathlib.Path(__file__).resolve().parent
T, B, I, H = 5, 4, 2, 3
CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
# Unsorted, all >= 1; the two sets alternate so the batch's longest is sometimes T and sometimes shorter.
LENGTHS = (np.array([3, 5, 1, 4]), np.array([2, 4, 1, 3]))


def design():
    """8 rows of (layers, bidirectional, has_lengths, batch_first, bias, hx_given)."""
    rows = []
    for a, b, c in itertools.product((0, 1), repeat=3):
        rows.append(dict(num_layers=1 + a, bidirectional=bool(b), has_lengths=bool(c),
                         batch_first=bool(a ^ b), bias=not (a ^ c), hx_given=not (b ^ c)))
    return rows


def make_torch_module(cell, num_layers, bidirectional, bias, batch_first, dtype):
    kw = dict(input_size=I, hidden_size=H, num_layers=num_layers, bias=bias, batch_first=batch_first,
              bidirectional=bidirectional)
    if cell == "lstm":
        m = torch.nn.LSTM(**kw)
    elif cell == "gru":
        m = torch.nn.GRU(**kw)
    else:
        m = torch.nn.RNN(nonlinearity=cell[4:], **kw)
    return m.to(dtype)


def one_fixture(cell, row, dtype_name, seed, unbatched=False, grad_state="full"):
    np_dt = np.dtype(dtype_name)
    t_dt = {"float32": torch.float32, "float64": torch.float64}[dtype_name]
    rng = np.random.default_rng(seed)
    L, bidir, bf = row["num_layers"], row["bidirectional"], row["batch_first"]
    D = 2 if bidir else 1
    m = make_torch_module(cell, L, bidir, row["bias"], bf, t_dt)
    # Parameters from NumPy, so the fixture does not depend on torch's RNG; a wider range than PyTorch's
    # default init makes every gate matter.
    state = {}
    for name, p in m.named_parameters():
        state[name] = rng.uniform(-0.8, 0.8, size=tuple(p.shape)).astype(np_dt)
    m.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})

    lengths = LENGTHS[seed % 2] if row["has_lengths"] else None
    if unbatched:
        x_shape, s_shape = (T, I), (L * D, H)
    else:
        x_shape = (B, T, I) if bf else (T, B, I)
        s_shape = (L * D, B, H)
    x = rng.normal(size=x_shape).astype(np_dt)
    if lengths is not None:  # padded positions hold zeros, as the executor contract promises
        for b, n in enumerate(lengths):
            if bf:
                x[b, n:] = 0
            else:
                x[n:, b] = 0
    if row["hx_given"]:
        h0 = (0.5 * rng.normal(size=s_shape)).astype(np_dt)
        c0 = (0.5 * rng.normal(size=s_shape)).astype(np_dt)
    else:
        h0 = np.zeros(s_shape, np_dt)
        c0 = np.zeros(s_shape, np_dt)
    out_shape = x_shape[:-1] + (D * H,)
    g_out = rng.normal(size=out_shape).astype(np_dt)
    g_h = rng.normal(size=s_shape).astype(np_dt)
    g_c = rng.normal(size=s_shape).astype(np_dt)
    if grad_state == "none":
        g_h[...] = 0
        g_c[...] = 0
    elif grad_state == "h_only":
        g_c[...] = 0
    if cell != "lstm":
        g_c[...] = 0

    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    h0t = torch.from_numpy(h0.copy()).requires_grad_(True)
    c0t = torch.from_numpy(c0.copy()).requires_grad_(True)
    hx = (h0t, c0t) if cell == "lstm" else h0t
    if lengths is not None:
        packed = pack_padded_sequence(xt, torch.from_numpy(lengths), batch_first=bf, enforce_sorted=False)
        out_p, state_t = m(packed, hx)
        out_t, _ = pad_packed_sequence(out_p, batch_first=bf, total_length=T)
    else:
        out_t, state_t = m(xt, hx)
    hn_t, cn_t = state_t if cell == "lstm" else (state_t, None)
    loss = (out_t * torch.from_numpy(g_out)).sum() + (hn_t * torch.from_numpy(g_h)).sum()
    if cell == "lstm":
        loss = loss + (cn_t * torch.from_numpy(g_c)).sum()
    loss.backward()

    arrays = {f"param/{k}": v for k, v in state.items()}
    arrays.update(x=x, h0=h0, g_out=g_out, g_h=g_h, out=out_t.detach().numpy(), h_n=hn_t.detach().numpy())
    arrays["grad/input"] = xt.grad.numpy()
    arrays["grad/h0"] = h0t.grad.numpy()
    for name, p in m.named_parameters():
        arrays[f"grad/{name}"] = p.grad.numpy()
    if lengths is not None:
        arrays["lengths"] = lengths.astype(np.int64)
    if cell == "lstm":
        arrays.update(c0=c0, g_c=g_c, c_n=cn_t.detach().numpy(), **{"grad/c0": c0t.grad.numpy()})
    for k, v in arrays.items():
        if k != "lengths":
            assert v.dtype == np_dt, (k, v.dtype)
    meta = dict(cell=cell, dtype=dtype_name, input_size=I, hidden_size=H, seq_len=T,
                batch=None if unbatched else B, unbatched=unbatched, grad_state=grad_state, seed=seed,
                torch_version=torch.__version__, **row)
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    return arrays, meta


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for old in HERE.glob("*.npz"):
        old.unlink()
    rows = design()
    index = []
    seed = 0
    jobs = []
    for cell in CELLS:
        for r, row in enumerate(rows):
            # grad_state=None (all zeros) on a few rows, (g_h, None) on a few LSTM rows
            gs = "none" if r in (2, 6) else ("h_only" if cell == "lstm" and r == 5 else "full")
            jobs.append((f"{cell}_f64_{r:02d}", cell, row, "float64", False, gs))
        unb = dict(num_layers=2, bidirectional=True, has_lengths=False, batch_first=False, bias=True,
                   hx_given=True)
        jobs.append((f"{cell}_f64_unbatched", cell, unb, "float64", True, "full"))
        for r in (3, 5, 6):
            jobs.append((f"{cell}_f32_{r:02d}", cell, rows[r], "float32", False, "full"))
    for name, cell, row, dt, unbatched, gs in jobs:
        torch.manual_seed(seed)
        arrays, meta = one_fixture(cell, row, dt, seed, unbatched=unbatched, grad_state=gs)
        np.savez_compressed(HERE / f"{name}.npz", **arrays)
        index.append(dict(name=name, **meta))
        seed += 1
    (HERE / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    total = sum(p.stat().st_size for p in HERE.glob("*.npz"))
    print(f"wrote {len(index)} fixtures, {total / 1024:.0f} KiB, to {HERE}")


if __name__ == "__main__":
    main()
