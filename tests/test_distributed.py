"""Data-parallel training and batch inference over MPI give one process's numbers.

One subprocess runs ``mpiexec -n 2`` (the MPICH launcher installed beside ``sys.executable`` by the
``mpi`` extra, not a system MPI) on tests/mpi_cases.py; each rank runs every case and rank 0 writes
the distributed results beside its own single-process reference. The tests below only compare them:
float64, dropout 0, the same seed, to 1e-12. Sharding and the no-MPI paths are tested in this process.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from gradcheck import assert_close

from graphrnn import distributed as dist
from graphrnn.cli import main

HERE = pathlib.Path(__file__).resolve().parent
RANKS = 2
TOL = 1e-12
MPI_TIMEOUT_S = 300  # hard stop; the run takes a few seconds with a warm Numba cache


def mpiexec() -> str:
    """The launcher of the MPI the venv's mpi4py uses: beside the interpreter (not resolved through links)."""
    path = pathlib.Path(sys.executable).parent / "mpiexec"
    assert path.exists(), (
        f"mpiexec not found beside {sys.executable}: install the test extras (they pull in "
        f'graphrnn[mpi], i.e. mpi4py and the mpich wheel): pip install -e ".[test]"'
    )
    return str(path)


def mpi_env() -> dict:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    for var in dist._LAUNCHER_SIZE_VARS:  # in case pytest itself runs under a launcher
        env.pop(var, None)
    return env


