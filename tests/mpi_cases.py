"""The distributed checks that must run on several MPI ranks at once.

tests/test_distributed.py starts this file under the venv's own MPICH launcher::

    mpiexec -n 2 python -m mpi4py tests/mpi_cases.py WORKDIR

(``-m mpi4py`` turns an uncaught exception on one rank into MPI_Abort for all, so nothing hangs.)
Every rank runs each case; rank 0 also computes the single-process reference of the same case (one
process over the union batch, or the whole corpus in one call) and writes ``results.npz`` and
``meta.json`` into WORKDIR. Every assertion happens in the parent, which only reads those files.

Models are tiny and float64, dropout 0, seeded identically on every rank.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

import numpy as np

from graphrnn import data as gdata
from graphrnn import distributed as dist
from graphrnn.optim import SGD, Adam, clip_grad_norm
from graphrnn.train import CharLM, SequenceClassifier

TEXTS = [
    "the cat sat",
    "on a mat",
    "x",
    "dogs bark at night",
    "hello",
    "graph rnn",
    "",
    "mpi ranks share the work",
    "ab",
]
# two global batches of the text list (lengths 11, 8, 1, 18, 5 and 9, 24, 2)
LM_BATCHES = [[0, 1, 2, 3, 4], [5, 7, 8]]
CLS_LENGTHS = [9, 4, 6, 2, 7, 1, 5, 8, 3, 6, 4]
CLS_BATCHES = [[0, 1, 2, 3, 4], [5, 6, 7]]
LABELS = ["a", "b", "c"]
CLIP = 0.05  # small enough that every step here is clipped: clipping must follow the allreduce


def lm_model():
    vocab = gdata.build_vocab(TEXTS)
    return CharLM(vocab, cell="lstm", hidden_size=5, num_layers=2, embedding_dim=3, dtype=np.float64, seed=0)


def cls_model():
    return SequenceClassifier(
        3, LABELS, cell="gru", hidden_size=4, bidirectional=True, dtype=np.float64, seed=1
    )


def cls_data():
    rng = np.random.default_rng(7)
    series = [rng.standard_normal((n, 3)) for n in CLS_LENGTHS]
    y = rng.integers(0, len(LABELS), size=len(series))
    return series, y


def lm_compute(model, seqs):
    def compute(idx):
        inputs, targets, lengths = gdata.lm_batch([seqs[i] for i in idx])
        return model.loss_and_grads(inputs, targets, lengths)

    return compute


def cls_compute(model, series, y):
    def compute(idx):
        x, lengths = model.batch([series[i] for i in idx])
        return model.loss_and_grads(x, lengths, y[idx])

    return compute


def run_steps(model, optimizer, compute, batches, work, dp=None):
    """Train on ``batches`` (lists of indices); per step (loss, count, norm before clipping)."""
    log = []
    for b in batches:
        b = np.asarray(b)
        if dp is None:
            loss, n, grads = compute(b)
            grads = {k: grads[k] for k in model.params}
        else:
            loss, n, grads = dp.loss_and_grads(compute, b, work[b])
        norm = clip_grad_norm(grads, CLIP)
        optimizer.step(grads)
        log.append((loss, n, norm))
    return log


def train_case(comm, out, meta, name, make, make_opt, compute_of, batches, work):
    """The same steps distributed over ``comm`` and, on rank 0, in one process over the union batches."""
    model = make()
    opt = make_opt(model)
    dp = dist.DataParallel(model, opt, comm, check_every=1, warm_executor="dynamic")
    shards = [len(dp.shard(np.asarray(b), work[np.asarray(b)])) for b in batches]
    log = run_steps(model, opt, compute_of(model), batches, work, dp)
    dp.check()  # still identical after the steps
    all_shards = comm.gather(shards)
    digests = comm.gather(dist.state_digest(model.params, opt).hex())
    if comm.Get_rank() == 0:
        ref = make()
        ref_opt = make_opt(ref)
        ref_log = run_steps(ref, ref_opt, compute_of(ref), batches, work)
        for k in model.params:
            out[f"{name}/dist/{k}"] = model.params[k]
            out[f"{name}/ref/{k}"] = ref.params[k]
        out[f"{name}/dist/log"] = np.array(log, dtype=np.float64)
        out[f"{name}/ref/log"] = np.array(ref_log, dtype=np.float64)
        meta[name] = {
            "params": list(model.params),
            "shards": all_shards,
            "digests": digests,
            "message_bytes": dp.message_bytes,
            "naive_difference": naive_difference(make, compute_of, batches[0], work, comm.Get_size()),
        }


def naive_difference(make, compute_of, batch, work, size):
    """Largest gap between the union batch's gradient and the plain mean of the shards' mean gradients:
    proves the check above would catch a loss divided by each rank's own count."""
    model = make()
    compute = compute_of(model)
    b = np.asarray(batch)
    _, _, union = compute(b)
    shards = [b[s] for s in dist.shard_by_work(work[b], size) if len(s)]
    parts = [compute(s)[2] for s in shards]
    return max(float(np.abs(sum(p[k] for p in parts) / len(parts) - union[k]).max()) for k in model.params)


