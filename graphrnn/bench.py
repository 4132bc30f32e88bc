"""Benchmarks that settle the three claims of the static/dynamic trade-off, and ``graphrnn bench``.

The claims (DESIGN.md) and what measures each:

1. memory: a static graph costs memory that grows with T; a dynamic loop needs one cell
   (``memory_vs_T``: peak RSS and traced NumPy/Python bytes in a subprocess, node count, planned bytes);
2. variable length: static pads every sequence to its fixed T; dynamic runs each batch to its own length
   (``variable_length``: useful vs computed row-steps and time per pass, real and uniform lengths);
3. speed: the static graph, vectorised over a padded batch, beats the dynamic loop at batch size 1
   (``speed_sweep``: sequences per second over T, B and H).

Plus PyTorch side by side (``torch_compare``, ``torch_varlen``), the machine's GEMM peak, the recurrent
product's share of it, start-up and compile times. This module is shared: ``graphrnn bench`` runs a quick
version of every section (``run``), and the pytest-benchmark suite in ``benchmarks/`` calls the same
functions with full sizes.

Rules every measurement here follows (PERF-NOTES: the machine is small and shared):

- each contender's result is first checked against the NumPy reference (``graphrnn.kernels.reference``)
  on a small slice (forward; gradients by a float64 directional finite difference), then warmed; the first
  call (JIT compile or cache load, plan build) is reported apart from the steady-state times;
- contenders are timed interleaved in one process (round robin, rotating who goes first), and every
  figure carries the other processes' CPU use during its samples, in cores (read from /proc/stat);
- thread counts are set for graphrnn (BLAS and Numba) and PyTorch together (``threads``).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

F32 = np.float32

# ------------------------------------------------------------------------------------------ machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        return None


def try_torch():
    """PyTorch if importable (the optional ``bench`` extra), else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def machine_info() -> dict:
    import numba

    import graphrnn

    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "mem_gib": _mem_total_gib(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "graphrnn": graphrnn.__version__,
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = sorted(
            {
                f"{p.get('internal_api')} {p.get('version')}"
                for p in threadpool_info()
                if p.get("user_api") == "blas"
            }
        )
    except Exception:  # noqa: BLE001 (informational only)
        pass
    torch = try_torch()
    info["torch"] = torch.__version__ if torch is not None else None
    info["git"] = _git_state()
    return info


def _git_state():
    """The source tree's commit (and '+dirty' with uncommitted changes), or None outside a checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


# ---------------------------------------------------------------------------------------- CPU load

_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat():
    """(busy, total) CPU seconds of the whole machine since boot, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = vals[3] + vals[4]  # idle + iowait
    total = sum(vals)  # user nice system idle iowait irq softirq steal (guest is inside user)
    return (total - idle) / _HZ, total / _HZ


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class LoadMeter:
    """Other processes' CPU use between ``start`` and ``stop``, in cores (0 = quiet; 2 = both cores busy
    elsewhere on a 2-core machine). Own time includes this process's threads and waited-for children."""

    def __init__(self):
        self.start()

    def start(self):
        self._stat, self._own = _proc_stat(), _own_cpu()

    def stop(self):
        end = _proc_stat()
        if end is None or self._stat is None:
            return None
        busy, total = end[0] - self._stat[0], end[1] - self._stat[1]
        if total <= 0:
            return None
        wall_cores = total / (os.cpu_count() or 1)  # seconds of wall time the window spanned
        others = (busy - (_own_cpu() - self._own)) / wall_cores if wall_cores > 0 else 0.0
        return max(0.0, min(float(os.cpu_count() or 1), others))


def sample_load(seconds: float = 1.0):
    """Other processes' CPU use over ``seconds`` of idle waiting (the machine's load before a run)."""
    m = LoadMeter()
    time.sleep(seconds)
    return m.stop()


# ------------------------------------------------------------------------------------------ threads


def set_threads(n: int) -> None:
    """Use n threads in graphrnn (NumPy's BLAS, Numba) and, when loaded, PyTorch."""
    import graphrnn

    graphrnn.set_num_threads(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


@contextlib.contextmanager
def threads(n: int):
    set_threads(n)
    try:
        yield
    finally:
        set_threads(os.cpu_count() or 1)


def parse_threads(text) -> list[int]:
    if isinstance(text, (list, tuple)):
        return [int(t) for t in text]
    vals = [int(t) for t in str(text).split(",") if t.strip()]
    if not vals or min(vals) < 1:
        raise ValueError(f"threads must be a comma-separated list of ints >= 1, got {text!r}")
    return vals


# ------------------------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Per-call seconds of one contender: the first call (compile/cache load/plan build) apart."""

    name: str
    first_s: float
    samples: list = field(default_factory=list)
    load: float | None = None  # other processes' cores during the samples (time-weighted mean)

    @property
    def median(self) -> float:
        return float(np.median(self.samples)) if self.samples else self.first_s

    @property
    def best(self) -> float:
        return float(min(self.samples)) if self.samples else self.first_s

    @property
    def spread(self) -> float:
        """(max - min) / median of the samples: how noisy this figure is."""
        if len(self.samples) < 2:
            return 0.0
        return float((max(self.samples) - min(self.samples)) / self.median)


def interleave(
    contenders: dict,
    *,
    rounds: int = 5,
    budget_s: float | None = None,
    min_rounds: int = 2,
    min_sample_s: float = 0.02,
) -> dict:
    """Time ``{name: fn}`` interleaved: first call of each (reported as ``first_s``), then ``rounds``
    round-robin passes rotating who goes first; a fast contender runs k times per sample so each sample
    lasts at least ``min_sample_s``. Stops early after ``min_rounds`` when ``budget_s`` is spent.
    Returns {name: Timing}."""
    names = list(contenders)
    out = {}
    for n in names:
        t0 = time.perf_counter()
        contenders[n]()
        out[n] = Timing(n, time.perf_counter() - t0)
    inner = {}
    for n in names:  # a second call sizes the inner loop (and finishes warming: caches, page faults)
        if out[n].first_s > 1.0:
            inner[n] = 1
            continue
        t0 = time.perf_counter()
        contenders[n]()
        dt = max(time.perf_counter() - t0, 1e-7)
        inner[n] = max(1, math.ceil(min_sample_s / dt)) if dt < min_sample_s else 1
    load_acc = {n: [0.0, 0.0] for n in names}
    start = time.perf_counter()
    meter = LoadMeter()
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            fn, reps = contenders[n], inner[n]
            meter.start()
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            dt = time.perf_counter() - t0
            others = meter.stop()
            out[n].samples.append(dt / reps)
            if others is not None:
                load_acc[n][0] += others * dt
                load_acc[n][1] += dt
        if budget_s is not None and r + 1 >= min_rounds and time.perf_counter() - start > budget_s:
            break
    for n in names:
        s, w = load_acc[n]
        out[n].load = s / w if w > 0 else None
    return out


# -------------------------------------------------------------------------------------------- flops


def flops(
    cell: str,
    T: int,
    B: int,
    I: int,
    H: int,
    *,
    steps: int | None = None,
    backward: bool = False,
    layers: int = 1,
    directions: int = 1,
) -> dict:
    """Multiply-add FLOPs (2 per MAC) of the products of one pass; ``steps`` (row-steps, e.g. the sum of
    lengths) replaces T*B when given. Backward doubles the products (input and weight gradients), so
    forward+backward is 3x. Gate element-wise maths is not counted (it is O(G*H) per row-step)."""
    from graphrnn.cells import GATES

    G = GATES[{"rnn": "rnn_tanh"}.get(cell, cell)]
    rs = T * B if steps is None else steps
    proj = rec = 0
    for layer in range(layers):
        i_l = I if layer == 0 else H * directions
        proj += directions * 2 * rs * G * H * i_l
        rec += directions * 2 * rs * G * H * H
    mult = 3 if backward else 1
    return {"total": mult * (proj + rec), "recurrent": mult * rec, "projection": mult * proj}


def gemm_peak(n: int = 2048, repeats: int = 3) -> dict:
    """The machine's float32 GEMM rate in NumPy (OpenBLAS) at the current thread setting: best of
    ``repeats`` square n x n products, GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(F32)
    b = rng.standard_normal((n, n)).astype(F32)
    c = np.empty((n, n), F32)
    np.matmul(a, b, out=c)
    meter = LoadMeter()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return {"n": n, "gflops": 2 * n**3 / best / 1e9, "seconds": best, "load": meter.stop()}


# -------------------------------------------------------------------------------------- correctness

_CELLS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def make_model(cell: str, I: int, H: int, *, layers: int = 1, dtype=F32, seed: int = 0):
    import graphrnn

    return getattr(graphrnn, _CELLS[cell])(I, H, layers, dtype=dtype, seed=seed)


def _tol(dtype) -> float:
    return 2e-4 if np.dtype(dtype) == np.float32 else 1e-9


def _assert_close(what, got, want, tol):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape}, reference {want.shape}")
    if got.size == 0:
        return
    diff = np.abs(got - want)
    scale = max(1.0, float(np.abs(want).max()))
    k = int(np.argmax(diff))
    if diff.flat[k] > tol * scale:
        raise AssertionError(
            f"{what}: largest difference {diff.flat[k]:.3g} at index "
            f"{np.unravel_index(k, got.shape)} (got {got.flat[k]:.6g}, reference "
            f"{want.flat[k]:.6g}), tolerance {tol * scale:.3g}"
        )


def _slice(x, lengths, max_T, max_B):
    T, B = min(x.shape[0], max_T), min(x.shape[1], max_B)
    xs = np.ascontiguousarray(x[:T, :B])
    ls = None if lengths is None else np.minimum(np.asarray(lengths)[:B], T).astype(np.int64)
    if ls is not None:
        xs = np.where((np.arange(T)[:, None] < ls[None, :])[:, :, None], xs, xs.dtype.type(0))
    return xs, ls


def _reference(model, xs, ls, h0=None, c0=None):
    from graphrnn.kernels import reference

    p64 = {k: v.astype(np.float64) for k, v in model.params.items()}
    return reference.stack_forward(model.spec, p64, xs.astype(np.float64), ls, h0, c0)


def check_forward(model, executor: str, x, lengths=None, *, max_T: int = 12, max_B: int = 3) -> None:
    """``model(x, lengths, executor=...)`` on a small slice agrees with the NumPy reference (float64)."""
    xs, ls = _slice(x, lengths, max_T, max_B)
    out, state = model(xs, ls, executor=executor)
    ref_out, ref_h, ref_c = _reference(model, xs, ls)
    tol = _tol(model.dtype)
    _assert_close(f"{executor} output", out, ref_out, tol)
    h = state[0] if isinstance(state, tuple) else state
    _assert_close(f"{executor} h_n", h, ref_h, tol)
    if ref_c is not None:
        _assert_close(f"{executor} c_n", state[1], ref_c, tol)


def _float64_twin(model):
    twin = type(model)(**{**model.config, "dtype": "float64"})
    twin.load_state_dict(model.params)
    return twin


def _loss_seeds(model, T, B, rng):
    H, LD = model.spec.hidden_size, model.spec.num_layers * model.spec.directions
    g_out = rng.standard_normal((T, B, model.spec.directions * H))
    g_h = rng.standard_normal((LD, B, H))
    g_c = rng.standard_normal((LD, B, H)) if model.spec.has_cell_state else None
    return g_out, g_h, g_c


def check_gradients(
    model, executor: str, x, lengths=None, *, max_T: int = 6, max_B: int = 2, seed: int = 0
) -> dict:
    """Gradients of ``executor`` on a small slice: float64 against a central finite difference of the
    NumPy reference along one random direction (parameters and input together), and the model's own dtype
    against float64. Returns the float64 gradients (to check other frameworks against)."""
    rng = np.random.default_rng(seed)
    xs, ls = _slice(x, lengths, max_T, max_B)
    T, B = xs.shape[0], xs.shape[1]
    m64 = _float64_twin(model)
    g_out, g_h, g_c = _loss_seeds(model, T, B, rng)
    if ls is not None:
        g_out = g_out * (np.arange(T)[:, None] < ls[None, :])[:, :, None]
    gstate = (g_h, g_c) if g_c is not None else g_h
    _, _, tape = m64.forward(xs.astype(np.float64), ls, executor=executor)
    grads = m64.backward(tape, g_out, gstate)

    names = list(m64.params)
    v = {n: rng.standard_normal(m64.params[n].shape) for n in names}
    v_x = rng.standard_normal(xs.shape)
    if ls is not None:
        v_x = v_x * (np.arange(T)[:, None] < ls[None, :])[:, :, None]
    # a unit direction: with ~10^6 parameters a raw Gaussian one has norm ~10^3, and the step eps*|v| would
    # be far too large for the central difference's O(step^2) error
    norm = math.sqrt(sum(float((v[n] ** 2).sum()) for n in names) + float((v_x**2).sum()))
    v = {n: a / norm for n, a in v.items()}
    v_x = v_x / norm
    analytic = sum(float((grads[n] * v[n]).sum()) for n in names) + float((grads["input"] * v_x).sum())

    from graphrnn.kernels import reference

    def loss(eps):
        p = {n: m64.params[n] + eps * v[n] for n in names}
        out, h, c = reference.stack_forward(m64.spec, p, xs.astype(np.float64) + eps * v_x, ls)
        val = float((out * g_out).sum() + (h * g_h).sum())
        return val + (float((c * g_c).sum()) if g_c is not None else 0.0)

    eps = 1e-4
    numeric = (loss(eps) - loss(-eps)) / (2 * eps)
    if abs(numeric - analytic) > 1e-6 * (abs(numeric) + abs(analytic)) + 1e-9:
        raise AssertionError(
            f"{executor} gradient: directional derivative {analytic:.10g}, finite "
            f"difference of the reference {numeric:.10g}"
        )
    if model.dtype != np.float64:
        xd = xs.astype(model.dtype)
        _, _, tape = model.forward(xd, ls, executor=executor)
        g32 = model.backward(tape, g_out, (g_h, g_c) if g_c is not None else g_h)
        for n in names + ["input"]:
            _assert_close(f"{executor} {model.dtype} gradient {n}", g32[n], grads[n], 1e-3)
    return {"grads": grads, "x": xs, "lengths": ls, "g_out": g_out, "g_h": g_h, "g_c": g_c}


def torch_twin(model):
    """An nn.LSTM/GRU/RNN with the model's weights (PyTorch's names and layouts are ours)."""
    torch = try_torch()
    nn = torch.nn
    s = model.spec
    kw = dict(num_layers=s.num_layers, bias=s.bias, bidirectional=s.bidirectional)
    if s.cell == "lstm":
        tm = nn.LSTM(s.input_size, s.hidden_size, **kw)
    elif s.cell == "gru":
        tm = nn.GRU(s.input_size, s.hidden_size, **kw)
    else:
        tm = nn.RNN(s.input_size, s.hidden_size, nonlinearity=s.cell[4:], **kw)
    tm = tm.to(dtype=torch.float32 if model.dtype == np.float32 else torch.float64)
    with torch.no_grad():
        for name, p in tm.named_parameters():
            p.copy_(torch.from_numpy(model.params[name]))
    return tm


def check_torch(tm, model, x, lengths=None, *, packed: bool = False, backward: bool = False) -> None:
    """PyTorch's result on a small slice against the NumPy reference (and its gradients against ours)."""
    torch = try_torch()
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    chk = check_gradients(model, "dynamic", x, lengths) if backward else None
    xs, ls = (chk["x"], chk["lengths"]) if chk else _slice(x, lengths, 12, 3)
    xt = torch.from_numpy(xs.astype(model.dtype)).requires_grad_(backward)
    with contextlib.nullcontext() if backward else torch.inference_mode():
        if packed:
            ls_t = torch.from_numpy(ls if ls is not None else np.full(xs.shape[1], xs.shape[0]))
            out, st = tm(pack_padded_sequence(xt, ls_t, enforce_sorted=False))
            out, _ = pad_packed_sequence(out, total_length=xs.shape[0])
        else:
            out, st = tm(xt)
    ref_out, _, _ = _reference(model, xs, ls)
    if ls is not None and not packed:  # padded PyTorch runs through the padding: compare valid steps only
        valid = (np.arange(xs.shape[0])[:, None] < ls[None, :])[:, :, None]
        _assert_close("torch output (valid steps)", out.detach().numpy() * valid, ref_out * valid, 2e-4)
    else:
        _assert_close("torch output", out.detach().numpy(), ref_out, 2e-4)
    if backward and (ls is None or packed):
        h = st[0] if isinstance(st, tuple) else st
        loss = (out * torch.from_numpy(chk["g_out"].astype(model.dtype))).sum() + (
            h * torch.from_numpy(chk["g_h"].astype(model.dtype))
        ).sum()
        if chk["g_c"] is not None:
            loss = loss + (st[1] * torch.from_numpy(chk["g_c"].astype(model.dtype))).sum()
        tm.zero_grad()
        loss.backward()
        for name, p in tm.named_parameters():
            _assert_close(f"torch gradient {name}", p.grad.numpy(), chk["grads"][name], 1e-3)
        _assert_close("torch gradient input", xt.grad.numpy(), chk["grads"]["input"], 1e-3)
        tm.zero_grad()


# ------------------------------------------------------------------------------------------ results


def section(name: str, title: str, columns: list, rows: list, notes=None, **meta) -> dict:
    """One table of results: ``rows`` are dicts keyed by ``columns``; extra keys travel along in JSON."""
    return {
        "section": name,
        "title": title,
        "columns": list(columns),
        "rows": rows,
        "notes": list(notes or []),
        "meta": meta,
    }


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}" if abs(int(v)) >= 10000 else str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v != v:
            return "nan"
        if v == 0:
            return "0"
        a = abs(v)
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 100:
            return f"{v:.0f}"
        if a >= 10:
            return f"{v:.1f}"
        if a >= 0.01:
            return f"{v:.3g}"
        return f"{v:.2e}"
    return str(v)


