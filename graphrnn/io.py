"""Checkpoints: one ``.npz`` file that rebuilds a model (and its optimizer) with no other input.

Layout (every entry a plain array, so the file is read with ``allow_pickle=False``):

``meta``
    JSON encoded as UTF-8 in a uint8 array::

        {"format": "graphrnn-checkpoint", "format_version": 1,
         "model": {"class": "LSTM" | "GRU" | "RNN" | "Linear" | "Embedding" | "CharLM"
                            | "SequenceClassifier", "config": {...constructor arguments...}},
         "task": "lm" | "classify" | null,
         "vocab": [characters] | null, "labels": [class labels] | null,
         "heads": {head layer name: {"class": ..., "config": ...}} (composite models),
         "optimizer": null | {"class": "Adam" | "SGD", "config": {...}, "step": int},
         "extra": {...}  (free JSON: data source, epochs, loss history, ...)}

``param/<name>``
    every entry of ``model.params``.
``optim/<slot>/<name>``
    the optimizer's state arrays (``exp_avg``, ``exp_avg_sq`` for Adam, ``momentum`` for SGD).
``checksum``
    SHA-256 (32 bytes, uint8) over every other entry in sorted name order: name, dtype, shape, bytes.
    ``load`` recomputes and compares it.

The file is written atomically: a temporary file in the same folder, flushed and fsynced, then
``os.replace``d over the target, so a crash never leaves a half-written checkpoint under the name.

Loading trusts nothing in the file. Before any array is read, every zip entry must be an uncompressed
``.npy`` (as ``save`` writes them) of a plain numeric dtype (never an object array) whose header declares
no more bytes than the entry holds, so a file cannot make ``load`` allocate more than its own size. The
entries must be exactly ``meta``, ``checksum``, ``param/*`` and (with an optimizer in meta) ``optim/*``;
the checksum must match; ``meta`` must be UTF-8 JSON of the layout above; and the parameter names and
shapes the meta's model configuration implies must equal the stored arrays' before the model is built
(so a hostile ``hidden_size`` cannot allocate gigabytes). Every failure is a ValueError naming the file
and the problem (FileNotFoundError when there is no file).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import tempfile
import zipfile
from typing import NamedTuple

import numpy as np

__all__ = ["save", "load", "load_checkpoint", "Checkpoint", "FORMAT_VERSION"]

FORMAT_NAME = "graphrnn-checkpoint"
FORMAT_VERSION = 1


class Checkpoint(NamedTuple):
    model: object
    optimizer: object  # None when the checkpoint holds no optimizer state
    meta: dict


def _recurrent_classes() -> dict:
    import graphrnn.modules as modules

    return {"RNN": modules.RNN, "LSTM": modules.LSTM, "GRU": modules.GRU}


def _composite_classes() -> dict:
    from graphrnn.layers import Embedding, Linear
    from graphrnn.train import CharLM, SequenceClassifier

    return {
        "Linear": Linear,
        "Embedding": Embedding,
        "CharLM": CharLM,
        "SequenceClassifier": SequenceClassifier,
    }


def build_module(class_name: str, config: dict):
    """Rebuild a bare recurrent module or layer from its class name and ``config``."""
    if not isinstance(config, dict):
        raise ValueError(f"model config must be a JSON object, got {type(config).__name__}")
    kwargs = dict(config)
    if "dtype" in kwargs:
        try:
            kwargs["dtype"] = np.dtype(kwargs["dtype"])
        except TypeError:
            raise ValueError(
                f"model config dtype must be float32 or float64, got {kwargs['dtype']!r}"
            ) from None
    if class_name in ("RNN", "LSTM", "GRU"):
        return _recurrent_classes()[class_name](**kwargs)
    if class_name in ("Linear", "Embedding"):
        return _composite_classes()[class_name](**kwargs)
    raise ValueError(f"model class must be one of RNN, LSTM, GRU, Linear, Embedding, got {class_name!r}")


def _model_meta(model) -> dict:
    """Class name, config and (for composite models) task, vocab, labels, heads."""
    if hasattr(model, "checkpoint_meta"):
        return model.checkpoint_meta()
    name = type(model).__name__
    if name not in ("RNN", "LSTM", "GRU", "Linear", "Embedding"):
        raise TypeError(
            "model must be a graphrnn RNN, LSTM, GRU, Linear, Embedding, CharLM or SequenceClassifier, "
            f"got {type(model).__name__}"
        )
    return {"model": {"class": name, "config": dict(model.config)}}


def _digest(arrays: dict[str, np.ndarray]) -> np.ndarray:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode("utf-8") + b"\0")
        h.update(a.dtype.str.encode("ascii") + b"\0")
        h.update(repr(tuple(a.shape)).encode("ascii") + b"\0")
        h.update(a.tobytes())
    return np.frombuffer(h.digest(), dtype=np.uint8).copy()


def save(path, model, optimizer=None, *, extra: dict | None = None) -> str:
    """Write ``model`` (and ``optimizer``'s state) to the checkpoint file ``path``; returns the path.

    The file is written exactly at ``path`` (no suffix is added). ``extra`` is stored as free JSON.
    """
    path = _fspath(path)
    if not path:
        raise ValueError("path must name a file, got an empty string")
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "task": None,
        "vocab": None,
        "labels": None,
        "heads": {},
    }
    meta.update(_model_meta(model))
    params = model.params
    arrays: dict[str, np.ndarray] = {}
    for name, p in params.items():
        if "/" in name:
            raise ValueError(f"parameter names must not contain '/', got {name!r}")
        arrays[f"param/{name}"] = np.asarray(p)
    if optimizer is not None:
        if not hasattr(optimizer, "state_arrays"):
            raise TypeError(f"optimizer must be a graphrnn SGD or Adam, got {type(optimizer).__name__}")
        if set(optimizer.params) != set(params):
            raise ValueError(
                f"optimizer must hold the model's parameters {sorted(params)}, got {sorted(optimizer.params)}"
            )
        meta["optimizer"] = {
            "class": type(optimizer).__name__,
            "config": optimizer.config,
            "step": int(optimizer.steps),
        }
        for key, a in optimizer.state_arrays().items():
            arrays[f"optim/{key}"] = np.asarray(a)
    else:
        meta["optimizer"] = None
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"extra must be a dict (JSON object) or None, got {type(extra).__name__}")
    meta["extra"] = extra or {}
    try:
        text = json.dumps(meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint meta must be JSON-serialisable: {exc}") from exc
    arrays["meta"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()
    arrays["checksum"] = _digest(arrays)

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"folder for checkpoint {path!r} does not exist: {folder}")
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable (not possible on every platform)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


MAX_ENTRIES = 100_000


def _check_entries(path: str) -> None:
    """Vet every zip entry's .npy header before anything is read (see the module docstring)."""
    def bad(why):
        return ValueError(f"{path} is not a graphrnn checkpoint: {why}")

    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_ENTRIES:
            raise bad(f"it holds {len(infos)} entries (at most {MAX_ENTRIES})")
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise bad("an entry name occurs twice")
        for info in infos:
            name = info.filename
            if not name.endswith(".npy"):
                raise bad(f"entry {name!r} is not a .npy array")
            if info.compress_type != zipfile.ZIP_STORED:
                raise bad(f"entry {name!r} is compressed (checkpoints store arrays uncompressed)")
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise bad(f"entry {name!r} has .npy format version {version} (1.0 or 2.0 expected)")
                header = f.tell()
            if dtype.hasobject or dtype.kind not in "biuf":
                raise bad(f"entry {name!r} holds {dtype} data (numbers expected, never objects)")
            declared = math.prod(shape) * dtype.itemsize
            if declared > info.file_size - header:
                raise bad(f"entry {name!r} declares shape {shape} ({declared} bytes of {dtype}) but holds "
                          f"{max(info.file_size - header, 0)} bytes")


def _fspath(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike naming a checkpoint file, got {type(path).__name__}")
    return os.fspath(path)


def _read(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"checkpoint must be a .npz file, got a folder: {path}")
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block, a device never end
        raise ValueError(f"checkpoint must be a regular .npz file, got a special file: {path}")
    try:
        _check_entries(path)
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, RecursionError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(f"{path} is not a graphrnn checkpoint"):
            raise
        raise ValueError(
            f"{path} is not a graphrnn checkpoint (.npz readable without pickle): {exc}"
        ) from exc


_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
_COMPOSITE_DEFAULTS = {  # the constructors' defaults (graphrnn.train), for configs that leave them out
    "CharLM": {"cell": "lstm", "hidden_size": 128, "num_layers": 1, "embedding_dim": 32},
    "SequenceClassifier": {"cell": "lstm", "hidden_size": 64, "num_layers": 1, "bidirectional": False},
}


def _size(where: str, cfg: dict, key: str, default=None) -> int:
    v = cfg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{where} {key} must be an int >= 1, got {v!r}")
    return v


def _flag(where: str, cfg: dict, key: str, default: bool) -> bool:
    v = cfg.get(key, default)
    if not isinstance(v, bool):
        raise ValueError(f"{where} {key} must be true or false, got {v!r}")
    return v


def _rnn_shapes(where, cls_name, cfg, input_size=None, hidden_size=None, num_layers=None, bidirectional=None):
    from graphrnn.cells import StackSpec

    I = input_size if input_size is not None else _size(where, cfg, "input_size")
    H = hidden_size if hidden_size is not None else _size(where, cfg, "hidden_size")
    L = num_layers if num_layers is not None else _size(where, cfg, "num_layers", 1)
    D = bidirectional if bidirectional is not None else _flag(where, cfg, "bidirectional", False)
    cell = {"RNN": "rnn_tanh", "LSTM": "lstm", "GRU": "gru"}[cls_name]
    return StackSpec(cell, I, H, L, D, _flag(where, cfg, "bias", True)).param_shapes()


def _linear_shapes(where, cfg, in_features=None, out_features=None):
    n_in = in_features if in_features is not None else _size(where, cfg, "in_features")
    n_out = out_features if out_features is not None else _size(where, cfg, "out_features")
    shapes = {"weight": (n_out, n_in)}
    if _flag(where, cfg, "bias", True):
        shapes["bias"] = (n_out,)
    return shapes


def _expected_shapes(meta: dict) -> dict:
    """{param name: shape} of the model that ``meta`` describes, computed without building it."""
    spec = meta["model"]
    cls_name, cfg = spec.get("class"), spec.get("config")
    where = f"meta model {cls_name} config"
    if not isinstance(cfg, dict):
        raise ValueError(f"meta model config must be a JSON object, got {type(cfg).__name__}")
    if cls_name in _GATES:
        return _rnn_shapes(where, cls_name, cfg)
    if cls_name == "Linear":
        return _linear_shapes(where, cfg)
    if cls_name == "Embedding":
        return {"weight": (_size(where, cfg, "num_embeddings"), _size(where, cfg, "embedding_dim"))}
    if cls_name not in _COMPOSITE_DEFAULTS:
        raise ValueError(f"meta model class must be one of RNN, LSTM, GRU, Linear, Embedding, CharLM, "
                         f"SequenceClassifier, got {cls_name!r}")
    d = _COMPOSITE_DEFAULTS[cls_name]
    cell = cfg.get("cell", d["cell"])
    rnn_class = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}.get(cell) if isinstance(cell, str) else None
    if rnn_class is None:
        raise ValueError(f"{where} cell must be one of gru, lstm, rnn, got {cell!r}")
    H = _size(where, cfg, "hidden_size", d["hidden_size"])
    L = _size(where, cfg, "num_layers", d["num_layers"])
    if cls_name == "CharLM":
        vocab = meta.get("vocab")
        if not isinstance(vocab, list):
            raise ValueError("a CharLM checkpoint must store its vocab (a list of strings) in meta")
        V, E = len(vocab), _size(where, cfg, "embedding_dim", d["embedding_dim"])
        parts = {"embedding": {"weight": (V, E)},
                 "rnn": _rnn_shapes(where, rnn_class, {}, E, H, L, False),
                 "head": {"weight": (V, H), "bias": (V,)}}
    else:
        labels = meta.get("labels")
        if not isinstance(labels, list):
            raise ValueError("a SequenceClassifier checkpoint must store its class labels in meta")
        D = _flag(where, cfg, "bidirectional", d["bidirectional"])
        parts = {"rnn": _rnn_shapes(where, rnn_class, {}, _size(where, cfg, "input_size"), H, L, D),
                 "head": {"weight": (len(labels), (2 if D else 1) * H), "bias": (len(labels),)}}
    return {f"{part}.{name}": shape for part, shapes in parts.items() for name, shape in shapes.items()}


def _check_params_fit(path: str, meta: dict, params: dict) -> None:
    try:
        expected = _expected_shapes(meta)
    except ValueError as exc:
        raise ValueError(f"checkpoint {path}: {exc}") from None
    missing = sorted(set(expected) - set(params))
    unexpected = sorted(set(params) - set(expected))
    wrong = {k: (params[k].shape, expected[k]) for k in sorted(set(expected) & set(params))
             if params[k].shape != tuple(expected[k])}
    if missing or unexpected or wrong:
        shown = [f"{k} {got} (expected {want})" for k, (got, want) in wrong.items()]
        shown = shown[:6] + ([f"and {len(shown) - 6} more"] if len(shown) > 6 else [])
        raise ValueError(
            f"checkpoint {path} parameters do not fit the model its meta describes: missing {missing}, "
            f"unexpected {unexpected}, wrong shapes " + (", ".join(shown) or "none")
        )
    for k, a in params.items():
        if a.dtype.kind != "f":
            raise ValueError(f"checkpoint {path} parameter {k!r} must be a float array, got dtype {a.dtype}")


def load_checkpoint(path) -> Checkpoint:
    """Read and verify a checkpoint; rebuild the model and, when saved, the optimizer bound to it."""
    path = _fspath(path)
    arrays = _read(path)
    for key in ("meta", "checksum"):
        if key not in arrays:
            raise ValueError(f"{path} is not a graphrnn checkpoint: entry {key!r} is missing")
    known = ("meta", "checksum")
    unknown = sorted(k for k in arrays if k not in known and not k.startswith(("param/", "optim/")))
    if unknown:
        raise ValueError(f"{path} is not a graphrnn checkpoint: unknown entries {unknown} (expected meta, "
                         "checksum, param/<name> and optim/<slot>/<name>)")
    stored = arrays.pop("checksum")
    if stored.dtype != np.uint8 or stored.shape != (32,) or not np.array_equal(stored, _digest(arrays)):
        raise ValueError(f"checkpoint {path} is corrupt: SHA-256 checksum does not match its arrays")
    raw = arrays["meta"]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"checkpoint {path} meta must be a 1-D uint8 array of UTF-8 JSON, "
                         f"got {raw.dtype} of shape {raw.shape}")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"checkpoint {path} has unreadable meta JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{path} is not a graphrnn checkpoint: meta format is {got!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint format_version must be {FORMAT_VERSION}, "
            f"got {meta.get('format_version')!r} in {path}"
        )
    spec = meta.get("model")
    if not isinstance(spec, dict):
        raise ValueError(f"checkpoint {path} meta model must be a JSON object with class and config, "
                         f"got {type(spec).__name__}")
    cls_name = spec.get("class")
    params = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    _check_params_fit(path, meta, params)  # before building: nothing is allocated for a hostile config
    composites = _composite_classes()
    try:
        if cls_name in ("CharLM", "SequenceClassifier"):
            model = composites[cls_name].from_checkpoint_meta(meta)
        else:
            model = build_module(cls_name, spec.get("config"))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"checkpoint {path}: cannot rebuild its {cls_name} from meta: {exc}") from exc
    try:
        model.load_state_dict(params)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"checkpoint {path} parameters do not fit its model: {exc}") from exc

    optimizer = None
    ometa = meta.get("optimizer")
    state = {k[len("optim/") :]: v for k, v in arrays.items() if k.startswith("optim/")}
    if ometa is None and state:
        raise ValueError(f"checkpoint {path} holds optimizer state {sorted(state)[:3]}... but its meta has "
                         "no optimizer")
    if ometa is not None:
        from graphrnn.optim import OPTIMIZERS

        if not isinstance(ometa, dict) or ometa.get("class") not in OPTIMIZERS:
            got = ometa.get("class") if isinstance(ometa, dict) else ometa
            raise ValueError(
                f"checkpoint {path} meta optimizer class must be one of {sorted(OPTIMIZERS)}, got {got!r}"
            )
        try:
            config = dict(ometa.get("config") or {})
            if "betas" in config:
                config["betas"] = tuple(config["betas"])
            optimizer = OPTIMIZERS[ometa["class"]](model.params, **config)
            step = ometa.get("step", 0)
            if isinstance(step, bool) or not isinstance(step, int):
                raise ValueError(f"step must be an int >= 0, got {step!r}")
            optimizer.load_state(state, step)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"checkpoint {path}: bad optimizer in meta or optim/ arrays: {exc}") from exc
    return Checkpoint(model, optimizer, meta)


def load(path):
    """Rebuild the model stored in the checkpoint ``path`` (see ``load_checkpoint`` for the optimizer too)."""
    return load_checkpoint(path).model
