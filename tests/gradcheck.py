"""Test helpers: a central finite-difference gradient checker and dtype-derived closeness checks.

``check_grads`` compares analytic gradients with central differences in float64:

    d f / d a[i]          ~ (f(a + eps e_i) - f(a - eps e_i)) / (2 eps)      every coordinate of small arrays
    <grad f, v>           ~ (f(a + eps v) - f(a - eps v)) / (2 eps)          random unit directions v

With eps = 1e-6 and f of order one, the truncation error is O(eps^2) and the rounding error O(1e-16 / eps), so
a correct float64 gradient agrees to about 1e-9; the default tolerance (1e-6 absolute plus 1e-5 relative)
leaves room for that and still rejects any gradient that is wrong by more than a millionth.
"""

from __future__ import annotations

import numpy as np


def tolerance(dtype) -> float:
    """Absolute and relative tolerance for comparing two computations of the same value in ``dtype``.

    eps ** 0.6: about 7e-5 in float32 and 4e-10 in float64 (room for different summation orders and
    accumulation over a few steps, far below any real error).
    """
    return float(np.finfo(np.dtype(dtype)).eps ** 0.6)


def largest_difference(actual, expected, rtol, atol):
    """(index, actual, expected, |difference|, excess over the allowed difference) of the worst entry."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    allowed = atol + rtol * np.abs(expected.astype(np.float64))
    excess = np.where(np.isnan(diff), np.inf, diff - allowed)
    flat = int(np.argmax(excess))
    idx = np.unravel_index(flat, actual.shape)
    return idx, actual[idx], expected[idx], diff[idx], excess[idx]


def assert_close(actual, expected, what, dtype=None, rtol=None, atol=None):
    """Assert ``actual`` matches ``expected`` (shape, then values to the dtype's tolerance).

    On failure the message names ``what``, the largest difference and its index.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    if actual.size == 0:
        return
    tol = tolerance(dtype if dtype is not None else expected.dtype)
    rtol = tol if rtol is None else rtol
    atol = tol if atol is None else atol
    idx, a, e, d, excess = largest_difference(actual, expected, rtol, atol)
    assert excess <= 0, (
        f"{what}: largest difference {d:.3e} at index {tuple(int(i) for i in idx)}: "
        f"got {a.item()!r}, expected {e.item()!r} "
        f"(atol {atol:.1e}, rtol {rtol:.1e}; shape {actual.shape})"
    )


def numeric_grad(f, a, eps=1e-6):
    """Central differences of the scalar f() w.r.t. every entry of the array a (perturbed in place)."""
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + eps
        up = f()
        a[i] = old - eps
        down = f()
        a[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


def check_grads(f, args, grads, eps=1e-6, *, rtol=1e-5, atol=1e-6, full_max=32, directions=3, seed=0):
    """Check analytic ``grads`` of the scalar function ``f`` against central finite differences in float64.

    f         callable taking a dict {name: float64 array} (same keys and shapes as ``args``) -> float
    args      {name: array}: the point at which to differentiate (copied to float64, never modified)
    grads     {name: array}: the analytic gradient for each name to check (a subset of args' names)
    eps       finite-difference step
    full_max  arrays with at most this many elements are checked at every coordinate
    directions  random unit directions per larger array, plus the same number over all checked arrays jointly
    Returns {name: largest |analytic - numeric|}. Raises AssertionError naming the argument, the coordinate
    (or direction), both values and the difference of the worst failing check.
    """
    point = {k: np.array(v, dtype=np.float64, copy=True) for k, v in args.items()}
    rng = np.random.default_rng(seed)
    worst: dict[str, float] = {}
    failures = []

    def evaluate(name, delta):
        shifted = dict(point)
        shifted[name] = point[name] + delta
        plus = float(f(shifted))
        shifted[name] = point[name] - delta
        minus = float(f(shifted))
        return (plus - minus) / (2 * eps)

    def record(name, where, analytic, numeric):
        diff = abs(analytic - numeric)
        worst[name] = max(worst.get(name, 0.0), diff)
        if not diff <= atol + rtol * max(abs(analytic), abs(numeric)):  # also catches NaN
            failures.append((diff, name, where, analytic, numeric))

    for name, g in grads.items():
        if name not in point:
            raise KeyError(f"grads has {name!r}, which is not among args {sorted(point)}")
        g = np.asarray(g, dtype=np.float64)
        if g.shape != point[name].shape:
            raise AssertionError(f"grad {name!r}: shape {g.shape}, expected {point[name].shape}")
        if g.size == 0:
            worst[name] = 0.0
            continue
        if g.size <= full_max:
            for idx in np.ndindex(g.shape):
                delta = np.zeros_like(point[name])
                delta[idx] = eps
                record(name, f"index {idx}", float(g[idx]), evaluate(name, delta))
        else:
            for k in range(directions):
                v = rng.normal(size=g.shape)
                v /= np.linalg.norm(v)
                record(name, f"random direction {k}", float(np.sum(g * v)), evaluate(name, eps * v))

    # Joint directions over every checked argument at once (catches gradients that are right alone but
    # would be summed into the wrong place).
    names = [n for n in grads if np.asarray(grads[n]).size]
    for k in range(directions if names else 0):
        vs = {n: rng.normal(size=point[n].shape) for n in names}
        norm = np.sqrt(sum(np.sum(v * v) for v in vs.values()))
        shifted_p = dict(point)
        shifted_m = dict(point)
        for n in names:
            shifted_p[n] = point[n] + eps * vs[n] / norm
            shifted_m[n] = point[n] - eps * vs[n] / norm
        numeric = (float(f(shifted_p)) - float(f(shifted_m))) / (2 * eps)
        analytic = sum(float(np.sum(np.asarray(grads[n], np.float64) * vs[n])) for n in names) / norm
        record("<all>", f"joint random direction {k}", analytic, numeric)

    if failures:
        diff, name, where, analytic, numeric = max(failures, key=lambda t: t[0] if t[0] == t[0] else np.inf)
        raise AssertionError(
            f"gradient of {name!r} wrong at {where}: analytic {analytic:.10g}, numeric {numeric:.10g}, "
            f"difference {diff:.3e} ({len(failures)} of the checks failed; atol {atol:g}, rtol {rtol:g})"
        )
    return worst
