"""The static executor (graphrnn/static.py on graphrnn/graph.py) against the NumPy reference, finite
differences, and its own promises: hoisting, buffer reuse, plan caching, re-entrancy.
"""

import itertools
import threading
import time

import numpy as np
import pytest
from gradcheck import assert_close, check_grads

from graphrnn import graph as gr
from graphrnn import static
from graphrnn.cells import StackSpec, init_params
from graphrnn.kernels import reference

CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
T, B, I, H = 5, 4, 3, 5
LENGTHS = {"none": None, "equal": np.full(B, T), "unsorted_with_0": np.array([3, 0, 5, 2])}


def make_case(cell, layers, bidirectional, dtype, lengths, seed=0, bias=True, T=T, B=B):
    """(spec, params, x with zeros at padded positions, lengths (B,), h0, c0) like the module layer gives."""
    rng = np.random.default_rng(seed)
    spec = StackSpec(cell, I, H, layers, bidirectional, bias, np.dtype(dtype).name)
    params = init_params(spec, rng)
    lengths = np.full(B, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    x[np.arange(T)[:, None] >= lengths[None, :]] = 0
    LD = layers * spec.directions
    h0 = rng.standard_normal((LD, B, H)).astype(dtype)
    c0 = rng.standard_normal((LD, B, H)).astype(dtype) if cell == "lstm" else None
    return spec, params, x, lengths, h0, c0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lengths", list(LENGTHS))
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (1, True), (2, False), (2, True)])
@pytest.mark.parametrize("cell", CELLS)
def test_static_forward_matches_reference(cell, layers, bidirectional, lengths, dtype):
    spec, p, x, lens, h0, c0 = make_case(cell, layers, bidirectional, dtype, LENGTHS[lengths])
    out, h_n, c_n, tape = static.forward(spec, p, x, lens, h0, c0, None, False)
    want_out, want_h, want_c = reference.stack_forward(spec, p, x, lens, h0, c0)
    assert tape is None
    assert out.dtype == dtype and h_n.dtype == dtype
    assert_close(out, want_out, "out", dtype)
    assert_close(h_n, want_h, "h_n", dtype)
    if cell == "lstm":
        assert_close(c_n, want_c, "c_n", dtype)
    else:
        assert c_n is None
    padded = np.arange(T)[:, None] >= lens[None, :]
    assert np.all(out[padded] == 0), "padded outputs are exactly zero"


def test_length_0_returns_the_initial_state_and_zero_outputs():
    spec, p, x, lens, h0, c0 = make_case("lstm", 2, True, np.float64, [0, 0, 0, 0])
    out, h_n, c_n, _ = static.forward(spec, p, x, lens, h0, c0, None, False)
    assert np.all(out == 0)
    np.testing.assert_array_equal(h_n, h0)
    np.testing.assert_array_equal(c_n, c0)


def test_dropout_masks_multiply_the_output_of_every_layer_but_the_last():
    spec, p, x, lens, h0, c0 = make_case("gru", 2, True, np.float64, LENGTHS["unsorted_with_0"])
    masks = [np.random.default_rng(5).choice([0.0, 2.0], size=(T, B, 2 * H))]
    out, h_n, _, _ = static.forward(spec, p, x, lens, h0, None, masks, True)
    want_out, want_h, _ = reference.stack_forward(spec, p, x, lens, h0, None, masks)
    assert_close(out, want_out, "out", np.float64)
    assert_close(h_n, want_h, "h_n", np.float64)


def test_bias_false_has_no_bias_inputs():
    spec, p, x, lens, h0, c0 = make_case("lstm", 1, False, np.float64, None, bias=False)
    assert not any(name.startswith("bias") for name in p)
    out, h_n, c_n, _ = static.forward(spec, p, x, lens, h0, c0, None, False)
    assert_close(out, reference.stack_forward(spec, p, x, lens, h0, c0)[0], "out", np.float64)


def run_grads(spec, p, x, lens, h0, c0, masks, g_out, g_h, g_c):
    _, _, _, tape = static.forward(spec, p, x, lens, h0, c0, masks, True)
    return static.backward(tape, g_out, g_h, g_c)