def main(workdir: str) -> None:
    comm = dist.world()
    rank = comm.Get_rank()
    t0 = time.perf_counter()
    out: dict = {}
    meta: dict = {"sizes": comm.allgather(comm.Get_size()), "ranks": comm.allgather(rank)}
    meta["threads"] = comm.allgather(dist.configure_threads(comm))

    # rank 0 warms first: every other rank starts its warm-up after rank 0's has finished
    stamps = {}

    def warm():
        stamps["start"] = time.monotonic()
        if rank == 0:
            time.sleep(0.2)
        stamps["end"] = time.monotonic()

    dist.warm_cache(comm, warm)
    meta["warm"] = comm.gather(stamps)

    # training: language model (Adam) and bidirectional GRU classifier (SGD with momentum)
    seqs = [gdata.encode(t, lm_model().vocab) for t in TEXTS]
    lm_work = np.array([len(s) for s in seqs])
    train_case(
        comm,
        out,
        meta,
        "lm",
        lm_model,
        lambda m: Adam(m.params, lr=0.05),
        lambda m: lm_compute(m, seqs),
        LM_BATCHES,
        lm_work,
    )
    series, y = cls_data()
    cls_work = np.array([len(s) for s in series])
    train_case(
        comm,
        out,
        meta,
        "cls",
        cls_model,
        lambda m: SGD(m.params, lr=0.1, momentum=0.9),
        lambda m: cls_compute(m, series, y),
        CLS_BATCHES,
        cls_work,
    )
    # a global batch of one sequence: rank 1's shard is empty and contributes zeros
    train_case(
        comm,
        out,
        meta,
        "lm_one",
        lm_model,
        lambda m: Adam(m.params, lr=0.05),
        lambda m: lm_compute(m, seqs),
        [[3]],
        lm_work,
    )

    # inference: corpus split across ranks, gathered back in order (on rank 0, and on every rank)
    lm = lm_model()
    nats = dist.predict_model(lm, TEXTS, comm=comm, batch_size=3)
    nats_all = dist.predict_model(lm, TEXTS, comm=comm, batch_size=3, root=None)
    clf = cls_model()
    logits = dist.predict_model(clf, series, comm=comm, batch_size=4)
    meta["predict_all_digests"] = comm.gather(hashlib_hex(nats_all))
    meta["predict_shards"] = comm.gather([len(s) for s in dist.shard_by_work(cls_work, comm.Get_size())])
    if rank == 0:
        out["predict/lm/dist"] = nats
        out["predict/lm/all"] = nats_all
        out["predict/lm/ref"] = np.array(
            [lm.nll(*gdata.lm_batch([s]))[0] if len(s) else 0.0 for s in seqs], dtype=np.float64
        )
        out["predict/lm/lengths"] = lm_work.astype(np.float64)
        out["predict/cls/dist"] = logits
        x, lengths = clf.batch(series)
        out["predict/cls/ref"] = clf.logits(x, lengths)  # the whole corpus as one batch in one process
    else:
        meta_other = {"lm_none": nats is None, "cls_none": logits is None}
        comm.send(meta_other, dest=0)
    if rank == 0:
        meta["non_root_results"] = [comm.recv(source=r) for r in range(1, comm.Get_size())]

    # a rank whose parameters differ is caught, on every rank
    m = lm_model()
    if rank == 1:
        m.params["head.bias"][0] += 1e-9
    try:
        dist.check_identical(comm, m.params)
        caught = None
    except RuntimeError as exc:
        caught = str(exc)
    meta["mismatch"] = comm.gather(caught)

    if rank == 0:
        meta["seconds"] = time.perf_counter() - t0
        path = pathlib.Path(workdir)
        np.savez(path / "results.npz", **out)
        (path / "meta.json").write_text(json.dumps(meta))


def hashlib_hex(a) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


if __name__ == "__main__":
    main(sys.argv[1])
