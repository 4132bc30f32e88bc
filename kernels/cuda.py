"""CUDA kernels of the GPU executor (numba.cuda from NVIDIA's numba-cuda), forward and BPTT backward.

Imported only when ``executor="cuda"`` is used: nothing on the CPU import path touches ``numba.cuda``.
Letters: T steps, B batch, I input features, H hidden, G gates (RNN 1, LSTM 4 in order i f g o, GRU 3 in
order r z n), D directions. Every kernel has a plain NumPy twin (noted in its docstring) that the simulator
tests compare against.

Layout (what ``graphrnn/cuda.py`` prepares; the same ideas as kernels/cpu.py, without moving any data):
- batch rows stay where they are in memory; ``rows`` (B,) int32 lists them sorted by length, longest first,
  so the rows still running at step s are ``rows[:nb]`` with nb = #{b : lengths[b] > s}. Finished rows are
  never computed, and no input or output is ever permuted;
- step s of row b works on time t = s (forward direction) or t = lengths[b] - 1 - s (reverse direction):
  the reverse direction starts at each row's own last valid step and needs no reversed copy of anything;
- the input projection of all steps is one GEMM, xw = x W_ih^T + b_ih (+ b_hh for RNN and LSTM), done
  before the time loop; a step adds only the recurrent product gh = h W_hh^T (+ b_hh inside the GRU gate,
  where the reset gate multiplies W_hn h + b_hn);
- the state h, c (B, H) is updated in place (h0 in, h_n out; in backward dh, dc enter as dL/dh_n, dL/dc_n
  and leave as dL/dh0, dL/dc0); every step of a row writes its output straight into out[t, b, col0:col0+H]
  of the layer output (T, B, D*H), so the directions need no concatenation.

Two ways to run a layer and direction:
- per step (any H): ``gemm`` for the recurrent product on the running rows, then one fused gate kernel
  (``*_step_forward`` / ``*_step_backward``): two launches per step;
- persistent (small H): ``persistent_forward_*`` / ``persistent_backward_*`` keep W_hh, and the state of a
  block of rows, in shared memory for the whole sequence: one launch per layer and direction. Rows of a
  batch are independent, so each block owns ``rows_per_block`` rows and only synchronises its own threads.

Dtypes: float32 and float64. Shared and local arrays need their dtype at compile time, so the kernels that
use them come as a thin pair of wrappers (``*_f32``/``*_f64``) around one device function; the element-wise
kernels are generic. Constants come in as the argument ``one`` (a scalar of the array dtype), so float32
arithmetic is never promoted to float64.

Tile sizes are module constants: a GPU gets 16x16-thread GEMM blocks of 4x4 outputs per thread; under the
simulator (NUMBA_ENABLE_CUDASIM=1, one Python thread per CUDA thread) they shrink to a few threads with
unequal sides, which keeps tests fast and exercises every partial-tile and indexing path.
"""

from __future__ import annotations

import math

from numba import cuda, float32, float64
from numba.core import config as _numba_config

SIMULATOR = bool(_numba_config.ENABLE_CUDASIM)

if SIMULATOR:
    # few threads with unequal sides (every index mix-up shows), several outputs per thread
    GEMM_TX, GEMM_TY = 3, 2  # threads per block along N (x) and M (y)
    GEMM_RM, GEMM_RN = 3, 4  # outputs per thread along M and N
    GEMM_BK = 5  # depth of a K tile
    GEMM_SKINNY_TX = 4  # threads along N for products with few rows (one thread row)
    GEMM_SKINNY_M = 3  # at or below this many rows, use the skinny block
    PERSIST_THREADS = 5
    PERSIST_MAX_ROWS = 2
    THREADS_1D, BLOCKS_1D_MAX = 8, 1  # element-wise kernels: grid-stride loops
    GATE_TX, GATE_TY = 4, 2  # gate kernels: x along H, y along running rows
