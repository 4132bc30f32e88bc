"""Data for the main job: the standard-library docstring corpus, plain text files, UEA/UCR ``.ts`` files,
and length-bucketed batching.

Default corpus
    The docstrings of the running Python's standard library, found with ``sysconfig`` and read with
    ``ast`` (no import, no download). Files are visited in sorted path order; test folders (``test``,
    ``tests``, ``idle_test``, which covers ``lib2to3/tests``, ``idlelib/idle_test`` ...), ``test_*.py``
    files, ``site-packages``/``dist-packages`` and ``__pycache__`` are skipped. Within a file the
    docstrings come in source order (module, then each class and function, depth first). Every 10th
    docstring (index % 10 == 9) is held out; afterwards each docstring longer than ``chunk_len``
    characters is cut into chunks of at most ``chunk_len``. The list of docstrings is cached as JSON under
    ``$GRAPHRNN_CACHE`` (default ``$XDG_CACHE_HOME/graphrnn`` or ``~/.cache/graphrnn``), keyed on the
    Python version, so only the first run parses the sources.

Text files (``--text FILE``)
    Paragraphs (separated by blank lines) are the units; every 10th is held out, then chunked. A file
    with fewer than 20 paragraphs is cut into chunks first and every 10th chunk is held out.

UEA/UCR ``.ts`` files
    Header lines start with ``@`` (``@problemName``, ``@timeStamps``, ``@missing``, ``@univariate``,
    ``@dimensions``/``@dimension``, ``@equalLength``, ``@seriesLength``, ``@classLabel true l1 l2 ...``),
    then ``@data``; ``#`` lines are comments. Each data row is ``d1:d2:...:dC:label`` where each dimension
    is comma-separated values. Missing values (``?``, ``NaN``) become NaN. Within a case, trailing time
    steps missing in every dimension are dropped (so NaN-padded equal-length files give back the true
    lengths); a dimension shorter than the case's longest is padded with NaN. Time-stamped data and
    regression targets are rejected with a ValueError.

    Hostile or broken files: only regular files are opened (a FIFO would block, a device never end);
    every problem is a ValueError naming the file and line; values must be finite numbers (an inf is an
    error, not data); sizes declared in the header (``@dimensions``, ``@seriesLength``) are only compared
    with the data, never used to allocate, and a case whose dimensions differ so much in length that
    NaN padding would dwarf the values it holds is refused, so memory stays proportional to the file. What to do with the remaining NaN is the
    caller's policy: the classifier in ``graphrnn.train`` standardises each channel with the training
    set's mean and standard deviation (ignoring NaN) and then replaces NaN with 0, the channel mean.
"""

from __future__ import annotations

import ast
import json
import math
import os
import platform
import stat
import sys
import sysconfig
import tempfile
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "BOS",
    "UNK",
    "TextCorpus",
    "TSDataset",
    "stdlib_docstrings",
    "stdlib_corpus",
    "text_corpus",
    "build_vocab",
    "encode",
    "decode",
    "lm_batch",
    "read_ts",
    "load_ts_pair",
    "bucket_batches",
    "cache_dir",
]

BOS = "<bos>"  # index 0: the input before a sequence's first character
UNK = "<unk>"  # index 1: any character the training text never showed
CORPUS_VERSION = 1  # bump when the extraction rule changes (invalidates caches)
SKIP_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})
HOLDOUT_EVERY = 10


@dataclass
class TextCorpus:
    """Sequences (strings) for a character-level language model, split into train and held-out."""

    train: list[str]
    heldout: list[str]
    source: dict = field(default_factory=dict)  # JSON-able description, stored in checkpoints

    @property
    def train_chars(self) -> int:
        return sum(map(len, self.train))

    @property
    def heldout_chars(self) -> int:
        return sum(map(len, self.heldout))


# ----------------------------------------------------------------------------------------- caching


