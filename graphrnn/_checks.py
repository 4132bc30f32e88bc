"""Small validation helpers shared by the public entry points (models, layers, losses, optimizers)."""

from __future__ import annotations

import numpy as np


def as_array(name: str, value, expected: str) -> np.ndarray:
    """``np.asarray(value)``; NumPy's own errors for ragged or unconvertible input (which name nothing)
    are re-raised as a ValueError naming the argument, what was expected and what was given."""
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (ValueError, TypeError, OverflowError) as e:
        first = str(e).split(". ")[0]
        raise ValueError(
            f"{name} must be {expected}, got a {type(value).__name__} that NumPy cannot turn "
            f"into one array ({first})"
        ) from None
