"""graphrnn beside PyTorch CPU at issue 3's shapes, and where the dynamic forward spends its time."""

import pytest

from graphrnn import bench

TINY_SHAPES = ((10, 1, 8, 16), (10, 16, 8, 16))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_forward_and_backward_against_pytorch(measure, scale, gemm, cell):
    if scale.full:
        kw = dict(shapes=bench.TORCH_SHAPES, rounds=3, budget_s=25.0)
    else:
        kw = dict(shapes=TINY_SHAPES, rounds=2, budget_s=1.0)
    sec = measure(
        bench.torch_compare, cells=(cell,), threads_list=scale.threads, peaks=gemm, key=f"torch-{cell}", **kw
    )
    if bench.try_torch() is not None:
        assert len(sec["rows"]) == len(scale.threads) * len(kw["shapes"]) * 2
        failed = [r["check"] for r in sec["rows"] if r["check"] != "ok"]
        assert not failed, failed


def test_where_the_dynamic_forward_spends_its_time(measure, scale, gemm):
    shapes = ((200, 64, 256, 512), (50, 256, 512, 1024)) if scale.full else ((10, 16, 8, 32),)
    sec = measure(
        bench.recurrent_breakdown, cell="lstm", shapes=shapes, threads_list=scale.threads, peaks=gemm
    )
    assert all(r["recurrent_gflops"] > 0 for r in sec["rows"])
