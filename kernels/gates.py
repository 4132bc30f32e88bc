"""Gate maths of one batch row, forward and backward: the single copy both CPU kernel families call.

kernels/cpu.py (dynamic executor: the running rows of a length-sorted batch) and kernels/masked.py (static
executor: every row of a padded batch, with a mask) differ only in which rows they visit; the equations
live here. Each function takes 1-D row views and updates the recurrent state row in place (c, h, dc, dh):
passing one array for "previous" and "next" keeps LLVM's runtime alias checks, which would send two
overlapping rows down the scalar path (2-3x slower), out of the loops.

Loop shape matters for speed: each inner loop starts at 0, runs over row views and touches few arrays,
which is what LLVM vectorises (a loop over range(2H, 3H), or one touching many arrays, stays scalar: 4-5x).
Gate order is PyTorch's (LSTM i, f, g, o; GRU r, z, n). NumPy twins: kernels/reference.py.
"""

from __future__ import annotations

from graphrnn.kernels._jit import jit, sigmoid, tanh


@jit
def rnn_row_forward(xr, gr, relu, hr):
    """hr = act(xr + gr) for one row (H,); act = relu (NaN propagates, as np.maximum) or tanh."""
    zero = hr.dtype.type(0)
    if relu:
        for j in range(hr.shape[0]):
            v = xr[j] + gr[j]
            hr[j] = zero if v < zero else v
    else:
        for j in range(hr.shape[0]):
            hr[j] = tanh(xr[j] + gr[j])


@jit
def rnn_row_backward(g, yr, relu, dr):
    """dr = g * act'(pre) from the step's output yr; g is the whole dL/dh_t (H,)."""
    zero, one = dr.dtype.type(0), dr.dtype.type(1)
    if relu:
        for j in range(dr.shape[0]):
            dr[j] = g[j] if yr[j] > zero else zero
    else:
        for j in range(dr.shape[0]):
            dr[j] = g[j] * (one - yr[j] * yr[j])


@jit
def lstm_row_forward(xr, gr, cr, hr, gt):
    """xr, gr (4H,) pre-activation halves; cr (H,) c_{t-1} in, c_t = f c_{t-1} + i g out ->
    gt (4H,) activated i, f, g, o and hr = h_t = o tanh(c_t)."""
    H = hr.shape[0]
    for j in range(H):
        gt[j] = sigmoid(xr[j] + gr[j])
    for j in range(H):
        gt[H + j] = sigmoid(xr[H + j] + gr[H + j])
    for j in range(H):
        gt[2 * H + j] = tanh(xr[2 * H + j] + gr[2 * H + j])
    for j in range(H):
        gt[3 * H + j] = sigmoid(xr[3 * H + j] + gr[3 * H + j])
    for j in range(H):
        cn = gt[H + j] * cr[j] + gt[j] * gt[2 * H + j]
        cr[j] = cn
        hr[j] = gt[3 * H + j] * tanh(cn)


@jit
def lstm_row_backward(g, dc, gt, ct, cp, dr):
    """g = dL/dh_t (H,); dc (H,) dL/dc_t from later steps in, dL/dc_{t-1} out; gt, ct, cp the step's
    gates, c_t and c_{t-1} -> dr (4H,) pre-activation gradients."""
    H = g.shape[0]
    one = dr.dtype.type(1)
    for j in range(H):  # o gate, and the whole dL/dc_t with the path through h_t
        o = gt[3 * H + j]
        tc = tanh(ct[j])
        dr[3 * H + j] = g[j] * tc * o * (one - o)
        dc[j] += g[j] * o * (one - tc * tc)
    for j in range(H):  # i, f, g gates, then dL/dc_{t-1}
        i = gt[j]
        f = gt[H + j]
        gg = gt[2 * H + j]
        dct = dc[j]
        dr[j] = dct * gg * i * (one - i)
        dr[H + j] = dct * cp[j] * f * (one - f)
        dr[2 * H + j] = dct * i * (one - gg * gg)
        dc[j] = dct * f


@jit
def gru_row_forward(xr, gr, br, hr, gt, hn):
    """xr = W_ih x + b_ih, gr = W_hh h (3H,), br = b_hh (3H,); hr (H,) h_{t-1} in, h_t out ->
    gt (3H,) r, z, n and hn = W_hn h + b_hn (H,), which the reset gate multiplies;
    h_t = (1 - z) n + z h_{t-1}."""
    H = hr.shape[0]
    one = hr.dtype.type(1)
    for j in range(H):
        gt[j] = sigmoid(xr[j] + gr[j] + br[j])
    for j in range(H):
        gt[H + j] = sigmoid(xr[H + j] + gr[H + j] + br[H + j])
    for j in range(H):
        hn[j] = gr[2 * H + j] + br[2 * H + j]
    for j in range(H):
        gt[2 * H + j] = tanh(xr[2 * H + j] + gt[j] * hn[j])
    for j in range(H):
        z = gt[H + j]
        hr[j] = (one - z) * gt[2 * H + j] + z * hr[j]


@jit
def gru_row_backward(g, gt, hn, hp, dx, dg):
    """g (H,) dL/dh_t in, z * dL/dh_t out (the part of dL/dh_{t-1} not through W_hh); gt, hn, hp the step's
    gates, W_hn h + b_hn and h_{t-1} -> dx, dg (3H,) gradients of the input-side and hidden-side
    pre-activations (they differ in the n block, where r multiplies the hidden side)."""
    H = g.shape[0]
    one = g.dtype.type(1)
    for j in range(H):
        z = gt[H + j]
        n = gt[2 * H + j]
        gj = g[j]
        dx[2 * H + j] = gj * (one - z) * (one - n * n)
        dx[H + j] = gj * (hp[j] - n) * z * (one - z)
        g[j] = gj * z
    for j in range(H):
        r = gt[j]
        dn = dx[2 * H + j]
        dr = dn * hn[j] * r * (one - r)
        dx[j] = dr
        dg[j] = dr
        dg[H + j] = dx[H + j]
        dg[2 * H + j] = dn * r