def format_table(sec: dict, markdown: bool = False) -> str:
    cols = sec["columns"]
    cells = [[_fmt(r.get(c)) for c in cols] for r in sec["rows"]]
    if markdown:
        lines = [
            f"#### {sec['title']}",
            "",
            "| " + " | ".join(cols) + " |",
            "|" + "|".join("---" for _ in cols) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        lines += [""] + [f"- {n}" for n in sec["notes"]]
        return "\n".join(lines) + "\n"
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = [sec["title"], "  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    lines += [f"  note: {n}" for n in sec["notes"]]
    return "\n".join(lines) + "\n"


def to_jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


# ------------------------------------------------------------------------------- claim 1: memory


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{field} not in /proc/self/status")


def _rss_now() -> int:
    return _status_kb("VmRSS")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM, and with it ru_maxrss) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    return _status_kb("VmHWM")


def theory_bytes(cell: str, T: int, B: int, I: int, H: int, train: bool, itemsize: int = 4) -> dict:
    """What any whole-sequence executor must hold (float bytes): the output (T,B,H); one cell's state and
    gates; for training, the activations BPTT keeps: LSTM gates+c+h = T*B*6H, GRU gates+(W_hn h)+h = T*B*5H,
    RNN h = T*B*H. The streaming minimum (one cell, no whole output) is ``cell``."""
    from graphrnn.cells import GATES

    G = GATES[{"rnn": "rnn_tanh"}.get(cell, cell)]
    one_cell = B * H * (G + 2) * itemsize
    out = T * B * H * itemsize
    kept = {"lstm": 6 * H, "gru": 5 * H}.get(cell, H) * T * B * itemsize
    return {"cell": one_cell, "infer": out + one_cell, "train": kept + one_cell}


def _memory_one(m, executor, train, T, B, seed):
    """Measure one configuration twice (RSS untraced, then tracemalloc): returns a dict of bytes and s."""
    import tracemalloc

    from graphrnn import graph as gr
    from graphrnn import static

    rng = np.random.default_rng(seed)
    spec = m.spec
    H, I = spec.hidden_size, spec.input_size
    x = rng.standard_normal((T, B, I)).astype(m.dtype)
    g_out = rng.standard_normal((T, B, H)).astype(m.dtype) if train else None

    def run_user_path():
        if executor == "stream":
            state = None
            for t in range(T):
                _, state = m.step(x[t], state)
            return None
        if train:
            _, _, tape = m.forward(x, executor=executor)
            m.backward(tape, g_out)
        else:
            m(x, executor=executor)

    res = {}
    static.clear_cache()
    gc.collect()
    reset_ok = _reset_peak_rss()
    rss0 = _rss_now()
    t0 = time.perf_counter()
    run_user_path()
    res["run_s"] = time.perf_counter() - t0
    res["rss_peak"] = _peak_rss() - rss0 if reset_ok else None
    if executor == "static":
        st = static.last_plan().stats
        res.update(
            nodes=st.nodes,
            kernel_calls=st.kernel_calls,
            planned_bytes=st.planned_bytes,
            build_s=st.build_seconds,
            compile_s=st.compile_seconds,
        )
    static.clear_cache()
    gc.collect()

    tracemalloc.start()
    try:
        if executor == "static":  # the same path, phase by phase: build, compile, run
            base = tracemalloc.get_traced_memory()[0]
            g, phases = static.build(spec, T, B, train=train)
            cur, peak = tracemalloc.get_traced_memory()
            res["build_traced_peak"], res["graph_held"] = peak - base, cur - base
            peaks = [peak]
            res["nodes_built"] = len(g.nodes)
            tracemalloc.reset_peak()
            base2 = tracemalloc.get_traced_memory()[0]
            plan = gr.compile(g, *phases)
            cur, peak = tracemalloc.get_traced_memory()
            res["compile_traced_peak"] = peak - base2
            peaks.append(peak)
            tracemalloc.reset_peak()
            base3 = tracemalloc.get_traced_memory()[0]
            inst = plan.acquire()
            feeds = dict(m.params, x=x, mask=static.step_mask(None, T, B), h0=np.zeros((1, B, H), m.dtype))
            if spec.has_cell_state:
                feeds["c0"] = np.zeros((1, B, H), m.dtype)
            inst.run(0, feeds)
            if train:
                gf = {"g_out": g_out, "g_hn": np.zeros((1, B, H), m.dtype)}
                if spec.has_cell_state:
                    gf["g_cn"] = np.zeros((1, B, H), m.dtype)
                inst.run(1, gf)
            cur, peak = tracemalloc.get_traced_memory()
            res["run_traced_peak"] = peak - base3
            # build, compile and run happen with the graph alive throughout: the largest absolute peak
            res["traced_peak"] = max(peaks + [peak]) - base
            res["held_after"] = cur - base  # graph + plan + one instance's buffers
            del g, phases, plan, inst
        else:
            base = tracemalloc.get_traced_memory()[0]
            run_user_path()
            cur, peak = tracemalloc.get_traced_memory()
            res["traced_peak"], res["held_after"] = peak - base, cur - base
    finally:
        tracemalloc.stop()
    static.clear_cache()
    gc.collect()
    return res


def memory_probe(
    cell="lstm", executor="dynamic", train=False, Ts=(10, 100), B=16, I=64, H=128, seed=0
) -> list:
    """Run in a fresh process (see ``memory_vs_T``): warm and check on a tiny input, then measure each T
    in ascending order, resetting the peak-RSS mark before each. Returns one dict per T."""
    set_threads(1)
    m = make_model(cell, I, H, seed=seed)
    rng = np.random.default_rng(seed)
    xw = rng.standard_normal((4, 2, I)).astype(F32)
    ex = "dynamic" if executor == "stream" else executor
    check_forward(m, ex, xw)
    if train:
        _, _, tape = m.forward(xw, executor=ex)
        m.backward(tape, np.ones((4, 2, H), F32))
    if executor == "stream":
        m.step(xw[0])
    rows = []
    for T in Ts:
        r = _memory_one(m, executor, train, int(T), B, seed)
        r.update(cell=cell, executor=executor, mode="train" if train else "infer", T=int(T), B=B, I=I, H=H)
        th = theory_bytes(cell, T, B, I, H, train)
        r["theory"] = th["cell"] if executor == "stream" else th["train" if train else "infer"]
        r["input_bytes"] = T * B * I * 4
        rows.append(r)
    return rows


def run_memory_subprocess(timeout=900, **kw) -> list:
    code = (
        "import json, sys; from graphrnn.bench import memory_probe, to_jsonable; "
        "print('RESULT ' + json.dumps(to_jsonable(memory_probe(**json.loads(sys.argv[1])))))"
    )
    kw = dict(kw, Ts=[int(t) for t in kw.get("Ts", (10, 100))])
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(kw)], capture_output=True, text=True, timeout=timeout, env=env
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"memory probe {kw} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def memory_vs_T(
    Ts=(10, 100, 1000, 10000),
    *,
    cell="lstm",
    B=16,
    I=64,
    H=128,
    modes=(("static", False), ("static", True), ("dynamic", False), ("dynamic", True), ("stream", False)),
) -> dict:
    """Claim 1. One subprocess per (executor, mode), T ascending; MB = 2**20 bytes."""
    rows = []
    for executor, train in modes:
        meter = LoadMeter()
        rs = run_memory_subprocess(cell=cell, executor=executor, train=train, Ts=list(Ts), B=B, I=I, H=H)
        load = meter.stop()
        for r in rs:
            r["load"] = load
        rows += rs
    mb = 2.0**20
    for r in rows:
        for k in ("rss_peak", "traced_peak", "theory", "planned_bytes", "held_after", "graph_held"):
            if r.get(k) is not None:
                r[k + "_mb"] = r[k] / mb
        if r.get("traced_peak") and r.get("theory"):
            r["traced/theory"] = r["traced_peak"] / r["theory"]
    cols = [
        "executor",
        "mode",
        "T",
        "nodes",
        "planned_bytes_mb",
        "graph_held_mb",
        "rss_peak_mb",
        "traced_peak_mb",
        "held_after_mb",
        "theory_mb",
        "traced/theory",
        "build_s",
        "compile_s",
        "run_s",
        "load",
    ]
    notes = [
        f"{cell.upper()} I={I} H={H} B={B} float32, 1 thread, each (executor, mode) in its own process",
        "rss_peak: rise of the peak RSS over the RSS before the call (kernel peak mark reset first); "
        "traced_peak: tracemalloc peak (NumPy buffers + Python objects); static traced_peak covers "
        "build + compile + first run with graph, plan and instance all alive",
        "theory: infer = output (T*B*H) + one cell; train = activations BPTT keeps + one cell; "
        "stream (m.step per step, output discarded) = one cell",
        "held_after: still allocated after the call returned (static: the cached plan and its buffers)",
        "load: other processes' CPU use in cores during the probe",
    ]
    return section("memory", "Claim 1: memory against T", cols, rows, notes, cell=cell, B=B, I=I, H=H)