@pytest.fixture(scope="module")
def mpi_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("mpi")
    cmd = [
        mpiexec(),
        "-n",
        str(RANKS),
        sys.executable,
        "-W",
        "error",
        "-m",
        "mpi4py",
        str(HERE / "mpi_cases.py"),
        str(work),
    ]
    proc = subprocess.run(
        cmd, check=False, env=mpi_env(), capture_output=True, text=True, timeout=MPI_TIMEOUT_S
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    meta = json.loads((work / "meta.json").read_text())
    with np.load(work / "results.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return meta, arrays


# ------------------------------------------------------------------------------------ the MPI run


def test_mpiexec_beside_the_interpreter_starts_a_world_of_two_ranks(mpi_run):
    meta, _ = mpi_run
    assert meta["sizes"] == [RANKS] * RANKS
    assert meta["ranks"] == list(range(RANKS))


def test_each_rank_takes_its_share_of_the_cores_for_blas_and_numba(mpi_run):
    meta, _ = mpi_run
    cores = os.cpu_count()
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    assert meta["threads"] == [max(1, min(allowed, cores // RANKS))] * RANKS


def test_rank_0_warms_the_numba_cache_before_any_other_rank_starts(mpi_run):
    meta, _ = mpi_run
    rank0_end = meta["warm"][0]["end"]
    for r in range(1, RANKS):
        assert meta["warm"][r]["start"] >= rank0_end, f"rank {r} started warming before rank 0 finished"


@pytest.mark.parametrize("case", ["lm", "cls", "lm_one"])
def test_training_steps_on_two_ranks_equal_steps_on_one_rank_over_the_union_batch(mpi_run, case):
    """lm: LSTM language model, Adam; cls: bidirectional GRU classifier, SGD with momentum; lm_one: a
    global batch of one sequence, so one rank has nothing to do. Every step is clipped."""
    meta, z = mpi_run
    info = meta[case]
    shards = info["shards"]  # per rank, per step: sequences in that rank's shard
    totals = [sum(step) for step in zip(*shards)]
    assert all(t >= 1 for t in totals)
    if case != "lm_one":
        assert all(n >= 1 for rank in shards for n in rank), f"some rank got an empty shard: {shards}"
    # per step: (loss averaged over the global count, global count, gradient norm before clipping)
    assert_close(
        z[f"{case}/dist/log"],
        z[f"{case}/ref/log"],
        f"{case} (loss, count, norm) per step",
        rtol=TOL,
        atol=TOL,
    )
    assert (z[f"{case}/ref/log"][:, 2] > 0.05).all(), "every step must be clipped for this test to bite"
    for name in info["params"]:
        assert_close(
            z[f"{case}/dist/{name}"], z[f"{case}/ref/{name}"], f"{case} parameter {name}", rtol=TOL, atol=TOL
        )


def test_the_step_check_would_catch_a_loss_averaged_per_rank_instead_of_over_the_global_count(mpi_run):
    meta, _ = mpi_run
    assert meta["lm"]["naive_difference"] > 1e-6


def test_parameters_and_optimizer_state_stay_identical_on_every_rank(mpi_run):
    meta, _ = mpi_run
    for case in ("lm", "cls", "lm_one"):
        assert len(set(meta[case]["digests"])) == 1, f"{case}: digests differ {meta[case]['digests']}"


def test_one_allreduce_message_holds_every_gradient_plus_loss_and_count(mpi_run):
    meta, z = mpi_run
    n = sum(z[f"lm/ref/{name}"].size for name in meta["lm"]["params"])
    assert meta["lm"]["message_bytes"] == (n + 2) * 8


def test_a_rank_whose_parameters_differ_is_reported_on_every_rank(mpi_run):
    meta, _ = mpi_run
    for r, msg in enumerate(meta["mismatch"]):
        assert msg is not None, f"rank {r} did not notice"
        assert "ranks [1] do not match rank 0" in msg


def test_distributed_inference_equals_single_process_inference_in_the_original_order(mpi_run):
    meta, z = mpi_run
    assert all(n >= 1 for n in meta["predict_shards"][0]), "both ranks must get part of the corpus"
    nats = z["predict/lm/dist"]
    assert_close(nats[:, 0], z["predict/lm/ref"], "summed nats per text", rtol=TOL, atol=TOL)
    assert np.array_equal(nats[:, 1], z["predict/lm/lengths"]), "lengths per text, in order"
    assert_close(
        z["predict/cls/dist"], z["predict/cls/ref"], "classifier logits per series", rtol=TOL, atol=TOL
    )


def test_inference_results_go_to_rank_0_only_or_to_every_rank_when_asked(mpi_run):
    meta, z = mpi_run
    assert meta["non_root_results"] == [{"lm_none": True, "cls_none": True}] * (RANKS - 1)
    assert len(set(meta["predict_all_digests"])) == 1
    assert np.array_equal(z["predict/lm/all"], z["predict/lm/dist"])


# ------------------------------------------------------------------------------------- the CLI


TOY = HERE / "data"
TRAIN_ARGS = [
    "--task",
    "classify",
    "--data",
    str(TOY),
    "--epochs",
    "2",
    "--hidden",
    "8",
    "--cell",
    "gru",
    "--batch-size",
    "8",
    "--json",
    "--no-progress",
]


def run_ranks(*args, ranks=RANKS):
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "graphrnn", *args]
    return subprocess.run(
        cmd, check=False, env=mpi_env(), capture_output=True, text=True, timeout=MPI_TIMEOUT_S
    )


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """graphrnn train --distributed and graphrnn predict on 2 ranks, each beside its one-process twin."""
    work = tmp_path_factory.mktemp("mpi_cli")
    out = {"train2": run_ranks("train", "--distributed", *TRAIN_ARGS, "--save", str(work / "two.npz"))}
    assert out["train2"].returncode == 0, out["train2"].stderr
    out["predict2"] = run_ranks(
        "predict", "--checkpoint", str(work / "two.npz"), "--data", str(TOY / "Toy_TEST.ts"), "--json"
    )
    out["plain_under_mpiexec"] = run_ranks("train", *TRAIN_ARGS)
    out["work"] = work
    return out


def test_distributed_train_prints_once_and_matches_one_process(cli_runs, capsys):
    proc = cli_runs["train2"]
    lines = proc.stdout.strip().splitlines()  # --json: stdout holds the JSON summary, people's lines go to stderr
    assert sum(line.startswith("test accuracy:") for line in proc.stderr.splitlines()) == 1, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("{"), "rank 0 alone prints the JSON summary"
    two = json.loads(lines[-1])
    assert (two["ranks"], two["task"], two["epochs"]) == (RANKS, "classify", 2)
    assert main(["train", *TRAIN_ARGS, "--save", str(cli_runs["work"] / "one.npz")]) == 0
    one = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert one["ranks"] == 1
    # float32 model: the ranks sum their shards' gradients in another order than one process does
    assert_close(two["train_loss"], one["train_loss"], "train loss per epoch", dtype=np.float32)
    assert two["metric"] == one["metric"]


def test_rank_0_alone_writes_the_checkpoint_and_it_loads(cli_runs):
    from graphrnn import io

    files = sorted(p.name for p in cli_runs["work"].iterdir())
    assert "two.npz" in files and not [f for f in files if f.endswith(".tmp")]
    ckpt = io.load_checkpoint(cli_runs["work"] / "two.npz")
    assert ckpt.meta["task"] == "classify" and ckpt.optimizer.steps > 0


def test_predict_under_mpiexec_prints_what_one_process_prints(cli_runs, capsys):
    proc = cli_runs["predict2"]
    assert proc.returncode == 0, proc.stderr
    two = json.loads(proc.stdout.strip().splitlines()[-1])
    args = [
        "predict",
        "--checkpoint",
        str(cli_runs["work"] / "two.npz"),
        "--data",
        str(TOY / "Toy_TEST.ts"),
        "--json",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    one = json.loads(out.strip().splitlines()[-1])
    assert two["ranks"] == RANKS and one["ranks"] == 1
    assert two["predictions"] == one["predictions"] and two["metric"] == one["metric"]
    assert proc.stdout.strip().splitlines()[:-1] == out.strip().splitlines()[:-1]  # label lines, in order


def test_train_under_mpiexec_without_distributed_is_refused(cli_runs):
    proc = cli_runs["plain_under_mpiexec"]
    assert proc.returncode == 2
    assert "add --distributed" in proc.stderr


ONE_RANK_FAILS = """
from graphrnn import distributed as dist
comm = dist.world()
with dist.abort_on_error(comm, (ValueError,), "graphrnn test"):
    if comm.Get_rank() == 1:
        raise ValueError("bad input seen by rank 1 only")
    comm.Barrier()  # rank 0 would wait here forever
"""


def test_an_error_on_one_rank_aborts_every_rank_instead_of_hanging():
    cmd = [mpiexec(), "-n", str(RANKS), sys.executable, "-c", ONE_RANK_FAILS]
    proc = subprocess.run(cmd, check=False, env=mpi_env(), capture_output=True, text=True, timeout=60)
    # rank 1 asks for status 2; mpiexec usually passes it on, but when it reaps rank 0 (killed by the
    # abort) first it may report that instead: what is certain is a failure, and rank 1's one-line message
    assert proc.returncode != 0, proc.stderr
    assert "graphrnn test: error: bad input seen by rank 1 only (rank 1)" in proc.stderr


# ------------------------------------------------------------------------------- in this process


@pytest.mark.parametrize("size", [1, 2, 3, 8])
def test_length_aware_sharding_covers_every_item_once_with_similar_work(size):
    rng = np.random.default_rng(size)
    work = rng.integers(0, 500, size=101)
    shards = dist.shard_by_work(work, size)
    assert len(shards) == size
    joined = np.sort(np.concatenate(shards))
    assert np.array_equal(joined, np.arange(len(work)))
    cost = np.maximum(work, 1)
    loads = [cost[s].sum() for s in shards]
    assert max(loads) <= cost.sum() / size + cost.max()
    assert all(np.array_equal(s, np.sort(s)) for s in shards)
    again = dist.shard_by_work(work, size)
    assert all(np.array_equal(a, b) for a, b in zip(shards, again)), "every rank must compute the same split"


def test_sharding_balances_time_steps_not_sequence_counts():
    shards = dist.shard_by_work([100, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10], 2)
    assert [len(s) for s in shards] == [1, 10]


def test_sharding_fewer_items_than_ranks_leaves_some_ranks_empty():
    shards = dist.shard_by_work([3], 2)
    assert [len(s) for s in shards] == [1, 0]


@pytest.mark.parametrize(
    "bad, exc",
    [
        ((np.ones(3), 0), ValueError),
        ((np.ones((2, 2)), 2), ValueError),
        (([1, -1], 2), ValueError),
        ((np.ones(3), 1.5), ValueError),
    ],
)
def test_sharding_rejects_bad_arguments(bad, exc):
    with pytest.raises(exc, match="size|work"):
        dist.shard_by_work(*bad)


def test_without_mpi4py_the_error_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r'pip install "graphrnn\[mpi\]"'):
        dist.mpi()


@pytest.mark.parametrize("var", ["PMI_SIZE", "OMPI_COMM_WORLD_SIZE"])
def test_the_launchers_world_size_is_read_from_its_environment(monkeypatch, var):
    for v in dist._LAUNCHER_SIZE_VARS:
        monkeypatch.delenv(v, raising=False)
    assert dist.launched_world_size() == 1
    monkeypatch.setenv(var, "4")
    assert dist.launched_world_size() == 4


def test_predict_in_one_process_returns_results_in_the_items_order():
    items = [np.arange(n) for n in [5, 1, 3, 0, 4, 2]]
    res = dist.predict(lambda batch: np.array([[len(b), b.sum()] for b in batch]), items, batch_size=2)
    assert res.tolist() == [[len(i), i.sum()] for i in items]
