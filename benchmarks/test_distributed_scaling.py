"""Data-parallel scaling (issue 6): the same global batches on 1 rank and on 2 ranks under mpiexec."""

import bench_distributed


def test_two_ranks_split_the_global_batch_and_agree(measure, scale):
    kw = {} if scale.full else {"steps": 3, "batch": 8, "hidden": 32, "predict": 32}
    sec = measure(bench_distributed.scaling_section, key="distributed", **kw)
    assert [(r["ranks"], r["threads"]) for r in sec["rows"]] == [(1, 1), (1, 2), (2, 1)]
    assert all(r["chars/s"] > 0 for r in sec["rows"])
