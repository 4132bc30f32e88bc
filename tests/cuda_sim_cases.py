"""The CUDA executor's checks that run under Numba's CUDA simulator, in a process of their own.

The simulator must be switched on (NUMBA_ENABLE_CUDASIM=1) before numba is imported, so
tests/test_cuda_sim.py runs this file as a script in a subprocess:

    python tests/cuda_sim_cases.py WORKDIR

WORKDIR holds ``meta.json`` and ``inputs.npz`` written by the parent (cases: spec, parameters, inputs,
output gradients); this script runs the CUDA executor (and, for a few checks, single kernels beside their
NumPy twins) and writes ``results.npz``. Every assertion happens in the parent, with the dtype's tolerance.

Importing this module is cheap and never imports numba: the parent imports it for the case list.
The simulator starts one Python thread per CUDA thread, so every shape here is tiny.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

import numpy as np

# ------------------------------------------------------------------------------------------------- cases

T, B, I, H = 4, 5, 2, 3
LENGTHS = {"full": [T] * B, "unsorted_with_0": [2, 4, 0, 3, 1]}

FACTORS = {
    "cell": ["rnn_tanh", "rnn_relu", "lstm", "gru"],
    "bidirectional": [False, True],
    "layers": ["L1", "L2", "L2_dropout"],  # dropout only means something between two layers
    "lengths": ["full", "unsorted_with_0"],
    "dtype": ["float32", "float64"],
    "path": ["per_step", "persistent"],
    "bias": [True, False],
    "hx": [False, True],
}


def pairwise(factors: dict) -> list[dict]:
    """A deterministic greedy set of cases in which every pair of levels of every two factors appears."""
    names = list(factors)
    rank = {n: i for i, n in enumerate(names)}

    def pair(p, q):
        return (p, q) if rank[p[0]] < rank[q[0]] else (q, p)

    uncovered = {
        pair((a, va), (b, vb))
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        for va in factors[a]
        for vb in factors[b]
    }
    cases = []
    while uncovered:
        (a, va), (b, vb) = min(uncovered, key=repr)
        case = {a: va, b: vb}
        for n in names:
            if n not in case:
                case[n] = max(
                    factors[n], key=lambda v: sum(pair((m, case[m]), (n, v)) in uncovered for m in case)
                )
        cases.append({n: case[n] for n in names})
        uncovered -= {pair((x, case[x]), (y, case[y])) for i, x in enumerate(names) for y in names[i + 1 :]}
    return cases


def case_name(case: dict) -> str:
    return "-".join(
        [
            case["cell"],
            "bi" if case["bidirectional"] else "uni",
            case["layers"],
            case["lengths"],
            case["dtype"],
            case["path"],
            "bias" if case["bias"] else "nobias",
            "hx" if case["hx"] else "nohx",
        ]
        + ([f"T{case['T']}B{case['B']}"] if "T" in case else [])
    )


# Beyond the pairwise set: one step of one sequence, and a batch in which no sequence has any step.
EXTRA_CASES = [
    {
        "cell": "lstm",
        "bidirectional": True,
        "layers": "L1",
        "lengths": "full",
        "dtype": "float32",
        "path": "per_step",
        "bias": True,
        "hx": True,
        "T": 1,
        "B": 1,
    },
    {
        "cell": "gru",
        "bidirectional": True,
        "layers": "L2",
        "lengths": "all_zero",
        "dtype": "float64",
        "path": "persistent",
        "bias": True,
        "hx": True,
    },
]
CASES = {case_name(c): c for c in pairwise(FACTORS) + EXTRA_CASES}
# Run with device arrays in and out (numba device arrays: the simulator has no CuPy or PyTorch CUDA).
DEVICE_CASE = {
    "cell": "lstm",
    "bidirectional": True,
    "layers": "L2",
    "lengths": "unsorted_with_0",
    "dtype": "float32",
    "path": "per_step",
    "bias": True,
    "hx": True,
}

# A couple of the PyTorch fixtures (tests/golden), run through the modules with executor="cuda".
GOLDEN_NAMES = ["lstm_f32_03", "gru_f64_07", "rnn_relu_f32_06", "rnn_tanh_f64_unbatched"]

KERNEL_CHECKS = [
    f"{what}-{dt}"
    for dt in ("float32", "float64")
    for what in (
        "gemm_nt_bias",
        "gemm_nn_accumulate",
        "gemm_tn",
        "gemm_rows",
        "gemm_skinny",
        "rnn_tanh_step_forward",
        "rnn_relu_step_forward",
        "lstm_step_forward",
        "gru_step_forward",
        "rnn_tanh_step_backward",
        "rnn_relu_step_backward",
        "lstm_step_backward",
        "gru_step_backward",
        "zero_padded_copy",
        "transpose01",
        "column_sums",
        "multiply",
        "cast_copy",
    )
]
DEVICE_CHECKS = ["device_forward", "device_backward"]


def case_arrays(case: dict, seed: int) -> dict:
    """Spec fields and every array of one case (generated in the parent, which also computes the expected
    values with the NumPy reference and the dynamic executor)."""
    from graphrnn.cells import StackSpec, init_params

    rng = np.random.default_rng(seed)
    t, b = case.get("T", T), case.get("B", B)
    num_layers = 1 if case["layers"] == "L1" else 2
    spec = StackSpec(case["cell"], I, H, num_layers, case["bidirectional"], case["bias"], case["dtype"])
    dt = spec.np_dtype
    LD, DH = spec.num_layers * spec.directions, spec.directions * H
    if case["lengths"] == "all_zero":
        lengths = np.zeros(b, dtype=np.int64)
    else:
        lengths = np.array(LENGTHS[case["lengths"]][:b] if t == T else [t] * b, dtype=np.int64)
    params = init_params(spec, rng)
    x = rng.standard_normal((t, b, I)).astype(dt)
    x[np.arange(t)[:, None] >= lengths[None, :]] = 0  # what the modules layer hands an executor
    h0 = rng.standard_normal((LD, b, H)).astype(dt) if case["hx"] else np.zeros((LD, b, H), dt)
    c0 = None
    if spec.cell == "lstm":
        c0 = rng.standard_normal((LD, b, H)).astype(dt) if case["hx"] else np.zeros((LD, b, H), dt)
    masks = None
    if case["layers"] == "L2_dropout":
        masks = [((rng.random((t, b, DH)) >= 0.5) * 2.0).astype(dt) for _ in range(spec.num_layers - 1)]
    g_out = rng.standard_normal((t, b, DH)).astype(dt)  # nonzero at padded positions too: must be ignored
    g_hn = rng.standard_normal((LD, b, H)).astype(dt)
    g_cn = rng.standard_normal((LD, b, H)).astype(dt) if spec.cell == "lstm" else None
    return {
        "spec": spec,
        "params": params,
        "x": x,
        "lengths": lengths,
        "h0": h0,
        "c0": c0,
        "masks": masks,
        "g_out": g_out,
        "g_hn": g_hn,
        "g_cn": g_cn,
    }


# ------------------------------------------------------------------------------- the simulator side


def _case_inputs(meta, inputs, name):
    from graphrnn.cells import StackSpec

    m = meta["cases"][name]
    a = {k[len(name) + 1 :]: inputs[k] for k in inputs.files if k.startswith(name + "/")}
    params = {k[len("param/") :]: v for k, v in a.items() if k.startswith("param/")}
    return m, StackSpec(**m["spec"]), a, params


def _run_cases(meta, inputs, results):
    import graphrnn.cuda as gcuda

    default_bytes = gcuda.PERSISTENT_MAX_BYTES
    for name in meta["cases"]:
        if name == meta["device_case"]:
            continue
        m, spec, a, params = _case_inputs(meta, inputs, name)
        masks = [a[f"mask{i}"] for i in range(m["n_masks"])] if m["n_masks"] else None
        gcuda.PERSISTENT_MAX_BYTES = default_bytes if m["path"] == "persistent" else 0
        try:
            out, h_n, c_n, tape = gcuda.forward(
                spec, params, a["x"], a["lengths"], a["h0"], a.get("c0"), masks, True
            )
            grads = gcuda.backward(tape, a["g_out"], a["g_hn"], a.get("g_cn"))
        finally:
            gcuda.PERSISTENT_MAX_BYTES = default_bytes
        results[f"{name}/out"] = out
        results[f"{name}/h_n"] = h_n
        if c_n is not None:
            results[f"{name}/c_n"] = c_n
        for k, v in grads.items():
            results[f"{name}/grad/{k}"] = v
        # inference (keep=False) must give the same numbers as the training forward
        out_inf, _, _, tape_inf = gcuda.forward(
            spec, params, a["x"], a["lengths"], a["h0"], a.get("c0"), masks, False
        )
        results[f"{name}/out_inference"] = out_inf
        results[f"{name}/tape_is_none"] = np.array(tape_inf is None)


def _run_golden(meta, results):
    import graphrnn

    golden = pathlib.Path(meta["golden_dir"])
    for name in meta["golden"]:
        with np.load(golden / f"{name}.npz", allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        g = json.loads(a.pop("meta").tobytes())
        kw = {
            "num_layers": g["num_layers"],
            "bias": g["bias"],
            "batch_first": g["batch_first"],
            "bidirectional": g["bidirectional"],
            "dtype": np.dtype(g["dtype"]),
            "seed": 0,
        }
        cell = g["cell"]
        if cell == "lstm":
            model = graphrnn.LSTM(g["input_size"], g["hidden_size"], **kw)
        elif cell == "gru":
            model = graphrnn.GRU(g["input_size"], g["hidden_size"], **kw)
        else:
            model = graphrnn.RNN(g["input_size"], g["hidden_size"], nonlinearity=cell[4:], **kw)
        model.load_state_dict({k[len("param/") :]: v for k, v in a.items() if k.startswith("param/")})
        is_lstm = cell == "lstm"
        hx = ((a["h0"], a["c0"]) if is_lstm else a["h0"]) if g["hx_given"] else None
        out, st, tape = model.forward(a["x"], a.get("lengths"), hx, executor="cuda")
        gs = g["grad_state"]
        grad_state = (
            None
            if gs == "none"
            else ((a["g_h"], None if gs == "h_only" else a["g_c"]) if is_lstm else a["g_h"])
        )
        grads = model.backward(tape, a["g_out"], grad_state)
        results[f"golden/{name}/out"] = out
        results[f"golden/{name}/h_n"] = st[0] if is_lstm else st
        if is_lstm:
            results[f"golden/{name}/c_n"] = st[1]
        for k, v in grads.items():
            results[f"golden/{name}/grad/{k}"] = v


def _kernel_checks(results):
    """Each kernel beside its NumPy twin: results['kernel/<check>/got'] and ['kernel/<check>/want']."""
    from graphrnn.kernels import cuda as kc
    from graphrnn.kernels import reference as ref
    from numba import cuda

    import graphrnn.cuda as gcuda

    def put(name, got, want):
        results[f"kernel/{name}/got"] = np.asarray(got)
        results[f"kernel/{name}/want"] = np.asarray(want)

    rng = np.random.default_rng(123)
    for dtn in ("float32", "float64"):
        dt = np.dtype(dtn)
        dev = gcuda._device(dt)

        def r(*shape, dt=dt):
            return rng.standard_normal(shape).astype(dt)

        # GEMM: M = 13, N = 14, K = 11 over partial tiles in every direction (simulator tiles 6 x 12, bk 5)
        a, w, b1, b2 = r(13, 11), r(14, 11), r(14), r(14)
        c = dev.empty((13, 14))
        dev.gemm(
            cuda.to_device(a),
            cuda.to_device(w),
            c,
            trans_b=True,
            bias1=cuda.to_device(b1),
            bias2=cuda.to_device(b2),
        )
        put(f"gemm_nt_bias-{dtn}", c.copy_to_host(), a @ w.T + b1 + b2)
        a, w, c0 = r(13, 11), r(11, 14), r(13, 14)
        c = cuda.to_device(c0)
        dev.gemm(cuda.to_device(a), cuda.to_device(w), c, accumulate=True)
        put(f"gemm_nn_accumulate-{dtn}", c.copy_to_host(), c0 + a @ w)
        a, w = r(11, 13), r(11, 14)
        c = dev.empty((13, 14))
        dev.gemm(cuda.to_device(a), cuda.to_device(w), c, trans_a=True)
        put(f"gemm_tn-{dtn}", c.copy_to_host(), a.T @ w)
        # row-indexed: only rows[:M] of c are written, each from the same row of a
        a, w, c0 = r(9, 4), r(6, 4), r(9, 6)
        rows = np.array([3, 0, 8, 4, 1, 7, 2, 6, 5], dtype=np.int32)
        c = cuda.to_device(c0)
        dev.gemm(cuda.to_device(a), cuda.to_device(w), c, trans_b=True, rows=cuda.to_device(rows), M=7)
        want = c0.copy()
        want[rows[:7]] = a[rows[:7]] @ w.T
        put(f"gemm_rows-{dtn}", c.copy_to_host(), want)
        a, w = r(1, 7), r(7, 19)  # one row: the skinny block, two column tiles
        c = dev.empty((1, 19))
        dev.gemm(cuda.to_device(a), cuda.to_device(w), c)
        put(f"gemm_skinny-{dtn}", c.copy_to_host(), a @ w)

        # gate kernels at step s = 1 of the reverse direction; rows sorted by length, some already finished
        t_, b_, h_ = 4, 5, 3
        lengths = np.array([2, 4, 0, 3, 1], dtype=np.int64)
        rows = np.argsort(-lengths, kind="stable").astype(np.int32)
        s = 1
        nb = int((lengths > s).sum())
        col0, DH = h_, 2 * h_
        times = {int(rows[i]): int(lengths[rows[i]] - 1 - s) for i in range(nb)}
        prev_times = {bb: tt + 1 for bb, tt in times.items()}
        for cell in ("rnn_tanh", "rnn_relu", "lstm", "gru"):
            G = {"lstm": 4, "gru": 3}.get(cell, 1)
            xw, gh, h0, c_st = r(t_, b_, G * h_), r(b_, G * h_), r(b_, h_), r(b_, h_)
            bhh = r(G * h_)
            out0 = r(t_, b_, DH)
            gates0, c_all0, ghn0 = r(t_, b_, G * h_), r(t_, b_, h_), r(t_, b_, h_)
            d_h, d_c, d_o, d_g, d_call = (cuda.to_device(v) for v in (h0, c_st, out0, gates0, c_all0))
            d_ghn = cuda.to_device(ghn0)
            args_common = (cuda.to_device(lengths.astype(np.int32)), cuda.to_device(rows), nb, s, True)
            launch = dev.gate_launcher
            if cell == "lstm":
                launch(kc.lstm_step_forward, nb, h_)(
                    cuda.to_device(xw),
                    cuda.to_device(gh),
                    *args_common,
                    d_h,
                    d_c,
                    d_o,
                    col0,
                    True,
                    d_g,
                    d_call,
                    dev.one,
                )
            elif cell == "gru":
                launch(kc.gru_step_forward, nb, h_)(
                    cuda.to_device(xw),
                    cuda.to_device(gh),
                    cuda.to_device(bhh),
                    *args_common,
                    d_h,
                    d_o,
                    col0,
                    True,
                    d_g,
                    d_ghn,
                    dev.one,
                )
            else:
                launch(kc.rnn_step_forward, nb, h_)(
                    cuda.to_device(xw),
                    cuda.to_device(gh),
                    *args_common,
                    cell == "rnn_relu",
                    d_h,
                    d_o,
                    col0,
                    dev.one,
                )
            # twin: the reference step on each running row, at that row's own time; other rows untouched
            w_h, w_c, w_out, w_gates, w_call, w_ghn = (
                v.copy() for v in (h0, c_st, out0, gates0, c_all0, ghn0)
            )
            for bb, tt in times.items():
                if cell == "lstm":
                    hn, cn, gt = ref.lstm_step(xw[tt, bb][None], gh[bb][None], c_st[bb][None])
                    w_c[bb], w_gates[tt, bb], w_call[tt, bb] = cn[0], gt[0], cn[0]
                elif cell == "gru":
                    hn, gt = ref.gru_step(xw[tt, bb][None], (gh[bb] + bhh)[None], h0[bb][None])
                    w_gates[tt, bb], w_ghn[tt, bb] = gt[0], gh[bb, 2 * h_ :] + bhh[2 * h_ :]
                else:
                    hn = ref.rnn_step(xw[tt, bb][None], gh[bb][None], cell[4:])
                w_h[bb] = hn[0]
                w_out[tt, bb, col0:] = hn[0]
            got = [d_h.copy_to_host(), d_o.copy_to_host()]
            want = [w_h, w_out]
            if cell == "lstm":
                got += [d_c.copy_to_host(), d_g.copy_to_host(), d_call.copy_to_host()]
                want += [w_c, w_gates, w_call]
            elif cell == "gru":
                got += [d_g.copy_to_host(), d_ghn.copy_to_host()]
                want += [w_gates, w_ghn]
            put(
                f"{cell}_step_forward-{dtn}",
                np.concatenate([v.ravel() for v in got]),
                np.concatenate([v.ravel() for v in want]),
            )

            # backward step: activations that are consistent (gates in range) for a meaningful comparison
            out_saved = (
                np.tanh(r(t_, b_, DH)) if cell != "rnn_relu" else np.abs(r(t_, b_, DH)) * (r(t_, b_, DH) > 0)
            )
            sig = 1 / (1 + np.exp(-r(t_, b_, G * h_)))
            gates_s = sig.astype(dt)
            if cell == "lstm":
                gates_s[:, :, 2 * h_ : 3 * h_] = np.tanh(r(t_, b_, h_))
            if cell == "gru":
                gates_s[:, :, 2 * h_ :] = np.tanh(r(t_, b_, h_))
            c_all_s, ghn_s, g_out = r(t_, b_, h_), r(t_, b_, h_), r(t_, b_, DH)
            h0_s, c0_s, dh0, dc0 = r(b_, h_), r(b_, h_), r(b_, h_), r(b_, h_)
            dxw0, dgh0, ds0, hprev0 = r(t_, b_, G * h_), r(t_, b_, G * h_), r(b_, G * h_), r(t_, b_, h_)
            d_dh, d_dc, d_dxw, d_dgh, d_ds, d_hprev = (
                cuda.to_device(v) for v in (dh0, dc0, dxw0, dgh0, ds0, hprev0)
            )
            common = (cuda.to_device(lengths.astype(np.int32)), cuda.to_device(rows), nb, s, True)
            if cell == "lstm":
                launch(kc.lstm_step_backward, nb, h_)(
                    cuda.to_device(g_out),
                    cuda.to_device(out_saved),
                    cuda.to_device(h0_s),
                    cuda.to_device(gates_s),
                    cuda.to_device(c_all_s),
                    cuda.to_device(c0_s),
                    *common,
                    col0,
                    d_dh,
                    d_dc,
                    d_dxw,
                    d_ds,
                    d_hprev,
                    dev.one,
                )
            elif cell == "gru":
                launch(kc.gru_step_backward, nb, h_)(
                    cuda.to_device(g_out),
                    cuda.to_device(out_saved),
                    cuda.to_device(h0_s),
                    cuda.to_device(gates_s),
                    cuda.to_device(ghn_s),
                    *common,
                    col0,
                    d_dh,
                    d_dxw,
                    d_dgh,
                    d_ds,
                    d_hprev,
                    dev.one,
                )
            else:
                launch(kc.rnn_step_backward, nb, h_)(
                    cuda.to_device(g_out),
                    cuda.to_device(out_saved),
                    cuda.to_device(h0_s),
                    *common,
                    cell == "rnn_relu",
                    col0,
                    d_dh,
                    d_dxw,
                    d_ds,
                    d_hprev,
                    dev.one,
                )
            w_dh, w_dc, w_dxw, w_dgh, w_ds, w_hprev = (v.copy() for v in (dh0, dc0, dxw0, dgh0, ds0, hprev0))
            for bb, tt in times.items():
                tp = prev_times[bb]
                h_prev = out_saved[tp, bb, col0:] if tp < lengths[bb] else h0_s[bb]
                g_h = (g_out[tt, bb, col0:] + dh0[bb])[None]
                if cell == "lstm":
                    c_prev = c_all_s[tp, bb] if tp < lengths[bb] else c0_s[bb]
                    dpre, dc_prev = ref.lstm_step_backward(
                        g_h, dc0[bb][None], gates_s[tt, bb][None], c_all_s[tt, bb][None], c_prev[None]
                    )
                    w_dxw[tt, bb], w_ds[bb], w_dc[bb] = dpre[0], dpre[0], dc_prev[0]
                elif cell == "gru":
                    dxw_, dgh_, direct = ref.gru_step_backward(
                        g_h, gates_s[tt, bb][None], ghn_s[tt, bb][None], h_prev[None]
                    )
                    w_dxw[tt, bb], w_dgh[tt, bb], w_ds[bb], w_dh[bb] = dxw_[0], dgh_[0], dgh_[0], direct[0]
                else:
                    dpre = ref.rnn_step_backward(g_h, out_saved[tt, bb, col0:][None], cell[4:])
                    w_dxw[tt, bb], w_ds[bb] = dpre[0], dpre[0]
                w_hprev[tt, bb] = h_prev
            got = [d_dxw.copy_to_host(), d_ds.copy_to_host(), d_hprev.copy_to_host(), d_dh.copy_to_host()]
            want = [w_dxw, w_ds, w_hprev, w_dh]
            if cell == "lstm":
                got.append(d_dc.copy_to_host())
                want.append(w_dc)
            if cell == "gru":
                got.append(d_dgh.copy_to_host())
                want.append(w_dgh)
            put(
                f"{cell}_step_backward-{dtn}",
                np.concatenate([v.ravel() for v in got]),
                np.concatenate([v.ravel() for v in want]),
            )

        # element-wise kernels
        xx = r(4, 5, 3)
        xx[3, 1] = np.nan  # a padded position: NaN must not survive
        lens = np.array([4, 2, 0, 3, 4])
        outd = dev.empty(xx.shape)
        gcuda._launch1d(kc.zero_padded_copy, outd.size)(
            outd, cuda.to_device(xx), cuda.to_device(lens), dev.zero
        )
        put(
            f"zero_padded_copy-{dtn}",
            outd.copy_to_host(),
            np.where((np.arange(4)[:, None] < lens)[:, :, None], xx, 0),
        )
        yy = r(4, 5, 3)
        put(f"transpose01-{dtn}", gcuda.transpose01(cuda.to_device(yy)).copy_to_host(), yy.transpose(1, 0, 2))
        m2 = r(7, 4)
        put(f"column_sums-{dtn}", dev.column_sums(cuda.to_device(m2)).copy_to_host(), m2.sum(axis=0))
        p, q = r(11), r(11)
        o = dev.empty((11,))
        dev.multiply(o, cuda.to_device(p), cuda.to_device(q))
        put(f"multiply-{dtn}", o.copy_to_host(), p * q)
        other = np.float64 if dt == np.float32 else np.float32
        src = rng.standard_normal((3, 4)).astype(other)
        got = gcuda.as_device_array("x", cuda.to_device(src), dt)
        put(f"cast_copy-{dtn}", got.copy_to_host(), src.astype(dt))
        results[f"kernel/cast_copy-{dtn}/dtype"] = np.array(str(got.dtype))


def _device_checks(meta, inputs, results):
    """Device inputs stay on the device: x, h0, c0, g_out as device arrays; results must be device arrays."""
    from numba import cuda

    import graphrnn.cuda as gcuda

    _, spec, a, params = _case_inputs(meta, inputs, meta["device_case"])
    dx = cuda.to_device(a["x"])
    out, h_n, c_n, tape = gcuda.forward(
        spec,
        params,
        dx,
        a["lengths"],
        cuda.to_device(a["h0"]),
        cuda.to_device(a["c0"]) if "c0" in a else None,
        None,
        True,
    )
    results["device/forward_types_on_device"] = np.array(
        [
            gcuda.is_device_array(v) and not isinstance(v, np.ndarray)
            for v in (out, h_n) + ((c_n,) if c_n is not None else ())
        ]
    )
    results["device/out"] = out.copy_to_host()
    results["device/h_n"] = h_n.copy_to_host()
    grads = gcuda.backward(
        tape,
        cuda.to_device(a["g_out"]),
        cuda.to_device(a["g_hn"]),
        cuda.to_device(a["g_cn"]) if "g_cn" in a else None,
    )
    results["device/state_grads_on_device"] = np.array(
        [gcuda.is_device_array(grads[k]) for k in grads if k in ("input", "h0", "c0")]
    )
    results["device/param_grads_on_host"] = np.array(
        [isinstance(grads[k], np.ndarray) for k in grads if k not in ("input", "h0", "c0")]
    )
    for k, v in grads.items():
        results[f"device/grad/{k}"] = gcuda.to_host(v)
    # NaN at padded positions of a device input must not leak anywhere (the executor zeros them itself)
    x_nan = a["x"].copy()
    x_nan[np.arange(x_nan.shape[0])[:, None] >= a["lengths"][None, :]] = np.nan
    out2, h2, _, _ = gcuda.forward(
        spec,
        params,
        cuda.to_device(x_nan),
        a["lengths"],
        cuda.to_device(a["h0"]),
        cuda.to_device(a["c0"]) if "c0" in a else None,
        None,
        False,
    )
    results["device/out_nan_padded"] = out2.copy_to_host()
    results["device/h_n_nan_padded"] = h2.copy_to_host()


def main(workdir: str) -> None:
    from numba.core import config

    assert config.ENABLE_CUDASIM, "run with NUMBA_ENABLE_CUDASIM=1 (set before numba is imported)"
    work = pathlib.Path(workdir)
    meta = json.loads((work / "meta.json").read_text())
    timings = {}
    results: dict = {}
    with np.load(work / "inputs.npz", allow_pickle=False) as inputs:
        for part, fn in (
            ("cases", lambda: _run_cases(meta, inputs, results)),
            ("golden", lambda: _run_golden(meta, results)),
            ("kernels", lambda: _kernel_checks(results)),
            ("device", lambda: _device_checks(meta, inputs, results)),
        ):
            t0 = time.perf_counter()
            fn()
            timings[part] = round(time.perf_counter() - t0, 2)
    results["timings"] = np.frombuffer(json.dumps(timings).encode(), dtype=np.uint8)
    np.savez(work / "results.npz", **results)


if __name__ == "__main__":
    main(sys.argv[1])
