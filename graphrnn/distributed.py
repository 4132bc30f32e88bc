"""Data-parallel training and batch inference over MPI (mpi4py); the only module that imports mpi4py.

Run a script or the CLI under an MPI launcher, one process ("rank") per core or node::

    mpiexec -n 4 graphrnn train --distributed ...
    mpiexec -n 4 graphrnn predict --checkpoint model.npz --data series_TEST.ts

Training (``DataParallel``): every rank holds the whole model and draws the same global batches (the
batching is seeded, so no indices travel). Each global batch is split across the ranks by
``shard_by_work`` (longest-processing-time first on the sequence lengths, so every rank gets a similar
number of time steps to run). Each rank computes the mean loss and gradients of its shard; one
``Allreduce`` (MPI_SUM) on one contiguous flat buffer ``[n_r * grads_r..., n_r * loss_r, n_r]`` then
gives every rank ``sum_r n_r * grads_r`` and the global count ``N = sum_r n_r`` of valid positions
(characters for a language model, sequences for a classifier), so the gradient is the one of the loss
averaged over the global count: exactly (to rounding) what one process computes on the union batch.
Gradient clipping and the optimizer step then run on every rank on identical numbers, so the
parameters stay identical; a SHA-256 digest of parameters and optimizer state is compared at start
and, with ``check_every=k``, every k steps.

Inference (``predict``): a corpus is split across ranks by the same length-aware rule; each rank runs
its share in length-bucketed batches and the per-item results come back (``Gatherv``/``Allgatherv`` on
contiguous arrays) in the corpus's original order.

Threads (``configure_threads``): ranks on one node share its cores, so each rank uses
(cores it may run on) // (ranks on its node) BLAS and Numba threads, at least 1.
Numba cache (``warm_cache``): rank 0 compiles the kernels a model needs (and Numba writes them to its
cache) before the other ranks make their first call, so they load them instead of compiling N times at
once.

Without mpi4py everything here that needs MPI raises ImportError naming ``pip install "graphrnn[mpi]"``;
``shard_by_work``, ``launched_world_size`` and ``predict`` with ``comm=None`` work without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
import traceback

import numpy as np

__all__ = [
    "MPI_INSTALL_HINT",
    "DataParallel",
    "abort_on_error",
    "broadcast_parameters",
    "check_identical",
    "configure_threads",
    "launched_world_size",
    "mpi",
    "predict",
    "predict_model",
    "shard_by_work",
    "state_digest",
    "warm_cache",
    "warm_model",
    "world",
]

MPI_INSTALL_HINT = (
    'graphrnn.distributed needs mpi4py and an MPI library: pip install "graphrnn[mpi]" '
    "(mpi4py plus the MPICH wheel), or mpi4py built against your site's MPI"
)

# Environment variables MPI launchers set in each process they start (MPICH/Hydra, Intel MPI and Slurm's
# PMI set PMI_SIZE; Open MPI sets OMPI_COMM_WORLD_SIZE; MVAPICH MV2_COMM_WORLD_SIZE; PMIx PMIX_SIZE).
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")


def mpi():
    """The ``mpi4py.MPI`` module (importing it initialises MPI); ImportError with the install hint."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(MPI_INSTALL_HINT + f" ({exc})") from exc
    return MPI


def world():
    """``MPI.COMM_WORLD``: all ranks the launcher started (1 when run without a launcher)."""
    return mpi().COMM_WORLD


def launched_world_size() -> int:
    """Number of ranks an MPI launcher says it started, read from its environment (1 when none).

    Needs no mpi4py, so a command can tell whether it runs under ``mpiexec`` before importing it.
    """
    for var in _LAUNCHER_SIZE_VARS:
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) >= 1:
            return int(v)
    return 1


def _rank_size(comm) -> tuple[int, int]:
    return (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())


# ------------------------------------------------------------------------------------------- sharding


