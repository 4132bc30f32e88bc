"""Claim 3: the static graph, vectorised over a padded batch, is faster than the dynamic loop at batch
size 1. Sequences per second over T, B and H."""

import pytest

from graphrnn import bench

FULL_SWEEPS = {"T": [10, 30, 100, 300, 1000], "B": [1, 4, 16, 64, 256], "H": [32, 64, 128, 256, 512]}
TINY_SWEEPS = {"T": [5, 20], "B": [1, 4, 16], "H": [8, 16]}


@pytest.mark.parametrize("train", [False, True], ids=["inference", "training"])
def test_sequences_per_second_static_batched_vs_dynamic(measure, scale, train):
    if scale.full:
        sweeps = FULL_SWEEPS if not train else {"B": [1, 4, 16, 64, 256]}
        kw = dict(base=(100, 32, 64, 128), sweeps=sweeps, rounds=3, budget_s=10.0, b1_max=16)
    else:
        kw = dict(base=(20, 8, 8, 16), sweeps=TINY_SWEEPS, rounds=2, budget_s=1.0, b1_max=4)
    sec = measure(
        bench.speed_sweep,
        cell="lstm",
        threads_list=scale.threads,
        train=train,
        key="speed-" + ("training" if train else "inference"),
        **kw,
    )
    assert len(sec["rows"]) == len(scale.threads) * sum(map(len, kw["sweeps"].values()))
    assert all(r["static_batched"] > 0 and r["dynamic_b1"] > 0 for r in sec["rows"])
