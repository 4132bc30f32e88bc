"""Optimizers on dicts name -> array, updating the parameter arrays in place, and global-norm clipping.

An optimizer is built on a params dict (e.g. ``model.params``) and keeps references to those very
arrays. ``opt.step(grads)`` reads ``grads[name]`` for every parameter name (extra keys such as the
recurrent modules' ``"input"``/``"h0"`` are ignored) and writes the update into the arrays.

For checkpoints the state is plain arrays: ``opt.state_arrays()`` -> {"<slot>/<param name>": array},
``opt.config`` (JSON-able hyper-parameters), ``opt.steps`` (number of updates taken);
``opt.load_state(arrays, steps)`` restores them, strict on names and shapes.
"""

from __future__ import annotations

import math

import numpy as np

from graphrnn._checks import as_array

__all__ = ["SGD", "Adam", "clip_grad_norm"]


def _check_params(params) -> dict[str, np.ndarray]:
    if not isinstance(params, dict) or not params:
        raise TypeError(f"params must be a non-empty dict name -> float array, got {type(params).__name__}")
    for name, p in params.items():
        if not isinstance(name, str) or "/" in name:
            raise ValueError(f"parameter names must be strings without '/', got {name!r}")
        if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
            raise TypeError(f"params[{name!r}] must be a float ndarray, got {type(p).__name__}")
        if not p.flags.writeable:
            raise ValueError(
                f"params[{name!r}] must be a writable array (the optimizer updates it in place), "
                "got a read-only one"
            )
    return params


def _check_number(name: str, value, low: float, high: float = math.inf, *, low_open=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    ok = (v > low if low_open else v >= low) and v <= high and math.isfinite(v)
    if not ok:
        lo = "(" if low_open else "["
        raise ValueError(f"{name} must lie in {lo}{low}, {high}], got {value}")
    return v


class _Optimizer:
    slots: tuple[str, ...] = ()

    def __init__(self, params):
        self.params = _check_params(params)
        self.steps = 0
        self.state = {slot: {n: np.zeros_like(p) for n, p in self.params.items()} for slot in self.slots}

    def _grads(self, grads) -> dict[str, np.ndarray]:
        if not isinstance(grads, dict):
            raise TypeError(f"grads must be a dict name -> array, got {type(grads).__name__}")
        missing = sorted(set(self.params) - set(grads))
        if missing:
            raise ValueError(f"grads must hold every parameter name; missing {missing}")
        out = {}
        for name, p in self.params.items():
            g = as_array(f"grads[{name!r}]", grads[name], "a float array")
            if g.dtype.kind != "f":
                raise TypeError(f"grads[{name!r}] must be a float array, got dtype {g.dtype}")
            if g.shape != p.shape:
                raise ValueError(f"grads[{name!r}] must have shape {p.shape}, got {g.shape}")
            out[name] = g.astype(p.dtype, copy=False)
        return out

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {f"{slot}/{n}": a for slot, d in self.state.items() for n, a in d.items()}

    def load_state(self, arrays: dict, steps: int) -> None:
        expected = {f"{slot}/{n}": p.shape for slot in self.slots for n, p in self.params.items()}
        if set(arrays) != set(expected):
            missing = sorted(set(expected) - set(arrays))
            extra = sorted(set(arrays) - set(expected))
            raise ValueError(f"optimizer state names do not match: missing {missing}, extra {extra}")
        for key, shape in expected.items():
            a = as_array(f"optimizer state {key!r}", arrays[key], "a float array")
            if a.dtype.kind != "f":
                raise TypeError(f"optimizer state {key!r} must be a float array, got dtype {a.dtype}")
            if a.shape != shape:
                raise ValueError(f"optimizer state {key!r} must have shape {shape}, got {a.shape}")
            if key.startswith("exp_avg_sq/") and (a < 0).any():
                raise ValueError(f"optimizer state {key!r} (a running mean of squares) must be >= 0, "
                                 f"got a minimum of {a.min()}")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"steps must be an int >= 0, got {steps!r}")
        for key in expected:
            slot, n = key.split("/", 1)
            np.copyto(self.state[slot][n], np.asarray(arrays[key], dtype=self.params[n].dtype))
        self.steps = int(steps)