def shard_by_work(work, size: int) -> list[np.ndarray]:
    """Split item indices 0..n-1 into ``size`` shards of similar total ``work`` (n,) (e.g. lengths).

    Longest-processing-time first: items in decreasing work (ties: lower index first) each go to the
    shard with the least work so far (ties: lower rank). Deterministic, so every rank computes the same
    split with no communication. The largest shard's work is at most the mean plus the largest item.
    Each shard lists its indices in increasing order. Items of work 0 still count one unit, so they are
    spread too.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")
    w = np.asarray(work)
    if w.ndim != 1 or (w.size and w.dtype.kind not in "iuf"):
        raise ValueError(f"work must be a 1-D array of numbers (one per item), got shape {w.shape}")
    if w.size and (not np.all(np.isfinite(w)) or w.min() < 0):
        raise ValueError("work must hold finite numbers >= 0")
    size = int(size)
    if size == 1:
        return [np.arange(len(w))]
    cost = np.maximum(w.astype(np.float64), 1.0)
    order = np.argsort(-cost, kind="stable")
    loads = np.zeros(size)
    owner = np.empty(len(w), dtype=np.int64)
    for i in order:  # n log n would need a heap; argmin over `size` ranks is cheap for realistic sizes
        r = int(np.argmin(loads))
        owner[i] = r
        loads[r] += cost[i]
    return [np.flatnonzero(owner == r) for r in range(size)]


# -------------------------------------------------------------------------------------------- threads


def configure_threads(comm=None, threads: int | None = None) -> int:
    """Set this rank's BLAS and Numba threads (``graphrnn.set_num_threads``); returns the count.

    ``threads=None``: (CPUs this process may run on) // (ranks of ``comm`` on this node), at least 1,
    so the ranks of one node never run more threads than it has cores.
    """
    from graphrnn.threads import set_num_threads

    if threads is None:
        try:
            allowed = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            allowed = os.cpu_count() or 1
        local = 1
        if comm is not None and comm.Get_size() > 1:
            MPI = mpi()
            node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
            local = node.Get_size()
            node.Free()
        threads = max(1, min(allowed, (os.cpu_count() or allowed) // local))
    set_num_threads(threads)
    return int(threads)


# ---------------------------------------------------------------------------------------- numba cache


def warm_cache(comm, warm) -> None:
    """Rank 0 calls ``warm()`` (compiling and caching kernels) before every other rank calls it.

    With Numba's ``cache=True`` the other ranks then load the compiled kernels from the cache instead of
    compiling them N times at once on the same cores.
    """
    rank, size = _rank_size(comm)
    if rank == 0:
        warm()
    if size > 1:
        comm.Barrier()
        if rank != 0:
            warm()


@contextlib.contextmanager
def _saved_dropout_rngs(model):
    """Run a block without changing any dropout generator's state (warm-up must not shift training)."""
    parts = [p for p in _parts(model) if hasattr(p, "_dropout_rng")]
    states = [p._dropout_rng.bit_generator.state for p in parts]
    try:
        yield
    finally:
        for p, s in zip(parts, states):
            p._dropout_rng.bit_generator.state = s


def _parts(model) -> list:
    return list(getattr(model, "parts", {"model": model}).values())


def warm_model(model, executor: str = "dynamic", *, train: bool = True) -> None:
    """Run every kernel path ``model`` uses in training and inference once on tiny synthetic batches.

    Batches of one row and of more rows than the dynamic executor's in-jit loop handles, with unequal
    lengths, through ``loss_and_grads`` (train mode, dropout generators restored afterwards; skipped
    when ``train`` is False) and the inference call. Models other than CharLM / SequenceClassifier / RNN / LSTM / GRU are left alone.
    """
    from graphrnn.dynamic import JIT_LOOP_MAX_BATCH

    task = getattr(model, "task", None)
    rng = np.random.default_rng(0)
    sizes = (1, JIT_LOOP_MAX_BATCH + 1)
    with _saved_dropout_rngs(model):
        for B in sizes:
            lengths = np.maximum(1, 3 - np.arange(B) % 3).astype(np.int64)
            T = int(lengths.max())
            if task == "lm":
                V = len(model.vocab)
                seqs = [rng.integers(2, V, size=n).astype(np.int32) for n in lengths]
                from graphrnn import data as gdata

                inputs, targets, ln = gdata.lm_batch(seqs)
                if train:
                    model.loss_and_grads(inputs, targets, ln, executor=executor, train=True)
                model.nll(inputs, targets, ln, executor=executor)
            elif task == "classify":
                C = model.config["input_size"]
                x = rng.standard_normal((T, B, C)).astype(model.dtype)
                y = rng.integers(0, len(model.labels), size=B)
                if train:
                    model.loss_and_grads(x, lengths, y, executor=executor, train=True)
                model.logits(x, lengths, executor=executor)
            elif hasattr(model, "spec") and hasattr(model, "backward"):
                x = rng.standard_normal((T, B, model.spec.input_size)).astype(model.dtype)
                if model.batch_first:
                    x = np.ascontiguousarray(x.transpose(1, 0, 2))
                if train:
                    out, _, tape = model.forward(x, lengths, executor=executor, train=True)
                    model.backward(tape, np.ones_like(out))
                model(x, lengths, executor=executor)


# ----------------------------------------------------------------------------------- identical state


