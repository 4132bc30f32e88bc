"""Data-parallel scaling: the same training steps on 1 rank and on N ranks (``mpiexec``), and inference.

    python benchmarks/bench_distributed.py                  # 1 rank x 1 thread, 1 x 2 threads, 2 x 1
    python benchmarks/bench_distributed.py --configs 1x1,2x1,4x1 --steps 30 --batch 64
    pytest benchmarks/test_distributed_scaling.py --benchmark-only --bench-scale tiny

Each configuration is a fresh ``mpiexec -n N python -m mpi4py benchmarks/bench_distributed.py --worker``
(the launcher beside this interpreter). The worker trains the default language model's shape
(LSTM, H = 128, E = 32, float32, Adam, clip 1) on synthetic character sequences of lengths uniform in
[chunk/8, chunk], in length-bucketed global batches of ``--batch`` sequences, which
``graphrnn.distributed.DataParallel`` splits across the ranks. It warms the Numba cache (rank 0 first),
checks that the parameters are identical on every rank after the timed steps, and reports per step: wall
time, this rank's compute (forward + backward of its shard), time in the Allreduce (including waiting for
the slowest rank), and a bare Allreduce of the same message (no waiting: barrier first). Then it scores
a corpus with ``predict_model`` split across the ranks.

On a shared machine other processes distort every figure: the load average before each configuration
is printed beside it; compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
COLUMNS = [
    "ranks",
    "threads",
    "batch",
    "ms/step",
    "compute ms",
    "allreduce ms",
    "bare allreduce ms",
    "chars/s",
    "speed-up",
    "efficiency",
    "predict chars/s",
    "load avg",
]


# ----------------------------------------------------------------------------------------------- worker


def _synthetic(n: int, chunk: int, vocab_size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(max(1, chunk // 8), chunk + 1, size=n)
    return [rng.integers(2, vocab_size, size=k).astype(np.int32) for k in lengths]


def worker(args) -> None:
    from graphrnn import data as gdata
    from graphrnn import distributed as dist
    from graphrnn.optim import Adam, clip_grad_norm
    from graphrnn.train import CharLM

    comm = dist.world()
    rank, size = comm.Get_rank(), comm.Get_size()
    threads = dist.configure_threads(comm, args.threads)
    vocab = [gdata.BOS, gdata.UNK] + [chr(c) for c in range(32, 127)]
    model = CharLM(vocab, cell="lstm", hidden_size=args.hidden, embedding_dim=32, seed=0)
    opt = Adam(model.params, lr=2e-3)
    t0 = time.perf_counter()
    dp = dist.DataParallel(model, opt, comm, warm_executor="dynamic")
    warm_s = time.perf_counter() - t0
    n_steps = args.steps + args.warmup
    seqs = _synthetic(args.batch * n_steps, args.chunk, len(vocab), seed=1)
    sizes = np.array([len(s) for s in seqs])
    batches = gdata.bucket_batches(sizes, args.batch, np.random.default_rng(2))[:n_steps]

    def compute(idx):
        inputs, targets, lengths = gdata.lm_batch([seqs[i] for i in idx])
        return model.loss_and_grads(inputs, targets, lengths)

    chars = 0
    for step, b in enumerate(batches):
        if step == args.warmup:
            comm.Barrier()
            dp.seconds = {"compute": 0.0, "reduce": 0.0}
            t_start = time.perf_counter()
        _, n, grads = dp.loss_and_grads(compute, b, sizes[b])
        clip_grad_norm(grads, 1.0)
        opt.step(grads)
        if step >= args.warmup:
            chars += n
    comm.Barrier()
    train_s = time.perf_counter() - t_start
    dp.check()
    # a bare Allreduce of the same message, every rank ready (no load imbalance in it)
    buf = np.zeros(dp.message_bytes // 4, dtype=np.float32)
    reps = 50
    comm.Barrier()
    t0 = time.perf_counter()
    for _ in range(reps):
        if size > 1:
            comm.Allreduce(dist.mpi().IN_PLACE, buf, op=dist.mpi().SUM)
    bare_s = (time.perf_counter() - t0) / reps
    # inference: a corpus split across the ranks
    corpus = _synthetic(args.predict, args.chunk, len(vocab), seed=3)
    texts = ["".join(vocab[i] for i in s) for s in corpus]
    comm.Barrier()
    t0 = time.perf_counter()
    dist.predict_model(model, texts, comm=comm, batch_size=64)
    comm.Barrier()
    predict_s = time.perf_counter() - t0
    worst = comm.reduce(dp.seconds["compute"], op=dist.mpi().MAX, root=0)
    reduce_s = comm.reduce(dp.seconds["reduce"], op=dist.mpi().MIN, root=0)
    if rank == 0:
        steps = len(batches) - args.warmup
        row = {
            "ranks": size,
            "threads": threads,
            "batch": args.batch,
            "ms/step": 1e3 * train_s / steps,
            "compute ms": 1e3 * worst / steps,  # the slowest rank's shard
            "allreduce ms": 1e3 * reduce_s / steps,  # the fastest rank's wait + reduce
            "bare allreduce ms": 1e3 * bare_s if size > 1 else 0.0,
            "chars/s": chars / train_s,
            "predict chars/s": sum(map(len, texts)) / predict_s,
            "message bytes": dp.message_bytes,
            "warm s": warm_s,
        }
        pathlib.Path(args.out).write_text(json.dumps(row))


# ----------------------------------------------------------------------------------------------- driver


def mpiexec() -> str:
    path = pathlib.Path(sys.executable).parent / "mpiexec"
    if not path.exists():
        raise FileNotFoundError(f'mpiexec not found beside {sys.executable}: pip install "graphrnn[mpi]"')
    return str(path)


def run_config(
    ranks: int,
    threads: int,
    *,
    steps: int,
    batch: int,
    hidden: int,
    chunk: int,
    warmup: int = 2,
    predict: int = 256,
    timeout: float = 600,
) -> dict:
    """One fresh ``mpiexec -n ranks`` worker; returns its row (plus the load average before it)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "row.json")
        cmd = [
            mpiexec(),
            "-n",
            str(ranks),
            sys.executable,
            "-m",
            "mpi4py",
            str(HERE / "bench_distributed.py"),
            "--worker",
            "--out",
            out,
            "--threads",
            str(threads),
            "--steps",
            str(steps),
            "--warmup",
            str(warmup),
            "--batch",
            str(batch),
            "--hidden",
            str(hidden),
            "--chunk",
            str(chunk),
            "--predict",
            str(predict),
        ]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
        load = os.getloadavg()[0]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        row = json.loads(pathlib.Path(out).read_text())
    row["load avg"] = load
    return row


