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
"""

from __future__ import annotations

import hashlib
import json
import os
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
        kwargs["dtype"] = np.dtype(kwargs["dtype"])
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
    path = os.fspath(path)
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


def _read(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"checkpoint must be a .npz file, got a folder: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ValueError(
            f"{path} is not a graphrnn checkpoint (.npz readable without pickle): {exc}"
        ) from exc


def load_checkpoint(path) -> Checkpoint:
    """Read and verify a checkpoint; rebuild the model and, when saved, the optimizer bound to it."""
    path = os.fspath(path)
    arrays = _read(path)
    for key in ("meta", "checksum"):
        if key not in arrays:
            raise ValueError(f"{path} is not a graphrnn checkpoint: entry {key!r} is missing")
    stored = arrays.pop("checksum")
    if stored.dtype != np.uint8 or not np.array_equal(stored, _digest(arrays)):
        raise ValueError(f"checkpoint {path} is corrupt: SHA-256 checksum does not match its arrays")
    try:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"checkpoint {path} has unreadable meta JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not a graphrnn checkpoint: meta format is {meta.get('format')!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint format_version must be {FORMAT_VERSION}, "
            f"got {meta.get('format_version')!r} in {path}"
        )
    spec = meta.get("model") or {}
    cls_name = spec.get("class")
    composites = _composite_classes()
    if cls_name in ("CharLM", "SequenceClassifier"):
        model = composites[cls_name].from_checkpoint_meta(meta)
    else:
        model = build_module(cls_name, spec.get("config"))
    params = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    try:
        model.load_state_dict(params)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"checkpoint {path} parameters do not fit its model: {exc}") from exc

    optimizer = None
    ometa = meta.get("optimizer")
    if ometa:
        from graphrnn.optim import OPTIMIZERS

        if ometa.get("class") not in OPTIMIZERS:
            raise ValueError(
                f"optimizer class must be one of {sorted(OPTIMIZERS)}, got {ometa.get('class')!r}"
            )
        config = dict(ometa.get("config") or {})
        if "betas" in config:
            config["betas"] = tuple(config["betas"])
        optimizer = OPTIMIZERS[ometa["class"]](model.params, **config)
        state = {k[len("optim/") :]: v for k, v in arrays.items() if k.startswith("optim/")}
        optimizer.load_state(state, int(ometa.get("step", 0)))
    return Checkpoint(model, optimizer, meta)


def load(path):
    """Rebuild the model stored in the checkpoint ``path`` (see ``load_checkpoint`` for the optimizer too)."""
    return load_checkpoint(path).model