def state_digest(params: dict, optimizer=None) -> bytes:
    """SHA-256 over parameter names, dtypes, shapes and bytes in dict order (and the optimizer state)."""
    h = hashlib.sha256()

    def add(name, a):
        a = np.ascontiguousarray(a)
        h.update(name.encode("utf-8") + b"\0" + a.dtype.str.encode() + repr(a.shape).encode() + b"\0")
        h.update(a.tobytes())

    for name, p in params.items():
        add("param/" + name, p)
    if optimizer is not None:
        h.update(f"optimizer {type(optimizer).__name__} steps {optimizer.steps}".encode())
        for name, a in optimizer.state_arrays().items():
            add("optim/" + name, a)
    return h.digest()


def check_identical(comm, params: dict, optimizer=None, *, what: str = "parameters") -> None:
    """Raise RuntimeError on every rank when some rank's parameters (or optimizer state) differ.

    Collective: every rank of ``comm`` must call it. Compares 32-byte digests, not the arrays.
    """
    if comm is None or comm.Get_size() == 1:
        return
    digests = comm.allgather(state_digest(params, optimizer))
    differ = [r for r, d in enumerate(digests) if d != digests[0]]
    if differ:
        raise RuntimeError(
            f"{what} differ between ranks: ranks {differ} do not match rank 0 "
            f"(SHA-256 {digests[0].hex()[:12]} on rank 0, "
            + ", ".join(f"{digests[r].hex()[:12]} on rank {r}" for r in differ)
            + "); every rank must build the model from the same seed and checkpoint"
        )


def broadcast_parameters(comm, params: dict, root: int = 0) -> None:
    """Overwrite every rank's parameters in place with rank ``root``'s (one ``Bcast`` per dtype)."""
    if comm is None or comm.Get_size() == 1:
        return
    by_dtype: dict = {}
    for p in params.values():
        by_dtype.setdefault(p.dtype, []).append(p)
    for dt, arrays in by_dtype.items():
        flat = np.concatenate([a.ravel() for a in arrays]) if arrays else np.empty(0, dt)
        comm.Bcast(flat, root=root)
        off = 0
        for a in arrays:
            a.reshape(-1)[...] = flat[off : off + a.size]
            off += a.size


# ------------------------------------------------------------------------------------------- training