# ---------------------------------------------------------------------- claim 2: variable length


def _docstrings_by_ast() -> list[str]:
    import ast
    import sysconfig

    root = sysconfig.get_paths()["stdlib"]
    docs = []
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames[:] = sorted(
            d for d in dirnames if d not in {"test", "tests", "idle_test", "site-packages", "__pycache__"}
        )
        for fn in sorted(filenames):
            if not fn.endswith(".py"):
                continue
            try:
                with open(os.path.join(dirpath, fn), encoding="utf-8") as f:
                    tree = ast.parse(f.read())
            except (SyntaxError, ValueError, OSError, UnicodeDecodeError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    d = ast.get_docstring(node)
                    if d:
                        docs.append(d)
    return docs


def stdlib_lengths(chunk_len: int = 512) -> np.ndarray:
    """Lengths (characters) of the stdlib docstrings, each split into chunks of at most ``chunk_len``
    (as ``graphrnn train`` splits them): the real length distribution of the main job."""
    try:
        from graphrnn.data import stdlib_docstrings

        docs = stdlib_docstrings()
    except ImportError:
        docs = _docstrings_by_ast()
    out = []
    for d in docs:
        n = len(d)
        out += [chunk_len] * (n // chunk_len) + ([n % chunk_len] if n % chunk_len else [])
    return np.asarray(out, np.int64)


def sample_lengths(
    dist: str, n: int, seed: int = 0, *, lo: int = 10, hi: int = 500, chunk_len: int = 512
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dist == "uniform":
        return rng.integers(lo, hi + 1, size=n).astype(np.int64)
    if dist == "stdlib":
        return rng.choice(stdlib_lengths(chunk_len), size=n).astype(np.int64)
    raise ValueError(f"dist must be 'uniform' or 'stdlib', got {dist!r}")


def _batches(lengths, batch, bucketed, seed):
    n = len(lengths)
    if bucketed:
        order = np.argsort(lengths, kind="stable")
    else:
        order = np.random.default_rng(seed + 1).permutation(n)
    return [order[i : i + batch] for i in range(0, n, batch)]


@contextlib.contextmanager
def _static_cache_size(n):
    from graphrnn import static

    old = static.CACHE_SIZE
    static.CACHE_SIZE = max(old, n)
    try:
        yield
    finally:
        static.CACHE_SIZE = old
        static.clear_cache()


def variable_length(
    dist="stdlib",
    *,
    n_seqs=128,
    batch=16,
    cell="lstm",
    I=64,
    H=128,
    train=True,
    T_fixed=None,
    threads_list=(1,),
    rounds=3,
    budget_s=60.0,
    seed=0,
    contenders=None,
) -> dict:
    """Claim 2. One pass over ``n_seqs`` sequences of lengths drawn from ``dist`` (forward+backward when
    ``train``), batched in random order (and, for the ``*_bucketed`` contenders, sorted by length).

    Contenders: static_fixed_T (every batch padded to T_fixed, one plan), static_batch_max (padded to
    each batch's longest; one plan per distinct maximum), dynamic_padded (each batch run to its longest,
    lengths not passed), dynamic_lengths (per-sequence lengths: finished rows not computed), dynamic_b1
    (one sequence at a time, no padding), and bucketed variants of static_batch_max and dynamic_lengths.
    """
    lengths = sample_lengths(dist, n_seqs, seed)
    T_fixed = int(T_fixed or (512 if dist == "stdlib" else int(lengths.max())))
    T_fixed = max(T_fixed, int(lengths.max()))
    rng = np.random.default_rng(seed)
    Tmax = int(lengths.max())
    X = rng.standard_normal((Tmax, n_seqs, I)).astype(F32)
    X *= (np.arange(Tmax)[:, None] < lengths[None, :])[:, :, None]
    G = rng.standard_normal((Tmax, n_seqs, H)).astype(F32)
    m = make_model(cell, I, H, seed=seed)

    def prep(bucketed):
        out = []
        for idx in _batches(lengths, batch, bucketed, seed):
            lb = lengths[idx]
            tb = int(lb.max())
            out.append((np.ascontiguousarray(X[:tb, idx]), lb, np.ascontiguousarray(G[:tb, idx]), tb))
        return out

    random_b, sorted_b = prep(False), prep(True)
    singles = [
        (np.ascontiguousarray(X[: lengths[i], i : i + 1]), np.ascontiguousarray(G[: lengths[i], i : i + 1]))
        for i in range(n_seqs)
    ]

    def step(xb, lb, gb, executor, static_len=None):
        if train:
            _, _, tape = m.forward(xb, lb, executor=executor, static_len=static_len)
            m.backward(tape, gb)
        else:
            m(xb, lb, executor=executor, static_len=static_len)

    def static_fixed():
        for xb, lb, gb, _ in random_b:
            step(xb, lb, gb, "static", T_fixed)

    def static_batch_max(bs=random_b):
        for xb, lb, gb, _ in bs:
            step(xb, lb, gb, "static")

    def dynamic_padded():
        for xb, _, gb, _ in random_b:
            step(xb, None, gb, "dynamic")

    def dynamic_lengths(bs=random_b):
        for xb, lb, gb, _ in bs:
            step(xb, lb, gb, "dynamic")

    def dynamic_b1():
        for xs, gs in singles:
            step(xs, None, gs, "dynamic")

    all_c = {
        "static_fixed_T": (static_fixed, n_seqs * T_fixed),
        "static_batch_max": (static_batch_max, sum(len(lb) * tb for _, lb, _, tb in random_b)),
        "dynamic_padded": (dynamic_padded, sum(len(lb) * tb for _, lb, _, tb in random_b)),
        "dynamic_lengths": (dynamic_lengths, int(lengths.sum())),
        "dynamic_b1": (dynamic_b1, int(lengths.sum())),
        "static_batch_max_bucketed": (
            lambda: static_batch_max(sorted_b),
            sum(len(lb) * tb for _, lb, _, tb in sorted_b),
        ),
        "dynamic_lengths_bucketed": (lambda: dynamic_lengths(sorted_b), int(lengths.sum())),
    }
    names = list(contenders) if contenders else list(all_c)
    xc = X[:, :batch]
    for ex in ("static", "dynamic"):
        check_forward(m, ex, xc, lengths[:batch])
        if train:
            check_gradients(m, ex, xc, lengths[:batch])
    useful = int(lengths.sum())
    fl = flops(cell, 0, 0, I, H, steps=useful, backward=train)["total"]
    rows = []
    n_plans = len({tb for *_, tb in random_b} | {tb for *_, tb in sorted_b}) + 1
    with _static_cache_size(n_plans + 4):
        for nt in threads_list:
            with threads(nt):
                tim = interleave(
                    {n: all_c[n][0] for n in names}, rounds=rounds, budget_s=budget_s, min_rounds=1
                )
            base = tim[names[0]].median
            for n in names:
                t, computed = tim[n], all_c[n][1]
                rows.append(
                    {
                        "dist": dist,
                        "threads": nt,
                        "contender": n,
                        "pass_s": t.median,
                        "first_s": t.first_s,
                        "useful_steps": useful,
                        "computed_steps": computed,
                        "useful/computed": useful / computed if computed else None,
                        "useful_steps_per_s": useful / t.median,
                        "speedup": base / t.median,
                        "gflops_useful": fl / t.median / 1e9,
                        "spread": t.spread,
                        "load": t.load,
                    }
                )
    q = np.percentile(lengths, [0, 25, 50, 75, 100]).astype(int).tolist()
    notes = [
        f"{dist} lengths, n={n_seqs}: min/q1/median/q3/max = {q}, mean {lengths.mean():.0f}; batch {batch}; "
        f"{cell.upper()} I={I} H={H}; {'forward+backward' if train else 'forward'}; T_fixed = {T_fixed}",
        "computed_steps: row-steps the executor runs (padded ones included); speedup vs the first row",
        "first_s: first pass (static: includes building and compiling its plans; dynamic: JIT load)",
        "load: other processes' CPU use in cores during the samples",
    ]
    return section(
        "varlen",
        f"Claim 2: variable length ({dist})",
        [
            "threads",
            "contender",
            "pass_s",
            "first_s",
            "useful/computed",
            "useful_steps_per_s",
            "speedup",
            "gflops_useful",
            "spread",
            "load",
        ],
        rows,
        notes,
        dist=dist,
        lengths_quantiles=q,
        T_fixed=T_fixed,
    )


# ------------------------------------------------------------------------------- claim 3: speed


def _speed_point(m, T, B, I, rounds, budget_s, b1_max, train=False):
    rng = np.random.default_rng(T * 7 + B)
    x = rng.standard_normal((T, B, I)).astype(F32)
    k = min(B, b1_max)
    singles = [np.ascontiguousarray(x[:, i : i + 1]) for i in range(k)]
    g = rng.standard_normal((T, B, m.spec.hidden_size)).astype(F32) if train else None
    g1 = [np.ascontiguousarray(g[:, i : i + 1]) for i in range(k)] if train else None

    def run(xb, executor, gb=None):
        if train:
            _, _, tape = m.forward(xb, executor=executor)
            m.backward(tape, gb)
        else:
            m(xb, executor=executor)

    cont = {
        "static_batched": lambda: run(x, "static", g),
        "dynamic_batched": lambda: run(x, "dynamic", g),
        "dynamic_b1": lambda: [run(s, "dynamic", g1[i] if train else None) for i, s in enumerate(singles)],
        "static_b1": lambda: [run(s, "static", g1[i] if train else None) for i, s in enumerate(singles)],
    }
    per = {"static_batched": B, "dynamic_batched": B, "dynamic_b1": k, "static_b1": k}
    tim = interleave(cont, rounds=rounds, budget_s=budget_s)
    return {n: (per[n] / tim[n].median, tim[n]) for n in cont}


def speed_sweep(
    *,
    cell="lstm",
    base=(100, 32, 64, 128),
    sweeps=None,
    threads_list=(1,),
    rounds=3,
    budget_s=10.0,
    b1_max=16,
    train=False,
) -> dict:
    """Claim 3: sequences per second (equal lengths) for static batched, dynamic batched, dynamic at
    batch 1 and static at batch 1, sweeping T, B and H one at a time around ``base`` = (T, B, I, H)."""
    T0, B0, I0, H0 = base
    sweeps = sweeps or {"T": [10, 30, 100, 300, 1000], "B": [1, 4, 16, 64, 256], "H": [32, 64, 128, 256, 512]}
    points = []
    for axis, vals in sweeps.items():
        for v in vals:
            T, B, H = (v if axis == "T" else T0), (v if axis == "B" else B0), (v if axis == "H" else H0)
            points.append((axis, T, B, H))
    rows = []
    models = {}
    for nt in threads_list:
        with threads(nt):
            for axis, T, B, H in points:
                m = models.get(H)
                if m is None:
                    m = models[H] = make_model(cell, I0, H, seed=0)
                    xc = np.random.default_rng(1).standard_normal((8, 3, I0)).astype(F32)
                    for ex in ("static", "dynamic"):
                        check_forward(m, ex, xc)
                        if train:
                            check_gradients(m, ex, xc)
                res = _speed_point(m, T, B, I0, rounds, budget_s, b1_max, train)
                _free_plans()
                row = {"threads": nt, "sweep": axis, "T": T, "B": B, "H": H}
                for n, (sps, t) in res.items():
                    row[n] = sps
                row["static_batched/dynamic_b1"] = row["static_batched"] / row["dynamic_b1"]
                row["static_batched/dynamic_batched"] = row["static_batched"] / row["dynamic_batched"]
                row["static_b1/dynamic_b1"] = row["static_b1"] / row["dynamic_b1"]
                row["first_s_static"] = res["static_batched"][1].first_s
                row["load"] = float(np.mean([t.load for _, t in res.values() if t.load is not None] or [0]))
                rows.append(row)
    cols = [
        "threads",
        "sweep",
        "T",
        "B",
        "H",
        "static_batched",
        "dynamic_batched",
        "dynamic_b1",
        "static_b1",
        "static_batched/dynamic_b1",
        "static_batched/dynamic_batched",
        "static_b1/dynamic_b1",
        "load",
    ]
    notes = [
        f"{cell.upper()} I={I0}, {'forward+backward' if train else 'inference forward'}, "
        "sequences per second "
        f"(all rows of a batch share one length); base point T={T0} B={B0} H={H0}",
        f"*_b1: B sequences one at a time (timed on min(B, {b1_max}) of them)",
        "load: other processes' CPU use in cores during the samples",
    ]
    return section(
        "speed",
        f"Claim 3: sequences per second ({'forward+backward' if train else 'inference'})",
        cols,
        rows,
        notes,
        base=base,
    )


# -------------------------------------------------------------------------------------- PyTorch


def _free_plans():
    """Drop cached static plans (each holds its buffers) between shapes, so a sweep's memory stays flat."""
    from graphrnn import static

    static.clear_cache()
    gc.collect()


TORCH_SHAPES = ((100, 1, 64, 128), (100, 16, 128, 256), (200, 64, 256, 512), (50, 256, 512, 1024))


def torch_compare(
    *,
    cells=("lstm", "gru", "rnn"),
    shapes=TORCH_SHAPES,
    threads_list=(1, 2),
    modes=("fwd", "fwdbwd"),
    executors=("dynamic", "static"),
    rounds=3,
    budget_s=20.0,
    peaks=None,
) -> dict:
    """graphrnn executors vs nn.LSTM/GRU/RNN, interleaved in this process, same thread count.
    ``fwd``: inference (torch under inference_mode); ``fwdbwd``: forward + backward with input grads."""
    torch = try_torch()
    if torch is None:
        return section(
            "torch",
            "PyTorch side by side",
            [],
            [],
            ["PyTorch not importable: skipped (pip install -e '.[bench]')"],
        )
    rows = []
    for nt in threads_list:
        with threads(nt):
            peak = (peaks or {}).get(nt) or gemm_peak(1024 if shapes[-1][3] < 1024 else 2048)["gflops"]
            for cell in cells:
                for T, B, I, H in shapes:
                    m = make_model(cell, I, H, seed=0)
                    tm = torch_twin(m)
                    rng = np.random.default_rng(0)
                    x = rng.standard_normal((T, B, I)).astype(F32)
                    g = rng.standard_normal((T, B, H)).astype(F32)
                    xt, gt = torch.from_numpy(x), torch.from_numpy(g)
                    for mode in modes:
                        bw = mode == "fwdbwd"
                        try:  # a failed check is recorded in the row and fails the suite
                            for ex in executors:
                                check_forward(m, ex, x)
                                if bw:
                                    check_gradients(m, ex, x)
                            check_torch(tm, m, x, backward=bw)
                            check = "ok"
                        except AssertionError as e:
                            check = f"FAILED: {e}"
                        cont = {}
                        for ex in executors:
                            if bw:

                                def f(ex=ex):
                                    _, _, tape = m.forward(x, executor=ex)
                                    m.backward(tape, g)
                            else:

                                def f(ex=ex):
                                    m(x, executor=ex)

                            cont["graphrnn_" + ex] = f
                        if bw:
                            xg = xt.clone().requires_grad_(True)

                            def tf():
                                for p in tm.parameters():
                                    p.grad = None
                                xg.grad = None
                                out, _ = tm(xg)
                                out.backward(gt)
                        else:

                            def tf():
                                with torch.inference_mode():
                                    tm(xt)

                        cont["torch"] = tf
                        tim = interleave(cont, rounds=rounds, budget_s=budget_s, min_rounds=1)
                        fl = flops(cell, T, B, I, H, backward=bw)
                        row = {
                            "threads": nt,
                            "cell": cell,
                            "mode": mode,
                            "T": T,
                            "B": B,
                            "I": I,
                            "H": H,
                            "torch_ms": tim["torch"].median * 1e3,
                            "peak_gflops": peak,
                        }
                        for ex in executors:
                            t = tim["graphrnn_" + ex]
                            row[f"{ex}_ms"] = t.median * 1e3
                            row[f"{ex}_first_s"] = t.first_s
                            row[f"{ex}_speedup"] = tim["torch"].median / t.median
                            row[f"{ex}_gflops"] = fl["total"] / t.median / 1e9
                            row[f"{ex}_peak_frac"] = row[f"{ex}_gflops"] / peak
                        row["torch_gflops"] = fl["total"] / tim["torch"].median / 1e9
                        row["torch_peak_frac"] = row["torch_gflops"] / peak
                        row["spread"] = max(t.spread for t in tim.values())
                        row["check"] = check
                        row["samples"] = min(len(t.samples) for t in tim.values())
                        row["load"] = float(
                            np.mean([t.load for t in tim.values() if t.load is not None] or [0])
                        )
                        rows.append(row)
                    _free_plans()
    cols = ["threads", "cell", "mode", "T", "B", "I", "H", "torch_ms"]
    for ex in executors:
        cols += [f"{ex}_ms", f"{ex}_speedup"]
    cols += [
        f"{executors[0]}_gflops",
        f"{executors[0]}_peak_frac",
        "torch_peak_frac",
        "check",
        "samples",
        "spread",
        "load",
    ]
    notes = [
        "*_speedup = torch time / graphrnn time (> 1: graphrnn faster); float32; "
        "medians of interleaved samples",
        "gflops: products only (2 FLOPs per multiply-add; forward+backward = 3x forward); peak_frac: of the "
        "float32 NumPy GEMM peak measured in the same run at the same thread count",
        f"torch {torch.__version__} (threads set with torch.set_num_threads); load: other processes' cores",
    ]
    title = "graphrnn vs PyTorch CPU (" + ", ".join(c.upper() for c in cells) + ")"
    return section("torch", title, cols, rows, notes)


def torch_varlen(
    *,
    n=64,
    lo=10,
    hi=500,
    I=128,
    H=256,
    seed=0,
    threads_list=(1, 2),
    rounds=3,
    budget_s=60.0,
    include_packed_bwd=True,
) -> dict:
    """The variable-length case of issue 3: 64 LSTM sequences, lengths uniform in [10, 500] (seeded),
    I=128, H=256; graphrnn with per-sequence lengths (dynamic and static) vs PyTorch padded and packed."""
    torch = try_torch()
    if torch is None:
        return section("torch_varlen", "PyTorch variable length", [], [], ["PyTorch not importable: skipped"])
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    rng = np.random.default_rng(seed)
    lengths = rng.integers(lo, hi + 1, size=n).astype(np.int64)
    T = int(lengths.max())
    x = rng.standard_normal((T, n, I)).astype(F32)
    x *= (np.arange(T)[:, None] < lengths[None, :])[:, :, None]
    g = rng.standard_normal((T, n, H)).astype(F32) * (np.arange(T)[:, None] < lengths[None, :])[:, :, None]
    m = make_model("lstm", I, H, seed=seed)
    tm = torch_twin(m)
    xt, gt, lt = torch.from_numpy(x), torch.from_numpy(g), torch.from_numpy(lengths)
    rows = []
    for mode in ("fwd", "fwdbwd"):
        bw = mode == "fwdbwd"
        for ex in ("dynamic", "static"):
            check_forward(m, ex, x, lengths)
            if bw:
                check_gradients(m, ex, x, lengths)
        check_torch(tm, m, x, lengths, packed=True, backward=bw)
        check_torch(tm, m, x, lengths, packed=False)

        def gr_run(ex, lens):
            if bw:
                _, _, tape = m.forward(x, lens, executor=ex)
                m.backward(tape, g)
            else:
                m(x, lens, executor=ex)

        def t_run(packed):
            xin = xt.clone().requires_grad_(True) if bw else xt
            for p in tm.parameters():
                p.grad = None
            with contextlib.nullcontext() if bw else torch.inference_mode():
                if packed:
                    out, _ = tm(pack_padded_sequence(xin, lt, enforce_sorted=False))
                    out, _ = pad_packed_sequence(out, total_length=T)
                else:
                    out, _ = tm(xin)
                if bw:
                    out.backward(gt)

        cont = {
            "graphrnn_dynamic_lengths": lambda: gr_run("dynamic", lengths),
            "graphrnn_static_lengths": lambda: gr_run("static", lengths),
            "graphrnn_dynamic_padded": lambda: gr_run("dynamic", None),
            "torch_padded": lambda: t_run(False),
        }
        if include_packed_bwd or not bw:
            cont["torch_packed"] = lambda: t_run(True)
        for nt in threads_list:
            with threads(nt):
                tim = interleave(cont, rounds=rounds, budget_s=budget_s, min_rounds=1)
            for name, t in tim.items():
                rows.append(
                    {
                        "threads": nt,
                        "mode": mode,
                        "contender": name,
                        "ms": t.median * 1e3,
                        "first_s": t.first_s,
                        "vs_torch_padded": tim["torch_padded"].median / t.median,
                        "vs_torch_packed": (tim["torch_packed"].median / t.median)
                        if "torch_packed" in tim
                        else None,
                        "samples": len(t.samples),
                        "spread": t.spread,
                        "load": t.load,
                    }
                )
    notes = [
        f"LSTM I={I} H={H}, {n} sequences, lengths uniform in [{lo}, {hi}] (seed {seed}): "
        f"sum {int(lengths.sum())},"
        f" max {T}; padded work {n * T} row-steps",
        "vs_torch_*: torch time / this time (> 1: faster than that PyTorch variant)",
        "graphrnn_dynamic_padded runs every row to the batch maximum (lengths not passed)",
    ]
    return section(
        "torch_varlen",
        "Variable length vs PyTorch (padded and packed)",
        [
            "threads",
            "mode",
            "contender",
            "ms",
            "vs_torch_padded",
            "vs_torch_packed",
            "first_s",
            "samples",
            "spread",
            "load",
        ],
        rows,
        notes,
        lengths_sum=int(lengths.sum()),
        T=T,
    )


# ---------------------------------------------------------------------------- where time goes


def recurrent_breakdown(
    *, cell="lstm", shapes=((200, 64, 256, 512), (50, 256, 512, 1024)), threads_list=(1, 2), peaks=None
) -> dict:
    """The dynamic forward's parts timed alone at batch > 8 (its BLAS path): the hoisted input projection
    (one GEMM), the recurrent products h W_hh^T (T BLAS calls, as the executor makes them) and the gate
    kernels (T jitted calls), against the whole forward; each product's GFLOP/s and share of the GEMM peak."""
    from graphrnn.kernels import cpu

    rows = []
    for nt in threads_list:
        with threads(nt):
            peak = (peaks or {}).get(nt) or gemm_peak(2048)["gflops"]
            for T, B, I, H in shapes:
                m = make_model(cell, I, H, seed=0)
                G = m.spec.gates
                rng = np.random.default_rng(0)
                x = rng.standard_normal((T, B, I)).astype(F32)
                W_ih, W_hh = m.params["weight_ih_l0"], m.params["weight_hh_l0"]
                W_hhT = W_hh.T
                h = np.zeros((B, H), F32)
                c = np.zeros((B, H), F32)
                gh = np.empty((B, G * H), F32)
                xw = (x.reshape(T * B, I) @ W_ih.T).reshape(T, B, G * H)
                out = np.zeros((T, B, H), F32)
                gates = np.empty((1, B, G * H), F32)

                def proj():
                    x.reshape(T * B, I) @ W_ih.T

                def rec():
                    for _ in range(T):
                        np.matmul(h, W_hhT, out=gh)

                def cellk():
                    if cell != "lstm":
                        return
                    for t in range(T):
                        cpu.lstm_cell_forward(xw[t], gh, B, h, c, out[t], gates[0])

                def whole():
                    m(x)

                tim = interleave(
                    {"projection": proj, "recurrent": rec, "gates": cellk, "whole": whole},
                    rounds=3,
                    budget_s=20.0,
                )
                fl = flops(cell, T, B, I, H)
                parts = sum(tim[k].median for k in ("projection", "recurrent", "gates"))
                rows.append(
                    {
                        "threads": nt,
                        "T": T,
                        "B": B,
                        "I": I,
                        "H": H,
                        "whole_ms": tim["whole"].median * 1e3,
                        "projection_ms": tim["projection"].median * 1e3,
                        "recurrent_ms": tim["recurrent"].median * 1e3,
                        "gates_ms": tim["gates"].median * 1e3,
                        "other_ms": (tim["whole"].median - parts) * 1e3,
                        "projection_peak_frac": fl["projection"] / tim["projection"].median / 1e9 / peak,
                        "recurrent_gflops": fl["recurrent"] / tim["recurrent"].median / 1e9,
                        "recurrent_peak_frac": fl["recurrent"] / tim["recurrent"].median / 1e9 / peak,
                        "whole_peak_frac": fl["total"] / tim["whole"].median / 1e9 / peak,
                        "peak_gflops": peak,
                        "load": float(np.mean([t.load for t in tim.values() if t.load is not None] or [0])),
                    }
                )
    cols = [
        "threads",
        "T",
        "B",
        "H",
        "whole_ms",
        "projection_ms",
        "recurrent_ms",
        "gates_ms",
        "other_ms",
        "recurrent_gflops",
        "recurrent_peak_frac",
        "projection_peak_frac",
        "whole_peak_frac",
        "peak_gflops",
        "load",
    ]
    notes = [
        f"{cell.upper()} inference forward, dynamic executor's BLAS path (B > 8); parts timed alone, "
        "interleaved with the whole call",
        "other_ms: whole - parts (Python loop, sorting, copies, output assembly)",
    ]
    return section("breakdown", "Where the dynamic forward spends its time", cols, rows, notes)


def static_build_times(*, cell="lstm", Ts=(100, 1000), B=16, I=64, H=128) -> dict:
    """Build + compile seconds, nodes and planned bytes of static plans (1 layer), inference and training."""
    from graphrnn import static

    m = make_model(cell, I, H, seed=0)
    rows = []
    for T in Ts:
        for train in (False, True):
            static.clear_cache()
            gc.collect()
            meter = LoadMeter()
            t0 = time.perf_counter()
            plan = static.plan_for(m.spec, T, B, train=train)
            wall = time.perf_counter() - t0
            st = plan.stats
            rows.append(
                {
                    "T": T,
                    "mode": "train" if train else "infer",
                    "nodes": st.nodes,
                    "kernel_calls": st.kernel_calls,
                    "build_s": st.build_seconds,
                    "compile_s": st.compile_seconds,
                    "build+compile_s": wall,
                    "planned_mb": st.planned_bytes / 2**20,
                    "buffers": st.buffers,
                    "target_met": wall < 0.5 if T == 1000 else None,
                    "load": meter.stop(),
                }
            )
    static.clear_cache()
    return section(
        "static_build",
        "Static plan build and compile",
        [
            "T",
            "mode",
            "nodes",
            "kernel_calls",
            "build_s",
            "compile_s",
            "build+compile_s",
            "planned_mb",
            "buffers",
            "target_met",
            "load",
        ],
        rows,
        [f"{cell.upper()} 1 layer I={I} H={H} B={B}; target: build + compile at T = 1000 < 0.5 s"],
    )


_STARTUP_CHILD = r"""
import time, json
t0 = time.perf_counter()
import numpy as np
import graphrnn
t_import = time.perf_counter() - t0
m = graphrnn.LSTM(32, 128, seed=0)
x = np.random.default_rng(0).standard_normal((50, 32, 32)).astype(np.float32)
out, st, tape = m.forward(x)
m.backward(tape, np.ones_like(out))
t_first = time.perf_counter() - t0
m.step(x[0, :1])
m(x[:, :4])
t_all = time.perf_counter() - t0
print("RESULT " + json.dumps({"import_s": t_import, "first_result_s": t_first, "all_paths_s": t_all}))
"""


def startup_times(cold: bool = True) -> dict:
    """A cold process (empty Numba cache in a fresh NUMBA_CACHE_DIR) and then a warm one (same cache):
    wall time from spawn to exit, and inside it, imports and first result. The default model's kernels:
    an LSTM of the main job's size (H=128) forward+backward at batch 32 (BLAS path), then step() and a
    batch-4 forward (the in-jit loop)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="graphrnn-numba-cache-") as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        if not cold:  # warm the fresh cache untimed
            subprocess.run([sys.executable, "-c", _STARTUP_CHILD], capture_output=True, env=env, timeout=600)
        for kind in ("cold", "warm") if cold else ("warm",):
            meter = LoadMeter()
            t0 = time.perf_counter()
            p = subprocess.run(
                [sys.executable, "-c", _STARTUP_CHILD], capture_output=True, text=True, env=env, timeout=600
            )
            wall = time.perf_counter() - t0
            res = next(
                (json.loads(line[7:]) for line in p.stdout.splitlines() if line.startswith("RESULT ")), None
            )
            if res is None:
                raise RuntimeError(f"start-up probe failed:\n{p.stderr[-3000:]}")
            target = 20.0 if kind == "cold" else 1.5
            key = "all_paths_s" if kind == "cold" else "first_result_s"
            rows.append(
                {
                    "cache": kind,
                    **res,
                    "process_wall_s": wall,
                    "target_s": target,
                    "target_met": res[key] < target,
                    "load": meter.stop(),
                }
            )
    return section(
        "startup",
        "Start-up and JIT compile",
        [
            "cache",
            "import_s",
            "first_result_s",
            "all_paths_s",
            "process_wall_s",
            "target_s",
            "target_met",
            "load",
        ],
        rows,
        [
            "cold: fresh NUMBA_CACHE_DIR, every kernel compiled; warm: a second process, same cache",
            "targets: warm first result < 1.5 s; cold compile of the default model's kernels < 20 s",
        ],
    )


def gemm_peaks(threads_list=(1, 2), n=2048) -> dict:
    rows = []
    for nt in threads_list:
        with threads(nt):
            r = gemm_peak(n)
        rows.append({"threads": nt, **r})
    return section("gemm", "float32 GEMM peak (NumPy)", ["threads", "n", "gflops", "seconds", "load"], rows)


# ------------------------------------------------------------------------------------ targets


def speed_targets(sections: list) -> dict:
    """Issue 3's speed targets, judged from the sections of one run (dynamic executor unless named)."""
    by: dict = {}
    for s in sections:  # sections of one name (e.g. torch per cell) pool their rows
        by.setdefault(s["section"], {"rows": []})["rows"].extend(s["rows"])
    rows = []

    def add(target, threads, measured, required, higher_is_better=True, note=""):
        if measured is None:
            return
        if required is None:  # measured only
            met = margin = None
        else:
            met = measured >= required if higher_is_better else measured <= required
            margin = measured / required if higher_is_better else required / measured
        rows.append(
            {
                "target": target,
                "threads": threads,
                "measured": measured,
                "required": required,
                "met": met,
                "margin": margin,
                "note": note,
            }
        )

    tr = by.get("torch", {}).get("rows", [])

    def ratio(cell, mode, shape, nt, ex="dynamic"):
        for r in tr:
            if (r["cell"], r["mode"], (r["T"], r["B"], r["I"], r["H"]), r["threads"]) == (
                cell,
                mode,
                shape,
                nt,
            ):
                return r.get(f"{ex}_speedup")
        return None

    nts = sorted({r["threads"] for r in tr})
    for nt in nts:
        s1 = (100, 1, 64, 128)
        add("B=1 (100,1,64,128) LSTM forward vs torch", nt, ratio("lstm", "fwd", s1, nt), 2.0)
        for c in ("gru", "rnn"):
            add(f"B=1 (100,1,64,128) {c.upper()} forward vs torch", nt, ratio(c, "fwd", s1, nt), 4.0)
        for c in ("lstm", "gru", "rnn"):
            add(
                f"B=1 (100,1,64,128) {c.upper()} forward+backward vs torch",
                nt,
                ratio(c, "fwdbwd", s1, nt),
                2.0,
            )
        s2 = (100, 16, 128, 256)
        for mode in ("fwd", "fwdbwd"):
            add(
                f"(100,16,128,256) LSTM {mode} vs torch",
                nt,
                ratio("lstm", mode, s2, nt),
                1.0 if nt == 1 else None,
                note="" if nt == 1 else "2 threads: measure only",
            )
        for shape in ((200, 64, 256, 512), (50, 256, 512, 1024)):
            for mode in ("fwd", "fwdbwd"):
                add(
                    f"{shape} LSTM {mode} vs torch",
                    nt,
                    ratio("lstm", mode, shape, nt),
                    1.0 if nt == 1 else 0.9,
                )
        for r in tr:  # static within 1.2x of dynamic at batch >= 16
            if r["threads"] == nt and r["B"] >= 16 and r.get("static_ms") and r.get("dynamic_ms"):
                add(
                    f"static/dynamic time {r['cell'].upper()} {r['mode']} {(r['T'], r['B'], r['I'], r['H'])}",
                    nt,
                    r["static_ms"] / r["dynamic_ms"],
                    1.2,
                    higher_is_better=False,
                )
    for r in by.get("breakdown", {}).get("rows", []):
        add(
            f"recurrent product share of GEMM peak (B={r['B']}, H={r['H']})",
            r["threads"],
            r["recurrent_peak_frac"],
            0.70,
        )
    for r in by.get("torch_varlen", {}).get("rows", []):
        if r["mode"] == "fwdbwd" and r["contender"] == "graphrnn_dynamic_lengths":
            add(
                "var-length fwd+bwd, per-seq lengths vs torch packed",
                r["threads"],
                r["vs_torch_packed"],
                10.0,
            )
            add(
                "var-length fwd+bwd, per-seq lengths vs torch padded", r["threads"], r["vs_torch_padded"], 1.5
            )
    for r in by.get("static_build", {}).get("rows", []):
        if r["T"] == 1000:
            add(
                f"static build+compile T=1000 ({r['mode']}) seconds",
                None,
                r["build+compile_s"],
                0.5,
                higher_is_better=False,
            )
    for r in by.get("startup", {}).get("rows", []):
        if r["cache"] == "warm":
            add(
                "warm-cache process: first result seconds",
                None,
                r["first_result_s"],
                1.5,
                higher_is_better=False,
            )
        else:
            add(
                "cold cache: compile + first results seconds",
                None,
                r["all_paths_s"],
                20.0,
                higher_is_better=False,
            )
    return section(
        "targets",
        "Speed targets (issue 3)",
        ["target", "threads", "measured", "required", "met", "margin", "note"],
        rows,
        ["margin: how far past (> 1) or short of (< 1) the target, as a factor"],
    )


def render_markdown(sections: list) -> str:
    return "\n".join(format_table(s, markdown=True) for s in sections)


# ----------------------------------------------------------------------------------------- plot


def plot(results: dict, path: str) -> None:
    """Three panels, one per claim, from the sections of a ``run``/suite result."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'graphrnn[plot]'") from None
    secs = {
        s["section"] + (":" + s["meta"].get("dist", "") if s["section"] == "varlen" else ""): s
        for s in results["sections"]
    }
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    ax = axes[0]
    mem = secs.get("memory")
    if mem:
        for (ex, mode), style in {
            ("static", "train"): "o-",
            ("dynamic", "train"): "s-",
            ("static", "infer"): "o--",
            ("dynamic", "infer"): "s--",
            ("stream", "infer"): "^:",
        }.items():
            rs = [
                r for r in mem["rows"] if r["executor"] == ex and r["mode"] == mode and r.get("traced_peak")
            ]
            if rs:
                ax.loglog(
                    [r["T"] for r in rs], [r["traced_peak"] / 2**20 for r in rs], style, label=f"{ex} {mode}"
                )
        th = [r for r in mem["rows"] if r["executor"] == "dynamic" and r["mode"] == "train"]
        if th:
            ax.loglog([r["T"] for r in th], [r["theory"] / 2**20 for r in th], "k:", label="theory (train)")
        ax.set_xlabel("T (steps)")
        ax.set_ylabel("peak traced memory (MiB)")
        ax.set_title("1. memory vs T")
        ax.legend(fontsize=7)
    ax = axes[1]
    vls = [s for k, s in secs.items() if k.startswith("varlen")]
    if vls:
        names = [r["contender"] for r in vls[0]["rows"] if r["threads"] == vls[0]["rows"][0]["threads"]]
        w = 0.8 / len(vls)
        for j, s in enumerate(vls):
            nt = s["rows"][0]["threads"]
            vals = {r["contender"]: r["useful_steps_per_s"] for r in s["rows"] if r["threads"] == nt}
            ax.bar(
                np.arange(len(names)) + j * w,
                [vals.get(n, 0) for n in names],
                w,
                label=f"{s['meta'].get('dist')} ({nt} thr)",
            )
        ax.set_xticks(np.arange(len(names)) + 0.4 - w / 2)
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
        ax.set_ylabel("useful row-steps per second")
        ax.set_title("2. variable length")
        ax.legend(fontsize=7)
    ax = axes[2]
    sp = secs.get("speed")
    if sp:
        nt = sp["rows"][0]["threads"]
        rs = [r for r in sp["rows"] if r["sweep"] == "B" and r["threads"] == nt]
        for n, style in (
            ("static_batched", "o-"),
            ("dynamic_batched", "s-"),
            ("dynamic_b1", "^--"),
            ("static_b1", "v--"),
        ):
            ax.loglog([r["B"] for r in rs], [r[n] for r in rs], style, label=n)
        ax.set_xlabel("batch size B")
        ax.set_ylabel("sequences per second")
        ax.set_title(f"3. speed (T={rs[0]['T'] if rs else '?'}, H={rs[0]['H'] if rs else '?'}, {nt} thr)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------ CLI


def add_arguments(parser) -> None:
    """Options of ``graphrnn bench`` (the quick benchmark)."""
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--cell", choices=sorted(_CELLS), default="lstm", help="cell for the claim sections")
    parser.add_argument(
        "--no-torch", action="store_true", help="skip the PyTorch comparison even if importable"
    )
    parser.add_argument(
        "--plot", metavar="FILE.png", default=None, help="draw the three claims (needs matplotlib)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument(
        "--only", default=None, help="comma-separated sections: gemm,memory,varlen,speed,torch (default: all)"
    )


def run_quick(*, threads_list=(1, 2), cell="lstm", torch_ok=True, only=None, log=None) -> dict:
    """The quick benchmark: every section at small sizes (about 1-2 minutes on a quiet 2-core machine)."""
    want = set(only) if only else {"gemm", "memory", "varlen", "speed", "torch"}
    log = log or (lambda s: None)
    t_start = time.perf_counter()
    res = {
        "machine": machine_info(),
        "threads": list(threads_list),
        "load_before": sample_load(0.5),
        "sections": [],
    }
    peaks = {}
    if "gemm" in want or "torch" in want:
        log("gemm peak")
        g = gemm_peaks(threads_list, n=1024)
        peaks = {r["threads"]: r["gflops"] for r in g["rows"]}
        res["sections"].append(g)
    if "memory" in want:
        log("claim 1: memory")
        res["sections"].append(
            memory_vs_T(
                (10, 100, 1000),
                cell=cell,
                B=8,
                I=32,
                H=64,
                modes=(
                    ("static", False),
                    ("static", True),
                    ("dynamic", False),
                    ("dynamic", True),
                    ("stream", False),
                ),
            )
        )
    if "varlen" in want:
        for dist in ("stdlib", "uniform"):
            log(f"claim 2: variable length ({dist})")
            res["sections"].append(
                variable_length(
                    dist,
                    n_seqs=32,
                    batch=8,
                    cell=cell,
                    I=32,
                    H=64,
                    threads_list=threads_list[:1],
                    rounds=2,
                    budget_s=6.0,
                    contenders=(
                        "static_fixed_T",
                        "static_batch_max",
                        "dynamic_padded",
                        "dynamic_lengths",
                        "dynamic_b1",
                    ),
                )
            )
    if "speed" in want:
        log("claim 3: speed")
        res["sections"].append(
            speed_sweep(
                cell=cell,
                base=(50, 16, 32, 64),
                sweeps={"B": [1, 4, 16, 64]},
                threads_list=threads_list[:1],
                rounds=2,
                budget_s=2.0,
                b1_max=8,
            )
        )
    if "torch" in want and torch_ok and try_torch() is not None:
        log("PyTorch side by side")
        res["sections"].append(
            torch_compare(
                cells=(cell,),
                shapes=TORCH_SHAPES[:2],
                threads_list=threads_list,
                rounds=3,
                budget_s=3.0,
                peaks=peaks,
            )
        )
    res["seconds"] = time.perf_counter() - t_start
    return res


def run(args) -> int:
    """``graphrnn bench``: run the quick benchmark, print tables (or one JSON object), optionally plot."""
    threads_list = parse_threads(args.threads)
    only = [s.strip() for s in args.only.split(",")] if getattr(args, "only", None) else None
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("graphrnn bench: --plot needs matplotlib (pip install 'graphrnn[plot]')", file=sys.stderr)
            return 2
    log = (lambda s: print(f"[bench] {s}", file=sys.stderr, flush=True)) if not args.json else None
    res = run_quick(threads_list=threads_list, cell=args.cell, torch_ok=not args.no_torch, only=only, log=log)
    if args.plot:
        plot(res, args.plot)
    if args.json:
        print(json.dumps(to_jsonable(res)))
    else:
        mi = res["machine"]
        print(
            f"graphrnn {mi['graphrnn']} on {mi['cpu']} ({mi['cores']} cores), Python {mi['python']}, numpy "
            f"{mi['numpy']}, numba {mi['numba']}, torch {mi['torch'] or 'not installed'}; other processes "
            f"used {_fmt(res['load_before'])} cores before the run\n"
        )
        for sec in res["sections"]:
            print(format_table(sec))
        print(f"total {res['seconds']:.0f} s" + (f"; plot written to {args.plot}" if args.plot else ""))
    return 0


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="graphrnn bench", description="quick benchmark of graphrnn's executors")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