def scaling_section(
    configs=((1, 1), (1, 2), (2, 1)), *, steps=20, batch=32, hidden=128, chunk=128, predict=256
) -> dict:
    """Rows for each (ranks, threads), speed-up and efficiency against the first (1 rank) row."""
    from graphrnn import bench

    rows = [
        run_config(r, t, steps=steps, batch=batch, hidden=hidden, chunk=chunk, predict=predict)
        for r, t in configs
    ]
    base = rows[0]
    for row in rows:
        row["speed-up"] = row["chars/s"] / base["chars/s"]
        row["efficiency"] = row["speed-up"] / (
            row["ranks"] * row["threads"] / (base["ranks"] * base["threads"])
        )
    info = bench.machine_info()
    notes = [
        (
            f"{info['cpu']}, {info['cores']} cores; Python {info['python']}, numpy {info['numpy']}, "
            f"numba {info['numba']}; MPICH from the mpich wheel"
        ),
        (
            f"LSTM H={hidden}, E=32, float32, global batch {batch} sequences of 16..{chunk} chars "
            f"(same global batch on every row: N ranks split it); {steps} timed steps after 2 untimed"
        ),
        f"one Allreduce per step of {rows[0]['message bytes']:,} bytes (all gradients + loss + count)",
        (
            "compute = slowest rank's shard; allreduce = fastest rank's time in the Allreduce (reduce + waiting "
            "for the slowest); bare = the same Allreduce with every rank ready"
        ),
        "efficiency = speed-up / (cores used relative to the first row)",
    ]
    return bench.section(
        "distributed", "Data-parallel training: 1 vs N ranks (same global batch)", COLUMNS, rows, notes
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--configs", default="1x1,1x2,2x1", help="RANKSxTHREADS,... (default 1x1,1x2,2x1)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--chunk", type=int, default=128)
    p.add_argument("--predict", type=int, default=256, help="sequences scored by predict_model")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    from graphrnn import bench

    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    sec = scaling_section(
        configs,
        steps=args.steps,
        batch=args.batch,
        hidden=args.hidden,
        chunk=args.chunk,
        predict=args.predict,
    )
    print(bench.format_table(sec))
    if args.json:
        print(json.dumps(bench.to_jsonable(sec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
