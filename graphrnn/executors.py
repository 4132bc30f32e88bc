"""The contract between the modules and the executors, and the registry that picks one by name.

An executor is a module (or object) with two functions. The modules do every check, cast, transpose,
padding and mask draw first, so an executor receives clean, time-major, C-contiguous arrays of the
spec's dtype and may trust them:

``forward(spec, params, x, lengths, h0, c0, masks, keep) -> (out, h_n, c_n, tape)``
    spec      StackSpec (cell, sizes, layers, directions, bias, dtype)
    params    {PyTorch name: array}; bias entries are absent when spec.bias is False
    x         (T, B, I); positions t >= lengths[b] hold zeros and must not influence anything
    lengths   (B,) int64, each in [0, T], in any order
    h0, c0    (L*D, B, H); c0 is None unless the cell is an LSTM
    masks     None, or a list of L-1 arrays (T, B, D*H): inverted-dropout factors (0 or 1/(1-p)) multiplied
              into the output of layer l before it feeds layer l+1
    keep      True when backward will be called with the returned tape
    out       (T, B, D*H), exactly 0 at t >= lengths[b]; forward direction first
    h_n, c_n  (L*D, B, H): state at each sequence's own last valid step (h0/c0 where the length is 0);
              the reverse direction's final state is the one after it has consumed t = 0
    tape      opaque object holding what backward needs (None when keep is False)

``backward(tape, g_out, g_hn, g_cn) -> grads``
    g_out (T, B, D*H), g_hn and g_cn (L*D, B, H) (g_cn None unless LSTM), all arrays (never None)
    grads  {param name: array like the param} plus "input" (T, B, I), "h0" and, for an LSTM, "c0";
           each the gradient of sum(out*g_out) + sum(h_n*g_hn) [+ sum(c_n*g_cn)].

Both executors must agree with ``graphrnn.kernels.reference.stack_forward`` to dtype tolerance.
"""

from __future__ import annotations

import importlib

EXECUTORS = {
    "dynamic": "graphrnn.dynamic",
    "static": "graphrnn.static",
    "cuda": "graphrnn.cuda",
}


def get_executor(name: str):
    """Import the executor module by name (lazily, so the CPU path never pulls in optional backends)."""
    if not isinstance(name, str) or name not in EXECUTORS:
        raise ValueError(f"executor must be one of {sorted(EXECUTORS)}, got {name!r}")
    return importlib.import_module(EXECUTORS[name])