def cache_dir() -> str:
    """``$GRAPHRNN_CACHE``, else ``$XDG_CACHE_HOME/graphrnn``, else ``~/.cache/graphrnn``."""
    if os.environ.get("GRAPHRNN_CACHE"):
        return os.environ["GRAPHRNN_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "graphrnn")


def _write_json_atomic(path: str, obj) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------------------------- stdlib docstrings


def _stdlib_root() -> str:
    return sysconfig.get_paths()["stdlib"]


def _iter_stdlib_files(root: str):
    """Every .py file under ``root`` that is not a test, in sorted relative-path order."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
        for name in files:
            if name.endswith(".py") and not name.startswith("test_"):
                full = os.path.join(folder, name)
                found.append((os.path.relpath(full, root).replace(os.sep, "/"), full))
    found.sort()
    return found


def _docstrings_of(tree: ast.AST) -> list[str]:
    """Module, class and function docstrings in source order (depth first)."""
    out: list[str] = []
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)

    def visit(node):
        if isinstance(node, kinds):
            doc = ast.get_docstring(node, clean=True)
            if doc and doc.strip():
                out.append(doc)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def _extract_stdlib(root: str) -> list[str]:
    docs: list[str] = []
    for _, path in _iter_stdlib_files(root):
        try:
            with open(path, "rb") as f:
                source = f.read()
            with warnings.catch_warnings():  # invalid escapes etc. in old sources are not our concern
                warnings.simplefilter("ignore")
                tree = ast.parse(source, filename=path)
        except (SyntaxError, ValueError, OSError, UnicodeDecodeError):
            continue
        docs.extend(_docstrings_of(tree))
    return docs


def stdlib_docstrings(*, use_cache: bool = True) -> list[str]:
    """Every docstring of the running Python's standard library, in the order described above."""
    root = _stdlib_root()
    if not os.path.isdir(root):
        raise FileNotFoundError(f"the standard library folder reported by sysconfig does not exist: {root}")
    key = f"stdlib-docstrings-{sys.implementation.name}-{platform.python_version()}-v{CORPUS_VERSION}.json"
    path = os.path.join(cache_dir(), key)
    if use_cache and os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                cached = json.load(f)
            if cached.get("root") == root and isinstance(cached.get("docstrings"), list):
                return cached["docstrings"]
        except (OSError, ValueError, AttributeError):
            pass  # unreadable cache: rebuild it
    docs = _extract_stdlib(root)
    if not docs:
        raise ValueError(f"found no docstrings in the standard library at {root}")
    if use_cache:
        try:
            _write_json_atomic(path, {"root": root, "python": platform.python_version(), "docstrings": docs})
        except OSError:
            pass  # read-only home: work without a cache
    return docs


def _chunks(text: str, chunk_len: int) -> list[str]:
    return [text[i : i + chunk_len] for i in range(0, len(text), chunk_len)]


def _check_chunk_len(chunk_len) -> int:
    if isinstance(chunk_len, bool) or not isinstance(chunk_len, (int, np.integer)) or chunk_len < 1:
        raise ValueError(f"chunk_len must be an int >= 1, got {chunk_len!r}")
    return int(chunk_len)


def _split_units(units: list[str], chunk_len: int) -> tuple[list[str], list[str]]:
    train, held = [], []
    for i, u in enumerate(units):
        (held if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1 else train).extend(_chunks(u, chunk_len))
    return train, held


def stdlib_corpus(chunk_len: int = 256, *, use_cache: bool = True) -> TextCorpus:
    """The default corpus: stdlib docstrings, every 10th held out, then cut into chunks of ``chunk_len``."""
    chunk_len = _check_chunk_len(chunk_len)
    docs = stdlib_docstrings(use_cache=use_cache)
    train, held = _split_units(docs, chunk_len)
    source = {"kind": "stdlib", "python": platform.python_version(), "chunk_len": chunk_len}
    return TextCorpus(train, held, source)


def _check_regular_file(path: str, what: str) -> None:
    """A FIFO would block ``open`` forever and a device (/dev/zero) never ends: only regular files."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError(
            f"{what} must be a regular file, got a special file (FIFO, device or socket): {path}"
        )


def text_corpus(path, chunk_len: int = 256) -> TextCorpus:
    """A user's UTF-8 text file, split as described in the module docstring.

    Binary files (holding NUL bytes) and files that are not valid UTF-8 are a ValueError naming the
    byte offset of the first problem.
    """
    chunk_len = _check_chunk_len(chunk_len)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"text file not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"--text must be a text file, got a folder: {path}")
    _check_regular_file(path, "--text")
    with open(path, "rb") as f:
        raw = f.read()
    nul = raw.find(b"\0")
    if nul >= 0:
        raise ValueError(
            f"--text must be a UTF-8 text file, got binary data (a NUL byte at offset {nul}) in {path}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"--text must be a UTF-8 text file, got byte 0x{raw[e.start]:02x} at offset {e.start} that is "
            f"not UTF-8 in {path} (convert it, e.g. iconv -f latin1 -t utf-8)"
        ) from None
    text = text.replace("\r\n", "\n")
    paragraphs = [p.strip("\n") for p in text.split("\n\n")]
    paragraphs = [p for p in paragraphs if p.strip()]
    if len(paragraphs) >= 2 * HOLDOUT_EVERY:
        train, held = _split_units(paragraphs, chunk_len)
    else:
        train, held = _split_units(_chunks(text, chunk_len), chunk_len)
    if not train or not held:
        raise ValueError(
            f"text file must hold at least {HOLDOUT_EVERY} chunks of {chunk_len} characters "
            "(one is held out), "
            f"got {len(text)} characters in {path}"
        )
    return TextCorpus(train, held, {"kind": "text", "path": os.path.abspath(path), "chunk_len": chunk_len})


# --------------------------------------------------------------------------------------- encoding


def build_vocab(texts) -> list[str]:
    """[BOS, UNK] followed by every character of ``texts`` in sorted order."""
    chars = set()
    for t in texts:
        chars.update(t)
    return [BOS, UNK] + sorted(chars)


def encode(text: str, vocab) -> np.ndarray:
    """Characters -> int32 indices into ``vocab`` (characters not in it map to UNK)."""
    index = {c: i for i, c in enumerate(vocab)}
    unk = index[UNK]
    return np.fromiter((index.get(c, unk) for c in text), dtype=np.int32, count=len(text))


def decode(indices, vocab) -> str:
    """Indices -> text; BOS is dropped and UNK shown as U+FFFD."""
    out = []
    for i in np.asarray(indices).ravel():
        tok = vocab[int(i)]
        if tok == BOS:
            continue
        out.append("\ufffd" if tok == UNK else tok)
    return "".join(out)


def lm_batch(seqs: list[np.ndarray]):
    """Encoded sequences -> (inputs (T, B), targets (T, B), lengths (B,)), time-major, padded with 0.

    inputs[t, b] = seqs[b][t - 1] (BOS at t = 0), targets[t, b] = seqs[b][t]; position t counts when
    t < lengths[b] = len(seqs[b]).
    """
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    T, B = (int(lengths.max()) if len(seqs) else 0), len(seqs)
    inputs = np.zeros((T, B), dtype=np.int32)
    targets = np.zeros((T, B), dtype=np.int32)
    for b, s in enumerate(seqs):
        n = len(s)
        targets[:n, b] = s
        inputs[1:n, b] = s[: n - 1]
    return inputs, targets, lengths


# -------------------------------------------------------------------------------------- .ts files


@dataclass
class TSDataset:
    """One ``.ts`` file: ``series[i]`` is a float64 array (T_i, C); ``labels[i]`` its class label (str)."""

    name: str
    series: list[np.ndarray]
    labels: list[str]
    class_labels: list[str]
    dimensions: int
    path: str

    def __len__(self) -> int:
        return len(self.series)


def _parse_bool(path, lineno, tag, value) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise ValueError(f"{path}:{lineno}: {tag} must be true or false, got {value.strip()!r}")
    return v == "true"


def _parse_values(text: str, path: str, lineno: int) -> np.ndarray:
    out = []
    for tok in text.split(","):
        tok = tok.strip()
        if tok in ("?", "", "NaN", "nan"):
            out.append(np.nan)
            continue
        try:
            v = float(tok)
        except ValueError:
            raise ValueError(f"{path}:{lineno}: values must be numbers or '?', got {tok[:40]!r}") from None
        if not math.isfinite(v):
            raise ValueError(f"{path}:{lineno}: values must be finite numbers or '?', got {tok[:40]!r}")
        out.append(v)
    return np.array(out, dtype=np.float64)


MAX_PADDING = 16  # a case may hold at most this many cells (T * dimensions) per value in the file, plus 1024


def read_ts(path) -> TSDataset:
    """Read one UEA/UCR ``.ts`` classification file (see the module docstring for the format and NaN rule)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f".ts file not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f".ts file must be a file, got a folder: {path}")
    _check_regular_file(path, ".ts file")
    header: dict = {}
    label_set: set = set()
    class_labels: list[str] | None = None
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                if not line.startswith("@"):
                    raise ValueError(
                        f"{path}:{lineno}: expected a header line starting with '@', got {line[:40]!r}"
                    )
                tag, _, rest = line.partition(" ")
                tag = tag.lower()
                if tag == "@data":
                    in_data = True
                    if class_labels is None:
                        raise ValueError(
                            f"{path}: header must declare '@classLabel true <labels>' before @data"
                        )
                elif tag == "@problemname":
                    header["name"] = rest.strip()
                elif tag == "@timestamps":
                    if _parse_bool(path, lineno, tag, rest):
                        raise ValueError(f"{path}: time-stamped series (@timeStamps true) are not supported")
                elif tag in ("@univariate", "@equallength", "@missing"):
                    header[tag] = _parse_bool(path, lineno, tag, rest)
                elif tag in ("@dimensions", "@dimension", "@serieslength"):
                    try:
                        header["@dimension" if tag.startswith("@dimension") else tag] = int(rest.strip())
                    except ValueError:
                        raise ValueError(
                            f"{path}:{lineno}: {tag} must be an integer, got {rest.strip()!r}"
                        ) from None
                elif tag == "@classlabel":
                    parts = rest.split()
                    if not parts or not _parse_bool(path, lineno, tag, parts[0]):
                        raise ValueError(
                            f"{path}: only classification files are supported (@classLabel true ...)"
                        )
                    class_labels = parts[1:]
                    label_set = set(class_labels)
                    if not class_labels:
                        raise ValueError(f"{path}:{lineno}: @classLabel true must list the class labels")
                elif tag == "@targetlabel":
                    if _parse_bool(path, lineno, tag, rest.split()[0] if rest.split() else ""):
                        raise ValueError(f"{path}: regression files (@targetLabel true) are not supported")
                # other tags are informative only
                continue
            fields = line.split(":")
            if len(fields) < 2:
                raise ValueError(
                    f"{path}:{lineno}: a data row must be 'values[:values...]:label', got {line[:60]!r}"
                )
            label = fields[-1].strip()
            if label not in label_set:
                shown = class_labels if len(class_labels) <= 20 else class_labels[:20] + ["..."]
                raise ValueError(f"{path}:{lineno}: class label must be one of {shown}, got {label[:40]!r}")
            dims = [_parse_values(d, path, lineno) for d in fields[:-1]]
            expected_dims = header.get("@dimension", 1 if header.get("@univariate", False) else None)
            if expected_dims is not None and len(dims) != expected_dims:
                raise ValueError(f"{path}:{lineno}: expected {expected_dims} dimensions, got {len(dims)}")
            if series and len(dims) != series[0].shape[1]:
                raise ValueError(
                    f"{path}:{lineno}: every row must have {series[0].shape[1]} dimensions, got {len(dims)}"
                )
            T = max(len(d) for d in dims)
            held = sum(len(d) for d in dims)
            if T * len(dims) > MAX_PADDING * held + 1024:
                raise ValueError(
                    f"{path}:{lineno}: the {len(dims)} dimensions of this case hold {min(map(len, dims))} to "
                    f"{T} values: NaN padding to {T} x {len(dims)} would need {T * len(dims)} cells for "
                    f"{held} values")
            arr = np.full((T, len(dims)), np.nan)
            for c, d in enumerate(dims):
                arr[: len(d), c] = d
            present = np.flatnonzero(~np.isnan(arr).all(axis=1))
            arr = arr[: (present[-1] + 1 if present.size else 0)]
            series.append(arr)
            labels.append(label)
    if not in_data:
        raise ValueError(f"{path}: no @data section found")
    if not series:
        raise ValueError(f"{path}: the @data section holds no rows")
    name = header.get("name") or os.path.basename(path).rsplit("_", 1)[0]
    return TSDataset(name, series, labels, list(class_labels), series[0].shape[1], os.path.abspath(path))


def resolve_ts_pair(path) -> tuple[str, str]:
    """PATH = ``X_TRAIN.ts`` (with ``X_TEST.ts`` beside it) or a folder holding exactly one such pair."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"--data path not found: {path}")
    if os.path.isdir(path):
        trains = sorted(f for f in os.listdir(path) if f.upper().endswith("_TRAIN.TS"))
        if len(trains) != 1:
            raise ValueError(
                f"--data folder must hold exactly one *_TRAIN.ts file, found {len(trains)} in {path}"
            )
        train = os.path.join(path, trains[0])
    else:
        train = path
    base = os.path.basename(train)
    if not base.upper().endswith("_TRAIN.TS"):
        raise ValueError(f"--data must be a *_TRAIN.ts file or a folder holding one, got {path}")
    stem = base[: -len("_TRAIN.ts")]
    folder = os.path.dirname(train)
    for cand in (stem + "_TEST.ts", stem + "_TEST.TS", stem + "_test.ts"):
        test = os.path.join(folder, cand)
        if os.path.exists(test):
            return train, test
    raise FileNotFoundError(f"test file {stem}_TEST.ts not found beside {train}")


def load_ts_pair(path) -> tuple[TSDataset, TSDataset]:
    """(train, test) datasets from PATH (see ``resolve_ts_pair``); the two must agree on dimensions."""
    train_path, test_path = resolve_ts_pair(path)
    train, test = read_ts(train_path), read_ts(test_path)
    if train.dimensions != test.dimensions:
        raise ValueError(
            f"train and test must have the same dimensions, got {train.dimensions} and {test.dimensions}"
        )
    unknown = sorted(set(test.labels) - set(train.class_labels))
    if unknown:
        raise ValueError(
            f"test labels {unknown} are not among the train file's class labels {train.class_labels}"
        )
    return train, test


# --------------------------------------------------------------------------------------- batching


def bucket_batches(
    lengths, batch_size: int, rng: np.random.Generator | None = None, *, bucket_batches_: int = 32
) -> list[np.ndarray]:
    """Split indices 0..N-1 into batches of similar length, so padding is small.

    With ``rng``: shuffle all indices, cut them into buckets of ``bucket_batches_ * batch_size``, sort
    each bucket by length, cut it into batches and shuffle the order of all batches (seeded, so a run is
    reproducible). Without ``rng``: sort everything by length (evaluation order, deterministic).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    lengths = np.asarray(lengths)
    n = len(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    perm = rng.permutation(n)
    bucket = batch_size * bucket_batches_
    batches = []
    for s in range(0, n, bucket):
        idx = perm[s : s + bucket]
        idx = idx[np.argsort(lengths[idx], kind="stable")]
        batches.extend(idx[i : i + batch_size] for i in range(0, len(idx), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]