@pytest.mark.parametrize(
    "cell,layers,bidirectional,lengths,bias",
    [("lstm", 1, False, "none", True), ("lstm", 2, True, "unsorted_with_0", True),
     ("gru", 1, True, "unsorted_with_0", True), ("gru", 2, False, "equal", False),
     ("rnn_tanh", 2, True, "unsorted_with_0", True), ("rnn_relu", 1, False, "unsorted_with_0", False)],
)
def test_static_backward_matches_finite_differences(cell, layers, bidirectional, lengths, bias):
    spec, p, x, lens, h0, c0 = make_case(cell, layers, bidirectional, np.float64, LENGTHS[lengths], seed=1,
                                         bias=bias)
    rng = np.random.default_rng(2)
    D = spec.directions
    masks = [rng.choice([0.0, 2.0], size=(T, B, D * H)) for _ in range(layers - 1)] or None
    g_out = rng.standard_normal((T, B, D * H))
    g_h = rng.standard_normal(h0.shape)
    g_c = rng.standard_normal(h0.shape) if cell == "lstm" else None
    grads = run_grads(spec, p, x, lens, h0, c0, masks, g_out, g_h, g_c)

    expected_keys = set(p) | {"input", "h0"} | ({"c0"} if cell == "lstm" else set())
    assert set(grads) == expected_keys
    padded = np.arange(T)[:, None] >= lens[None, :]
    assert np.all(grads["input"][padded] == 0), "padded inputs get zero gradient"

    def loss(a):
        out, h_n, c_n = reference.stack_forward(spec, {k: a[k] for k in p}, a["input"], lens, a["h0"],
                                                a.get("c0"), masks)
        return np.sum(out * g_out) + np.sum(h_n * g_h) + (np.sum(c_n * g_c) if g_c is not None else 0.0)

    args = dict(p, input=x, h0=h0, **({"c0": c0} if c0 is not None else {}))
    check_grads(loss, args, grads, full_max=8, directions=2)


def test_backward_can_run_twice_on_one_tape_until_a_later_forward_reuses_it():
    spec, p, x, lens, h0, c0 = make_case("lstm", 1, True, np.float64, LENGTHS["unsorted_with_0"])
    _, _, _, tape = static.forward(spec, p, x, lens, h0, c0, None, True)
    g = (np.ones((T, B, 2 * H)), np.ones(h0.shape), np.ones(h0.shape))
    first = static.backward(tape, *g)
    second = static.backward(tape, *g)
    for k in first:
        np.testing.assert_array_equal(first[k], second[k], err_msg=k)
    static.forward(spec, p, x, lens, h0, c0, None, True)  # takes the instance the tape had released
    with pytest.raises(RuntimeError, match="reused"):
        static.backward(tape, *g)


def test_two_open_tapes_keep_their_own_activations():
    spec, p, x, lens, h0, c0 = make_case("gru", 1, False, np.float64, LENGTHS["unsorted_with_0"])
    g = (np.ones((T, B, H)), np.ones(h0.shape), None)
    _, _, _, tape_a = static.forward(spec, p, x, lens, h0, None, None, True)
    _, _, _, tape_b = static.forward(spec, p, 2 * x, lens, h0, None, None, True)
    grads_a = static.backward(tape_a, *g)
    fresh = run_grads(spec, p, x, lens, h0, None, None, *g)
    assert_close(grads_a["input"], fresh["input"], "input", np.float64)
    assert not np.allclose(grads_a["input"], static.backward(tape_b, *g)["input"])


