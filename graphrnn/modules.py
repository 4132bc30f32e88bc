"""RNN, LSTM and GRU modules: parameters, PyTorch-shaped API, validation, then dispatch to an executor.

Everything a user can get wrong is checked here, in Python, before any kernel runs; the executors
receive clean, time-major, contiguous arrays of the model's dtype (contract in graphrnn/executors.py).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from graphrnn import cuda as _cuda  # cheap: numba.cuda is imported only once a device array is used
from graphrnn._checks import as_array as _as_array
from graphrnn.cells import StackSpec, init_params
from graphrnn.executors import get_executor

# ------------------------------------------------------------------------------------------ validation


def _check_int(name, value, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def as_float_array(name, value, dtype) -> np.ndarray:
    """Float array-likes are cast to ``dtype``; int, bool, complex and object data are a TypeError."""
    if value is None:
        raise TypeError(f"{name} must be a float array, got None")
    arr = value if isinstance(value, np.ndarray) else _as_array(name, value, "a float array")
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a float array (float32 or float64), got dtype {arr.dtype}")
    return np.asarray(arr, dtype=dtype, order="C")  # (ascontiguousarray would turn 0-d into 1-d)


def as_input_array(name, value, dtype, on_device) -> np.ndarray:
    """Like ``as_float_array``; with on_device (executor "cuda" and x on a GPU) device arrays stay on the
    device (cast there); a device array for a CPU executor is a TypeError saying what to do."""
    if _cuda.is_device_array(value):
        if not on_device:
            raise TypeError(f"{name} is a CUDA device array: use executor='cuda' with device arrays, or copy it "
                            "to the host first")
        return _cuda.as_device_array(name, value, dtype)
    return as_float_array(name, value, dtype)


def _swap01(a):
    """(P, Q, F) -> contiguous (Q, P, F), on the host or the device, wherever ``a`` lives."""
    return _cuda.transpose01(a) if _cuda.is_device_array(a) else np.ascontiguousarray(a.transpose(1, 0, 2))


def _check_shape(name, arr, expected):
    if arr.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {arr.shape}")
    return arr


def check_lengths(lengths, B, T) -> np.ndarray:
    """None -> every row runs T steps; otherwise a 1-D integer array of B values in [0, T]."""
    if lengths is None:
        return np.full(B, T, dtype=np.int64)
    arr = _as_array("lengths", lengths, f"an integer array of shape ({B},)")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths must be an integer array of shape ({B},), got dtype {arr.dtype}")
    if arr.shape != (B,):
        raise ValueError(f"lengths must have shape ({B},) (one length per sequence), got {arr.shape}")
    if B and (arr.min() < 0 or arr.max() > T):
        raise ValueError(
            f"lengths must lie in [0, T={T}], got values from {arr.min()} to {arr.max()}"
        )
    return arr.astype(np.int64)


# ----------------------------------------------------------------------------------------------- tape


@dataclass
class ModuleTape:
    """What ``backward`` needs besides the executor's own tape: how to map gradients back to the user."""

    executor: object
    inner: object  # the executor's tape (None for empty inputs)
    T: int  # the input's own T (the executor may have run a padded T_run >= T)
    T_run: int
    B: int
    unbatched: bool
    model: object
    batch_first: bool


# --------------------------------------------------------------------------------------------- module


