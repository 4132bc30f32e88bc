"""Training loops for the main job: a character-level language model and a sequence classifier.

``CharLM``: indices (T, B) -> Embedding (E) -> recurrent stack (H) -> Linear -> logits (T, B, V), trained
with softmax cross-entropy masked by the sequence lengths (mean over valid characters). The held-out
metric is bits per character = mean nats per character / ln 2.

``SequenceClassifier``: series (T, B, C) -> recurrent stack -> the last valid state of the top layer
(h_n; forward then reverse direction when bidirectional, so each direction contributes the state after it
has read the whole sequence) -> Linear -> logits (B, K), cross-entropy; the metric is accuracy.

Both call ``rnn.forward(x, lengths=..., train=True)`` and ``rnn.backward``; batch size 1 runs each
sequence unpadded. Everything random (initialisation, shuffling, the sample of the corpus an epoch
sees, dropout, sampling) derives from one seed, so a run is reproducible.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from graphrnn import data as gdata
from graphrnn.layers import Embedding, Linear
from graphrnn.losses import cross_entropy, log_softmax
from graphrnn.optim import Adam, clip_grad_norm

__all__ = [
    "CharLM",
    "SequenceClassifier",
    "TrainResult",
    "LM_DEFAULTS",
    "CLASSIFY_DEFAULTS",
    "train_lm",
    "train_classifier",
    "evaluate_lm",
    "evaluate_classifier",
    "generate",
]

# The default run (``graphrnn train`` with no arguments) must finish within 5 minutes on a 2-core
# machine, cold Numba cache included, with held-out bits per character < 3.2 (< 3.5 after one epoch).
# An epoch on the stdlib corpus is a seeded sample of ``chars_per_epoch`` training characters.
LM_DEFAULTS = dict(
    cell="lstm",
    hidden_size=128,
    num_layers=1,
    embedding_dim=32,
    chunk_len=128,
    chars_per_epoch=500_000,
    batch_size=32,
    lr=2e-2,
    epochs=4,
    clip=1.0,
)
CLASSIFY_DEFAULTS = dict(
    cell="lstm", hidden_size=64, num_layers=1, batch_size=16, lr=3e-3, epochs=20, clip=1.0
)
RNN_CLASSES = ("LSTM", "GRU", "RNN")
CELL_CLASS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
LN2 = math.log(2.0)


def _rnn_class(name: str):
    from graphrnn.modules import GRU, LSTM, RNN

    return {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}[name]


def _cell_class(cell: str) -> str:
    if cell not in CELL_CLASS:
        raise ValueError(f"cell must be one of {sorted(CELL_CLASS)}, got {cell!r}")
    return CELL_CLASS[cell]


def _sub_seeds(seed, n: int) -> list[int]:
    """n independent non-negative int seeds derived from ``seed`` (None -> fresh entropy)."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n, dtype=np.uint32)]


