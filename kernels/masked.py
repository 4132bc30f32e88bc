"""Fused, masked gate kernels for one time step of a padded batch (the static executor's cell nodes).

Each forward kernel takes the two pre-activation halves ``xw = W_ih x + b_ih`` and ``gh = W_hh h + b_hh``
(B, G*H) (the products themselves run in BLAS outside), the previous state (B, H) and a per-row mask
(B,) uint8, and writes the new state and the activated gates. Rows with ``mask[b] == 0`` are padding:
they keep their previous state exactly and get zero gate gradients, so a padded step is a no-op.
Backward kernels take the gradients flowing into the step's outputs and give the gradient of the
pre-activations and the pass-through part of the previous state's gradient; the recurrent part
``dgh @ W_hh`` is again a BLAS product outside.

Gate order is PyTorch's (LSTM i, f, g, o; GRU r, z, n). NumPy twins: ``graphrnn.kernels.reference``
(``*_masked_step`` and ``*_masked_step_bwd``). The kernels trust their callers: C-ordered rows, matching
dtypes (float32 or float64), no aliasing between inputs and outputs. Activations come from
``_jit`` (exact in float64, a vectorisable rational tanh in float32); loops run along row views and each
inner loop computes one gate, which is the shape LLVM vectorises (see kernels/cpu.py).
"""

from __future__ import annotations

from graphrnn.kernels._jit import jit, sigmoid, tanh


@jit
def _copy_row(src, dst):
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@jit
def _zero_row(dst):
    zero = dst.dtype.type(0)
    for j in range(dst.shape[0]):
        dst[j] = zero


@jit
def rnn_masked_fwd(xw, gh, h_prev, mask, relu, h_out):
    """h_out[b] = act(xw[b] + gh[b]) where mask[b], else h_prev[b]; all (B, H), act = relu or tanh."""
    B, H = h_out.shape
    zero = h_out.dtype.type(0)
    for b in range(B):
        hr = h_out[b]
        if not mask[b]:
            _copy_row(h_prev[b], hr)
            continue
        xr, gr = xw[b], gh[b]
        if relu:
            for j in range(H):
                v = xr[j] + gr[j]
                hr[j] = zero if v < zero else v  # NaN propagates (as np.maximum)
        else:
            for j in range(H):
                hr[j] = tanh(xr[j] + gr[j])


@jit
def rnn_masked_bwd(dh, h, mask, relu, dpre, dh_prev):
    """dh, h = the step's output state (B, H) -> dpre (B, H), dh_prev (B, H) (pass-through of masked rows)."""
    B, H = dh.shape
    zero = dh.dtype.type(0)
    one = dh.dtype.type(1)
    for b in range(B):
        if not mask[b]:
            _zero_row(dpre[b])
            _copy_row(dh[b], dh_prev[b])
            continue
        dr, gr, hr = dpre[b], dh[b], h[b]
        if relu:
            for j in range(H):
                dr[j] = gr[j] if hr[j] > zero else zero
        else:
            for j in range(H):
                dr[j] = gr[j] * (one - hr[j] * hr[j])
        _zero_row(dh_prev[b])


@jit
def lstm_masked_fwd(xw, gh, c_prev, h_prev, mask, h_out, c_out, gates_out):
    """xw, gh (B, 4H); c_prev, h_prev (B, H); mask (B,) -> h_out, c_out (B, H), gates_out (B, 4H) i, f, g, o.

    c' = f * c + i * g, h' = o * tanh(c') on valid rows; masked rows copy h_prev, c_prev (gates: zero).
    """
    B, H = h_out.shape
    for b in range(B):
        gt = gates_out[b]
        if not mask[b]:
            _copy_row(h_prev[b], h_out[b])
            _copy_row(c_prev[b], c_out[b])
            _zero_row(gt)
            continue
        xr, gr = xw[b], gh[b]
        for j in range(H):
            gt[j] = sigmoid(xr[j] + gr[j])
        for j in range(H):
            gt[H + j] = sigmoid(xr[H + j] + gr[H + j])
        for j in range(H):
            gt[2 * H + j] = tanh(xr[2 * H + j] + gr[2 * H + j])
        for j in range(H):
            gt[3 * H + j] = sigmoid(xr[3 * H + j] + gr[3 * H + j])
        cp, cr, hr = c_prev[b], c_out[b], h_out[b]
        for j in range(H):
            cn = gt[H + j] * cp[j] + gt[j] * gt[2 * H + j]
            cr[j] = cn
            hr[j] = gt[3 * H + j] * tanh(cn)