class DataParallel:
    """Data-parallel training of ``model`` over the ranks of ``comm`` (default ``MPI.COMM_WORLD``).

    Every rank builds the same model (same seed, or the same checkpoint) and draws the same global
    batches; ``loss_and_grads`` runs this rank's shard of a batch and returns what one process would
    return for the whole batch: (mean loss over the global count, global count, mean gradients). Then
    clip and step as usual, on every rank.

    ``check_every=k > 0`` re-checks every k steps that parameters and optimizer state are identical on
    every rank. ``warm_executor`` ("dynamic"/"static"; None = no warm-up) runs ``warm_model`` on rank 0
    before the other ranks. With more than one rank, each rank's dropout generators are re-seeded from
    the shared stream and the rank, so ranks drop different units.
    """

    def __init__(self, model, optimizer=None, comm=None, *, check_every: int = 0, warm_executor=None):
        if isinstance(check_every, bool) or not isinstance(check_every, (int, np.integer)) or check_every < 0:
            raise ValueError(f"check_every must be an int >= 0, got {check_every!r}")
        self.comm = world() if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.model = model
        self.optimizer = optimizer
        self.check_every = int(check_every)
        self.steps = 0
        self.seconds = {"compute": 0.0, "reduce": 0.0}  # this rank's time in its shard / in the Allreduce
        self.params = model.params
        dtypes = {p.dtype for p in self.params.values()}
        self.dtype = np.result_type(*dtypes) if dtypes else np.dtype(np.float64)
        n = sum(p.size for p in self.params.values())
        self._buf = np.zeros(n + 2, dtype=self.dtype)  # [n_r * grads..., n_r * loss, n_r]
        self._views = {}
        off = 0
        for name, p in self.params.items():
            self._views[name] = self._buf[off : off + p.size].reshape(p.shape)
            off += p.size
        self.check()
        if warm_executor is not None:
            warm_cache(self.comm, lambda: warm_model(model, warm_executor))
        if self.size > 1:
            for part in _parts(model):
                rng = getattr(part, "_dropout_rng", None)
                if rng is not None:  # same draw on every rank, then a rank-specific stream
                    part._dropout_rng = np.random.default_rng([*rng.integers(2**32, size=4), self.rank])

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @property
    def message_bytes(self) -> int:
        """Bytes each rank contributes to the one Allreduce per step."""
        return int(self._buf.nbytes)

    def check(self) -> None:
        """Collective: raise RuntimeError when parameters or optimizer state differ between ranks."""
        check_identical(self.comm, self.params, self.optimizer, what="parameters or optimizer state")

    def shard(self, indices, work=None) -> np.ndarray:
        """This rank's share of the global batch ``indices`` (order kept), split by ``work`` (default 1 each)."""
        indices = np.asarray(indices)
        w = np.ones(len(indices)) if work is None else np.asarray(work)
        if w.shape != (len(indices),):
            raise ValueError(f"work must have one entry per index, shape ({len(indices)},), got {w.shape}")
        return indices[shard_by_work(w, self.size)[self.rank]]

    def loss_and_grads(self, compute, indices, work=None):
        """Run ``compute(local_indices) -> (mean loss, count, grads)`` on this rank's shard; reduce.

        Returns (global mean loss, global count N, grads) where grads maps each parameter name to the
        gradient of the loss averaged over all N valid positions of the global batch: views into this
        object's buffer, valid until the next call. A rank whose shard is empty contributes zeros.
        """
        self.steps += 1
        if self.check_every and self.steps % self.check_every == 0:
            self.check()
        t0 = time.perf_counter()
        local = self.shard(indices, work)
        buf = self._buf
        if len(local):
            loss, n, grads = compute(local)
            f = self.dtype.type(n)
            for name, v in self._views.items():
                np.multiply(grads[name], f, out=v)
            buf[-2] = loss * n
            buf[-1] = n
        else:
            buf[:] = 0
        t1 = time.perf_counter()
        if self.size > 1:  # waiting for slower ranks counts here too
            self.comm.Allreduce(mpi().IN_PLACE, buf, op=mpi().SUM)
        self.seconds["compute"] += t1 - t0
        self.seconds["reduce"] += time.perf_counter() - t1
        total_n = round(float(buf[-1]))
        if total_n > 0:
            buf[:-1] *= self.dtype.type(1.0 / total_n)
        else:
            buf[:] = 0
        return float(buf[-2]), total_n, dict(self._views)

    def allreduce_sum(self, *values: float) -> tuple[float, ...]:
        """Sum a few numbers over the ranks (float64)."""
        a = np.array(values, dtype=np.float64)
        if self.size > 1:
            self.comm.Allreduce(mpi().IN_PLACE, a, op=mpi().SUM)
        return tuple(float(v) for v in a)

    def shard_batches(self, batches: list, work) -> list:
        """This rank's share of a list of whole batches (for evaluation), split by each batch's ``work``."""
        return [batches[i] for i in shard_by_work(np.asarray(work, dtype=np.float64), self.size)[self.rank]]


# ------------------------------------------------------------------------------------------ inference


def _gather_rows(comm, local: np.ndarray | None, root: int | None):
    """Concatenate each rank's rows (rank order) on ``root`` (or every rank when None); None elsewhere."""
    rank, size = _rank_size(comm)
    if size == 1:
        return local if local is not None else np.empty((0,))
    metas = comm.allgather(None if local is None else (local.shape, local.dtype.str))
    known = [m for m in metas if m is not None]
    if not known:
        return np.empty((0,)) if root is None or rank == root else None
    trailing, dt = known[0][0][1:], np.dtype(known[0][1])
    for m in known:
        if m[0][1:] != trailing or np.dtype(m[1]) != dt:
            raise ValueError(f"per-item results must share shape and dtype across ranks, got {known}")
    if local is None:
        local = np.empty((0, *trailing), dtype=dt)
    row = int(np.prod(trailing, dtype=np.int64))
    counts = [0 if m is None else m[0][0] * row for m in metas]
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64).tolist()
    total_rows = sum(counts) // row if row else sum(0 if m is None else m[0][0] for m in metas)
    send = np.ascontiguousarray(local)
    if root is None:
        recv = np.empty((total_rows, *trailing), dtype=dt)
        comm.Allgatherv(send, [recv, (counts, displs)])
        return recv
    recv = np.empty((total_rows, *trailing), dtype=dt) if rank == root else None
    comm.Gatherv(send, [recv, (counts, displs)] if rank == root else None, root=root)
    return recv


