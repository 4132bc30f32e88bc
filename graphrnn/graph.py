"""A tiny static graph engine: build nodes, differentiate, compile to kernel calls over planned buffers.

A graph is a list of nodes. A node has an op (a name in ``OPS``), inputs (values of earlier nodes) and
attributes; it produces one or more values, each with a fixed shape and dtype. Everything an op is sits in
one table entry (``Op``): its shape rule, its forward kernel call, its VJP (the backward nodes it adds)
and its NumPy twin (what ``evaluate`` runs; tests compare compiled plans against it). A new op supplies
those four and nothing else.

Primitive ops (letters: T steps, B rows, K in features, N out features, H hidden, G gates):

==================  ======================================  =======================================
op, inputs          forward                                 VJP (adds these nodes)
==================  ======================================  =======================================
input               a fed array (name, shape, dtype)        (a leaf)
zeros               zeros of a shape                        (a leaf)
linear x, W[, b]    x (..., K) @ W (N, K)^T + b (N,)        matmul(g, W), wgrad(g, x), colsum(g)
matmul g, W         g (..., N) @ W (N, K) -> (..., K)       (backward only)
wgrad g, x          g^T x over all rows -> (N, K)           (backward only)
colsum g            g summed over all rows -> (N,)          (backward only)
add_n a, b, ...     a + b + ...                             g to each input
mul a, b            a * b, same shapes                      mul(g, b), mul(g, a)
mask_rows Y, M      Y (T, B, F) where M (T, B), else 0      mask_rows(g, M)
unstack X           views X[t][..., d*F:(d+1)*F]            stack of the outputs' gradients
stack parts         (T,) + part shape, groups side by side  unstack(g)
rnn_cell, ...       one masked step (kernels/masked.py)     rnn_cell_bwd, lstm_cell_bwd, gru_cell_bwd
==================  ======================================  =======================================

``Graph.grad`` is reverse-mode differentiation: a reverse walk that adds the VJP nodes to the same graph.
``compile(graph, *phases)`` runs the hoisting pass (``hoist``), schedules what each phase needs (depth-
first from its outputs, so dead nodes are dropped), places stacked values straight into their slot,
assigns buffers by liveness, and returns a ``Plan``. A plan runs through an ``Instance`` (one arena,
every kernel call bound to its arrays once), so a run allocates nothing, and several callers can each
hold an instance of one plan. The graph knows nothing of files, CLI or modules.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from graphrnn.kernels import masked
from graphrnn.kernels import reference as ref

# ------------------------------------------------------------------------------------------- nodes


class Value:
    """One output of a node: ``node.outputs[index]``, with a fixed shape and dtype."""

    __slots__ = ("node", "index", "shape", "dtype")

    def __init__(self, node, index, shape, dtype):
        self.node, self.index, self.shape = node, index, tuple(shape)
        self.dtype = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def __repr__(self):
        return f"<{self.node.op}#{self.node.id}:{self.index} {self.shape} {self.dtype}>"


class Node:
    """op (name in OPS), inputs (Values), attrs (dict), outputs (Values carrying each shape and dtype)."""

    __slots__ = ("op", "inputs", "attrs", "outputs", "id")

    def __init__(self, op, inputs, attrs, nid):
        self.op, self.inputs, self.attrs, self.id = op, tuple(inputs), attrs, nid
        self.outputs = ()

    @property
    def shape(self):
        return self.outputs[0].shape

    @property
    def dtype(self):
        return self.outputs[0].dtype

    def __repr__(self):
        return f"<{self.op}#{self.id} -> {[v.shape for v in self.outputs]}>"


@dataclass(frozen=True)
class Op:
    """What an op must supply. ``shape(inputs, attrs) -> [(shape, dtype)]`` checks and infers outputs;
    ``forward(ins, outs, attrs) -> thunk | None`` binds the kernel call to arrays once (None: nothing to
    run); ``vjp(graph, node, out_grads) -> in_grads`` adds the backward nodes (None entries: no gradient);
    ``twin(ins, attrs) -> outs`` is the NumPy meaning. ``view`` ops alias their input (no buffer, no call:
    ``forward`` returns the views); ``elementwise`` ops may write over their first input."""

    shape: Callable
    forward: Callable | None
    vjp: Callable | None
    twin: Callable
    view: bool = False
    elementwise: bool = False
    multi: bool = False  # returns a tuple of values even when it has one


class Graph:
    """Nodes in creation order plus the named inputs. Order for running comes from ``schedule`` (a pass
    may append a node that earlier nodes now use)."""

    def __init__(self):
        self.nodes: list[Node] = []
        self.inputs: dict[str, Value] = {}
        self.created = time.perf_counter()  # compile() reports build time as the time since
        self._ids = 0
        self._replaced: dict[Value, Value] = {}
        self.hoisted = {"input_projections": 0, "weight_grads": 0}  # merges made by hoist() so far

    def input(self, name: str, shape, dtype) -> Value:
        if name in self.inputs:
            raise ValueError(f"graph input {name!r} defined twice")
        v = self.apply("input", name=name, shape=tuple(shape), dtype=np.dtype(dtype))
        self.inputs[name] = v
        return v

    def zeros(self, shape, dtype) -> Value:
        return self.apply("zeros", shape=tuple(shape), dtype=np.dtype(dtype))

    def apply(self, op: str, *inputs: Value, **attrs):
        """Add a node; returns its Value, or a tuple of Values for multi-output ops."""
        spec = OPS[op]
        node = Node(op, inputs, attrs, self._ids)
        self._ids += 1
        node.outputs = tuple(Value(node, k, s, d) for k, (s, d) in enumerate(spec.shape(inputs, attrs)))
        self.nodes.append(node)
        return node.outputs if spec.multi or len(node.outputs) != 1 else node.outputs[0]

    def resolve(self, v: Value) -> Value:
        """The value that now stands for ``v`` after rewrites."""
        while v in self._replaced:
            v = self._replaced[v]
        return v

    def rewire(self, replace: dict[Value, Value], dead: set[Node]):
        """Point every use of a key of ``replace`` at its value, and drop the ``dead`` nodes."""
        self._replaced.update(replace)
        nodes = []
        for n in self.nodes:
            if n in dead:
                continue
            if any(v in replace for v in n.inputs):
                n.inputs = tuple(replace.get(v, v) for v in n.inputs)
            nodes.append(n)
        self.nodes = nodes

    # -- reverse-mode differentiation

    def grad(self, outputs, seeds, wrt) -> list[Value]:
        """Add the backward nodes for d(sum_k <outputs[k], seeds[k]>)/d(wrt) and return one Value per wrt.

        A reverse walk over the nodes: each node's VJP turns the gradients of its outputs into gradients
        of its inputs; a value reached from several consumers gets an ``add_n`` of the contributions.
        Run ``hoist`` first: the VJP of a merged GEMM is then a merged GEMM too.
        """
        outputs = [self.resolve(v) for v in outputs]
        order = schedule([outputs])
        live = {v.node for v in wrt}
        for n in order:  # nodes downstream of wrt: only their VJPs matter
            if n not in live and any(v.node in live for v in n.inputs):
                live.add(n)
        contribs: dict[Value, list[Value]] = {}
        for v, s in zip(outputs, seeds):
            contribs.setdefault(v, []).append(s)
        for n in reversed(order):
            if n not in live or n.op == "input":
                continue
            gouts = [self._sum(contribs.pop(v, None)) for v in n.outputs]
            if all(g is None for g in gouts):
                continue
            if OPS[n.op].vjp is None:
                raise ValueError(f"cannot differentiate through {n!r}: {n.op} is a backward-only op")
            for v, g in zip(n.inputs, OPS[n.op].vjp(self, n, gouts)):
                if g is not None and v.node in live:
                    contribs.setdefault(v, []).append(g)
        return [self._sum(contribs.get(w)) or self.zeros(w.shape, w.dtype) for w in wrt]

    def _sum(self, gs):
        if not gs:
            return None
        return gs[0] if len(gs) == 1 else self.apply("add_n", *gs)


# ------------------------------------------------------------------------------------ op table


def _rows(a):
    """a (..., F) as a 2-D view (rows, F); our buffers are contiguous, so this never copies."""
    if a.ndim == 2:
        return a
    r = a.reshape(-1, a.shape[-1])
    if r.size and not np.may_share_memory(r, a):
        raise AssertionError("internal: a planned buffer is not contiguous")
    return r


def _check(cond, msg, *args):
    if not cond:  # the message is formatted only when it is needed: shape rules run for every node
        raise ValueError(msg.format(*args))


def _same(inputs, attrs):
    a = inputs[0]
    for v in inputs[1:]:
        _check(v.shape == a.shape and v.dtype == a.dtype, "shapes differ: {} vs {}", a, v)
    return [(a.shape, a.dtype)]


def _linear_shape(inputs, attrs):
    x, W = inputs[:2]
    _check(W.shape[1] == x.shape[-1], "linear: x {} does not match W {}", x.shape, W.shape)
    _check(len(inputs) == 2 or inputs[2].shape == (W.shape[0],), "linear: bias does not match W {}", W.shape)
    return [(x.shape[:-1] + (W.shape[0],), x.dtype)]


def _linear_fwd(ins, outs, attrs):
    x2, Wt, o2 = _rows(ins[0]), ins[1].T, _rows(outs[0])
    if len(ins) == 2:
        return lambda: np.matmul(x2, Wt, out=o2)
    b = ins[2]

    def run():
        np.matmul(x2, Wt, out=o2)
        np.add(o2, b, out=o2)

    return run


def _linear_vjp(g, n, gouts):
    go, (x, W) = gouts[0], n.inputs[:2]
    grads = [g.apply("matmul", go, W), g.apply("wgrad", go, x)]
    return grads + ([g.apply("colsum", go)] if len(n.inputs) == 3 else [])


def _linear_twin(ins, attrs):
    return [ins[0] @ ins[1].T + (ins[2] if len(ins) == 3 else 0)]


def _matmul_shape(inputs, attrs):
    g, W = inputs
    _check(g.shape[-1] == W.shape[0], "matmul: {} @ {}", g.shape, W.shape)
    return [(g.shape[:-1] + (W.shape[1],), g.dtype)]


def _matmul_fwd(ins, outs, attrs):
    g2, W, o2 = _rows(ins[0]), ins[1], _rows(outs[0])
    return lambda: np.matmul(g2, W, out=o2)


def _wgrad_shape(inputs, attrs):
    g, x = inputs
    _check(g.shape[:-1] == x.shape[:-1], "wgrad: rows of {} and {} differ", g.shape, x.shape)
    return [((g.shape[-1], x.shape[-1]), g.dtype)]


def _wgrad_fwd(ins, outs, attrs):
    gt, x2, o = _rows(ins[0]).T, _rows(ins[1]), outs[0]
    return lambda: np.matmul(gt, x2, out=o)


def _colsum_fwd(ins, outs, attrs):
    g2, o = _rows(ins[0]), outs[0]
    return lambda: np.sum(g2, axis=0, out=o)


def _add_n_fwd(ins, outs, attrs):
    a, rest, o = ins[0], ins[1:], outs[0]

    def run():  # output may alias ins[0] (elementwise), never a later input
        np.add(a, rest[0], out=o)
        for r in rest[1:]:
            np.add(o, r, out=o)

    return run


def _mask_rows_shape(inputs, attrs):
    Y, M = inputs
    _check(M.shape == Y.shape[:2], "mask_rows: mask {} does not match {}", M.shape, Y.shape)
    return [(Y.shape, Y.dtype)]


def _mask_rows_fwd(ins, outs, attrs):
    """A select, not a product: a NaN or inf at a masked position (a finished row's state, a padded
    gradient) must become exactly 0, and NaN * 0 is NaN."""
    Y, M3, o = ins[0], ins[1][..., None], outs[0]
    same = o.size and np.shares_memory(o, Y)  # elementwise: compile() may give o the buffer of Y
    zero = o.dtype.type(0)

    def run():
        if not same:
            np.copyto(o, Y)
        np.copyto(o, zero, where=M3 == 0)

    return run


def _mask_rows_twin(ins, attrs):
    return [np.where(ins[1][..., None] != 0, ins[0], ins[0].dtype.type(0))]


def _unstack_views(ins, attrs):
    X, G = ins[0], attrs.get("groups", 1)
    if G == 1:
        return [X[t] for t in range(X.shape[0])]
    F = X.shape[-1] // G
    return [X[t][..., d * F : (d + 1) * F] for t in range(X.shape[0]) for d in range(G)]


def _unstack_vjp(g, n, gouts):
    parts = [go if go is not None else g.zeros(v.shape, v.dtype) for go, v in zip(gouts, n.outputs)]
    X = n.inputs[0]
    return [g.apply("stack", *parts, shape=X.shape, dtype=X.dtype, groups=n.attrs.get("groups", 1))]


def _stack_shape(inputs, attrs):
    shape, G = tuple(attrs["shape"]), attrs.get("groups", 1)
    part = shape[1:-1] + (shape[-1] // G,)
    _check(len(inputs) == shape[0] * G, "stack: {} parts for shape {}, groups {}", len(inputs), shape, G)
    for v in inputs:
        _check(v.shape == part and v.dtype == attrs["dtype"], "stack: part {}, expected {}", v, part)
    return [(shape, attrs["dtype"])]


def _stack_fwd(ins, outs, attrs):
    o, G = outs[0], attrs.get("groups", 1)
    if not ins:
        return None
    if G > 1:
        ov = o.reshape(o.shape[:-1] + (G, o.shape[-1] // G))
        pairs = [(ov[..., d, :], list(ins[d::G])) for d in range(G)]

        def run():
            for dst, parts in pairs:
                np.stack(parts, axis=0, out=dst)

        return run
    # parts that compile() placed straight into their slot need no copy
    todo = [(o[t], p) for t, p in enumerate(ins) if not (p.size and np.shares_memory(p, o))]
    if not todo:
        return None
    if len(todo) == len(ins):
        return lambda: np.stack(ins, axis=0, out=o)

    def run_some():
        for dst, p in todo:
            np.copyto(dst, p)

    return run_some


def _stack_twin(ins, attrs):
    shape, G = attrs["shape"], attrs.get("groups", 1)
    if not ins:
        return [np.zeros(shape, attrs["dtype"])]
    return [np.stack([np.concatenate(ins[t * G : (t + 1) * G], axis=-1) for t in range(shape[0])])]


def _stack_vjp(g, n, gouts):
    return list(g.apply("unstack", gouts[0], groups=n.attrs.get("groups", 1)))


def _zeros_fwd(ins, outs, attrs):
    o = outs[0]
    return lambda: o.fill(0)


# -- the fused cell steps (kernels/masked.py); inputs and outputs listed in each shape rule


def _cell_shape(G, n_state, gates_out):
    def rule(inputs, attrs):
        xw, gh, h = inputs[:3]
        B, H = h.shape
        _check(xw.shape == gh.shape == (B, G * H), "cell: xw {}, gh {}, h {}", xw.shape, gh.shape, h.shape)
        _check(inputs[-1].shape == (B,), "cell: mask {}, expected ({},)", inputs[-1].shape, B)
        return [((B, H), h.dtype)] * n_state + ([((B, G * H), h.dtype)] if gates_out else [])

    return rule


def _rnn_fwd(ins, outs, attrs):
    xw, gh, h_prev, mask = ins
    relu, h = attrs["relu"], outs[0]
    return lambda: masked.rnn_masked_fwd(xw, gh, h_prev, mask, relu, h)


def _rnn_vjp(g, n, gouts):
    dpre, dh_prev = g.apply("rnn_cell_bwd", gouts[0], n.outputs[0], n.inputs[3], relu=n.attrs["relu"])
    return [dpre, dpre, dh_prev, None]


def _rnn_twin(ins, attrs):
    return [ref.rnn_masked_step(*ins, "relu" if attrs["relu"] else "tanh")]


def _rnn_bwd_fwd(ins, outs, attrs):
    dh, h, mask = ins
    relu, (dpre, dh_prev) = attrs["relu"], outs
    return lambda: masked.rnn_masked_bwd(dh, h, mask, relu, dpre, dh_prev)


def _lstm_fwd(ins, outs, attrs):
    xw, gh, h_prev, c_prev, mask = ins
    h, c, gates = outs
    return lambda: masked.lstm_masked_fwd(xw, gh, c_prev, h_prev, mask, h, c, gates)


def _lstm_vjp(g, n, gouts):
    h, c, gates = n.outputs
    dh = gouts[0] if gouts[0] is not None else g.zeros(h.shape, h.dtype)
    dc = gouts[1] if gouts[1] is not None else g.zeros(c.shape, c.dtype)
    dpre, dh_prev, dc_prev = g.apply("lstm_cell_bwd", dh, dc, gates, c, n.inputs[3], n.inputs[4])
    return [dpre, dpre, dh_prev, dc_prev, None]


def _lstm_twin(ins, attrs):
    xw, gh, h_prev, c_prev, mask = ins
    return list(ref.lstm_masked_step(xw, gh, c_prev, h_prev, mask))


def _lstm_bwd_fwd(ins, outs, attrs):
    dh, dc, gates, c, c_prev, mask = ins
    dpre, dh_prev, dc_prev = outs
    return lambda: masked.lstm_masked_bwd(dh, dc, gates, c, c_prev, mask, dpre, dh_prev, dc_prev)


def _gru_fwd(ins, outs, attrs):
    xw, gh, h_prev, mask = ins
    h, gates = outs
    return lambda: masked.gru_masked_fwd(xw, gh, h_prev, mask, h, gates)


def _gru_vjp(g, n, gouts):
    xw, gh, h_prev, mask = n.inputs
    dxw, dgh, dh_prev = g.apply("gru_cell_bwd", gouts[0], n.outputs[1], h_prev, gh, mask)
    return [dxw, dgh, dh_prev, None]


def _gru_twin(ins, attrs):
    return list(ref.gru_masked_step(*ins))


def _gru_bwd_fwd(ins, outs, attrs):
    dh, gates, h_prev, gh, mask = ins
    dxw, dgh, dh_prev = outs
    return lambda: masked.gru_masked_bwd(dh, gates, h_prev, gh, mask, dxw, dgh, dh_prev)


def _bwd_shape(*kinds):
    """Outputs shaped like the inputs at the given positions."""
    return lambda inputs, attrs: [(inputs[k].shape, inputs[k].dtype) for k in kinds]


def _twin_rows(fn):
    return lambda ins, attrs: [fn(_rows(ins[0]), *[_rows(a) for a in ins[1:]])]


OPS: dict[str, Op] = {
    "input": Op(lambda i, a: [(a["shape"], a["dtype"])], None, None, lambda ins, a: []),
    "zeros": Op(lambda i, a: [(a["shape"], a["dtype"])], _zeros_fwd, None,
                lambda ins, a: [np.zeros(a["shape"], a["dtype"])]),
    "linear": Op(_linear_shape, _linear_fwd, _linear_vjp, _linear_twin),
    "matmul": Op(_matmul_shape, _matmul_fwd, None, lambda ins, a: [ins[0] @ ins[1]]),
    "wgrad": Op(_wgrad_shape, _wgrad_fwd, None, _twin_rows(lambda g, x: g.T @ x)),
    "colsum": Op(lambda i, a: [((i[0].shape[-1],), i[0].dtype)], _colsum_fwd, None,
                 _twin_rows(lambda g: g.sum(axis=0))),
    "add_n": Op(_same, _add_n_fwd, lambda g, n, go: [go[0]] * len(n.inputs),
                lambda ins, a: [sum(ins[1:], ins[0])], elementwise=True),
    "mul": Op(_same, lambda ins, outs, a: (lambda: np.multiply(ins[0], ins[1], out=outs[0])),
              lambda g, n, go: [g.apply("mul", go[0], n.inputs[1]), g.apply("mul", go[0], n.inputs[0])],
              lambda ins, a: [ins[0] * ins[1]], elementwise=True),
    "mask_rows": Op(_mask_rows_shape, _mask_rows_fwd,
                    lambda g, n, go: [g.apply("mask_rows", go[0], n.inputs[1]), None],
                    _mask_rows_twin, elementwise=True),
    "unstack": Op(lambda i, a: _unstack_parts(i[0], a), _unstack_views, _unstack_vjp,
                  lambda ins, a: [v.copy() for v in _unstack_views(ins, a)], view=True, multi=True),
    "stack": Op(_stack_shape, _stack_fwd, _stack_vjp, _stack_twin),
    "rnn_cell": Op(_cell_shape(1, 1, False), _rnn_fwd, _rnn_vjp, _rnn_twin),
    "rnn_cell_bwd": Op(_bwd_shape(0, 0), _rnn_bwd_fwd, None,
                       lambda ins, a: list(ref.rnn_masked_step_bwd(*ins, "relu" if a["relu"] else "tanh"))),
    "lstm_cell": Op(_cell_shape(4, 2, True), _lstm_fwd, _lstm_vjp, _lstm_twin),
    "lstm_cell_bwd": Op(_bwd_shape(2, 0, 1), _lstm_bwd_fwd, None,
                        lambda ins, a: list(ref.lstm_masked_step_bwd(*ins))),
    "gru_cell": Op(_cell_shape(3, 1, True), _gru_fwd, _gru_vjp, _gru_twin),
    "gru_cell_bwd": Op(_bwd_shape(1, 1, 0), _gru_bwd_fwd, None,
                       lambda ins, a: list(ref.gru_masked_step_bwd(*ins))),
}


def _unstack_parts(X, attrs):
    G = attrs.get("groups", 1)
    _check(len(X.shape) >= 2 and X.shape[-1] % G == 0, "unstack: cannot split {} in groups of {}", X.shape, G)
    return [(X.shape[1:-1] + (X.shape[-1] // G,), X.dtype)] * (X.shape[0] * G)


# -------------------------------------------------------------------------------------- passes


def hoist(graph: Graph) -> dict:
    """Merge per-step products that share a weight into one GEMM over all steps (idempotent).

    Forward: ``linear(unstack(X)[t], W, b)`` for several t -> ``unstack(linear(X, W, b))[t]``: the input
    projection of every step becomes one (T*B, K) x (K, N) GEMM. Backward: an ``add_n`` of per-step weight
    gradients ``wgrad(g_t, x_t)`` (or ``colsum(g_t)``) -> ``wgrad(stack(g), stack(x))``; the stack of g is
    shared with an existing stack of the same values (the gradient of the merged projection), and
    compile() places each g_t straight into its slot, so no copy is made. Returns ``graph.hoisted``,
    the counts of merges made so far.
    """
    groups: dict[tuple, list[Node]] = {}  # (unstack node, W[, b]) -> the per-step products
    for n in graph.nodes:
        src = n.inputs[0].node if n.inputs else None
        if n.op == "linear" and src.op == "unstack" and src.attrs.get("groups", 1) == 1:
            groups.setdefault((src,) + n.inputs[1:], []).append(n)
    replace, dead, merged = {}, set(), graph.hoisted
    for (unstack, *wb), steps in groups.items():
        if len(steps) < 2:
            continue
        views = graph.apply("unstack", graph.apply("linear", unstack.inputs[0], *wb), groups=1)
        for n in steps:
            replace[n.outputs[0]] = views[n.inputs[0].index]
            dead.add(n)
        merged["input_projections"] += 1
    if replace:
        graph.rewire(replace, dead)

    uses: dict[Value, int] = {}
    stacks: dict[frozenset, Node] = {}
    for n in graph.nodes:
        for v in n.inputs:
            uses[v] = uses.get(v, 0) + 1
        if n.op == "stack" and n.attrs.get("groups", 1) == 1 and n.inputs:
            stacks.setdefault(frozenset(n.inputs), n)
    dead = set()
    for n in list(graph.nodes):
        if n.op != "add_n":
            continue
        for op in ("wgrad", "colsum"):
            terms = [v for v in n.inputs if v.node.op == op and uses[v] == 1]
            if (len(terms) < 2 or len({t.node.inputs[0] for t in terms}) < len(terms)  # distinct g_t
                    or len({tuple(v.shape for v in t.node.inputs) for t in terms}) > 1):  # stackable
                continue
            pairs = {t.node.inputs[0]: t.node.inputs[1:] for t in terms}
            existing = stacks.get(frozenset(pairs))
            gs = list(existing.inputs) if existing else list(pairs)
            G = existing.outputs[0] if existing else _stack(graph, gs, stacks)
            args = [G] + ([_stack(graph, [pairs[g][0] for g in gs], stacks)] if op == "wgrad" else [])
            rest = [v for v in n.inputs if v.node.op != op or uses[v] != 1]
            dead.update(t.node for t in terms)
            if rest:  # keep the other terms in the sum
                n.inputs = tuple(rest) + (graph.apply(op, *args),)
            else:  # the sum is the merged product: turn this node into it (its output Value stays)
                n.op, n.inputs, n.attrs = op, tuple(args), {}
            merged["weight_grads"] += 1
    if dead:
        graph.rewire({}, dead)
    return merged


def _stack(graph, parts, stacks):
    v = graph.apply("stack", *parts, shape=(len(parts),) + parts[0].shape, dtype=parts[0].dtype, groups=1)
    stacks.setdefault(frozenset(parts), v.node)
    return v


# ------------------------------------------------------------------------------------- schedule


def schedule(phases, done=None) -> list[Node]:
    """Nodes the outputs of each phase need, inputs before users (iterative depth-first post-order)."""
    seen = set() if done is None else done
    order = []
    for outputs in phases:
        for root in outputs:
            if root.node in seen:
                continue
            seen.add(root.node)
            stack = [(root.node, iter(root.node.inputs))]
            while stack:
                n, it = stack[-1]
                for v in it:
                    if v.node not in seen:
                        seen.add(v.node)
                        stack.append((v.node, iter(v.node.inputs)))
                        break
                else:
                    stack.pop()
                    order.append(n)
    return order


def evaluate(graph: Graph, feeds: dict, outputs: dict) -> dict:
    """Run the graph with every op's NumPy twin (no plan, no buffers): the reference for compiled plans."""
    outputs = {k: graph.resolve(v) for k, v in outputs.items()}
    vals: dict[Value, np.ndarray] = {}
    for n in schedule([outputs.values()]):
        if n.op == "input":
            vals[n.outputs[0]] = np.asarray(feeds[n.attrs["name"]], dtype=n.dtype)
            continue
        for v, a in zip(n.outputs, OPS[n.op].twin([vals[i] for i in n.inputs], n.attrs)):
            vals[v] = a
    return {k: vals[v] for k, v in outputs.items()}


