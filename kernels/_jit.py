"""The one place that sets Numba policy for every CPU kernel.

- cache=True: compiled code is stored next to the source (or in NUMBA_CACHE_DIR), so only the first
  process pays for compilation; nothing compiles at import because no signatures are given.
- error_model="numpy": Python's error model adds a zero-division check that blocks vectorisation.
- nogil=True: kernels release the GIL, so threads calling one model at once run in parallel.
- no fastmath: float64 results must stay exact enough for gradient checks.
Kernels build their constants with ``arr.dtype.type(...)`` so float32 arithmetic is not promoted.
"""

from numba import njit

JIT_OPTIONS = {"cache": True, "error_model": "numpy", "nogil": True}


def jit(fn):
    """Decorate a kernel with the project's policy (lazy: compiled on first call, per dtype)."""
    return njit(**JIT_OPTIONS)(fn)