def predict(fn, items, *, comm=None, work=None, batch_size: int = 64, root: int | None = 0):
    """Batch inference over ``items`` split across the ranks of ``comm``, results in the items' order.

    fn(list of items) -> array (len(list), ...): the per-item results of one batch.
    work (n,): each item's cost (default ``len(item)``), used to split the corpus across ranks and to
    bucket each rank's share into batches of similar length.
    Returns the (n, ...) array on ``root`` (on every rank when ``root`` is None) and None on the other
    ranks. ``comm=None`` runs everything in this process. Collective: every rank calls it with the same
    items.
    """
    from graphrnn import data as gdata

    items = list(items)
    rank, size = _rank_size(comm)
    w = np.array([len(it) for it in items] if work is None else work, dtype=np.float64)
    if w.shape != (len(items),):
        raise ValueError(f"work must have one entry per item, shape ({len(items)},), got {w.shape}")
    shards = shard_by_work(w, size)
    mine = shards[rank]
    local = None
    if len(mine):
        parts, where = [], []
        for b in gdata.bucket_batches(w[mine], batch_size):
            res = np.asarray(fn([items[i] for i in mine[b]]))
            if res.shape[:1] != (len(b),):
                raise ValueError(f"fn must return one result per item: {len(b)} items, got shape {res.shape}")
            parts.append(res)
            where.append(b)
        local = np.empty((len(mine), *parts[0].shape[1:]), dtype=np.result_type(*parts))
        for b, res in zip(where, parts):
            local[b] = res
    gathered = _gather_rows(comm, local, root)
    if gathered is None:
        return None
    if len(items) == 0:
        return gathered
    order = np.concatenate(shards)
    out = np.empty_like(gathered)
    out[order] = gathered
    return out


def _lm_item_nats(model, executor):
    """fn for ``predict``: encoded sequences -> (B, 2) [summed nats over the sequence, its length]."""
    from graphrnn import data as gdata
    from graphrnn.losses import log_softmax

    def fn(seqs):
        inputs, targets, lengths = gdata.lm_batch(seqs)
        T, B = inputs.shape
        if T == 0:
            return np.zeros((B, 2))
        static_len = None if executor != "static" else max(32, -(-T // 32) * 32)
        out, _ = model.rnn(model.embedding(inputs), lengths, executor=executor, static_len=static_len)
        valid = np.arange(T)[:, None] < lengths[None, :]
        logp = log_softmax(model.head(out[valid]))
        tv = targets[valid]
        nll = -logp[np.arange(len(tv)), tv].astype(np.float64)
        per = np.bincount(np.nonzero(valid)[1], weights=nll, minlength=B)
        return np.stack([per, lengths.astype(np.float64)], axis=1)

    return fn


def _classifier_logits(model, executor):
    def fn(series):
        x, lengths = model.batch(series)
        return model.logits(x, lengths, executor=executor).astype(np.float64)

    return fn


def predict_model(model, items, *, comm=None, executor: str = "dynamic", batch_size: int = 64, root=0):
    """Per-item inference with a trained CharLM or SequenceClassifier, split across ranks.

    CharLM: items are strings -> (n, 2) float64: summed nats over each string's characters (predicted
    from BOS on) and its length. SequenceClassifier: items are (T_i, C) series -> (n, K) float64
    logits. Result on ``root`` (every rank when None), None elsewhere.
    """
    task = getattr(model, "task", None)
    if task == "lm":
        seqs = [model.encode(t) for t in items]
        return predict(_lm_item_nats(model, executor), seqs, comm=comm, batch_size=batch_size, root=root)
    if task == "classify":
        return predict(
            _classifier_logits(model, executor), list(items), comm=comm, batch_size=batch_size, root=root
        )
    raise TypeError(f"model must be a CharLM or SequenceClassifier, got {type(model).__name__}")


# --------------------------------------------------------------------------------------------- errors


@contextlib.contextmanager
def abort_on_error(comm, user_errors=(), label: str = "graphrnn"):
    """Inside, an exception on any rank aborts every rank (MPI_Abort) instead of leaving the others
    waiting forever in a collective. Exceptions of the ``user_errors`` types print one line,
    ``<label>: error: <message> (rank r)``, and abort with status 2; any other prints its traceback and
    aborts with status 1. With one rank (or ``comm`` None) exceptions propagate unchanged.
    """
    try:
        yield
    except BaseException as exc:  # anything left unhandled would hang the other ranks
        if comm is None or comm.Get_size() == 1 or isinstance(exc, SystemExit):
            raise
        rank = comm.Get_rank()
        if isinstance(exc, user_errors):
            msg = " ".join(str(exc).split()) or type(exc).__name__
            sys.stderr.write(f"{label}: error: {msg} (rank {rank})\n")
            code = 2
        else:
            sys.stderr.write(f"{label}: rank {rank} failed; aborting all ranks\n")
            traceback.print_exc()
            code = 1
        sys.stderr.flush()
        comm.Abort(code)
        os._exit(code)  # MPI_Abort does not return; should it ever, never fall back into the program
