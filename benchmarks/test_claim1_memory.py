"""Claim 1: a static graph costs memory that grows with T; a dynamic loop needs one cell."""

import numpy as np

from graphrnn import bench


def test_memory_against_T_static_and_dynamic_inference_and_training(measure, scale):
    kw = (
        dict(Ts=(10, 100, 1000, 10000), B=16, I=64, H=128)
        if scale.full
        else dict(Ts=(10, 100), B=4, I=8, H=16)
    )
    sec = measure(bench.memory_vs_T, cell="lstm", **kw)
    rows = {(r["executor"], r["mode"], r["T"]): r for r in sec["rows"]}
    Ts = kw["Ts"]
    for mode in ("infer", "train"):
        nodes = [rows["static", mode, T]["nodes"] for T in Ts]
        # the static graph has explicit nodes per step: node count grows linearly with T
        assert all(b > a for a, b in zip(nodes, nodes[1:]))
        per_step = np.diff(nodes) / np.diff(Ts)
        assert np.allclose(per_step, per_step[0])


def test_static_build_and_compile_time_against_T(measure, scale):
    kw = dict(Ts=(100, 1000, 3000), B=16, I=64, H=128) if scale.full else dict(Ts=(10, 100), B=4, I=8, H=16)
    sec = measure(bench.static_build_times, cell="lstm", **kw)
    assert [r["T"] for r in sec["rows"]] == [T for T in kw["Ts"] for _ in range(2)]