else:
    GEMM_TX, GEMM_TY = 16, 16
    GEMM_RM, GEMM_RN = 4, 4
    GEMM_BK = 16
    GEMM_SKINNY_TX = 32
    GEMM_SKINNY_M = 8
    PERSIST_THREADS = 256
    PERSIST_MAX_ROWS = 8
    THREADS_1D, BLOCKS_1D_MAX = 256, 4096
    GATE_TX, GATE_TY = 32, 8


# ============================================================================================= scalars


@cuda.jit(device=True)
def _sigmoid(v, one):
    # two branches so exp never sees a large positive argument (no overflow, no inf/inf)
    if v >= one - one:
        return one / (one + math.exp(-v))
    e = math.exp(v)
    return e / (one + e)


@cuda.jit(device=True)
def _time_of(s, length, reverse):
    """Time index of step s of a row of this length: s, or length - 1 - s for the reverse direction."""
    return length - 1 - s if reverse else s


# ================================================================================= element-wise kernels
# Flat grid-stride loops: any grid covers any size (the simulator runs them with a handful of threads).


@cuda.jit(cache=True)
def fill(a, value):
    """a[:] = value for a flat (N,) array. Twin: ``a[:] = value``."""
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        a[i] = value


@cuda.jit(cache=True)
def multiply(out, a, b):
    """out = a * b for flat (N,) arrays (out may be a). Twin: ``np.multiply(a, b, out=out)``."""
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[i] = a[i] * b[i]


@cuda.jit(cache=True)
def cast_copy(out, a):
    """out = a converted to out's dtype, flat (N,) arrays. Twin: ``out[:] = a.astype(out.dtype)``."""
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[i] = a[i]


