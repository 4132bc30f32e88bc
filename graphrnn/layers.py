"""Feed-forward layers for the heads around a recurrent stack: ``Linear`` and ``Embedding``.

Both follow the recurrent modules' conventions: NumPy arrays in and out, ``params`` is a dict
name -> live array (optimizers update it in place), ``config`` holds the JSON-able constructor
arguments, ``forward`` returns what ``backward`` needs (a tape) and ``backward`` returns a dict of
gradients keyed like ``params`` (plus ``"input"`` for ``Linear``). Nothing is kept on ``self`` between
calls, so one layer may serve several calls at once.

Letters: N rows (any leading shape flattened), I input features, O output features, V vocabulary
size, E embedding size.
"""

from __future__ import annotations

import numpy as np

from graphrnn._checks import as_array
from graphrnn.cells import SUPPORTED_DTYPES

__all__ = ["Linear", "Embedding"]


def _check_size(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def _check_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt not in [np.dtype(d) for d in SUPPORTED_DTYPES]:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _as_float(name: str, x, dtype: np.dtype) -> np.ndarray:
    """Cast a float array to ``dtype``; int, bool, complex and object arrays are a TypeError."""
    a = as_array(name, x, "a float array")
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must be a float array, got dtype {a.dtype}")
    return np.asarray(a, dtype=dtype, order="C")  # (ascontiguousarray would turn 0-d into 1-d)


def _check_tape(tape, layer: str):
    if not (isinstance(tape, tuple) and len(tape) == 1 and isinstance(tape[0], np.ndarray)):
        raise TypeError(f"tape must be the second value returned by this {layer}'s forward(), "
                        f"got {type(tape).__name__}")
    return tape


class _Layer:
    """Shared parameter plumbing (state_dict / load_state_dict strict on names and shapes)."""

    params: dict[str, np.ndarray]
    dtype: np.dtype

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays into the live parameters (in place, so optimizers keep their references)."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict name -> array, got {type(state).__name__}")
        missing = sorted(set(self.params) - set(state))
        extra = sorted(set(state) - set(self.params))
        if missing or extra:
            raise ValueError(
                f"state names must be {sorted(self.params)}, got missing {missing}, extra {extra}"
            )
        for name, p in self.params.items():
            v = _as_float(f"state[{name!r}]", state[name], self.dtype)
            if v.shape != p.shape:
                raise ValueError(f"state[{name!r}] must have shape {p.shape}, got {v.shape}")
        for name, p in self.params.items():
            np.copyto(p, np.asarray(state[name], dtype=self.dtype))


class Linear(_Layer):
    """y = x W^T + b on the last axis: x (..., I) -> y (..., O); W (O, I), b (O,).

    Initialised like PyTorch's ``nn.Linear``: W and b uniform in (-1/sqrt(I), 1/sqrt(I)).
    """

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, seed=None):
        self.in_features = _check_size("in_features", in_features)
        self.out_features = _check_size("out_features", out_features)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be a bool, got {type(bias).__name__} {bias!r}")
        self.bias = bool(bias)
        self.dtype = _check_dtype(dtype)
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.in_features)
        self.params = {
            "weight": rng.uniform(-bound, bound, (self.out_features, self.in_features)).astype(self.dtype)
        }
        if self.bias:
            self.params["bias"] = rng.uniform(-bound, bound, self.out_features).astype(self.dtype)
        self.config = {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias,
            "dtype": self.dtype.name,
        }

    def _input(self, x) -> np.ndarray:
        x = _as_float("x", x, self.dtype)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {x.shape}")
        return x

    def __call__(self, x) -> np.ndarray:
        return self.forward(x)[0]

    def forward(self, x):
        """x (..., I) -> (y (..., O), tape)."""
        x = self._input(x)
        x2 = x.reshape(-1, self.in_features)
        y = x2 @ self.params["weight"].T
        if self.bias:
            y += self.params["bias"]
        return y.reshape(x.shape[:-1] + (self.out_features,)), (x,)

    def backward(self, tape, grad_output) -> dict[str, np.ndarray]:
        """Gradients of sum(y * grad_output): {"weight", "bias" (when present), "input"}."""
        (x,) = _check_tape(tape, "Linear")
        g = _as_float("grad_output", grad_output, self.dtype)
        if g.shape != x.shape[:-1] + (self.out_features,):
            raise ValueError(
                f"grad_output must have shape {x.shape[:-1] + (self.out_features,)}, got {g.shape}"
            )
        g2 = g.reshape(-1, self.out_features)
        x2 = x.reshape(-1, self.in_features)
        grads = {"weight": g2.T @ x2}
        if self.bias:
            grads["bias"] = g2.sum(axis=0)
        grads["input"] = (g2 @ self.params["weight"]).reshape(x.shape)
        return grads


class Embedding(_Layer):
    """Row lookup: indices (...) of ints in [0, V) -> vectors (..., E); weight (V, E).

    Initialised like PyTorch's ``nn.Embedding``: weight ~ N(0, 1).
    """

    def __init__(self, num_embeddings, embedding_dim, *, dtype=np.float32, seed=None):
        self.num_embeddings = _check_size("num_embeddings", num_embeddings)
        self.embedding_dim = _check_size("embedding_dim", embedding_dim)
        self.dtype = _check_dtype(dtype)
        rng = np.random.default_rng(seed)
        self.params = {
            "weight": rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)
        }
        self.config = {
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "dtype": self.dtype.name,
        }

    def _indices(self, idx) -> np.ndarray:
        a = as_array("indices", idx, "an integer array")
        if a.dtype.kind not in "iu":
            raise TypeError(f"indices must be an integer array, got dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() >= self.num_embeddings):
            raise ValueError(
                f"indices must lie in [0, {self.num_embeddings}), got values in [{a.min()}, {a.max()}]"
            )
        return a.astype(np.intp, copy=False)

    def __call__(self, idx) -> np.ndarray:
        return self.forward(idx)[0]

    def forward(self, idx):
        """idx (...) ints -> (vectors (..., E), tape)."""
        idx = self._indices(idx)
        return self.params["weight"][idx], (idx,)

    def backward(self, tape, grad_output) -> dict[str, np.ndarray]:
        """Gradient of sum(out * grad_output) w.r.t. the weight: rows scatter-added by index."""
        (idx,) = _check_tape(tape, "Embedding")
        g = _as_float("grad_output", grad_output, self.dtype)
        if g.shape != idx.shape + (self.embedding_dim,):
            raise ValueError(
                f"grad_output must have shape {idx.shape + (self.embedding_dim,)}, got {g.shape}"
            )
        gw = np.zeros_like(self.params["weight"])
        np.add.at(gw, idx.ravel(), g.reshape(-1, self.embedding_dim))
        return {"weight": gw}
