"""Losses that return their value and their gradient together: softmax cross-entropy and MSE.

``cross_entropy`` takes logits (N, C) with targets (N,), or time-major logits (T, B, C) with targets
(T, B) and optional per-sequence ``lengths`` (B,): position (t, b) counts when t < lengths[b]. An
explicit boolean ``mask`` shaped like the targets may be given instead. The loss is the mean of
-log softmax(logits)[target] over valid positions (``reduction="sum"`` gives the sum); invalid
positions get a zero gradient and their targets are never read, so padding may hold any value. With no
valid position at all the loss is 0 and the gradient zero.

Softmax is computed as exp(z - max z) / sum, so it neither overflows nor underflows to NaN for any
finite logits. Gradients have the logits' dtype; the returned loss is a Python float accumulated in
float64.
"""

from __future__ import annotations

import numpy as np

from graphrnn._checks import as_array

__all__ = ["log_softmax", "softmax", "cross_entropy", "mse_loss"]


def _float_array(name: str, x) -> np.ndarray:
    a = as_array(name, x, "a float array")
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must be a float array, got dtype {a.dtype}")
    return a


def _class_axis(z, axis):
    if z.ndim == 0 or z.shape[axis] == 0:
        raise ValueError(f"logits must have at least one class along axis {axis}, got shape {z.shape}")


def log_softmax(logits, axis: int = -1) -> np.ndarray:
    """Numerically stable log softmax along ``axis``."""
    z = _float_array("logits", logits)
    _class_axis(z, axis)
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(logits, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``."""
    z = _float_array("logits", logits)
    _class_axis(z, axis)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _valid_mask(targets_shape, lengths, mask) -> np.ndarray | None:
    if lengths is not None and mask is not None:
        raise ValueError("give lengths or mask, not both")
    if mask is not None:
        m = as_array("mask", mask, "a bool array")
        if m.dtype != np.bool_:
            raise TypeError(f"mask must be a bool array, got dtype {m.dtype}")
        if m.shape != targets_shape:
            raise ValueError(f"mask must have the targets' shape {targets_shape}, got {m.shape}")
        return m
    if lengths is not None:
        if len(targets_shape) != 2:
            raise ValueError(
                "lengths needs time-major logits (T, B, C) and targets (T, B), "
                f"got targets shape {targets_shape}"
            )
        T, B = targets_shape
        ln = as_array("lengths", lengths, f"an integer array of shape ({B},)")
        if ln.dtype.kind not in "iu":
            raise TypeError(f"lengths must be an integer array, got dtype {ln.dtype}")
        if ln.shape != (B,):
            raise ValueError(f"lengths must have shape ({B},), got {ln.shape}")
        if ln.size and (ln.min() < 0 or ln.max() > T):
            raise ValueError(f"lengths must lie in [0, {T}], got values in [{ln.min()}, {ln.max()}]")
        return np.arange(T)[:, None] < ln[None, :]
    return None


def cross_entropy(logits, targets, lengths=None, *, mask=None, reduction: str = "mean"):
    """Softmax cross-entropy: logits (N, C) or (T, B, C), targets ints (N,) or (T, B) -> (loss, grad).

    loss = reduce over valid positions of (logsumexp(z) - z[target]);
    grad = (softmax(z) - onehot(target)) / count for "mean" (count = number of valid positions),
    zero at invalid positions; same shape and dtype as ``logits``.
    """
    z = _float_array("logits", logits)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if z.ndim not in (2, 3):
        raise ValueError(f"logits must have shape (N, C) or (T, B, C), got {z.shape}")
    _class_axis(z, -1)
    y = as_array("targets", targets, "an integer array")
    if y.dtype.kind not in "iu":
        raise TypeError(f"targets must be an integer array, got dtype {y.dtype}")
    if y.shape != z.shape[:-1]:
        raise ValueError(
            f"targets must have shape {z.shape[:-1]} (logits without the class axis), got {y.shape}"
        )
    C = z.shape[-1]
    valid = _valid_mask(y.shape, lengths, mask)
    zf = z.reshape(-1, C)
    yf = y.reshape(-1)
    vf = np.ones(yf.shape, dtype=bool) if valid is None else valid.reshape(-1)
    yv = yf[vf]
    if yv.size and (yv.min() < 0 or yv.max() >= C):
        raise ValueError(
            f"targets must lie in [0, {C}) at valid positions, got values in [{yv.min()}, {yv.max()}]"
        )
    count = int(vf.sum())
    grad = np.zeros_like(zf)
    if count == 0:
        return 0.0, grad.reshape(z.shape)
    rows = np.flatnonzero(vf)
    zv = zf[rows]
    shifted = zv - zv.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    nll = np.log(s[:, 0]).astype(np.float64) - shifted[np.arange(count), yv].astype(np.float64)
    p = e / s
    p[np.arange(count), yv] -= 1
    scale = 1.0 / count if reduction == "mean" else 1.0
    grad[rows] = p * z.dtype.type(scale)
    loss = float(nll.sum()) * scale
    return loss, grad.reshape(z.shape)


def mse_loss(pred, target, *, mask=None, reduction: str = "mean"):
    """Mean (or sum) of (pred - target)^2 over all elements or over ``mask`` -> (loss, grad).

    ``mask`` is a bool array shaped like ``pred``; the mean divides by the number of True entries.
    """
    p = _float_array("pred", pred)
    t = _float_array("target", target)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if t.shape != p.shape:
        raise ValueError(f"target must have pred's shape {p.shape}, got {t.shape}")
    diff = p - t.astype(p.dtype, copy=False)
    if mask is not None:
        m = as_array("mask", mask, "a bool array")
        if m.dtype != np.bool_:
            raise TypeError(f"mask must be a bool array, got dtype {m.dtype}")
        if m.shape != p.shape:
            raise ValueError(f"mask must have pred's shape {p.shape}, got {m.shape}")
        diff = np.where(m, diff, p.dtype.type(0))
        count = int(m.sum())
    else:
        count = p.size
    if count == 0:
        return 0.0, np.zeros_like(diff)
    scale = 1.0 / count if reduction == "mean" else 1.0
    loss = float(np.sum(diff.astype(np.float64) ** 2)) * scale
    return loss, diff * p.dtype.type(2.0 * scale)
