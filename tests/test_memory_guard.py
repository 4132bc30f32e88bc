"""The static executor's memory guard: estimate a plan's nodes and bytes before building it, and refuse a
plan over the budget with a clear error that gives the estimate and suggests executor="dynamic"."""

import itertools
import os
import time
import tracemalloc

import numpy as np
import pytest

import graphrnn
from graphrnn import graph as gr
from graphrnn import static
from graphrnn.cells import StackSpec


@pytest.fixture
def budget():
    """Set the budget inside a test; the previous setting comes back afterwards."""
    previous = static.set_memory_budget()
    yield static.set_memory_budget
    static.restore_memory_budget(previous)


def physical_memory():
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------- estimate


@pytest.mark.parametrize(
    "cell, layers, bidirectional, train, T",
    [
        ("lstm", 1, False, False, 1),
        ("lstm", 2, True, True, 40),
        ("gru", 4, True, False, 17),
        ("gru", 1, False, True, 100),
        ("rnn_tanh", 5, False, True, 33),
        ("rnn_relu", 2, True, False, 200),
    ],
)
def test_estimate_gives_the_exact_node_count_and_bytes_within_15_percent(
    cell, layers, bidirectional, train, T
):
    spec = StackSpec(cell, 5, 9, layers, bidirectional, True, "float32")
    dropout = train and layers > 1
    est = static.estimate_memory(spec, T, 3, train, dropout)
    g, phases = static.build(spec, T, 3, train, dropout)
    plan = gr.compile(g, *phases)
    assert est.nodes == plan.stats.nodes
    assert 0.85 <= est.buffer_bytes / plan.stats.planned_bytes <= 1.15, (est, plan.stats)
    assert est.graph_bytes == est.nodes * static.NODE_BYTES
    assert est.total_bytes == est.buffer_bytes + est.graph_bytes + est.output_bytes


def test_estimate_grows_linearly_with_T_and_B_and_training_costs_more():
    spec = StackSpec("lstm", 4, 16, 2, True, True, "float64")
    e = {
        (T, B, tr): static.estimate_memory(spec, T, B, tr)
        for T, B, tr in itertools.product((1000, 2000, 3000), (4, 8), (False, True))
    }
    for B, tr in itertools.product((4, 8), (False, True)):
        n = [e[T, B, tr].nodes for T in (1000, 2000, 3000)]
        assert n[2] - n[1] == n[1] - n[0] > 0
    assert e[1000, 8, False].buffer_bytes > 1.8 * e[1000, 4, False].buffer_bytes
    assert e[1000, 4, True].total_bytes > e[1000, 4, False].total_bytes


def test_estimating_a_huge_plan_allocates_nothing_and_takes_milliseconds():
    spec = StackSpec("lstm", 512, 4096, 8, True, True, "float64")
    static.estimate_memory(spec, 20, 1, True)  # warm the probe cache for another shape
    tracemalloc.start()
    start = time.perf_counter()
    est = static.estimate_memory(spec, 10**9, 10**4, True, True)
    spent = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert est.total_bytes > 10**18  # exabytes
    assert peak < 20 * 2**20, f"estimating allocated {peak} bytes"
    assert spent < 5.0


# ------------------------------------------------------------------------------------------------- guard


def test_a_plan_that_would_exhaust_memory_is_refused_before_anything_is_allocated():
    """T = 2e6 steps of a 2-layer bidirectional LSTM for training: ~40 million nodes, more than this
    machine's whole memory; the default budget (half of what is available) refuses it in milliseconds."""
    m = graphrnn.LSTM(1, 1, num_layers=2, bidirectional=True, seed=0)
    x = np.zeros((2_000_000, 1, 1), np.float32)
    static.clear_cache()
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(static.StaticGraphTooLarge) as e:
        m.forward(x, executor="static")
    spent = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert e.value.estimate.total_bytes > physical_memory(), "not a case that would exhaust memory"
    assert e.value.estimate.nodes >= 5 * 2 * 2 * 2_000_000  # 5 nodes per step, layer and direction
    assert peak < 4 * x.nbytes + 20 * 2**20, f"{peak} bytes allocated before the refusal"
    assert spent < 5.0
    assert static.cached_plans() == {} and static.last_plan() is None
    out, _ = m(x[:1000], executor="dynamic")  # the suggested way out works
    assert out.shape == (1000, 1, 2)


def test_the_error_is_a_memory_error_and_a_value_error_naming_the_estimate_and_the_way_out(budget):
    budget(10_000)
    m = graphrnn.GRU(3, 8, seed=0)
    x = np.ones((50, 4, 3), np.float32)
    with pytest.raises(MemoryError) as e:
        m(x, executor="static")
    assert isinstance(e.value, ValueError) and isinstance(e.value, static.StaticGraphTooLarge)
    msg = str(e.value)
    for part in (
        'executor="dynamic"',
        "T=50",
        "B=4",
        "nodes",
        "budget",
        "9.8 KiB",
        "set_memory_budget",
        static.BUDGET_ENV,
        "inference",
        static.format_bytes(e.value.estimate.total_bytes),
    ):
        assert part in msg, f"{part!r} not in {msg!r}"
    assert e.value.budget == 10_000
    np.testing.assert_array_equal(m(x)[0], m(x, executor="dynamic")[0])  # dynamic is unaffected