def _static_len(T: int, executor: str, multiple: int = 32):
    """For the static executor, round T up so a handful of graphs serve every batch; None for dynamic."""
    if executor != "static":
        return None
    return max(multiple, -(-T // multiple) * multiple)


class _Composite:
    """A model made of named parts; ``params`` maps "part.name" to the parts' live arrays."""

    parts: dict

    def _collect(self):
        self.params = {f"{pn}.{n}": a for pn, part in self.parts.items() for n, a in part.params.items()}

    @property
    def dtype(self) -> np.dtype:
        return self.rnn.dtype

    def state_dict(self) -> dict:
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state) -> None:
        """Strict on names and shapes; copies in place so optimizers keep their references."""
        if not hasattr(state, "keys"):
            raise TypeError(f"state must be a mapping name -> array, got {type(state).__name__}")
        missing = sorted(set(self.params) - set(state))
        extra = sorted(set(state) - set(self.params))
        if missing or extra:
            raise ValueError(
                f"state names do not match {type(self).__name__}: missing {missing}, extra {extra}"
            )
        for name, p in self.params.items():
            v = np.asarray(state[name])
            if v.dtype.kind != "f":
                raise TypeError(f"state[{name!r}] must be a float array, got dtype {v.dtype}")
            if v.shape != p.shape:
                raise ValueError(f"state[{name!r}] must have shape {p.shape}, got {v.shape}")
        for name, p in self.params.items():
            np.copyto(p, np.asarray(state[name], dtype=p.dtype))

    def _grads(self, part_grads: dict) -> dict:
        return {f"{pn}.{n}": part_grads[pn][n] for pn, part in self.parts.items() for n in part.params}


# ---------------------------------------------------------------------------------- language model


class CharLM(_Composite):
    """Character-level language model: Embedding(V, E) -> RNN/LSTM/GRU(E, H, L) -> Linear(H, V).

    ``vocab`` is the list of tokens (``graphrnn.data.build_vocab``: BOS, UNK, then characters).
    """

    task = "lm"

    def __init__(
        self,
        vocab,
        cell="lstm",
        hidden_size=128,
        num_layers=1,
        embedding_dim=32,
        dropout=0.0,
        *,
        dtype=np.float32,
        seed=None,
    ):
        if (
            not isinstance(vocab, (list, tuple))
            or len(vocab) < 3
            or not all(isinstance(c, str) for c in vocab)
        ):
            raise TypeError(f"vocab must be a list of at least 3 strings, got {type(vocab).__name__}")
        if list(vocab[:2]) != [gdata.BOS, gdata.UNK]:
            raise ValueError(f"vocab must start with {[gdata.BOS, gdata.UNK]}, got {list(vocab[:2])}")
        self.vocab = list(vocab)
        self.cell = cell
        s_emb, s_rnn, s_head = _sub_seeds(seed, 3)
        dt = np.dtype(dtype)
        self.embedding = Embedding(len(vocab), embedding_dim, dtype=dt, seed=s_emb)
        self.rnn = _rnn_class(_cell_class(cell))(
            embedding_dim, hidden_size, num_layers, dropout=dropout, dtype=dt, seed=s_rnn
        )
        self.head = Linear(hidden_size, len(vocab), dtype=dt, seed=s_head)
        self.parts = {"embedding": self.embedding, "rnn": self.rnn, "head": self.head}
        self.config = {
            "cell": cell,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "embedding_dim": embedding_dim,
            "dropout": float(dropout),
            "dtype": dt.name,
            "seed": seed,
        }
        self._collect()

    # -- checkpoints
    def checkpoint_meta(self) -> dict:
        return {
            "model": {
                "class": "CharLM",
                "config": dict(self.config),
                "rnn": {"class": type(self.rnn).__name__, "config": self.rnn.config},
            },
            "task": self.task,
            "vocab": self.vocab,
            "heads": {
                "embedding": {"class": "Embedding", "config": self.embedding.config},
                "head": {"class": "Linear", "config": self.head.config},
            },
        }

    @classmethod
    def from_checkpoint_meta(cls, meta: dict) -> CharLM:
        cfg = dict(meta["model"]["config"])
        if not isinstance(meta.get("vocab"), list):
            raise ValueError("a CharLM checkpoint must store its vocab (a list of strings) in meta")
        return cls(meta["vocab"], **cfg)

    # -- computing
    def encode(self, text: str) -> np.ndarray:
        return gdata.encode(text, self.vocab)

    def loss_and_grads(self, inputs, targets, lengths, *, executor="dynamic", train=True):
        """One batch: inputs, targets (T, B) ints, lengths (B,) -> (mean nats, valid count, grads by name)."""
        T = inputs.shape[0]
        x, etape = self.embedding.forward(inputs)
        out, _, rtape = self.rnn.forward(
            x, lengths, executor=executor, static_len=_static_len(T, executor), train=train
        )
        valid = np.arange(T)[:, None] < lengths[None, :]
        logits, htape = self.head.forward(out[valid])  # only the valid positions: no padded logits
        loss, g_logits = cross_entropy(logits, targets[valid])
        g_head = self.head.backward(htape, g_logits)
        g_out = np.zeros_like(out)
        g_out[valid] = g_head["input"]
        g_rnn = self.rnn.backward(rtape, g_out)
        g_emb = self.embedding.backward(etape, g_rnn["input"])
        return loss, int(valid.sum()), self._grads({"embedding": g_emb, "rnn": g_rnn, "head": g_head})

    def nll(self, inputs, targets, lengths, *, executor="dynamic") -> tuple[float, int]:
        """Summed nats over valid positions and their count (inference: no tape, no dropout)."""
        T = inputs.shape[0]
        out, _ = self.rnn(
            self.embedding(inputs), lengths, executor=executor, static_len=_static_len(T, executor)
        )
        valid = np.arange(T)[:, None] < lengths[None, :]
        total, _ = cross_entropy(self.head(out[valid]), targets[valid], reduction="sum")
        return total, int(valid.sum())


# ---------------------------------------------------------------------------------- classification


class SequenceClassifier(_Composite):
    """Recurrent stack over (T, B, C) series, then Linear(D*H, K) on the top layer's last valid state.

    ``mean``/``std`` (C,) standardise each channel before the stack (NaN then becomes 0, the mean).
    """

    task = "classify"

    def __init__(
        self,
        input_size,
        labels,
        cell="lstm",
        hidden_size=64,
        num_layers=1,
        bidirectional=False,
        dropout=0.0,
        *,
        mean=None,
        std=None,
        dtype=np.float32,
        seed=None,
    ):
        if (
            not isinstance(labels, (list, tuple))
            or len(labels) < 2
            or not all(isinstance(s, str) for s in labels)
        ):
            raise TypeError(f"labels must be a list of at least 2 class-label strings, got {labels!r}")
        self.labels = list(labels)
        self.cell = cell
        dt = np.dtype(dtype)
        s_rnn, s_head = _sub_seeds(seed, 2)
        self.rnn = _rnn_class(_cell_class(cell))(
            input_size,
            hidden_size,
            num_layers,
            dropout=dropout,
            bidirectional=bidirectional,
            dtype=dt,
            seed=s_rnn,
        )
        D = 2 if bidirectional else 1
        self.head = Linear(D * hidden_size, len(labels), dtype=dt, seed=s_head)
        self.mean = np.zeros(input_size) if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = np.ones(input_size) if std is None else np.asarray(std, dtype=np.float64)
        if self.mean.shape != (input_size,) or self.std.shape != (input_size,):
            raise ValueError(
                f"mean and std must have shape ({input_size},), got {self.mean.shape}, {self.std.shape}"
            )
        self.parts = {"rnn": self.rnn, "head": self.head}
        self.config = {
            "input_size": input_size,
            "cell": cell,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "bidirectional": bool(bidirectional),
            "dropout": float(dropout),
            "dtype": dt.name,
            "seed": seed,
        }
        self._collect()

    def checkpoint_meta(self) -> dict:
        cfg = dict(self.config, mean=[float(v) for v in self.mean], std=[float(v) for v in self.std])
        return {
            "model": {
                "class": "SequenceClassifier",
                "config": cfg,
                "rnn": {"class": type(self.rnn).__name__, "config": self.rnn.config},
            },
            "task": self.task,
            "labels": self.labels,
            "heads": {"head": {"class": "Linear", "config": self.head.config}},
        }

    @classmethod
    def from_checkpoint_meta(cls, meta: dict) -> SequenceClassifier:
        cfg = dict(meta["model"]["config"])
        if not isinstance(meta.get("labels"), list):
            raise ValueError("a SequenceClassifier checkpoint must store its class labels in meta")
        return cls(labels=meta["labels"], **cfg)

    @staticmethod
    def fit_normalisation(series) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std over every observed (non-NaN) value of the training series."""
        allv = np.concatenate([s for s in series if len(s)], axis=0)
        with np.errstate(all="ignore"):
            mean = np.nanmean(allv, axis=0) if allv.size else np.zeros(allv.shape[1])
            std = np.nanstd(allv, axis=0) if allv.size else np.ones(allv.shape[1])
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        return mean, std

    def batch(self, series: list[np.ndarray]):
        """Series (T_i, C) -> (x (T, B, C) standardised, NaN -> 0, padded with 0; lengths (B,))."""
        C = self.config["input_size"]
        lengths = np.array([len(s) for s in series], dtype=np.int64)
        T = int(lengths.max()) if len(series) else 0
        x = np.zeros((T, len(series), C), dtype=self.dtype)
        for b, s in enumerate(series):
            if s.ndim != 2 or s.shape[1] != C:
                raise ValueError(f"each series must have shape (T, {C}), got {s.shape}")
            z = (s - self.mean) / self.std
            x[: len(s), b] = np.where(np.isnan(z), 0.0, z)
        return x, lengths

    def _features(self, h_n) -> np.ndarray:
        D = 2 if self.config["bidirectional"] else 1
        top = h_n[-D:]  # (D, B, H): forward, then reverse
        return np.ascontiguousarray(top.transpose(1, 0, 2).reshape(top.shape[1], -1))

    def logits(self, x, lengths, *, executor="dynamic") -> np.ndarray:
        _, state = self.rnn(x, lengths, executor=executor, static_len=_static_len(x.shape[0], executor))
        h_n = state[0] if isinstance(state, tuple) else state
        return self.head(self._features(h_n))

    def loss_and_grads(self, x, lengths, targets, *, executor="dynamic", train=True):
        """One batch -> (mean cross-entropy, batch size, grads by name)."""
        out, state, rtape = self.rnn.forward(
            x, lengths, executor=executor, static_len=_static_len(x.shape[0], executor), train=train
        )
        h_n = state[0] if isinstance(state, tuple) else state
        logits, htape = self.head.forward(self._features(h_n))
        loss, g_logits = cross_entropy(logits, targets)
        g_head = self.head.backward(htape, g_logits)
        D = 2 if self.config["bidirectional"] else 1
        B, H = h_n.shape[1], h_n.shape[2]
        g_h = np.zeros_like(h_n)
        g_h[-D:] = g_head["input"].reshape(B, D, H).transpose(1, 0, 2)
        g_state = (g_h, None) if isinstance(state, tuple) else g_h
        g_rnn = self.rnn.backward(rtape, None, g_state)
        return loss, B, self._grads({"rnn": g_rnn, "head": g_head})


# ---------------------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    model: object
    optimizer: object
    train_loss: list = field(default_factory=list)  # mean training loss per epoch
    metric: dict = field(default_factory=dict)  # {"name": ..., "value": ...} on held-out data
    seconds: float = 0.0
    info: dict = field(default_factory=dict)


def _progress(total, desc, unit, enabled):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        disable=not enabled,
        leave=False,
        mininterval=0.5,
        dynamic_ncols=True,
    )


def _check_positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _loop_options(defaults, executor, epochs, batch_size, lr, clip):
    """The training-loop options both tasks share: None takes the task's default; all are checked."""
    return (
        _check_executor(executor),
        _check_positive_int("epochs", defaults["epochs"] if epochs is None else epochs),
        _check_positive_int("batch_size", defaults["batch_size"] if batch_size is None else batch_size),
        defaults["lr"] if lr is None else lr,
        defaults["clip"] if clip is None else clip,
    )


def _check_executor(executor):
    if executor not in ("dynamic", "static"):
        raise ValueError(f"executor must be 'dynamic' or 'static', got {executor!r}")
    return executor


def _epoch_subset(n_items: int, sizes: np.ndarray, budget, rng) -> np.ndarray:
    """Indices of a seeded random subset whose sizes add up to about ``budget`` (all when None)."""
    perm = rng.permutation(n_items)
    if budget is None:
        return perm
    cum = np.cumsum(sizes[perm])
    return perm[: max(1, int(np.searchsorted(cum, budget)) + 1)]


def _data_parallel(model, optimizer, comm, check_every, executor, progress, log):
    """With an MPI ``comm``: a ``graphrnn.distributed.DataParallel`` (parameters checked identical on
    every rank, Numba cache warmed by rank 0 first), and the progress bar and log on rank 0 only.

    Every rank draws the same global batches; each runs its length-balanced shard, one Allreduce sums
    the gradients, and clipping and the optimizer step follow on every rank, so ``batch_size`` is the
    global batch and N ranks compute what one process computes, to rounding.
    """
    if comm is None:
        return None, progress, log
    from graphrnn.distributed import DataParallel

    dp = DataParallel(model, optimizer, comm, check_every=check_every, warm_executor=executor)
    return dp, progress and dp.is_root, log if dp.is_root else None


def evaluate_lm(model: CharLM, texts: list[str], *, batch_size=64, executor="dynamic", dist=None) -> float:
    """Mean nats per character over ``texts`` (each text one sequence, predicted from BOS onwards).

    ``dist`` (a ``graphrnn.distributed.DataParallel``): the batches are split across its ranks.
    """
    seqs = [model.encode(t) for t in texts if t]
    if not seqs:
        raise ValueError("evaluation texts must hold at least one character, got none")
    total, count = 0.0, 0
    batches = gdata.bucket_batches([len(s) for s in seqs], batch_size)
    if dist is not None:
        batches = dist.shard_batches(batches, [sum(len(seqs[i]) for i in b) for b in batches])
    for idx in batches:
        inputs, targets, lengths = gdata.lm_batch([seqs[i] for i in idx])
        s, n = model.nll(inputs, targets, lengths, executor=executor)
        total += s
        count += n
    if dist is not None:
        total, count = dist.allreduce_sum(total, count)
    return total / count


def train_lm(
    corpus: gdata.TextCorpus | None = None,
    *,
    model: CharLM | None = None,
    optimizer=None,
    cell=None,
    hidden_size=None,
    num_layers=None,
    embedding_dim=None,
    epochs=None,
    batch_size=None,
    lr=None,
    seed=0,
    executor="dynamic",
    chars_per_epoch="default",
    clip=None,
    start_epoch=0,
    progress=True,
    eval_batch_size=64,
    log=None,
    comm=None,
    check_every=0,
) -> TrainResult:
    """Train (or continue training) a character-level LM; metric = held-out bits per character.

    ``corpus`` defaults to the stdlib docstrings; ``chars_per_epoch`` ("default" = LM_DEFAULTS' value for
    the stdlib corpus, a full pass for any other corpus; None = full pass) bounds one epoch.
    ``comm`` (an MPI communicator): data-parallel training, see ``_data_parallel``.
    """
    d = LM_DEFAULTS
    executor, epochs, batch_size, lr, clip = _loop_options(d, executor, epochs, batch_size, lr, clip)
    t0 = time.perf_counter()
    if corpus is None:
        corpus = gdata.stdlib_corpus(d["chunk_len"])
    if chars_per_epoch == "default":
        chars_per_epoch = d["chars_per_epoch"] if corpus.source.get("kind") == "stdlib" else None
    if model is None:
        vocab = gdata.build_vocab(corpus.train)
        model = CharLM(
            vocab,
            cell=d["cell"] if cell is None else cell,
            hidden_size=_check_positive_int(
                "hidden_size", d["hidden_size"] if hidden_size is None else hidden_size
            ),
            num_layers=_check_positive_int(
                "num_layers", d["num_layers"] if num_layers is None else num_layers
            ),
            embedding_dim=d["embedding_dim"] if embedding_dim is None else embedding_dim,
            seed=seed,
        )
    if optimizer is None:
        optimizer = Adam(model.params, lr=lr)
    train_seqs = [model.encode(t) for t in corpus.train if t]
    sizes = np.array([len(s) for s in train_seqs], dtype=np.int64)
    dp, progress, log = _data_parallel(model, optimizer, comm, check_every, executor, progress, log)

    def batch_step(idx):  # one batch (or this rank's shard of it) -> (mean loss, count, grads)
        inputs, targets, lengths = gdata.lm_batch([train_seqs[i] for i in idx])
        return model.loss_and_grads(inputs, targets, lengths, executor=executor)

    losses = []
    chars_seen = 0
    t_train = time.perf_counter()
    for epoch in range(start_epoch, start_epoch + epochs):
        rng = np.random.default_rng([seed, epoch])
        subset = _epoch_subset(len(train_seqs), sizes, chars_per_epoch, rng)
        batches = gdata.bucket_batches(sizes[subset], batch_size, rng)
        total_chars = int(sizes[subset].sum())
        bar = _progress(total_chars, f"epoch {epoch + 1}/{start_epoch + epochs}", "char", progress)
        sum_loss, sum_n = 0.0, 0
        try:
            for bidx in batches:
                idx = subset[bidx]
                loss, n, grads = (
                    batch_step(idx) if dp is None else dp.loss_and_grads(batch_step, idx, sizes[idx])
                )
                clip_grad_norm(grads, clip)
                optimizer.step(grads)
                sum_loss += loss * n
                sum_n += n
                bar.update(n)
                bar.set_postfix(loss=f"{sum_loss / sum_n:.3f}", refresh=False)
        finally:
            bar.close()
        chars_seen += sum_n
        losses.append(sum_loss / max(sum_n, 1))
        if log:
            log(
                f"epoch {epoch + 1}: train loss {losses[-1]:.4f} nats/char "
                f"({losses[-1] / LN2:.3f} bits), {sum_n} chars"
            )
    train_seconds = time.perf_counter() - t_train
    nats = evaluate_lm(model, corpus.heldout, batch_size=eval_batch_size, executor=executor, dist=dp)
    seconds = time.perf_counter() - t0
    info = {
        "train_chars_seen": chars_seen,
        "chars_per_second": chars_seen / max(train_seconds, 1e-9),
        "heldout_chars": corpus.heldout_chars,
        "heldout_nats_per_char": nats,
        "source": corpus.source,
        "epochs_done": start_epoch + epochs,
        "ranks": 1 if dp is None else dp.size,
    }
    return TrainResult(
        model, optimizer, losses, {"name": "bits_per_char", "value": nats / LN2}, seconds, info
    )


def evaluate_classifier(
    model: SequenceClassifier, dataset: gdata.TSDataset, *, batch_size=64, executor="dynamic", dist=None
) -> float:
    """Accuracy of ``model`` on ``dataset`` (labels matched by name); ``dist`` splits the batches."""
    index = {lab: i for i, lab in enumerate(model.labels)}
    unknown = sorted(set(dataset.labels) - set(index))
    if unknown:
        raise ValueError(f"dataset labels {unknown} are not among the model's class labels {model.labels}")
    y = np.array([index[lab] for lab in dataset.labels])
    correct = 0
    batches = gdata.bucket_batches([len(s) for s in dataset.series], batch_size)
    if dist is not None:
        batches = dist.shard_batches(batches, [sum(len(dataset.series[i]) for i in b) for b in batches])
    for idx in batches:
        x, lengths = model.batch([dataset.series[i] for i in idx])
        correct += int((model.logits(x, lengths, executor=executor).argmax(axis=1) == y[idx]).sum())
    if dist is not None:
        (correct,) = dist.allreduce_sum(correct)
    return correct / len(y)


def train_classifier(
    train_set: gdata.TSDataset,
    test_set: gdata.TSDataset,
    *,
    model=None,
    optimizer=None,
    cell=None,
    hidden_size=None,
    num_layers=None,
    bidirectional=False,
    epochs=None,
    batch_size=None,
    lr=None,
    seed=0,
    executor="dynamic",
    clip=None,
    start_epoch=0,
    progress=True,
    log=None,
    comm=None,
    check_every=0,
) -> TrainResult:
    """Train (or continue training) a sequence classifier on a .ts pair; metric = test accuracy.

    ``comm`` (an MPI communicator): data-parallel training, see ``_data_parallel``.
    """
    d = CLASSIFY_DEFAULTS
    executor, epochs, batch_size, lr, clip = _loop_options(d, executor, epochs, batch_size, lr, clip)
    t0 = time.perf_counter()
    if model is None:
        mean, std = SequenceClassifier.fit_normalisation(train_set.series)
        model = SequenceClassifier(
            train_set.dimensions,
            train_set.class_labels,
            cell=d["cell"] if cell is None else cell,
            hidden_size=_check_positive_int(
                "hidden_size", d["hidden_size"] if hidden_size is None else hidden_size
            ),
            num_layers=_check_positive_int(
                "num_layers", d["num_layers"] if num_layers is None else num_layers
            ),
            bidirectional=bool(bidirectional),
            mean=mean,
            std=std,
            seed=seed,
        )
    if model.config["input_size"] != train_set.dimensions:
        raise ValueError(
            f"data must have {model.config['input_size']} dimensions for this model, "
            f"got {train_set.dimensions}"
        )
    if optimizer is None:
        optimizer = Adam(model.params, lr=lr)
    index = {lab: i for i, lab in enumerate(model.labels)}
    unknown = sorted(set(train_set.labels) - set(index))
    if unknown:
        raise ValueError(f"training labels {unknown} are not among the model's class labels {model.labels}")
    y = np.array([index[lab] for lab in train_set.labels])
    sizes = np.array([len(s) for s in train_set.series])
    dp, progress, log = _data_parallel(model, optimizer, comm, check_every, executor, progress, log)

    def batch_step(idx):  # one batch (or this rank's shard of it) -> (mean loss, count, grads)
        x, lengths = model.batch([train_set.series[i] for i in idx])
        return model.loss_and_grads(x, lengths, y[idx], executor=executor)

    losses = []
    seen = 0
    t_train = time.perf_counter()
    for epoch in range(start_epoch, start_epoch + epochs):
        rng = np.random.default_rng([seed, epoch])
        batches = gdata.bucket_batches(sizes, batch_size, rng)
        bar = _progress(len(y), f"epoch {epoch + 1}/{start_epoch + epochs}", "seq", progress)
        sum_loss = 0.0
        try:
            for bidx in batches:
                loss, n, grads = (
                    batch_step(bidx) if dp is None else dp.loss_and_grads(batch_step, bidx, sizes[bidx])
                )
                clip_grad_norm(grads, clip)
                optimizer.step(grads)
                sum_loss += loss * n
                bar.update(n)
                bar.set_postfix(loss=f"{sum_loss / max(bar.n, 1):.3f}", refresh=False)
        finally:
            bar.close()
        seen += len(y)
        losses.append(sum_loss / len(y))
        if log:
            log(f"epoch {epoch + 1}: train loss {losses[-1]:.4f}")
    train_seconds = time.perf_counter() - t_train
    acc = evaluate_classifier(model, test_set, executor=executor, dist=dp)
    seconds = time.perf_counter() - t0
    info = {
        "train_seqs_seen": seen,
        "seqs_per_second": seen / max(train_seconds, 1e-9),
        "source": {"kind": "ts", "path": train_set.path, "test_path": test_set.path, "name": train_set.name},
        "epochs_done": start_epoch + epochs,
        "ranks": 1 if dp is None else dp.size,
    }
    return TrainResult(model, optimizer, losses, {"name": "accuracy", "value": acc}, seconds, info)


# -------------------------------------------------------------------------------------- generation


def generate(model: CharLM, prompt: str = "", length: int = 200, temperature: float = 1.0, seed=None) -> str:
    """Sample ``length`` characters after ``prompt`` (returned without the prompt), one ``rnn.step`` each.

    temperature T > 0 samples from softmax(logits / T); T = 0 takes the most likely character.
    """
    if not isinstance(model, CharLM):
        raise TypeError(f"model must be a CharLM (a language-model checkpoint), got {type(model).__name__}")
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    length = _check_positive_int("length", length, 0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    rng = np.random.default_rng(seed)
    vocab = model.vocab
    allowed = np.ones(len(vocab), dtype=bool)
    allowed[:2] = False  # never emit BOS or UNK
    state = None
    logits = None
    for tok in [0] + list(model.encode(prompt)):
        x = model.embedding(np.array([tok]))
        h, state = model.rnn.step(x, state)
        logits = model.head(h)[0].astype(np.float64)
    out = []
    for _ in range(length):
        z = np.where(allowed, logits, -np.inf)
        if temperature == 0:
            tok = int(np.argmax(z))
        else:
            p = np.exp(log_softmax(z / temperature))
            tok = int(rng.choice(len(vocab), p=p / p.sum()))
        out.append(vocab[tok])
        x = model.embedding(np.array([tok]))
        h, state = model.rnn.step(x, state)
        logits = model.head(h)[0].astype(np.float64)
    return "".join(out)
