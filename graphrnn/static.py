"""Static executor: unroll the stack for a fixed T into a graph, compile it once per shape, run the plan.

The graph has explicit nodes for every time step, layer and direction (letters: T steps, B rows, I input
features, H hidden, G gates, D directions, L layers)::

    for each layer l, direction d, step t (d = 1 walks t = T-1 .. 0):
        xw_t = x_t W_ih^T + b_ih          (B, G*H)   a node per step; hoisting merges all T into one GEMM
        gh_t = h W_hh^T + b_hh            (B, G*H)   BLAS, one call per step
        h, c = cell(xw_t, gh_t, h, c, mask[t])       fused masked gate kernel (kernels/masked.py)
    y_l = stack(h_t) * mask[..., None]    (T, B, D*H) padded positions exactly 0
    y_l *= dropout_l                      (l < L-1, training with dropout)

The batch is padded to T; ``mask[t, b] = t < lengths[b]``. A masked row keeps its state, so h_n is each
row's state at its own last valid step, and the reverse direction only starts updating at that step.
Plans are cached by (spec, T, B, mode, dropout); spec carries the dtype, mode is "inference" or
"training"; ``plan_for`` returns one (with ``.stats``) without running it. Training plans run in two
phases on one instance: forward, then backward over the same buffers; the tape holds that instance.

Memory guard. The graph grows with T: O(L*D*T) nodes (about 3 KiB of Python objects each once compiled
and bound) plus buffers of O(T*B*H) bytes, all kept for backward when training. Before a plan is built,
``estimate_memory`` predicts its node count and bytes from probe graphs of at most 16 steps and 3 layers
(shapes only, nothing allocated; nodes are exact, bytes within about 15%), and ``plan_for`` refuses a plan
over the budget with ``StaticGraphTooLarge`` (a subclass of both MemoryError and ValueError), naming the
estimate and suggesting ``executor="dynamic"``; after compiling it checks the exact planned bytes again,
before any buffer exists. The budget defaults to half of the memory available now (``MemAvailable`` and
any cgroup limit); ``set_memory_budget(nbytes)`` or ``set_memory_budget(fraction=f)``, or the environment
variable ``GRAPHRNN_STATIC_MEMORY_BUDGET`` ("2G", "512M", "123456789" bytes, or "25%" of available),
change it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import math
import numbers
import os
import re
import threading
import weakref
from collections import OrderedDict

import numpy as np

from graphrnn import graph as gr

CACHE_SIZE = 8  # plans kept, least recently used dropped first (each holds its instances' buffers)
_cache: OrderedDict = OrderedDict()
_lock = threading.Lock()
_last = None

# ----------------------------------------------------------------------------------------- memory guard

NODE_BYTES = 3072  # Python objects per scheduled node once built, compiled and bound (measured 1.5-2.4 KiB)
DEFAULT_BUDGET_FRACTION = 0.5  # of the memory available when a plan is about to be built
BUDGET_ENV = "GRAPHRNN_STATIC_MEMORY_BUDGET"
PROBE_T = 8  # probe graphs have PROBE_T and 2*PROBE_T steps (or T itself when T <= 2*PROBE_T)
_budget_setting: tuple | None = None  # ("bytes", n) | ("fraction", f) | ("unlimited",); None: env or default


class StaticGraphTooLarge(MemoryError, ValueError):
    """The static graph for this shape would need more memory than the budget allows.

    Raised before the graph is built (from ``estimate_memory``) or, at the latest, after compiling and
    before any buffer is allocated (from the exact plan). It is a MemoryError (what it prevents) and a
    ValueError (the input's length or batch, or the model, is too large for the static executor), so
    handlers of either catch it. ``.estimate`` is the MemoryEstimate, ``.budget`` the budget in bytes.
    """

    def __init__(self, message, estimate=None, budget=None):
        super().__init__(message)
        self.estimate, self.budget = estimate, budget


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """What one static plan costs: ``nodes`` scheduled, ``buffer_bytes`` of one instance's arena (fed inputs
    included; training keeps every step's activations), ``graph_bytes`` of Python objects for the nodes and
    bound kernel calls, ``output_bytes`` of the copies a run returns. ``exact``: from the compiled plan."""

    nodes: int
    buffer_bytes: int
    graph_bytes: int
    output_bytes: int
    exact: bool = False

    @property
    def total_bytes(self) -> int:
        return self.buffer_bytes + self.graph_bytes + self.output_bytes


def format_bytes(n) -> str:
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover (the loop returns)


def _read_int(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_available():
    """Room left under a cgroup memory limit (v2 or v1), counting reclaimable file cache as free."""
    for limit_file, usage_file, stat_file, cache_key in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat",
         "inactive_file"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
         "/sys/fs/cgroup/memory/memory.stat", "total_inactive_file"),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is None or usage is None or limit >= 1 << 60:  # "max" or v1's "no limit" sentinel
            continue
        cache = 0
        try:
            with open(stat_file) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == cache_key and value.strip().isdigit():
                        cache = int(value)
        except OSError:
            pass
        return max(limit - usage + cache, 0)
    return None


def available_memory() -> int | None:
    """Bytes of memory available now: MemAvailable from /proc/meminfo (else the free pages that
    ``os.sysconf`` reports), capped by a cgroup limit when there is one; None when nothing can be read."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            pass
    cgroup = _cgroup_available()
    if cgroup is not None:
        found.append(cgroup)
    return min(found) if found else None


_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.IGNORECASE)