@jit
def lstm_masked_bwd(dh, dc, gates, c, c_prev, mask, dpre, dh_prev, dc_prev):
    """dh, dc (B, H) into the step's outputs; gates (B, 4H), c (B, H) its outputs; c_prev (B, H) its input.

    -> dpre (B, 4H) gradient of the pre-activations (same for xw and gh), dh_prev (B, H) the pass-through
    of masked rows (0 on valid rows: their h_prev gradient is dpre @ W_hh, computed outside), dc_prev (B, H).
    """
    B, H = dh.shape
    one = dh.dtype.type(1)
    for b in range(B):
        if not mask[b]:
            _zero_row(dpre[b])
            _copy_row(dh[b], dh_prev[b])
            _copy_row(dc[b], dc_prev[b])
            continue
        gt, dr, dhr, dcr, ct, cp, dcp = gates[b], dpre[b], dh[b], dc[b], c[b], c_prev[b], dc_prev[b]
        for j in range(H):  # o gate, and dL/dc_t (kept in dc_prev for now) with the path through h_t
            o = gt[3 * H + j]
            tc = tanh(ct[j])
            dr[3 * H + j] = dhr[j] * tc * o * (one - o)
            dcp[j] = dcr[j] + dhr[j] * o * (one - tc * tc)
        for j in range(H):  # i, f, g gates, then dL/dc_{t-1}
            i = gt[j]
            f = gt[H + j]
            g = gt[2 * H + j]
            gc = dcp[j]
            dr[j] = gc * g * i * (one - i)
            dr[H + j] = gc * cp[j] * f * (one - f)
            dr[2 * H + j] = gc * i * (one - g * g)
            dcp[j] = gc * f
        _zero_row(dh_prev[b])


@jit
def gru_masked_fwd(xw, gh, h_prev, mask, h_out, gates_out):
    """xw, gh (B, 3H); h_prev (B, H); mask (B,) -> h_out (B, H), gates_out (B, 3H) r, z, n.

    n = tanh(xw_n + r * gh_n) (reset gate applied to W_hn h + b_hn), h' = (1 - z) * n + z * h.
    """
    B, H = h_out.shape
    one = h_out.dtype.type(1)
    for b in range(B):
        gt = gates_out[b]
        if not mask[b]:
            _copy_row(h_prev[b], h_out[b])
            _zero_row(gt)
            continue
        xr, gr = xw[b], gh[b]
        for j in range(H):
            gt[j] = sigmoid(xr[j] + gr[j])
        for j in range(H):
            gt[H + j] = sigmoid(xr[H + j] + gr[H + j])
        for j in range(H):
            gt[2 * H + j] = tanh(xr[2 * H + j] + gt[j] * gr[2 * H + j])
        hp, hr = h_prev[b], h_out[b]
        for j in range(H):
            z = gt[H + j]
            hr[j] = (one - z) * gt[2 * H + j] + z * hp[j]


@jit
def gru_masked_bwd(dh, gates, h_prev, gh, mask, dxw, dgh, dh_prev):
    """dh (B, H); gates (B, 3H), h_prev (B, H), gh (B, 3H) of the step -> dxw, dgh (B, 3H), dh_prev (B, H).

    dgh differs from dxw in the n block (multiplied by r); dh_prev is z * dh on valid rows (the part not
    through W_hh), dh on masked rows.
    """
    B, H = dh.shape
    one = dh.dtype.type(1)
    for b in range(B):
        if not mask[b]:
            _zero_row(dxw[b])
            _zero_row(dgh[b])
            _copy_row(dh[b], dh_prev[b])
            continue
        gt, dhr, hp, gr, dx, dg, dp = gates[b], dh[b], h_prev[b], gh[b], dxw[b], dgh[b], dh_prev[b]
        for j in range(H):
            z = gt[H + j]
            n = gt[2 * H + j]
            g = dhr[j]
            dx[2 * H + j] = g * (one - z) * (one - n * n)
            dx[H + j] = g * (hp[j] - n) * z * (one - z)
            dp[j] = g * z
        for j in range(H):
            r = gt[j]
            dn = dx[2 * H + j]
            dr = dn * gr[2 * H + j] * r * (one - r)
            dx[j] = dr
            dg[j] = dr
            dg[H + j] = dx[H + j]
            dg[2 * H + j] = dn * r
