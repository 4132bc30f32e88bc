"""One knob for both thread pools a run uses: NumPy's BLAS and Numba's."""

from __future__ import annotations

import numbers

_limiter = None  # keeps the threadpoolctl limit alive


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in BLAS (NumPy's, and SciPy's if loaded) and in Numba's parallel regions."""
    global _limiter
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    import numba
    from threadpoolctl import threadpool_limits

    n = int(n)
    _limiter = threadpool_limits(limits=n, user_api="blas")
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