@cuda.jit(cache=True)
def transpose01(out, a):
    """out[q, p, :] = a[p, q, :] for a (P, Q, F), out (Q, P, F). Twin: ``a.transpose(1, 0, 2)``."""
    Q, P, F = out.shape
    for i in range(cuda.grid(1), Q * P * F, cuda.gridsize(1)):
        f = i % F
        p = (i // F) % P
        q = i // (F * P)
        out[q, p, f] = a[p, q, f]


@cuda.jit(cache=True)
def zero_padded_copy(out, x, lengths, zero):
    """out[t, b] = x[t, b] if t < lengths[b] else 0, for x, out (T, B, F).

    Twin: ``np.where((np.arange(T)[:, None] < lengths)[:, :, None], x, 0)``.
    """
    T, B, F = x.shape
    for i in range(cuda.grid(1), T * B * F, cuda.gridsize(1)):
        f = i % F
        b = (i // F) % B
        t = i // (F * B)
        out[t, b, f] = x[t, b, f] if t < lengths[b] else zero


@cuda.jit(cache=True)
def column_sums(a, out, zero):
    """out[n] = sum_r a[r, n] for a (R, N): bias gradients. Twin: ``a.sum(axis=0)``."""
    for n in range(cuda.grid(1), a.shape[1], cuda.gridsize(1)):
        acc = zero
        for r in range(a.shape[0]):
            acc += a[r, n]
        out[n] = acc


# ===================================================================================== tiled GEMM


@cuda.jit(device=True)
def _gemm_tile(
    a,
    bm,
    c,
    rows,
    use_rows,
    trans_a,
    trans_b,
    accumulate,
    bias1,
    bias2,
    nbias,
    M,
    N,
    K,
    bk,
    zero,
    sm,
    acc,
    areg,
    breg,
):
    """One block's (BM x BN) tile of C = op(A) op(B) (+ C) (+ bias1 + bias2), K in tiles of bk.

    BM = blockDim.y * RM, BN = blockDim.x * RN; thread (tx, ty) owns rows ty + i*blockDim.y and columns
    tx + j*blockDim.x of the tile (interleaved, so shared-memory reads are conflict-free). op(A) (M, K) is
    a (M, K) or, with trans_a, a (K, M); op(B) (K, N) is bm (K, N) or, with trans_b, bm (N, K). With
    use_rows, logical row m of op(A) and of C is physical row rows[m] (trans_a must be False).
    """
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    nx = cuda.blockDim.x
    ny = cuda.blockDim.y
    RM = acc.shape[0]
    RN = acc.shape[1]
    BM = ny * RM
    BN = nx * RN
    m0 = cuda.blockIdx.y * BM
    n0 = cuda.blockIdx.x * BN
    tid = ty * nx + tx
    nt = nx * ny
    a_s = sm[0 : bk * BM]  # a_s[kk * BM + mm]
    b_s = sm[bk * BM : bk * BM + bk * BN]  # b_s[kk * BN + nn]
    for i in range(RM):
        for j in range(RN):
            acc[i, j] = zero
    for k0 in range(0, K, bk):
        # cooperative loads; the index that is contiguous in memory varies fastest across threads
        for idx in range(tid, BM * bk, nt):
            if trans_a:
                mm = idx % BM
                kk = idx // BM
            else:
                kk = idx % bk
                mm = idx // bk
            m = m0 + mm
            k = k0 + kk
            v = zero
            if m < M and k < K:
                if trans_a:
                    v = a[k, m]
                elif use_rows:
                    v = a[rows[m], k]
                else:
                    v = a[m, k]
            a_s[kk * BM + mm] = v
        for idx in range(tid, BN * bk, nt):
            if trans_b:
                kk = idx % bk
                nn = idx // bk
            else:
                nn = idx % BN
                kk = idx // BN
            n = n0 + nn
            k = k0 + kk
            v = zero
            if n < N and k < K:
                v = bm[n, k] if trans_b else bm[k, n]
            b_s[kk * BN + nn] = v
        cuda.syncthreads()
        for kk in range(bk):
            for i in range(RM):
                areg[i] = a_s[kk * BM + ty + i * ny]
            for j in range(RN):
                breg[j] = b_s[kk * BN + tx + j * nx]
            for i in range(RM):
                for j in range(RN):
                    acc[i, j] += areg[i] * breg[j]
        cuda.syncthreads()
    for i in range(RM):
        m = m0 + ty + i * ny
        if m < M:
            r = rows[m] if use_rows else m
            for j in range(RN):
                n = n0 + tx + j * nx
                if n < N:
                    v = acc[i, j]
                    if nbias >= 1:
                        v += bias1[n]
                    if nbias >= 2:
                        v += bias2[n]
                    if accumulate:
                        v += c[r, n]
                    c[r, n] = v


@cuda.jit(cache=True)
def gemm_f32(a, bm, c, rows, use_rows, trans_a, trans_b, accumulate, bias1, bias2, nbias, M, N, K, bk, zero):
    """float32 C (M, N) = op(A) op(B) [+ C] [+ bias1 + bias2] (see ``_gemm_tile``); dynamic shared memory
    of bk * (BM + BN) elements. Twin: ``(a.T if trans_a else a) @ (bm.T if trans_b else bm)``."""
    sm = cuda.shared.array(0, dtype=float32)
    acc = cuda.local.array((GEMM_RM, GEMM_RN), dtype=float32)
    areg = cuda.local.array(GEMM_RM, dtype=float32)
    breg = cuda.local.array(GEMM_RN, dtype=float32)
    _gemm_tile(a, bm, c, rows, use_rows, trans_a, trans_b, accumulate, bias1, bias2, nbias, M, N, K, bk, zero,
               sm, acc, areg, breg)


@cuda.jit(cache=True)
def gemm_f64(a, bm, c, rows, use_rows, trans_a, trans_b, accumulate, bias1, bias2, nbias, M, N, K, bk, zero):
    """float64 twin of ``gemm_f32``."""
    sm = cuda.shared.array(0, dtype=float64)
    acc = cuda.local.array((GEMM_RM, GEMM_RN), dtype=float64)
    areg = cuda.local.array(GEMM_RM, dtype=float64)
    breg = cuda.local.array(GEMM_RN, dtype=float64)
    _gemm_tile(a, bm, c, rows, use_rows, trans_a, trans_b, accumulate, bias1, bias2, nbias, M, N, K, bk, zero,
               sm, acc, areg, breg)


# ============================================================================ gate math, one element


@cuda.jit(device=True)
def _rnn_forward_point(xw, t, b, j, g, h_row, out, col0, relu, one):
    """h' = act(xw + gh) for element (b, j) at time t; g, h_row are row b's gh (H,) and state (H,)."""
    v = xw[t, b, j] + g[j]
    zero = one - one
    if relu:
        v = zero if v < zero else v  # noqa: FURB136 (as in kernels/cpu.py: NaN propagates)
    else:
        v = math.tanh(v)
    h_row[j] = v
    out[t, b, col0 + j] = v


@cuda.jit(device=True)
def _lstm_forward_point(xw, t, b, j, H, g, h_row, c, out, col0, keep, gates, c_all, one):
    """One LSTM element: gates i, f, g, o from xw + gh; c[b, j] and h_row[j] updated in place."""
    gi = _sigmoid(xw[t, b, j] + g[j], one)
    gf = _sigmoid(xw[t, b, H + j] + g[H + j], one)
    gg = math.tanh(xw[t, b, 2 * H + j] + g[2 * H + j])
    go = _sigmoid(xw[t, b, 3 * H + j] + g[3 * H + j], one)
    cn = gf * c[b, j] + gi * gg
    hn = go * math.tanh(cn)
    c[b, j] = cn
    h_row[j] = hn
    out[t, b, col0 + j] = hn
    if keep:
        gates[t, b, j] = gi
        gates[t, b, H + j] = gf
        gates[t, b, 2 * H + j] = gg
        gates[t, b, 3 * H + j] = go
        c_all[t, b, j] = cn


@cuda.jit(device=True)
def _gru_forward_point(xw, t, b, j, H, g, b_hh, h_row, out, col0, keep, gates, ghn, one):
    """One GRU element: r, z from xw + gh + b_hh; n = tanh(xw_n + r (W_hn h + b_hn)); h' = (1-z) n + z h."""
    r = _sigmoid(xw[t, b, j] + g[j] + b_hh[j], one)
    z = _sigmoid(xw[t, b, H + j] + g[H + j] + b_hh[H + j], one)
    hn_part = g[2 * H + j] + b_hh[2 * H + j]
    n = math.tanh(xw[t, b, 2 * H + j] + r * hn_part)
    hv = (one - z) * n + z * h_row[j]
    h_row[j] = hv
    out[t, b, col0 + j] = hv
    if keep:
        gates[t, b, j] = r
        gates[t, b, H + j] = z
        gates[t, b, 2 * H + j] = n
        ghn[t, b, j] = hn_part


@cuda.jit(device=True)
def _h_prev(out, tp, b, j, col0, h0):
    """The state a step started from: out[tp, b, col0 + j] of the previous step, or h0[b, j] at the first."""
    return out[tp, b, col0 + j] if tp >= 0 else h0[b, j]


@cuda.jit(device=True)
def _rnn_backward_point(g_out, t, tp, b, j, out, col0, h0, relu, dh_row, dxw, ds_row, hprev, one):
    """dpre = (g_out + dh) act'(.) from the saved output; written to dxw[t, b] and the step row ds_row."""
    zero = one - one
    g = g_out[t, b, col0 + j] + dh_row[j]
    y = out[t, b, col0 + j]
    if relu:
        d = g if y > zero else zero
    else:
        d = g * (one - y * y)
    dxw[t, b, j] = d
    ds_row[j] = d
    hprev[t, b, j] = _h_prev(out, tp, b, j, col0, h0)


@cuda.jit(device=True)
def _lstm_backward_point(
    g_out, t, tp, b, j, H, out, col0, h0, gates, c_all, c0, dh_row, dc, dxw, ds_row, hprev, one
):
    """BPTT through one LSTM element; dc[b, j] goes from dL/dc_t to dL/dc_{t-1} in place."""
    gi = gates[t, b, j]
    gf = gates[t, b, H + j]
    gg = gates[t, b, 2 * H + j]
    go = gates[t, b, 3 * H + j]
    tc = math.tanh(c_all[t, b, j])
    gh = g_out[t, b, col0 + j] + dh_row[j]
    gc = dc[b, j] + gh * go * (one - tc * tc)
    c_prev = c_all[tp, b, j] if tp >= 0 else c0[b, j]
    d_i = gc * gg * gi * (one - gi)
    d_f = gc * c_prev * gf * (one - gf)
    d_g = gc * gi * (one - gg * gg)
    d_o = gh * tc * go * (one - go)
    dxw[t, b, j] = d_i
    dxw[t, b, H + j] = d_f
    dxw[t, b, 2 * H + j] = d_g
    dxw[t, b, 3 * H + j] = d_o
    ds_row[j] = d_i
    ds_row[H + j] = d_f
    ds_row[2 * H + j] = d_g
    ds_row[3 * H + j] = d_o
    dc[b, j] = gc * gf
    hprev[t, b, j] = _h_prev(out, tp, b, j, col0, h0)


@cuda.jit(device=True)
def _gru_backward_point(
    g_out, t, tp, b, j, H, out, col0, h0, gates, ghn, dh_row, dxw, dgh, ds_row, hprev, one
):
    """BPTT through one GRU element. dxw, dgh: input- and hidden-side pre-activation gradients (they differ
    in the n block); dh_row[j] leaves holding the direct part dL/dh_{t-1} = g z (the product adds the rest)."""
    r = gates[t, b, j]
    z = gates[t, b, H + j]
    n = gates[t, b, 2 * H + j]
    g = g_out[t, b, col0 + j] + dh_row[j]
    h_prev = _h_prev(out, tp, b, j, col0, h0)
    dn = g * (one - z) * (one - n * n)
    dz = g * (h_prev - n) * z * (one - z)
    dr = dn * ghn[t, b, j] * r * (one - r)
    dxw[t, b, j] = dr
    dxw[t, b, H + j] = dz
    dxw[t, b, 2 * H + j] = dn
    dgh[t, b, j] = dr
    dgh[t, b, H + j] = dz
    dgh[t, b, 2 * H + j] = dn * r
    ds_row[j] = dr
    ds_row[H + j] = dz
    ds_row[2 * H + j] = dn * r
    dh_row[j] = g * z
    hprev[t, b, j] = h_prev


# ============================================================================= per-step gate kernels
# Grid: x over j < H, y over the running rows i < nb (row b = rows[i], time t of step s).


@cuda.jit(cache=True)
def rnn_step_forward(xw, gh, lengths, rows, nb, s, reverse, relu, h, out, col0, one):
    """xw (T, B, H) both biases folded in; gh (B, H) = h W_hh^T; h (B, H) in place; out (T, B, D*H).

    Twin: ``reference.rnn_step`` on the running rows."""
    j, i = cuda.grid(2)
    if i < nb and j < h.shape[1]:
        b = rows[i]
        t = _time_of(s, lengths[b], reverse)
        _rnn_forward_point(xw, t, b, j, gh[b], h[b], out, col0, relu, one)


@cuda.jit(cache=True)
def lstm_step_forward(xw, gh, lengths, rows, nb, s, reverse, h, c, out, col0, keep, gates, c_all, one):
    """xw (T, B, 4H) both biases folded in; gh (B, 4H); h, c (B, H) in place; keep: also write the
    activated gates (T, B, 4H) and c_all (T, B, H) for backward. Twin: ``reference.lstm_step``."""
    j, i = cuda.grid(2)
    H = h.shape[1]
    if i < nb and j < H:
        b = rows[i]
        t = _time_of(s, lengths[b], reverse)
        _lstm_forward_point(xw, t, b, j, H, gh[b], h[b], c, out, col0, keep, gates, c_all, one)


@cuda.jit(cache=True)
def gru_step_forward(xw, gh, b_hh, lengths, rows, nb, s, reverse, h, out, col0, keep, gates, ghn, one):
    """xw (T, B, 3H) = x W_ih^T + b_ih; gh (B, 3H) = h W_hh^T (b_hh (3H,) added here); keep: write gates
    r, z, n (T, B, 3H) and ghn = W_hn h + b_hn (T, B, H). Twin: ``reference.gru_step``."""
    j, i = cuda.grid(2)
    H = h.shape[1]
    if i < nb and j < H:
        b = rows[i]
        t = _time_of(s, lengths[b], reverse)
        _gru_forward_point(xw, t, b, j, H, gh[b], b_hh, h[b], out, col0, keep, gates, ghn, one)


@cuda.jit(cache=True)
def rnn_step_backward(g_out, out, h0, lengths, rows, nb, s, reverse, relu, col0, dh, dxw, ds, hprev, one):
    """Step s of BPTT: dh (B, H) holds dL/dh_t (without g_out); writes dpre to dxw[t, b] (T, B, H) and to
    ds (B, H) for the product dh = ds W_hh that follows, and h_{t-1} to hprev (T, B, H) for dW_hh.
    Twin: ``reference.rnn_step_backward``."""
    j, i = cuda.grid(2)
    if i < nb and j < dh.shape[1]:
        b = rows[i]
        L = lengths[b]
        t = _time_of(s, L, reverse)
        tp = _time_of(s - 1, L, reverse) if s > 0 else -1
        _rnn_backward_point(g_out, t, tp, b, j, out, col0, h0, relu, dh[b], dxw, ds[b], hprev, one)


@cuda.jit(cache=True)
def lstm_step_backward(
    g_out, out, h0, gates, c_all, c0, lengths, rows, nb, s, reverse, col0, dh, dc, dxw, ds, hprev, one
):
    """Step s of LSTM BPTT; dc (B, H) in place. Twin: ``reference.lstm_step_backward``."""
    j, i = cuda.grid(2)
    H = dh.shape[1]
    if i < nb and j < H:
        b = rows[i]
        L = lengths[b]
        t = _time_of(s, L, reverse)
        tp = _time_of(s - 1, L, reverse) if s > 0 else -1
        _lstm_backward_point(
            g_out, t, tp, b, j, H, out, col0, h0, gates, c_all, c0, dh[b], dc, dxw, ds[b], hprev, one
        )


@cuda.jit(cache=True)
def gru_step_backward(
    g_out, out, h0, gates, ghn, lengths, rows, nb, s, reverse, col0, dh, dxw, dgh, ds, hprev, one
):
    """Step s of GRU BPTT; the product that follows accumulates: dh += ds W_hh.
    Twin: ``reference.gru_step_backward``."""
    j, i = cuda.grid(2)
    H = dh.shape[1]
    if i < nb and j < H:
        b = rows[i]
        L = lengths[b]
        t = _time_of(s, L, reverse)
        tp = _time_of(s - 1, L, reverse) if s > 0 else -1
        _gru_backward_point(
            g_out, t, tp, b, j, H, out, col0, h0, gates, ghn, dh[b], dxw, dgh, ds[b], hprev, one
        )


# ========================================================================== persistent (small H) kernels
# Block k owns sorted rows rows[k*RB : k*RB + RB] (RB = rows_per_block) and runs the whole sequence in one
# launch. Dynamic shared memory (elements): W_hh (G*H*H), the block's state rows (RB*H) and their step
# products (RB*G*H). cell: 0 rnn_tanh, 1 rnn_relu, 2 lstm, 3 gru.


@cuda.jit(device=True)
def _persistent_forward(
    cell, xw, W_hh, b_hh, lengths, rows, rb, reverse, h, c, out, col0, keep, gates, c_all, ghn, one, sm
):
    B = h.shape[0]
    H = h.shape[1]
    GH = W_hh.shape[0]
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    r0 = cuda.blockIdx.x * rb
    nr = min(rb, B - r0)
    w_t = sm[0 : H * GH]  # W_hh^T: w_t[k * GH + n] = W_hh[n, k] (threads along n read consecutive words)
    hs = sm[H * GH : H * GH + rb * H]  # hs[r * H + j]
    gs = sm[H * GH + rb * H : H * GH + rb * H + rb * GH]  # gs[r * GH + n]
    for idx in range(tid, GH * H, nt):
        n = idx // H
        k = idx % H
        w_t[k * GH + n] = W_hh[n, k]
    for idx in range(tid, nr * H, nt):
        r = idx // H
        j = idx % H
        hs[r * H + j] = h[rows[r0 + r], j]
    cuda.syncthreads()
    steps = lengths[rows[r0]] if nr > 0 else 0  # the block's longest row comes first
    for s in range(steps):
        for idx in range(tid, nr * GH, nt):
            r = idx // GH
            n = idx % GH
            if s < lengths[rows[r0 + r]]:
                acc = one - one
                for k in range(H):
                    acc += hs[r * H + k] * w_t[k * GH + n]
                gs[r * GH + n] = acc
        cuda.syncthreads()
        for idx in range(tid, nr * H, nt):
            r = idx // H
            j = idx % H
            b = rows[r0 + r]
            L = lengths[b]
            if s < L:
                t = _time_of(s, L, reverse)
                g = gs[r * GH : (r + 1) * GH]
                h_row = hs[r * H : (r + 1) * H]
                if cell == 2:
                    _lstm_forward_point(xw, t, b, j, H, g, h_row, c, out, col0, keep, gates, c_all, one)
                elif cell == 3:
                    _gru_forward_point(xw, t, b, j, H, g, b_hh, h_row, out, col0, keep, gates, ghn, one)
                else:
                    _rnn_forward_point(xw, t, b, j, g, h_row, out, col0, cell == 1, one)
        cuda.syncthreads()
    for idx in range(tid, nr * H, nt):
        r = idx // H
        j = idx % H
        h[rows[r0 + r], j] = hs[r * H + j]


@cuda.jit(cache=True)
def persistent_forward_f32(
    cell, xw, W_hh, b_hh, lengths, rows, rb, reverse, h, c, out, col0, keep, gates, c_all, ghn, one
):
    """float32: a whole layer and direction, W_hh resident in shared memory. Same arguments and results as
    the per-step path (``gemm`` + ``*_step_forward`` for s = 0 .. T-1), which is its twin."""
    sm = cuda.shared.array(0, dtype=float32)
    _persistent_forward(
        cell, xw, W_hh, b_hh, lengths, rows, rb, reverse, h, c, out, col0, keep, gates, c_all, ghn, one, sm
    )


@cuda.jit(cache=True)
def persistent_forward_f64(
    cell, xw, W_hh, b_hh, lengths, rows, rb, reverse, h, c, out, col0, keep, gates, c_all, ghn, one
):
    """float64 twin of ``persistent_forward_f32``."""
    sm = cuda.shared.array(0, dtype=float64)
    _persistent_forward(
        cell, xw, W_hh, b_hh, lengths, rows, rb, reverse, h, c, out, col0, keep, gates, c_all, ghn, one, sm
    )


@cuda.jit(device=True)
def _persistent_backward(
    cell,
    g_out,
    out,
    h0,
    gates,
    c_all,
    c0,
    ghn,
    W_hh,
    lengths,
    rows,
    rb,
    reverse,
    col0,
    dh,
    dc,
    dxw,
    dgh,
    hprev,
    one,
    sm,
):
    B = dh.shape[0]
    H = dh.shape[1]
    GH = W_hh.shape[0]
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    r0 = cuda.blockIdx.x * rb
    nr = min(rb, B - r0)
    w = sm[0 : GH * H]  # w[n * H + k] = W_hh[n, k] (threads along k read consecutive words)
    hs = sm[GH * H : GH * H + rb * H]  # dL/dh of the block's rows
    ds = sm[GH * H + rb * H : GH * H + rb * H + rb * GH]  # hidden-side pre-activation gradients of a step
    for idx in range(tid, GH * H, nt):
        w[idx] = W_hh[idx // H, idx % H]
    for idx in range(tid, nr * H, nt):
        r = idx // H
        j = idx % H
        hs[r * H + j] = dh[rows[r0 + r], j]
    cuda.syncthreads()
    steps = lengths[rows[r0]] if nr > 0 else 0
    for s in range(steps - 1, -1, -1):
        for idx in range(tid, nr * H, nt):
            r = idx // H
            j = idx % H
            b = rows[r0 + r]
            L = lengths[b]
            if s < L:
                t = _time_of(s, L, reverse)
                tp = _time_of(s - 1, L, reverse) if s > 0 else -1
                dh_row = hs[r * H : (r + 1) * H]
                ds_row = ds[r * GH : (r + 1) * GH]
                if cell == 2:
                    _lstm_backward_point(
                        g_out,
                        t,
                        tp,
                        b,
                        j,
                        H,
                        out,
                        col0,
                        h0,
                        gates,
                        c_all,
                        c0,
                        dh_row,
                        dc,
                        dxw,
                        ds_row,
                        hprev,
                        one,
                    )
                elif cell == 3:
                    _gru_backward_point(
                        g_out, t, tp, b, j, H, out, col0, h0, gates, ghn, dh_row, dxw, dgh, ds_row, hprev, one
                    )
                else:
                    _rnn_backward_point(
                        g_out, t, tp, b, j, out, col0, h0, cell == 1, dh_row, dxw, ds_row, hprev, one
                    )
        cuda.syncthreads()
        for idx in range(tid, nr * H, nt):
            r = idx // H
            k = idx % H
            if s < lengths[rows[r0 + r]]:
                acc = one - one
                for n in range(GH):
                    acc += ds[r * GH + n] * w[n * H + k]
                if cell == 3:
                    hs[r * H + k] += acc  # GRU: the direct part g z is already there
                else:
                    hs[r * H + k] = acc
        cuda.syncthreads()
    for idx in range(tid, nr * H, nt):
        r = idx // H
        j = idx % H
        dh[rows[r0 + r], j] = hs[r * H + j]


@cuda.jit(cache=True)
def persistent_backward_f32(
    cell,
    g_out,
    out,
    h0,
    gates,
    c_all,
    c0,
    ghn,
    W_hh,
    lengths,
    rows,
    rb,
    reverse,
    col0,
    dh,
    dc,
    dxw,
    dgh,
    hprev,
    one,
):
    """float32: BPTT over a whole layer and direction with W_hh in shared memory; its twin is the per-step
    path (``*_step_backward`` + ``gemm`` for s = T-1 .. 0). dh, dc (B, H) g_hn, g_cn -> g_h0, g_c0."""
    sm = cuda.shared.array(0, dtype=float32)
    _persistent_backward(
        cell,
        g_out,
        out,
        h0,
        gates,
        c_all,
        c0,
        ghn,
        W_hh,
        lengths,
        rows,
        rb,
        reverse,
        col0,
        dh,
        dc,
        dxw,
        dgh,
        hprev,
        one,
        sm,
    )


@cuda.jit(cache=True)
def persistent_backward_f64(
    cell,
    g_out,
    out,
    h0,
    gates,
    c_all,
    c0,
    ghn,
    W_hh,
    lengths,
    rows,
    rb,
    reverse,
    col0,
    dh,
    dc,
    dxw,
    dgh,
    hprev,
    one,
):
    """float64 twin of ``persistent_backward_f32``."""
    sm = cuda.shared.array(0, dtype=float64)
    _persistent_backward(
        cell,
        g_out,
        out,
        h0,
        gates,
        c_all,
        c0,
        ghn,
        W_hh,
        lengths,
        rows,
        rb,
        reverse,
        col0,
        dh,
        dc,
        dxw,
        dgh,
        hprev,
        one,
        sm,
    )


CELL_CODES = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3}
