"""One prepared check for a machine with a real NVIDIA GPU: correctness first, then timings, in under 5 minutes.

    pip install -e ".[cuda]" && python benchmarks/gpu_check.py            # on the GPU machine
    python benchmarks/gpu_check.py --tiny --simulator                    # anywhere: end to end, tiny shapes

1. Correctness: every cell (RNN tanh/relu, LSTM, GRU), 2 layers, bidirectional, unsorted lengths with a 0,
   float32 and float64, the per-step and the persistent (W_hh in shared memory) paths, host and device inputs
   (numba device arrays, and PyTorch CUDA tensors through __cuda_array_interface__ when torch is there):
   outputs, final states and every gradient against the dynamic CPU executor in float64.
2. Timing, LSTM float32 at (T, B, I, H) = (100,1,64,128), (100,16,128,256), (200,64,256,512), (50,256,512,1024),
   forward (inference) and forward+backward: cuda (device-resident inputs; parameters uploaded per call, as in
   training), the dynamic CPU executor, and PyTorch cuDNN when torch with CUDA is importable. Each is warmed
   first (compile time reported apart) and then timed as the median of repeats.
3. The persistent kernel against the per-step path at small H.

The script watches its own clock and skips what no longer fits in --budget seconds (default 280), saying so.
Exit status 1 when any correctness check fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial

START = time.perf_counter()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--tiny", action="store_true", help="tiny shapes (for the simulator or a quick smoke test)"
    )
    p.add_argument("--simulator", action="store_true", help="set NUMBA_ENABLE_CUDASIM=1 (CPU, slow)")
    p.add_argument("--budget", type=float, default=280.0, help="seconds for the whole run (default 280)")
    return p.parse_args()


ARGS = parse_args()
if ARGS.simulator:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before numba is imported

import numpy as np

import graphrnn
import graphrnn.cuda as gcuda
from graphrnn import dynamic
from graphrnn.cells import StackSpec, init_params

SHAPES = [(100, 1, 64, 128), (100, 16, 128, 256), (200, 64, 256, 512), (50, 256, 512, 1024)]
TINY_SHAPES = [(3, 1, 2, 3), (4, 3, 3, 5)]


def elapsed():
    return time.perf_counter() - START


def left():
    return ARGS.budget - elapsed()


def sync():
    gcuda._backend()[0].synchronize()


def torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


# ------------------------------------------------------------------------------------------ correctness


def make_inputs(spec, T, B, lengths, rng, dtype):
    LD = spec.num_layers * spec.directions
    H = spec.hidden_size
    x = rng.standard_normal((T, B, spec.input_size))
    x[np.arange(T)[:, None] >= lengths[None, :]] = 0
    h0 = rng.standard_normal((LD, B, H)) * 0.5
    c0 = rng.standard_normal((LD, B, H)) * 0.5 if spec.cell == "lstm" else None
    g_out = rng.standard_normal((T, B, spec.directions * H))
    g_hn = rng.standard_normal((LD, B, H))
    g_cn = rng.standard_normal((LD, B, H)) if spec.cell == "lstm" else None
    cast = lambda a: None if a is None else a.astype(dtype)
    return [cast(a) for a in (x, h0, c0, g_out, g_hn, g_cn)]


def max_rel_err(got, want):
    got = gcuda.to_host(got).astype(np.float64)
    return float(np.max(np.abs(got - want)) / (np.max(np.abs(want)) + 1e-30)) if want.size else 0.0


def correctness(tiny):
    print("== correctness against the dynamic CPU executor in float64 ==")
    torch = torch_cuda()
    failures = 0
    T, B, I = (4, 3, 2) if tiny else (13, 7, 16)
    lengths = np.array([2, 4, 0] if tiny else [13, 5, 0, 9, 13, 1, 7], dtype=np.int64)
    Hs = (3,) if tiny else (32, 200)  # 32: persistent path fits; 200: per-step only, several GEMM tiles
    default_bytes = gcuda.PERSISTENT_MAX_BYTES
    for cell in ("rnn_tanh", "rnn_relu", "lstm", "gru"):
        for H in Hs:
            rng = np.random.default_rng(0)
            spec64 = StackSpec(cell, I, H, 2, True, True, "float64")
            params64 = init_params(spec64, rng)
            x, h0, c0, g_out, g_hn, g_cn = make_inputs(spec64, T, B, lengths, rng, np.float64)
            out_w, hn_w, cn_w, tape = dynamic.forward(spec64, params64, x, lengths, h0, c0, None, True)
            grads_w = dynamic.backward(tape, g_out, g_hn, g_cn)
            for dtn, tol in (("float64", 1e-9), ("float32", 2e-4)):
                spec = StackSpec(cell, I, H, 2, True, True, dtn)
                params = {k: v.astype(dtn) for k, v in params64.items()}
                for path in ("persistent", "per_step"):
                    for where in ("host", "device", "torch") if path == "per_step" else ("host",):
                        if where == "torch" and torch is None:
                            continue
                        t0 = time.perf_counter()
                        gcuda.PERSISTENT_MAX_BYTES = default_bytes if path == "persistent" else 0
                        try:
                            xs, h0s, c0s, gos, ghs, gcs = (
                                None if a is None else a.astype(dtn) for a in (x, h0, c0, g_out, g_hn, g_cn)
                            )
                            if where == "device":
                                cuda = gcuda._backend()[0]
                                xs, gos = cuda.to_device(xs), cuda.to_device(gos)
                            elif where == "torch":
                                xs = torch.as_tensor(xs, device="cuda")
                                gos = torch.as_tensor(gos, device="cuda")
                            out, hn, cn, tp = gcuda.forward(spec, params, xs, lengths, h0s, c0s, None, True)
                            grads = gcuda.backward(tp, gos, ghs, gcs)
                        finally:
                            gcuda.PERSISTENT_MAX_BYTES = default_bytes
                        errs = {"out": max_rel_err(out, out_w), "h_n": max_rel_err(hn, hn_w)}
                        if cn_w is not None:
                            errs["c_n"] = max_rel_err(cn, cn_w)
                        for k, v in grads_w.items():
                            errs[f"grad {k}"] = max_rel_err(grads[k], v)
                        worst = max(errs, key=errs.get)
                        placed = where == "host" or gcuda.is_device_array(out)
                        ok = errs[worst] <= tol and placed
                        failures += not ok
                        print(
                            f"{'PASS' if ok else 'FAIL'} {cell:8s} H={H:<4d} {dtn} {path:10s} {where:6s} "
                            f"worst rel err {errs[worst]:.1e} ({worst}){'' if placed else ' NOT ON DEVICE'} "
                            f"[{time.perf_counter() - t0:.1f} s]"
                        )
    print(
        f"correctness: {'all passed' if failures == 0 else f'{failures} FAILED'} ({elapsed():.0f} s so far)\n"
    )
    return failures


# --------------------------------------------------------------------------------------------- timing


def bench(fn, min_time=0.3, max_reps=20):
    """(median seconds of the timed calls, seconds of the first, untimed call: compile and warm-up).

    At least 3 timed calls, more until min_time has passed; only 1 when a call takes over a second."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    reps = 1 if first > 1.0 else max_reps
    times = []
    t_end = time.perf_counter() + min_time
    while len(times) < reps and (len(times) < 3 or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), first


