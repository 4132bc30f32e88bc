"""Start-up: a second process with a warm Numba cache, and a cold compile of the default model's kernels."""

from graphrnn import bench


def test_cold_compile_and_warm_start(measure, scale):
    sec = measure(bench.startup_times, cold=scale.full)
    assert {r["cache"] for r in sec["rows"]} == ({"cold", "warm"} if scale.full else {"warm"})