class _RNNBase:
    """Shared machinery of RNN, LSTM and GRU. Shapes: x (T, B, I) or (B, T, I) with batch_first, or
    unbatched (T, I); states (L*D, B, H) or unbatched (L*D, H); output (T, B, D*H)."""

    _cell = ""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, *, dtype=np.float32, seed=None, nonlinearity="tanh"):
        input_size = _check_int("input_size", input_size, 1)
        hidden_size = _check_int("hidden_size", hidden_size, 1)
        num_layers = _check_int("num_layers", num_layers, 1)
        bias = _check_bool("bias", bias)
        self.batch_first = _check_bool("batch_first", batch_first)
        bidirectional = _check_bool("bidirectional", bidirectional)
        if isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, numbers.Real):
            raise TypeError(f"dropout must be a float in [0, 1], got {type(dropout).__name__} {dropout!r}")
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"dropout must be a float in [0, 1], got {dropout}")
        self.dropout = float(dropout)
        try:
            np_dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}") from None
        if np_dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {np_dtype}")
        if seed is not None:
            seed = _check_int("seed", seed, 0)
        cell = self._cell
        if cell == "rnn":
            if nonlinearity not in ("tanh", "relu"):
                raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
            cell = "rnn_" + nonlinearity
        self.nonlinearity = nonlinearity
        self.seed = seed
        self.spec = StackSpec(cell, input_size, hidden_size, num_layers, bidirectional, bias, np_dtype.name)
        init_rng, dropout_seq = np.random.SeedSequence(seed).spawn(2)
        self.params = init_params(self.spec, np.random.default_rng(init_rng))
        self._dropout_rng = np.random.default_rng(dropout_seq)

    # -- configuration and parameters

    @property
    def dtype(self) -> np.dtype:
        return self.spec.np_dtype

    @property
    def config(self) -> dict:
        """Constructor keyword arguments, JSON-able: ``type(m)(**m.config)`` rebuilds the architecture."""
        s = self.spec
        cfg = dict(input_size=s.input_size, hidden_size=s.hidden_size, num_layers=s.num_layers, bias=s.bias,
                   batch_first=self.batch_first, dropout=self.dropout, bidirectional=s.bidirectional,
                   dtype=s.dtype, seed=self.seed)
        if self._cell == "rnn":
            cfg["nonlinearity"] = self.nonlinearity
        return cfg

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"

    def state_dict(self) -> dict:
        return {name: p.copy() for name, p in self.params.items()}

    def load_state_dict(self, state_dict) -> None:
        """Strict: exactly this model's parameter names and shapes; float arrays are cast to its dtype."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping of parameter name to array, got {type(state_dict).__name__}")
        expected = self.spec.param_shapes()
        missing = sorted(set(expected) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(expected))
        if missing or unexpected:
            raise ValueError(f"state_dict keys do not match {type(self).__name__}: missing {missing}, "
                             f"unexpected {unexpected}")
        new = {}
        for name, shape in expected.items():
            arr = as_float_array(f"state_dict[{name!r}]", state_dict[name], self.dtype)
            new[name] = _check_shape(f"state_dict[{name!r}]", arr, shape).copy()
        for name, arr in new.items():
            self.params[name][...] = arr  # in place: optimisers holding these arrays stay attached

    # -- running

    def __call__(self, x, lengths=None, hx=None, *, executor="dynamic", static_len=None):
        """Inference: ``(output, state)``; no tape, no dropout."""
        out, state, _ = self._run(x, lengths, hx, executor, static_len, False, False, self.batch_first)
        return out, state

    def forward(self, x, lengths=None, hx=None, *, executor="dynamic", static_len=None, train=False):
        """``(output, state, tape)``; ``train=True`` applies dropout between layers."""
        return self._run(x, lengths, hx, executor, static_len, _check_bool("train", train), True, self.batch_first)

    def _run(self, x, lengths, hx, executor, static_len, train, keep, batch_first):
        ex = get_executor(executor)
        spec, dt = self.spec, self.dtype
        H, D, L = spec.hidden_size, spec.directions, spec.num_layers
        on_device = executor == "cuda" and _cuda.is_device_array(x)
        x = as_input_array("x", x, dt, on_device)
        if x.ndim not in (2, 3):
            raise ValueError(f"x must have 3 dims (T, B, I) (or 2 dims (T, I) unbatched), got shape {x.shape}")
        if tuple(x.shape)[-1] != spec.input_size:  # tuple(): the CUDA simulator's shapes refuse -1
            raise ValueError(f"x must have {spec.input_size} features in its last dim, got shape {x.shape}")
        unbatched = x.ndim == 2
        if unbatched:
            if lengths is not None:
                raise ValueError("lengths must be None for unbatched input x of shape (T, I); "
                                 f"got lengths with x of shape {x.shape}")
            x = x.reshape(x.shape[0], 1, x.shape[1])
        elif batch_first:
            x = _swap01(x)
        T, B = x.shape[0], x.shape[1]
        lengths = check_lengths(_cuda.to_host(lengths) if _cuda.is_device_array(lengths) else lengths, B, T)
        h0, c0 = self._check_hx(hx, B, unbatched, on_device)
        T_run = T
        if static_len is not None:  # checked for every executor; only the static graph pads to it
            static_len = _check_int("static_len", static_len, 1)
            if T > static_len:
                raise ValueError(f"input length T={T} exceeds static_len={static_len}: the static graph "
                                 f"is built for at most static_len steps")
            if executor == "static":
                T_run = static_len
        if executor == "static" and T_run > 0 and B > 0:  # memory guard before padding or building anything
            ex.check_memory(spec, T_run, B, keep, train and self.dropout > 0 and L > 1)

        masks = None
        if train and self.dropout > 0 and L > 1:
            p = self.dropout
            masks = []
            for _ in range(L - 1):
                keep_mask = self._dropout_rng.random((T, B, D * H)) >= p
                masks.append(keep_mask.astype(dt) * dt.type(1.0 / (1.0 - p)) if p < 1 else
                             np.zeros((T, B, D * H), dtype=dt))

        if (T == 0 or B == 0) and not on_device:  # the cuda executor returns empty device arrays itself
            out = np.zeros((T, B, D * H), dtype=dt)
            h_n, c_n, inner = h0.copy(), (c0.copy() if c0 is not None else None), None
        else:
            if (lengths < T).any() and not on_device:  # padded positions must not influence anything, NaN
                # included (the cuda executor zeros a device input's padded positions itself)
                x = np.where((np.arange(T)[:, None] < lengths[None, :])[:, :, None], x, dt.type(0))
            if T_run > T:
                x = np.concatenate([x, np.zeros((T_run - T, B, x.shape[2]), dtype=dt)])
                if masks is not None:
                    masks = [np.concatenate([m, np.zeros((T_run - T, B, D * H), dtype=dt)]) for m in masks]
            out, h_n, c_n, inner = ex.forward(spec, self.params, x, lengths, h0, c0, masks, keep)
            out = out[:T]

        tape = ModuleTape(ex, inner, T, T_run, B, unbatched, self, batch_first) if keep else None
        out = self._user_layout(out, unbatched, batch_first)  # device arrays stay on the device
        state = self._user_state(h_n, c_n, unbatched)
        return out, state, tape

    def _check_hx(self, hx, B, unbatched, on_device=False):
        spec, dt = self.spec, self.dtype
        shape = (spec.num_layers * spec.directions, B, spec.hidden_size)
        user_shape = (shape[0], shape[2]) if unbatched else shape

        def one(name, arr):
            arr = as_input_array(name, arr, dt, on_device)
            _check_shape(name, arr, user_shape)
            return arr.reshape(shape) if unbatched else arr

        if spec.has_cell_state:
            if hx is None:
                return np.zeros(shape, dtype=dt), np.zeros(shape, dtype=dt)
            if not isinstance(hx, (tuple, list)) or len(hx) != 2 or hx[0] is None or hx[1] is None:
                raise TypeError(f"hx of an LSTM must be None or a tuple (h0, c0) of two arrays shaped "
                                f"{user_shape}, got {type(hx).__name__}")
            return one("hx[0] (h0)", hx[0]), one("hx[1] (c0)", hx[1])
        if hx is None:
            return np.zeros(shape, dtype=dt), None
        if isinstance(hx, (tuple, list)):
            raise TypeError(f"hx of a {type(self).__name__} must be None or one array shaped {user_shape}, "
                            f"got a {type(hx).__name__}")
        return one("hx", hx), None

    @staticmethod
    def _user_layout(out, unbatched, batch_first):
        if unbatched:
            return out[:, 0]
        return _swap01(out) if batch_first else out

    def _user_state(self, h_n, c_n, unbatched):
        if unbatched:
            h_n = h_n[:, 0]
            c_n = c_n[:, 0] if c_n is not None else None
        return (h_n, c_n) if self.spec.has_cell_state else h_n

    # -- gradients

    def backward(self, tape, grad_output=None, grad_state=None) -> dict:
        """Gradients of sum(output*grad_output) + sum(h_n*g_h) [+ sum(c_n*g_c)]; None means zeros.

        Returns {parameter name: array} plus "input" (shaped like x), "h0" and, for an LSTM, "c0".
        """
        if not isinstance(tape, ModuleTape) or tape.model is not self:
            raise TypeError("tape must be the third value returned by this model's forward(), "
                            f"got {type(tape).__name__}")
        spec, dt = self.spec, self.dtype
        H, D, L = spec.hidden_size, spec.directions, spec.num_layers
        T, B, unbatched = tape.T, tape.B, tape.unbatched
        out_shape = (T, D * H) if unbatched else ((B, T, D * H) if tape.batch_first else (T, B, D * H))
        state_shape = (L * D, H) if unbatched else (L * D, B, H)

        on_device = getattr(tape.inner, "on_device", False)  # the cuda executor's tape of a device input

        def arr_or_zeros(name, value, shape):
            if value is None:
                return np.zeros(shape, dtype=dt)
            return _check_shape(name, as_input_array(name, value, dt, on_device), shape)

        g_out = arr_or_zeros("grad_output", grad_output, out_shape)
        if spec.has_cell_state:
            if grad_state is None:
                grad_state = (None, None)
            if not isinstance(grad_state, (tuple, list)) or len(grad_state) != 2:
                raise TypeError("grad_state of an LSTM must be None or a tuple (g_h, g_c) (either may be None), "
                                f"got {type(grad_state).__name__}")
            g_hn = arr_or_zeros("grad_state[0]", grad_state[0], state_shape)
            g_cn = arr_or_zeros("grad_state[1]", grad_state[1], state_shape)
        else:
            if isinstance(grad_state, (tuple, list)):
                raise TypeError(f"grad_state of a {type(self).__name__} must be None or one array shaped "
                                f"{state_shape}, got a {type(grad_state).__name__}")
            g_hn, g_cn = arr_or_zeros("grad_state", grad_state, state_shape), None

        if unbatched:
            g_out, g_hn = g_out.reshape(T, 1, D * H), g_hn.reshape(L * D, 1, H)
            g_cn = g_cn.reshape(L * D, 1, H) if g_cn is not None else None
        elif tape.batch_first:
            g_out = _swap01(g_out)

        if tape.inner is None:  # empty input: h_n = h0, nothing else depends on anything
            grads = {name: np.zeros_like(p) for name, p in self.params.items()}
            grads["input"] = np.zeros((T, B, spec.input_size), dtype=dt)
            grads["h0"] = g_hn.copy()
            if g_cn is not None:
                grads["c0"] = g_cn.copy()
        else:
            if not _cuda.is_device_array(g_out):
                g_out = np.ascontiguousarray(g_out)
            if tape.T_run > T:
                g_out = np.concatenate([g_out, np.zeros((tape.T_run - T, B, D * H), dtype=dt)])
            grads = tape.executor.backward(tape.inner, g_out, g_hn, g_cn)
            grads["input"] = grads["input"][:T]

        g_in = grads["input"]
        if unbatched:  # reshape keeps device arrays on the device
            grads["input"] = g_in.reshape(T, spec.input_size)
            grads["h0"] = grads["h0"].reshape(L * D, H)
            if "c0" in grads:
                grads["c0"] = grads["c0"].reshape(L * D, H)
        elif tape.batch_first:
            grads["input"] = _swap01(g_in)
        return grads

    # -- streaming

    def step(self, x_t, hx=None):
        """One time step for sampling and streaming: x_t (B, I) or (I,) -> (out_t (B, H), state).

        Unidirectional models only (a reverse direction needs the whole sequence).
        """
        if self.spec.bidirectional:
            raise ValueError("step() needs a unidirectional model (bidirectional=False); this one is bidirectional")
        x_t = as_float_array("x_t", x_t, self.dtype)
        if x_t.ndim not in (1, 2) or x_t.shape[-1] != self.spec.input_size:
            raise ValueError(f"x_t must have shape (B, {self.spec.input_size}) or ({self.spec.input_size},), "
                             f"got {x_t.shape}")
        out, state, _ = self._run(x_t[None], None, hx, "dynamic", None, False, False, False)
        return out[0], state


class RNN(_RNNBase):
    """Elman RNN, h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu (PyTorch's nn.RNN)."""

    _cell = "rnn"

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, dtype=np.float32, seed=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype, seed=seed, nonlinearity=nonlinearity)


class LSTM(_RNNBase):
    """LSTM with PyTorch's gate order i, f, g, o and state tuple (h, c) (PyTorch's nn.LSTM)."""

    _cell = "lstm"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, *, dtype=np.float32, seed=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype, seed=seed)


class GRU(_RNNBase):
    """GRU with PyTorch's gate order r, z, n; the reset gate multiplies W_hn h + b_hn (PyTorch's nn.GRU)."""

    _cell = "gru"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, *, dtype=np.float32, seed=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype, seed=seed)


MODEL_CLASSES = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}