def lstm_flops(T, B, I, H, backward):
    fwd = 2.0 * T * B * (I + H) * 4 * H
    return fwd * 3 if backward else fwd  # backward: two more products of the same size


def run_cuda(spec, params, x, lengths, h0, c0, backward, g_out, g_hn, g_cn):
    _, _, _, tape = gcuda.forward(spec, params, x, lengths, h0, c0, None, backward)
    if backward:
        gcuda.backward(tape, g_out, g_hn, g_cn)
    sync()


def run_dynamic(spec, params, x, lengths, h0, c0, backward, g_out, g_hn, g_cn):
    _, _, _, tape = dynamic.forward(spec, params, x, lengths, h0, c0, None, backward)
    if backward:
        dynamic.backward(tape, g_out, g_hn, g_cn)


def run_torch(torch, lstm, xt, gt, backward):
    if backward:
        out, _ = lstm(xt)
        out.backward(gt)
    else:
        with torch.no_grad():
            lstm(xt)
    torch.cuda.synchronize()


def timing(tiny):
    print("== timing: LSTM float32, 1 layer, unidirectional, full lengths ==")
    torch = torch_cuda()
    cuda = gcuda._backend()[0]
    rows = []
    for T, B, I, H in TINY_SHAPES if tiny else SHAPES:
        spec = StackSpec("lstm", I, H, 1, False, True, "float32")
        rng = np.random.default_rng(0)
        params = init_params(spec, rng)
        lengths = np.full(B, T, dtype=np.int64)
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        h0 = np.zeros((1, B, H), np.float32)
        g_out = rng.standard_normal((T, B, H)).astype(np.float32)
        host = (x, lengths, h0, h0)
        device = (cuda.to_device(x), lengths, cuda.to_device(h0), cuda.to_device(h0))
        g_host = (g_out, h0, h0)
        g_device = (cuda.to_device(g_out), device[2], device[2])
        for backward in (False, True):
            label = "fwd+bwd" if backward else "fwd"
            candidates = [
                ("cuda", partial(run_cuda, spec, params, *device, backward, *g_device)),
                ("dynamic CPU", partial(run_dynamic, spec, params, *host, backward, *g_host)),
            ]
            if torch is not None:
                lstm = torch.nn.LSTM(I, H).cuda()
                xt = torch.as_tensor(x, device="cuda").requires_grad_(backward)
                gt = torch.as_tensor(g_out, device="cuda")
                candidates.append(("torch cuDNN", partial(run_torch, torch, lstm, xt, gt, backward)))
            res = {}
            for name, fn in candidates:
                # the largest CPU forward+backward can take ~10 s a call
                res[name] = bench(fn) if left() >= 30 else None
            rows.append(((T, B, I, H), label, res))
            cu = res.get("cuda")
            gflops = lstm_flops(T, B, I, H, backward) / cu[0] / 1e9 if cu else float("nan")
            print(
                f"  {(T, B, I, H)!s:22s} {label:8s} "
                + "  ".join(
                    f"{k} {'skipped (time box)' if v is None else f'{v[0] * 1e3:9.2f} ms'}"
                    for k, v in res.items()
                )
                + f"  cuda {gflops:8.1f} GFLOP/s  [{elapsed():.0f} s]"
            )
    return rows