def test_static_len_is_checked_before_the_input_is_padded_to_it(budget):
    budget(2**20)
    m = graphrnn.LSTM(4, 4, seed=0)
    with pytest.raises(static.StaticGraphTooLarge) as e:
        m(np.ones((3, 2, 4), np.float32), executor="static", static_len=10**12)  # padding would be 32 TB
    assert "T=1000000000000" in str(e.value)


def test_a_plan_within_the_budget_runs_and_one_just_over_it_is_refused(budget):
    spec = StackSpec("gru", 3, 8, 1, False, True, "float32")
    est = static.estimate_memory(spec, 30, 2, True)
    static.clear_cache()
    budget(int(est.total_bytes * 1.2))
    m = graphrnn.GRU(3, 8, seed=0)
    out, _, tape = m.forward(np.ones((30, 2, 3), np.float32), executor="static")
    m.backward(tape, np.ones_like(out))
    budget(int(est.total_bytes * 0.8))
    static.clear_cache()
    with pytest.raises(static.StaticGraphTooLarge):
        m.forward(np.ones((30, 2, 3), np.float32), executor="static")


def test_a_cached_plan_is_not_checked_again(budget):
    m = graphrnn.RNN(2, 3, seed=0)
    x = np.ones((20, 2, 2), np.float32)
    static.clear_cache()
    first = m(x, executor="static")[0]
    budget(0)
    np.testing.assert_array_equal(m(x, executor="static")[0], first)  # cached: costs nothing more
    with pytest.raises(static.StaticGraphTooLarge):
        m(x[:10], executor="static")  # another T: a new plan


def test_the_exact_size_is_checked_after_compiling_before_any_buffer_exists(budget, monkeypatch):
    """Even when the estimate is wrong, the compiled plan's exact bytes are checked before allocating."""
    spec = StackSpec("lstm", 3, 6, 1, False, True, "float32")
    monkeypatch.setattr(static, "estimate_memory", lambda *a, **k: static.MemoryEstimate(1, 1, 1, 1))
    static.clear_cache()
    budget(1000)
    allocated = []
    monkeypatch.setattr(gr.Plan, "acquire", lambda self: allocated.append(self))
    with pytest.raises(static.StaticGraphTooLarge) as e:
        static.plan_for(spec, 40, 2)
    assert e.value.estimate.exact and "needs" in str(e.value)
    assert e.value.estimate.buffer_bytes > 1000
    assert allocated == [] and static.cached_plans() == {}


def test_budget_can_be_unlimited_or_a_fraction(budget):
    budget(float("inf"))
    assert static.memory_budget()[0] is None
    budget(fraction=0.25)
    limit, source = static.memory_budget()
    avail = static.available_memory()
    assert avail and abs(limit - avail / 4) < 0.05 * avail, (limit, avail)
    assert "25%" in source


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2G", 2 * 2**30),
        ("512M", 512 * 2**20),
        ("1.5GiB", 3 * 2**29),
        ("123456789", 123456789),
        ("10k", 10240),
    ],
)
def test_the_environment_variable_sets_the_budget_in_bytes(budget, monkeypatch, text, expected):
    monkeypatch.setenv(static.BUDGET_ENV, text)
    limit, source = static.memory_budget()
    assert limit == expected and static.BUDGET_ENV in source


def test_the_environment_variable_takes_a_percentage_or_unlimited(budget, monkeypatch):
    monkeypatch.setenv(static.BUDGET_ENV, "10%")
    assert static.memory_budget()[0] < 0.11 * static.available_memory()
    monkeypatch.setenv(static.BUDGET_ENV, "unlimited")
    assert static.memory_budget()[0] is None


@pytest.mark.parametrize("text", ["lots", "-5", "0%", "150%", "2X", "1e99G"])
def test_a_bad_environment_variable_is_a_value_error_naming_it(budget, monkeypatch, text):
    monkeypatch.setenv(static.BUDGET_ENV, text)
    with pytest.raises(ValueError) as e:
        static.memory_budget()
    assert static.BUDGET_ENV in str(e.value) and repr(text) in str(e.value)


@pytest.mark.parametrize(
    "args, kwargs, exc",
    [
        ((-1,), {}, ValueError),
        (("1G",), {}, TypeError),
        ((True,), {}, TypeError),
        ((float("nan"),), {}, ValueError),
        ((), {"fraction": 0}, ValueError),
        ((), {"fraction": 1.5}, ValueError),
        ((), {"fraction": "half"}, TypeError),
        ((100,), {"fraction": 0.5}, ValueError),
    ],
)
def test_bad_budgets_are_refused_naming_the_argument(budget, args, kwargs, exc):
    with pytest.raises(exc) as e:
        budget(*args, **kwargs)
    assert ("nbytes" in str(e.value)) or ("fraction" in str(e.value))


def test_available_memory_is_positive_and_at_most_the_physical_memory():
    avail = static.available_memory()
    assert 0 < avail <= physical_memory()