def test_concurrent_forwards_on_one_plan_do_not_mix():
    spec, p, x, lens, h0, c0 = make_case("lstm", 1, False, np.float32, LENGTHS["unsorted_with_0"])
    inputs = [x * (k + 1) for k in range(8)]
    want = [reference.stack_forward(spec, p, xi, lens, h0, c0)[0] for xi in inputs]
    got = [None] * len(inputs)

    def work(k):
        for _ in range(20):
            got[k] = static.forward(spec, p, inputs[k], lens, h0, c0, None, False)[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(len(inputs)):
        assert_close(got[k], want[k], f"thread {k} out", np.float32)


# ------------------------------------------------------------------------------------- plans


def test_plan_cache_returns_the_same_plan_for_the_same_key():
    spec = StackSpec("gru", 3, 4)
    a = static.plan_for(spec, 7, 2)
    assert static.plan_for(spec, 7, 2) is a
    assert static.plan_for(StackSpec("gru", 3, 4), 7, 2) is a  # equal specs are one key
    assert static.plan_for(spec, 7, 3) is not a
    assert static.plan_for(spec, 7, 2, train=True) is not a
    assert static.plan_for(spec, 7, 2, train=False) is a
    assert static.last_plan() is a
    assert any(plan is a for plan in static.cached_plans().values())


def test_plan_stats_are_present_and_node_count_grows_linearly_with_T():
    spec = StackSpec("lstm", 3, 4, 2, True)
    for train in (False, True):
        stats = [static.plan_for(spec, t, 2, train=train).stats for t in (10, 20, 30)]
        for s in stats:
            assert s.nodes > 0 and s.kernel_calls > 0 and s.planned_bytes > 0 and s.buffers > 0
            assert s.build_seconds > 0 and s.compile_seconds > 0
        step = stats[1].nodes - stats[0].nodes
        assert step > 0 and stats[2].nodes - stats[1].nodes == step, [s.nodes for s in stats]


def test_inference_reuses_buffers_so_it_plans_fewer_bytes_than_training():
    spec = StackSpec("lstm", 8, 16, 2, False)
    inference = static.plan_for(spec, 50, 4).stats
    training = static.plan_for(spec, 50, 4, train=True).stats
    assert inference.planned_bytes < training.planned_bytes / 2, (inference, training)
    # per-step state and gate buffers are recycled: far fewer buffers than steps
    assert inference.buffers < 50


def test_hoisting_merges_each_input_projection_into_one_gemm_over_all_steps():
    L, D = 2, 2
    plan = static.plan_for(StackSpec("gru", 3, 4, L, True), 9, 2, train=True)
    assert plan.stats.hoisted["input_projections"] == L * D
    linears = [n for n in plan.sched if n.op == "linear"]
    over_all_steps = [n for n in linears if n.inputs[0].shape[0] == 9 and len(n.inputs[0].shape) == 3]
    assert len(over_all_steps) == L * D
    assert len(linears) == L * D + L * D * 9  # the rest: one recurrent product per step
    # backward: each W_hh gradient (and b_hh) is one GEMM over all steps, not a sum of per-step products
    assert plan.stats.hoisted["weight_grads"] == 2 * L * D
    assert sum(n.op == "wgrad" for n in plan.sched) == 2 * L * D  # W_ih and W_hh per layer and direction


def test_build_and_compile_for_1000_steps_takes_under_half_a_second():
    """CPU time of this process (the shared test machine's load would inflate wall time)."""
    for cell, train in itertools.product(("lstm", "gru"), (False, True)):
        spec = StackSpec(cell, 16, 32, 1, False, True, "float32")
        start = time.process_time()
        g, phases = static.build(spec, 1000, 8, train=train)
        plan = gr.compile(g, *phases)
        spent = time.process_time() - start
        assert spent < 0.5, f"{cell} train={train}: {spent:.3f} s CPU for {plan.stats.nodes} nodes"


def test_compiled_plan_matches_the_graph_run_with_numpy_twins():
    """Every op's kernel call against its twin, inside a real graph (forward and backward phases)."""
    spec, p, x, lens, h0, c0 = make_case("lstm", 2, True, np.float64, LENGTHS["unsorted_with_0"])
    g, phases = static.build(spec, T, B, train=True, dropout=True)
    rng = np.random.default_rng(3)
    feeds = dict(p, x=x, mask=static.step_mask(lens, T, B), h0=h0, c0=c0,
                 dropout0=rng.choice([0.0, 2.0], size=(T, B, 2 * H)),
                 g_out=rng.standard_normal((T, B, 2 * H)), g_hn=rng.standard_normal(h0.shape),
                 g_cn=rng.standard_normal(h0.shape))
    plan = gr.compile(g, *phases)
    inst = plan.acquire()
    got = {**inst.run(0, feeds), **inst.run(1, feeds)}
    want = gr.evaluate(g, feeds, {**phases[0], **phases[1]})
    for name in want:
        assert_close(got[name], want[name], name, np.float64)


def test_a_shape_mismatch_is_caught_when_the_node_is_added():
    g = gr.Graph()
    x = g.input("x", (4, 3), np.float32)
    W = g.input("W", (5, 2), np.float32)
    with pytest.raises(ValueError, match="linear"):
        g.apply("linear", x, W)