def run_forward(spec, params, x_d, lengths, h0_d, c0_d):
    gcuda.forward(spec, params, x_d, lengths, h0_d, c0_d, None, False)
    sync()


def persistent_vs_per_step(tiny):
    print("\n== persistent kernel (W_hh in shared memory) vs per-step path, float32 forward ==")
    cuda = gcuda._backend()[0]
    default_bytes = gcuda.PERSISTENT_MAX_BYTES
    for cell, (T, B, I, H) in (
        [("lstm", (4, 3, 2, 3))]
        if tiny
        else [("lstm", (100, 16, 32, 32)), ("gru", (100, 64, 32, 48)), ("rnn_tanh", (200, 1, 32, 64))]
    ):
        if left() < 15:
            print("  skipped (time box)")
            break
        spec = StackSpec(cell, I, H, 1, False, True, "float32")
        rng = np.random.default_rng(0)
        params = init_params(spec, rng)
        lengths = np.full(B, T, dtype=np.int64)
        x_d = cuda.to_device(rng.standard_normal((T, B, I)).astype(np.float32))
        h0_d = cuda.to_device(np.zeros((1, B, H), np.float32))
        fn = partial(run_forward, spec, params, x_d, lengths, h0_d, h0_d if cell == "lstm" else None)
        out = {}
        for path in ("persistent", "per_step"):
            gcuda.PERSISTENT_MAX_BYTES = default_bytes if path == "persistent" else 0
            try:
                out[path] = bench(fn)[0]
            finally:
                gcuda.PERSISTENT_MAX_BYTES = default_bytes
        print(
            f"  {cell:8s} {(T, B, I, H)!s:20s} persistent {out['persistent'] * 1e3:8.2f} ms   "
            f"per-step {out['per_step'] * 1e3:8.2f} ms   speed-up {out['per_step'] / out['persistent']:.2f}x"
        )


def print_table(rows):
    names = []
    for _, _, res in rows:
        for k in res:
            if k not in names:
                names.append(k)
    print(
        "\n| (T, B, I, H) | pass | "
        + " | ".join(f"{n} ms (first call s)" for n in names)
        + " | dynamic / cuda | torch / cuda |"
    )
    print("|---|---|" + "---|" * len(names) + "---|---|")  # ratios above 1: cuda is faster
    for shape, label, res in rows:
        cells = []
        for n in names:
            v = res.get(n)
            cells.append("skipped" if v is None else f"{v[0] * 1e3:.2f} ({v[1]:.1f})")
        cu, dy, to = res.get("cuda"), res.get("dynamic CPU"), res.get("torch cuDNN")
        r1 = f"{dy[0] / cu[0]:.2f}" if cu and dy else "-"
        r2 = f"{to[0] / cu[0]:.2f}" if cu and to else "-"
        print(f"| {shape} | {label} | " + " | ".join(cells) + f" | {r1} | {r2} |")


def main():
    cuda, kc = gcuda._backend()
    dev = "CUDA simulator" if kc.SIMULATOR else cuda.get_current_device().name
    dev = dev.decode() if isinstance(dev, bytes) else dev
    torch = torch_cuda()
    print(
        f"graphrnn {graphrnn.__version__}, numpy {np.__version__}, device: {dev}, "
        f"torch: {torch.__version__ if torch else 'not available with CUDA'}, budget {ARGS.budget:.0f} s\n"
    )
    failures = correctness(ARGS.tiny)
    rows = timing(ARGS.tiny)
    persistent_vs_per_step(ARGS.tiny)
    print_table(rows)
    print(f"\ntotal {elapsed():.0f} s; correctness {'passed' if failures == 0 else f'{failures} FAILED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