# ----------------------------------------------------------------------------------------- plan


@dataclass
class PlanStats:
    nodes: int  # nodes scheduled (after the passes), all phases
    kernel_calls: int  # calls a full run makes (views and placed stacks cost none)
    build_seconds: float  # from Graph() to compile()
    compile_seconds: float
    planned_bytes: int  # every buffer of one instance, fed inputs included
    buffers: int
    hoisted: dict  # merges made by the hoisting pass


class Plan:
    """A compiled graph: per phase, the nodes to run in order; per value, where it lives."""

    def __init__(self, sched, phase_of, kind, buffer_nbytes, assign, feeds, fetches, stats):
        self.sched, self.phase_of, self.kind = sched, phase_of, kind
        self.buffer_nbytes, self.assign = buffer_nbytes, assign
        self.feeds = feeds  # per phase {name: Value}
        self.fetches = fetches  # per phase {name: Value}
        self.stats = stats
        self._free: list[Instance] = []
        self._lock = threading.Lock()

    def acquire(self) -> Instance:
        """An instance nobody else is using (made on first need; about stats.planned_bytes each)."""
        with self._lock:
            if self._free:
                inst = self._free.pop()
                inst.token = object()  # a tape remembers this to know its buffers were not reused since
                return inst
        inst = Instance(self)  # outside the lock: binding takes a while, and nobody else can see it yet
        inst.token = object()
        return inst

    def release(self, inst: Instance):
        with self._lock:
            if inst not in self._free:
                self._free.append(inst)

    def reclaim(self, inst: Instance, token) -> bool:
        """Take ``inst`` back from the free list if nobody acquired it since ``token`` was issued."""
        with self._lock:
            if inst.token is not token:
                return False
            if inst in self._free:
                self._free.remove(inst)
            return True

    def release_if_owned(self, inst: Instance, token):
        with self._lock:
            if inst.token is token and inst not in self._free:
                self._free.append(inst)


