"""The one place that sets Numba policy for every CPU kernel.

- cache=True: compiled code is stored next to the source (or in NUMBA_CACHE_DIR), so only the first
  process pays for compilation; nothing compiles at import because no signatures are given.
- error_model="numpy": Python's error model adds a zero-division check that blocks vectorisation.
- nogil=True: kernels release the GIL, so threads calling one model at once run in parallel.
- no fastmath: float64 results must stay exact enough for gradient checks.
Kernels build their constants with ``arr.dtype.type(...)`` so float32 arithmetic is not promoted.
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

JIT_OPTIONS = {"cache": True, "error_model": "numpy", "nogil": True}


def jit(fn):
    """Decorate a kernel with the project's policy (lazy: compiled on first call, per dtype)."""
    return njit(**JIT_OPTIONS)(fn)


# --------------------------------------------------------------------- activations, chosen by precision


def tanh(v):
    """tanh for jitted kernels: exact (libm) in float64, a vectorisable rational form in float32."""
    return math.tanh(v)


def sigmoid(v):
    """Logistic function; float32 goes through the rational tanh so whole gate loops vectorise."""
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


# Rational minimax approximation of tanh on [-7.9, 7.9] (the form Eigen uses for float32): at most a few
# float32 ulps from the true value, saturates cleanly, and is plain arithmetic, so LLVM vectorises it.
_A = [np.float32(a) for a in (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                               5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
                               -2.76076847742355e-16)]
_B = [np.float32(b) for b in (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                              1.19825839466702e-06)]
# module-level float32 scalars: Numba freezes them as constants (a tuple index or a call would not vectorise)
_A0, _A1, _A2, _A3, _A4, _A5, _A6 = _A
_B0, _B1, _B2, _B3 = _B
_CLAMP = np.float32(7.90531110763549805)
_HALF = np.float32(0.5)


def _tanh_f32(v):
    # conditionals, not min/max: they become vector selects; written so that NaN fails both tests and
    # propagates (``v if v < _CLAMP else _CLAMP`` would turn NaN into tanh(7.9) = 1)
    x = _CLAMP if v > _CLAMP else v
    x = -_CLAMP if x < -_CLAMP else x
    x2 = x * x
    p = x2 * _A6 + _A5
    p = x2 * p + _A4
    p = x2 * p + _A3
    p = x2 * p + _A2
    p = x2 * p + _A1
    p = x2 * p + _A0
    q = x2 * _B3 + _B2
    q = x2 * q + _B1
    q = x2 * q + _B0
    return x * p / q


def _tanh_f64(v):
    return math.tanh(v)


def _sigmoid_f32(v):
    return _HALF + _HALF * tanh(_HALF * v)


def _sigmoid_f64(v):
    # two branches so exp never sees a large positive argument (no overflow, no inf/inf)
    if v >= 0.0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def _by_precision(f32_impl, f64_impl):
    f32_jit, f64_jit = njit(**JIT_OPTIONS)(f32_impl), njit(**JIT_OPTIONS)(f64_impl)

    def typer(v):
        if isinstance(v, types.Float) and v.bitwidth == 32:
            return lambda v: f32_jit(v)
        if isinstance(v, types.Float):
            return lambda v: f64_jit(v)
        return None

    return typer


# LLVM inlines these small functions; Numba-IR inlining (inline="always") trips its SSA checks here
overload(tanh)(_by_precision(_tanh_f32, _tanh_f64))
overload(sigmoid)(_by_precision(_sigmoid_f32, _sigmoid_f64))