def _parse_budget(text: str) -> tuple:
    t = text.strip().lower()
    if t in ("unlimited", "none", "inf", "off"):
        return ("unlimited",)
    try:
        if t.endswith("%"):
            fraction = float(t[:-1]) / 100
            if 0 < fraction <= 1:
                return ("fraction", fraction)
        else:
            m = _SIZE.match(t)
            if m:
                scale = 1024 ** " kmgtp".index(m.group(2) or " ")
                return ("bytes", int(float(m.group(1)) * scale))
    except ValueError:
        pass
    raise ValueError(f"{BUDGET_ENV} must be a size in bytes (e.g. 4000000000, 512M, 2G), a percentage of the "
                     f"available memory in (0%, 100%] (e.g. 50%) or 'unlimited', got {text!r}")


def set_memory_budget(nbytes=None, *, fraction=None):
    """Set the static executor's memory budget: ``nbytes`` (an int >= 0, or math.inf for no limit) or
    ``fraction`` of the memory available when each plan is built (in (0, 1]). With neither, go back to the
    default: ``GRAPHRNN_STATIC_MEMORY_BUDGET`` if set, else half of the available memory. Returns the
    previous setting (pass it to ``restore_memory_budget``)."""
    global _budget_setting
    previous = _budget_setting
    if nbytes is not None and fraction is not None:
        raise ValueError("set_memory_budget takes nbytes or fraction, not both; "
                         f"got nbytes={nbytes!r} and fraction={fraction!r}")
    if nbytes is not None:
        if isinstance(nbytes, (bool, np.bool_)) or not isinstance(nbytes, numbers.Real):
            raise TypeError(f"nbytes must be an int >= 0 or math.inf, got {type(nbytes).__name__} {nbytes!r}")
        if math.isnan(nbytes) or nbytes < 0:
            raise ValueError(f"nbytes must be an int >= 0 or math.inf, got {nbytes!r}")
        _budget_setting = ("unlimited",) if math.isinf(nbytes) else ("bytes", int(nbytes))
    elif fraction is not None:
        if isinstance(fraction, (bool, np.bool_)) or not isinstance(fraction, numbers.Real):
            raise TypeError(f"fraction must be a float in (0, 1], got {type(fraction).__name__} {fraction!r}")
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be a float in (0, 1], got {fraction!r}")
        _budget_setting = ("fraction", float(fraction))
    else:
        _budget_setting = None
    return previous


def restore_memory_budget(previous):
    """Put back a setting returned by ``set_memory_budget``."""
    global _budget_setting
    _budget_setting = previous