class Instance:
    """One set of buffers for a plan with every kernel call bound to its arrays (built once, run often)."""

    def __init__(self, plan: Plan):
        self.plan, self.token = plan, None
        offsets = np.cumsum([0] + [-(-nb // ALIGN) * ALIGN for nb in plan.buffer_nbytes])
        self.arena = np.empty(int(offsets[-1]) + ALIGN, np.uint8)  # one allocation; buffers are slices
        base = -self.arena.ctypes.data % ALIGN
        arr: dict[Value, np.ndarray] = {}
        for v, b in plan.assign.items():
            start = base + int(offsets[b])
            arr[v] = self.arena[start : start + v.nbytes].view(v.dtype).reshape(v.shape)
        self.thunks: list[list] = [[] for _ in plan.feeds]  # per phase, the bound kernel calls in order
        self.ops: list[list] = [[] for _ in plan.feeds]  # and the op name of each (for profile())
        for n in plan.sched:
            op = OPS[n.op]
            if op.view:
                arr.update(zip(n.outputs, op.forward([arr[v] for v in n.inputs], n.attrs)))
                continue
            for v in n.outputs:
                if plan.kind[v][0] == "placed":
                    _, stack_out, slot = plan.kind[v]
                    arr[v] = arr[stack_out][slot]
            if op.forward is not None:
                thunk = op.forward([arr[v] for v in n.inputs], [arr[v] for v in n.outputs], n.attrs)
                if thunk is not None:
                    self.thunks[plan.phase_of[n]].append(thunk)
                    self.ops[plan.phase_of[n]].append(n.op)
        self.arrays = arr

    def run(self, phase: int, feeds: dict) -> dict:
        """Copy ``feeds`` in, run the phase's kernel calls, return copies of its outputs."""
        self._feed(phase, feeds)
        for thunk in self.thunks[phase]:
            thunk()
        return {name: self.arrays[v].copy() for name, v in self.plan.fetches[phase].items()}

    def profile(self, phase: int, feeds: dict) -> dict:
        """Like run, but returns {op name: seconds spent in its calls} (for benchmarks that say where)."""
        self._feed(phase, feeds)
        spent: dict[str, float] = {}
        clock = time.perf_counter
        for op, thunk in zip(self.ops[phase], self.thunks[phase]):
            t0 = clock()
            thunk()
            spent[op] = spent.get(op, 0.0) + clock() - t0
        return spent

    def _feed(self, phase, feeds):
        for name, v in self.plan.feeds[phase].items():
            if name not in feeds:
                raise KeyError(f"plan phase {phase} needs input {name!r}")
            np.copyto(self.arrays[v], feeds[name])


INF = float("inf")
ALIGN = 64  # bytes: each buffer starts on a cache line


def compile(graph: Graph, *phases: dict) -> Plan:  # noqa: A001 (the graph-compiler sense)
    """Compile ``graph`` into a Plan that computes ``phases[k]`` ({name: Value}) when phase k runs.

    Phases run in order on one instance (e.g. forward, then backward); a later phase may read any value an
    earlier one made. Passes: hoisting (``hoist``), dead-node removal (only what some phase needs is
    scheduled), scheduling, slot placement (a value whose consumer stacks it is written straight into its
    slot) and liveness-based buffer reuse.
    """
    t0 = time.perf_counter()
    build_seconds = t0 - graph.created
    hoisted = dict(hoist(graph))
    phases = [{k: graph.resolve(v) for k, v in p.items()} for p in phases]
    done: set = set()
    sched, phase_of = [], {}
    for k, p in enumerate(phases):
        part = schedule([p.values()], done)
        phase_of.update((n, k) for n in part)
        sched += part

    # what each value is: a fed input, a view of another value, placed in a stack's slot, or its own root
    kind: dict[Value, tuple] = {}
    feeds = [{} for _ in phases]
    for n in sched:
        op = OPS[n.op]
        for v in n.outputs:
            if n.op == "input":
                kind[v] = ("feed",)
                feeds[phase_of[n]][n.attrs["name"]] = v
            elif op.view:
                kind[v] = ("view", n.inputs[0])
            else:
                kind[v] = ("root",)
    fetched = {v for p in phases for v in p.values()}
    for n in sched:  # slot placement
        if n.op == "stack" and n.attrs.get("groups", 1) == 1 and kind[n.outputs[0]][0] == "root":
            once = len(set(n.inputs)) == len(n.inputs)
            for t, v in enumerate(n.inputs):
                if kind[v][0] == "root" and v not in fetched and (once or n.inputs.count(v) == 1):
                    kind[v] = ("placed", n.outputs[0], t)

    roots: dict[Value, Value] = {}

    def root(v):
        r = roots.get(v)
        if r is None:
            r = v
            while kind[r][0] in ("view", "placed"):
                r = kind[r][1]
            roots[v] = r
        return r

    first: dict[Value, int] = {}
    last: dict[Value, float] = {}
    for i, n in enumerate(sched):
        for v in n.outputs:
            r = root(v)
            first[r] = min(first.get(r, i), i)
            last.setdefault(r, i)
        for v in n.inputs:
            r = root(v)
            # a value an earlier phase made stays intact to the end, so a later phase can be rerun
            last[r] = INF if phase_of[n] > phase_of[sched[first[r]]] else max(last[r], i)
    for v in fetched:
        last[root(v)] = INF

    buffer_nbytes: list[int] = []
    assign: dict[Value, int] = {}
    free: list[tuple[int, int]] = []  # (nbytes, buffer), sorted: best fit by bisection
    starts: dict[int, list[Value]] = {}
    ends: dict[float, list[Value]] = {}
    for r in first:
        starts.setdefault(first[r], []).append(r)
        ends.setdefault(last[r], []).append(r)
    later_need = [0] * (len(sched) + 1)  # later_need[i]: the largest buffer needed after node i
    for i in range(len(sched) - 1, -1, -1):
        made = [r.nbytes for r in starts.get(i + 1, ()) if kind[r][0] == "root"]
        later_need[i] = max(made + [later_need[i + 1]])

    def release(r):
        if kind[r][0] == "root" and r in assign:
            bisect.insort(free, (buffer_nbytes[assign[r]], assign[r]))

    for i, n in enumerate(sched):
        early = None
        if OPS[n.op].elementwise and last[root(n.inputs[0])] == i:
            early = root(n.inputs[0])  # may be overwritten in place by this node's output
            release(early)
        for r in starts.get(i, ()):
            need = r.nbytes
            k = bisect.bisect_left(free, (need, -1))
            # best fit; a much bigger buffer only if no later value would want it more
            fits = k < len(free) and (free[k][0] <= 2 * need or 2 * later_need[i] < free[k][0])
            if kind[r][0] != "feed" and fits:
                assign[r] = free.pop(k)[1]
            else:
                assign[r] = len(buffer_nbytes)
                buffer_nbytes.append(need)
        for r in ends.get(i, ()):
            if r is not early:
                release(r)
    calls = sum(
        not OPS[n.op].view and n.op != "input"
        and not (n.op == "stack" and all(kind[v][1:] == (n.outputs[0], t) for t, v in enumerate(n.inputs)))
        for n in sched
    )
    stats = PlanStats(
        nodes=len(sched),
        kernel_calls=calls,
        build_seconds=build_seconds,
        compile_seconds=0.0,
        planned_bytes=int(sum(buffer_nbytes)),
        buffers=len(buffer_nbytes),
        hoisted=hoisted,
    )
    plan = Plan(sched, phase_of, kind, buffer_nbytes, assign, feeds, phases, stats)
    stats.compile_seconds = time.perf_counter() - t0
    return plan
