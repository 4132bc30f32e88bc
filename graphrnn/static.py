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
import gc
import threading
import weakref
from collections import OrderedDict

import numpy as np

from graphrnn import graph as gr

CACHE_SIZE = 8  # plans kept, least recently used dropped first (each holds its instances' buffers)
_cache: OrderedDict = OrderedDict()
_lock = threading.Lock()
_last = None


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
    """
    global _last
    key = (spec, int(T), int(B), "training" if train else "inference", bool(dropout))
    with _lock:
        plan = _cache.get(key)
        if plan is None:
            with _gc_paused():
                g, phases = build(spec, int(T), int(B), train, dropout)
                plan = gr.compile(g, *phases)
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
