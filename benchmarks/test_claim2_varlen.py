"""Claim 2: a static graph pads every sequence to its fixed T; the dynamic loop runs each batch to its own
length, and batch size 1 needs no padding at all. Real (stdlib docstrings) and uniform length
distributions."""

import pytest

from graphrnn import bench


@pytest.mark.parametrize("dist", ["stdlib", "uniform"])
def test_useful_and_padded_work_static_vs_dynamic(measure, scale, dist):
    kw = (
        dict(n_seqs=128, batch=16, I=64, H=128, rounds=3, budget_s=90.0)
        if scale.full
        else dict(n_seqs=12, batch=4, I=8, H=16, rounds=2, budget_s=2.0)
    )
    sec = measure(bench.variable_length, dist=dist, cell="lstm", train=True, threads_list=scale.threads, **kw)
    rows = {(r["threads"], r["contender"]): r for r in sec["rows"]}
    for nt in scale.threads:
        # per-sequence lengths and batch size 1 compute only the useful steps; padding computes more
        assert rows[nt, "dynamic_lengths"]["useful/computed"] == 1.0
        assert rows[nt, "dynamic_b1"]["useful/computed"] == 1.0
        assert (
            rows[nt, "static_fixed_T"]["useful/computed"]
            <= rows[nt, "static_batch_max"]["useful/computed"]
            < 1.0
        )


def test_variable_length_case_against_pytorch_padded_and_packed(measure, scale):
    kw = (
        dict(n=64, lo=10, hi=500, I=128, H=256, rounds=3, budget_s=120.0)
        if scale.full
        else dict(n=6, lo=3, hi=20, I=8, H=16, rounds=2, budget_s=1.0)
    )
    sec = measure(bench.torch_varlen, threads_list=scale.threads, **kw)
    if bench.try_torch() is not None:
        assert {r["contender"] for r in sec["rows"]} >= {
            "graphrnn_dynamic_lengths",
            "torch_padded",
            "torch_packed",
        }