def memory_budget() -> tuple[int | None, str]:
    """(budget in bytes or None for no limit, where it comes from in words)."""
    setting, source = _budget_setting, "set_memory_budget"
    if setting is None:
        env = os.environ.get(BUDGET_ENV)
        if env is not None and env.strip():
            setting, source = _parse_budget(env), f"{BUDGET_ENV}={env.strip()}"
        else:
            setting, source = ("fraction", DEFAULT_BUDGET_FRACTION), "default"
    if setting[0] == "unlimited":
        return None, source
    if setting[0] == "bytes":
        return setting[1], source
    avail = available_memory()
    if avail is None:
        return None, source + " (available memory unknown: no limit)"
    return int(avail * setting[1]), f"{source}: {setting[1]:.0%} of {format_bytes(avail)} available"


@functools.lru_cache(maxsize=256)
def _probe(spec, T: int, B: int, train: bool, dropout: bool) -> tuple[int, int, int]:
    """(nodes, planned bytes, fetched bytes) of the compiled plan; shapes only, no buffer is allocated."""
    with _gc_paused():
        g, phases = build(spec, T, B, train, dropout)
        plan = gr.compile(g, *phases)
    return plan.stats.nodes, plan.stats.planned_bytes, _fetch_bytes(plan)


def _fetch_bytes(plan) -> int:
    return sum(v.nbytes for phase in plan.fetches for v in phase.values())