class SGD(_Optimizer):
    """p -= lr * v, v = momentum * v + (g + weight_decay * p): PyTorch's form; plain SGD when momentum = 0.

    The first step sets v = g (as PyTorch does); ``nesterov=True`` steps along g + momentum * v.
    """

    slots = ("momentum",)

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0, nesterov=False):
        self.lr = _check_number("lr", lr, 0.0, low_open=True)
        self.momentum = _check_number("momentum", momentum, 0.0, 1.0)
        self.weight_decay = _check_number("weight_decay", weight_decay, 0.0)
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be a bool, got {type(nesterov).__name__}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum 0")
        self.nesterov = nesterov
        super().__init__(params)

    @property
    def config(self) -> dict:
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "nesterov": self.nesterov,
        }

    def step(self, grads) -> None:
        grads = self._grads(grads)
        for name, p in self.params.items():
            g = grads[name]
            if self.weight_decay:
                g = g + p.dtype.type(self.weight_decay) * p
            if self.momentum:
                v = self.state["momentum"][name]
                if self.steps == 0:
                    np.copyto(v, g)
                else:
                    v *= p.dtype.type(self.momentum)
                    v += g
                g = g + p.dtype.type(self.momentum) * v if self.nesterov else v
            p -= p.dtype.type(self.lr) * g
        self.steps += 1


class Adam(_Optimizer):
    """Adam (Kingma & Ba), PyTorch's form with bias correction; weight_decay is added to the gradient.

    m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
    """

    slots = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.lr = _check_number("lr", lr, 0.0, low_open=True)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (
            _check_number("betas[0]", betas[0], 0.0, 1.0),
            _check_number("betas[1]", betas[1], 0.0, 1.0),
        )
        if self.betas[0] >= 1 or self.betas[1] >= 1:
            raise ValueError(f"betas must lie in [0, 1), got {tuple(betas)}")
        self.eps = _check_number("eps", eps, 0.0, low_open=True)
        self.weight_decay = _check_number("weight_decay", weight_decay, 0.0)
        super().__init__(params)

    @property
    def config(self) -> dict:
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay}

    def step(self, grads) -> None:
        grads = self._grads(grads)
        t = self.steps + 1
        b1, b2 = self.betas
        bc1 = 1.0 - b1**t
        bc2 = 1.0 - b2**t
        step_size = self.lr / bc1
        for name, p in self.params.items():
            f = p.dtype.type
            g = grads[name]
            if self.weight_decay:
                g = g + f(self.weight_decay) * p
            m = self.state["exp_avg"][name]
            v = self.state["exp_avg_sq"][name]
            m *= f(b1)
            m += f(1 - b1) * g
            v *= f(b2)
            v += f(1 - b2) * (g * g)
            denom = np.sqrt(v / f(bc2))
            denom += f(self.eps)
            p -= f(step_size) * (m / denom)
        self.steps = t


OPTIMIZERS = {"SGD": SGD, "Adam": Adam}


def clip_grad_norm(grads: dict, max_norm) -> float:
    """Scale every array in ``grads`` in place so their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping (a float; inf or nan when a gradient holds them, and then the
    gradients are left untouched). Pass the parameter gradients only.
    """
    if not isinstance(grads, dict):
        raise TypeError(f"grads must be a dict name -> array, got {type(grads).__name__}")
    max_norm = _check_number("max_norm", max_norm, 0.0, low_open=True)
    total = 0.0
    for name, g in grads.items():
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            raise TypeError(f"grads[{name!r}] must be a float ndarray, got {type(g).__name__}")
        total += float(np.vdot(g.ravel(), g.ravel()).real) if g.size else 0.0
    norm = math.sqrt(total) if math.isfinite(total) else total
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in grads.values():
            g *= g.dtype.type(scale)
    return norm