def _lerp_up(x, x0, y0, x1, y1):
    """The line through (x0, y0), (x1, y1) at x, rounded up (integers throughout)."""
    if x0 == x1:
        return y0
    return y0 + -((-(y1 - y0) * (x - x0)) // (x1 - x0))


def estimate_memory(spec, T: int, B: int, train: bool = False, dropout: bool = False) -> MemoryEstimate:
    """Node count and bytes of the static plan for (spec, T, B, mode), without building it.

    Builds probe graphs of at most 2*PROBE_T steps and 3 layers (shape rules only: nothing is allocated)
    and extrapolates linearly in T and in the layer count: the node count is exact, the bytes within about
    15% (buffer reuse is not exactly linear). T and B must be ints >= 1.
    """
    T, B, L = int(T), int(B), spec.num_layers
    if T < 1 or B < 1:
        raise ValueError(f"estimate_memory needs T >= 1 and B >= 1, got T={T}, B={B}")
    Ts = (T, T) if T <= 2 * PROBE_T else (PROBE_T, 2 * PROBE_T)
    Ls = (L, L) if L <= 3 else (2, 3)
    rows = []
    for layers in Ls:
        probe_spec = dataclasses.replace(spec, num_layers=layers)
        a, b = _probe(probe_spec, Ts[0], B, bool(train), bool(dropout)), _probe(probe_spec, Ts[1], B,
                                                                                bool(train), bool(dropout))
        rows.append([_lerp_up(T, Ts[0], ya, Ts[1], yb) for ya, yb in zip(a, b)])
    nodes, buffers, fetched = (_lerp_up(L, Ls[0], y0, Ls[1], y1) for y0, y1 in zip(*rows))
    return MemoryEstimate(nodes, buffers, nodes * NODE_BYTES, fetched)


def _describe(spec, T, B, train):
    return (f"{spec.cell} hidden_size={spec.hidden_size} num_layers={spec.num_layers} "
            f"{'bidirectional' if spec.bidirectional else 'unidirectional'} {spec.dtype}, T={T}, B={B}, "
            f"{'training' if train else 'inference'}")


def _enforce(est: MemoryEstimate, spec, T, B, train):
    budget, source = memory_budget()
    if budget is None or est.total_bytes <= budget:
        return
    what = "needs" if est.exact else "would need about"
    raise StaticGraphTooLarge(
        f"the static graph for {_describe(spec, T, B, train)} {what} {format_bytes(est.total_bytes)} "
        f"({est.nodes:,} nodes: {format_bytes(est.graph_bytes)} of graph objects, "
        f"{format_bytes(est.buffer_bytes)} of buffers, {format_bytes(est.output_bytes)} of results), "
        f"over the static executor's memory budget of {format_bytes(budget)} ({source}); "
        f"use executor=\"dynamic\" (its memory does not grow with a graph), a shorter static_len or a "
        f"smaller batch, or raise the budget with graphrnn.static.set_memory_budget() or {BUDGET_ENV}",
        est,
        budget,
    )


def check_memory(spec, T: int, B: int, train: bool = False, dropout: bool = False) -> MemoryEstimate | None:
    """Raise StaticGraphTooLarge when the plan for this shape is not cached and its estimate is over the
    budget; return the estimate (None when the plan is already cached: it costs nothing more)."""
    key = (spec, int(T), int(B), "training" if train else "inference", bool(dropout))
    with _lock:
        if key in _cache:
            return None
    est = estimate_memory(spec, T, B, train, dropout)
    _enforce(est, spec, T, B, train)
    return est


def build(spec, T: int, B: int, train: bool = False, dropout: bool = False):
    """Unroll ``spec`` for T steps and B rows -> (graph, phases): phases[0] {"out", "h_n"[, "c_n"]} and,
    when ``train``, phases[1] {param name, "input", "h0"[, "c0"]: gradient} fed by "g_out", "g_hn"[, "g_cn"].

    Graph inputs: "x" (T, B, I), "mask" (T, B) uint8, "h0" [, "c0"] (L*D, B, H), every parameter by its
    name, and "dropout{l}" (T, B, D*H) for l < L-1 when ``dropout``.
    """
    g = gr.Graph()
    dt, H, D, L = spec.np_dtype, spec.hidden_size, spec.directions, spec.num_layers
    lstm = spec.cell == "lstm"
    x = g.input("x", (T, B, spec.input_size), dt)
    mask = g.input("mask", (T, B), np.uint8)
    h0 = g.input("h0", (L * D, B, H), dt)
    c0 = g.input("c0", (L * D, B, H), dt) if lstm else None
    params = {name: g.input(name, shape, dt) for name, shape in spec.param_shapes().items()}
    drops = [g.input(f"dropout{k}", (T, B, D * H), dt) for k in range(L - 1)] if dropout else []

    mask_t = g.apply("unstack", mask)
    h0s = g.apply("unstack", h0)
    c0s = g.apply("unstack", c0) if lstm else None
    layer_in, h_n, c_n = x, [], []
    for layer in range(L):
        xs = g.apply("unstack", layer_in)
        parts = [[None] * D for _ in range(T)]
        for d in range(D):
            W_ih, W_hh, b_ih, b_hh = spec.layer_params(params, layer, d)
            h = h0s[layer * D + d]
            c = c0s[layer * D + d] if lstm else None
            for t in range(T - 1, -1, -1) if d == 1 else range(T):
                xw = g.apply("linear", xs[t], W_ih, *([b_ih] if b_ih is not None else []))
                gh = g.apply("linear", h, W_hh, *([b_hh] if b_hh is not None else []))
                if lstm:
                    h, c, _ = g.apply("lstm_cell", xw, gh, h, c, mask_t[t])
                elif spec.cell == "gru":
                    h, _ = g.apply("gru_cell", xw, gh, h, mask_t[t])
                else:
                    h = g.apply("rnn_cell", xw, gh, h, mask_t[t], relu=spec.cell == "rnn_relu")
                parts[t][d] = h
            h_n.append(h)
            c_n.append(c)
        y = g.apply("stack", *[p for row in parts for p in row], shape=(T, B, D * H), dtype=dt, groups=D)
        layer_in = g.apply("mask_rows", y, mask)
        if layer < L - 1 and drops:
            layer_in = g.apply("mul", layer_in, drops[layer])

    def stack_states(vs):
        return g.apply("stack", *vs, shape=(L * D, B, H), dtype=dt, groups=1)

    outputs = {"out": layer_in, "h_n": stack_states(h_n)}
    if lstm:
        outputs["c_n"] = stack_states(c_n)
    phases = [outputs]
    if train:
        gr.hoist(g)  # before differentiating, so the merged projection's backward is merged too
        seeds = [g.input("g_out", (T, B, D * H), dt), g.input("g_hn", (L * D, B, H), dt)]
        if lstm:
            seeds.append(g.input("g_cn", (L * D, B, H), dt))
        wrt = dict(params, input=x, h0=h0, **({"c0": c0} if lstm else {}))
        grads = g.grad(list(outputs.values()), seeds, list(wrt.values()))
        phases.append(dict(zip(wrt, grads)))
    return g, phases


def plan_for(spec, T: int, B: int, train: bool = False, dropout: bool = False) -> gr.Plan:
    """The compiled plan for this shape and mode (built on first use, then cached); see ``Plan.stats``.

    ``train``: the plan keeps what backward needs and has a backward phase; ``dropout``: it takes L-1
    dropout masks. Thread-safe: concurrent callers get one plan, each run uses its own instance.
    Raises StaticGraphTooLarge (before building, or after compiling but before allocating) when the plan
    would exceed the memory budget (module docstring).
    """
    global _last
    key = (spec, int(T), int(B), "training" if train else "inference", bool(dropout))
    with _lock:
        plan = _cache.get(key)
        if plan is None:
            _enforce(estimate_memory(spec, T, B, train, dropout), spec, T, B, train)  # before building
            with _gc_paused():
                g, phases = build(spec, int(T), int(B), train, dropout)
                plan = gr.compile(g, *phases)
            del g, phases
            s = plan.stats
            exact = MemoryEstimate(s.nodes, s.planned_bytes, s.nodes * NODE_BYTES, _fetch_bytes(plan), True)
            _enforce(exact, spec, T, B, train)  # before any buffer exists (instances allocate them)
            _cache[key] = plan
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        else:
            _cache.move_to_end(key)
        _last = plan
    return plan


@contextlib.contextmanager
def _gc_paused():
    """Building makes ~10 objects per node and frees none: the cyclic collector would only rescan them
    (about a third of the build time at T = 1000)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def last_plan() -> gr.Plan | None:
    """The plan the latest ``forward`` (or ``plan_for``) used."""
    return _last


def cached_plans() -> dict:
    """{(spec, T, B, mode, dropout): Plan} currently cached (a copy)."""
    with _lock:
        return dict(_cache)


def clear_cache():
    global _last
    with _lock:
        _cache.clear()
        _last = None


class Tape:
    """Holds the plan instance whose buffers keep the forward activations until backward has used them."""

    __slots__ = ("plan", "instance", "token", "__weakref__")

    def __init__(self, plan, instance):
        self.plan, self.instance, self.token = plan, instance, instance.token
        weakref.finalize(self, plan.release_if_owned, instance, instance.token)  # a dropped tape frees them


def step_mask(lengths, T: int, B: int) -> np.ndarray:
    """mask[t, b] = t < lengths[b], (T, B) uint8 (all ones when lengths is None)."""
    if lengths is None:
        return np.ones((T, B), np.uint8)
    return (np.arange(T)[:, None] < np.asarray(lengths)[None, :]).astype(np.uint8)


def forward(spec, params, x, lengths, h0, c0, masks, keep):
    """Executor contract (graphrnn.executors): x (T, B, I) -> (out (T, B, D*H), h_n, c_n, tape)."""
    T, B = x.shape[0], x.shape[1]
    plan = plan_for(spec, T, B, train=keep, dropout=bool(masks))
    feeds = dict(params, x=x, mask=step_mask(lengths, T, B), h0=h0)
    if c0 is not None:
        feeds["c0"] = c0
    for k, m in enumerate(masks or ()):
        feeds[f"dropout{k}"] = m
    inst = plan.acquire()
    try:
        res = inst.run(0, feeds)
    except BaseException:
        plan.release(inst)
        raise
    if keep:
        tape = Tape(plan, inst)
    else:
        plan.release(inst)
        tape = None
    return res["out"], res["h_n"], res.get("c_n"), tape


def backward(tape, g_out, g_hn, g_cn):
    """Executor contract: gradients of sum(out*g_out) + sum(h_n*g_hn) [+ sum(c_n*g_cn)] (see executors.py).

    May be called again on the same tape as long as no later forward on the same plan reused its buffers.
    """
    plan, inst = tape.plan, tape.instance
    if not plan.reclaim(inst, tape.token):
        raise RuntimeError(
            "static backward: this tape was already used by backward and a later forward of the same "
            "shape has reused its buffers since; run forward again to get a fresh tape"
        )
    feeds = {"g_out": g_out, "g_hn": g_hn}
    if g_cn is not None:
        feeds["g_cn"] = g_cn
    try:
        return inst.run(1, feeds)
    finally:
        plan.release(inst)
