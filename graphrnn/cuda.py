"""GPU executor on numba.cuda (NVIDIA's numba-cuda): the executor contract of graphrnn/executors.py on a GPU.

Same numbers as the CPU executors (``kernels.reference.stack_forward`` to dtype tolerance). Per layer and
direction: the input projection of all steps as one tiled GEMM, then either one launch for the whole
sequence (the persistent kernel, when W_hh fits in shared memory: small H) or, per step, a tiled GEMM for
h W_hh^T on the running rows plus one fused gate kernel. Backward mirrors it, then the weight gradients are
whole-sequence GEMMs. See kernels/cuda.py for the layout (rows sorted by length through an index, reverse
direction by time index, state in place).

Arrays: NumPy inputs are copied to the device and results copied back. Device inputs (anything with
``__cuda_array_interface__``: numba device arrays, CuPy arrays, PyTorch CUDA tensors; and the simulator's
device arrays) stay on the device, and results come back as numba device arrays. Parameters may be NumPy
(copied to the device on every forward call, so optimisers may update them in place) or device arrays;
parameter gradients live where the parameters live, the input, h0 and c0 gradients where x lives.

Importing this module is cheap and never imports numba.cuda; the CUDA backend is loaded on first use, and
``CudaUnavailableError`` says what to install when it cannot be.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

# W_hh is kept in shared memory by the persistent kernel when W_hh plus the state of one block of rows fits
# in this many bytes (48 KiB is what every CUDA GPU gives a block without opting in). Set it to 0 to force
# the per-step path (tests do, to cover both).
PERSISTENT_MAX_BYTES = 48 * 1024

INSTALL_HINT = (
    'install NVIDIA\'s numba-cuda package: pip install "graphrnn[cuda]" (on a GPU machine also the CUDA '
    'toolkit wheels matching the driver, e.g. pip install "numba-cuda[cu12]" or "numba-cuda[cu13]"). '
    "To run the CUDA kernels on the CPU for testing, set NUMBA_ENABLE_CUDASIM=1 before numba is imported "
    "(slow: one Python thread per CUDA thread)."
)


class CudaUnavailableError(RuntimeError):
    """executor="cuda" was asked for but numba-cuda or a usable GPU (or the simulator) is missing."""


_BACKEND = None


def _backend():
    """(numba.cuda, graphrnn.kernels.cuda), imported on first use; a clear error when they cannot work."""
    global _BACKEND
    if _BACKEND is not None:
        return _BACKEND
    try:
        from numba import cuda
    except ImportError as e:  # numba without any CUDA target
        raise CudaUnavailableError(
            f"executor='cuda' needs numba.cuda, which failed to import ({e}); " + INSTALL_HINT
        ) from e
    if getattr(cuda, "implementation", "") != "NVIDIA":
        raise CudaUnavailableError(
            "executor='cuda' needs NVIDIA's numba-cuda package, but numba's deprecated built-in CUDA target "
            "was found instead; " + INSTALL_HINT
        )
    if not cuda.is_available():
        raise CudaUnavailableError(
            "executor='cuda' found no usable CUDA GPU (no device, or no driver); " + INSTALL_HINT
        )
    from graphrnn.kernels import cuda as kc

    _BACKEND = (cuda, kc)
    return _BACKEND


def is_device_array(obj) -> bool:
    """True for arrays that live on a CUDA device: anything exposing ``__cuda_array_interface__`` (numba,
    CuPy, PyTorch CUDA tensors) and the CUDA simulator's device arrays. Never imports numba.cuda."""
    try:
        return hasattr(obj, "__cuda_array_interface__") or bool(getattr(obj, "__cuda_ndarray__", False))
    except RuntimeError:  # e.g. a CUDA tensor that requires grad refuses the interface: it is on the device,
        return True  # and as_device_array will pass on the owner's own message (detach it first)


def as_device_array(name, value, dtype=None):
    """A numba device array for ``value`` (a device array of any kind, without copying, or a host array,
    copied), cast on the device to ``dtype`` when given and different. Int, bool and complex data are a
    TypeError naming ``name``; a non-contiguous device array is copied to a contiguous one."""
    cuda, kc = _backend()
    if is_device_array(value):
        arr = value if getattr(value, "__cuda_ndarray__", False) else cuda.as_cuda_array(value)
    else:
        host = np.asarray(value)
        if host.dtype.kind != "f":
            raise TypeError(f"{name} must be a float array (float32 or float64), got dtype {host.dtype}")
        # a fresh C-order copy: canonical strides even on size-1 axes (x[:, None] views have odd ones)
        return cuda.to_device(np.array(host, dtype=dtype if dtype is not None else host.dtype, order="C"))
    if np.dtype(arr.dtype).kind != "f":
        raise TypeError(f"{name} must be a float array (float32 or float64), got dtype {arr.dtype}")
    target = np.dtype(dtype) if dtype is not None else np.dtype(arr.dtype)
    if target != arr.dtype or not arr.is_c_contiguous():
        out = cuda.device_array(arr.shape, dtype=target)
        if arr.size:
            src = arr if arr.is_c_contiguous() else _contiguous(arr)
            _launch1d(kc.cast_copy, out.size)(out.reshape(-1), src.reshape(-1))
        arr = out
    return arr


def transpose01(a):
    """(P, Q, F) device array -> contiguous (Q, P, F) device array (batch_first <-> time-major)."""
    cuda, kc = _backend()
    a = as_device_array("a", a)
    P, Q, F = a.shape
    out = cuda.device_array((Q, P, F), dtype=a.dtype)
    if out.size:
        _launch1d(kc.transpose01, out.size)(out, a)
    return out


def to_host(a) -> np.ndarray:
    """A NumPy copy of a device array (or the array itself when it is already on the host)."""
    if not is_device_array(a):
        return np.asarray(a)
    if not getattr(a, "__cuda_ndarray__", False):
        a = _backend()[0].as_cuda_array(a)
    return a.copy_to_host()


# ------------------------------------------------------------------------------------------ launching

_LAUNCHERS: dict = {}


def _launcher(kernel, grid, block, shmem=0):
    """A configured kernel. Small grids are deliberate here (a step of batch 1), so the low-occupancy
    performance warning is silenced for our launches only; configurations are cached (cheaper launches).
    The simulator reconfigures the kernel object itself, so there nothing is cached."""
    kc = _backend()[1]
    if kc.SIMULATOR:
        return kernel[grid, block, 0, shmem]
    key = (id(kernel), grid, block, shmem)  # kernels are module-level objects: ids stay valid
    cfg = _LAUNCHERS.get(key)
    if cfg is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = kernel[grid, block, 0, shmem]
        _LAUNCHERS[key] = cfg
    return cfg


def _launch1d(kernel, n):
    """A grid-stride element-wise kernel over n elements."""
    kc = _backend()[1]
    t = kc.THREADS_1D
    return _launcher(kernel, (max(1, min(-(-n // t), kc.BLOCKS_1D_MAX)),), (t,))


def _contiguous(a):
    """A contiguous copy of a strided device view (rare: through the host, as numba has no strided D2D copy)."""
    return _backend()[0].to_device(np.ascontiguousarray(a.copy_to_host()))


class _Device:
    """Allocation and small kernels for one dtype."""

    def __init__(self, dtype):
        self.cuda, self.kc = _backend()
        self.dt = np.dtype(dtype)
        self.one = self.dt.type(1)
        self.zero = self.dt.type(0)
        self.gemm_kernel = self.kc.gemm_f32 if self.dt == np.float32 else self.kc.gemm_f64
        self.persist_fwd = (
            self.kc.persistent_forward_f32 if self.dt == np.float32 else self.kc.persistent_forward_f64
        )
        self.persist_bwd = (
            self.kc.persistent_backward_f32 if self.dt == np.float32 else self.kc.persistent_backward_f64
        )
        self.no_rows = self.cuda.to_device(np.zeros(1, dtype=np.int32))
        self.dummy1 = self.cuda.to_device(np.zeros(1, dtype=self.dt))
        self.dummy2 = self.cuda.to_device(np.zeros((1, 1), dtype=self.dt))
        self.dummy3 = self.cuda.to_device(np.zeros((1, 1, 1), dtype=self.dt))

    def empty(self, shape):
        return self.cuda.device_array(shape, dtype=self.dt)

    def zeros(self, shape):
        a = self.empty(shape)
        self.fill(a, 0)
        return a

    def fill(self, a, value):
        if a.size:
            _launch1d(self.kc.fill, a.size)(a.reshape(-1), self.dt.type(value))

    def copy(self, a):
        """A new contiguous device array holding a (itself a contiguous device array)."""
        out = self.empty(a.shape)
        if a.size:
            _launch1d(self.kc.cast_copy, a.size)(out.reshape(-1), a.reshape(-1))
        return out

    def multiply(self, out, a, b):
        if out.size:
            _launch1d(self.kc.multiply, out.size)(out.reshape(-1), a.reshape(-1), b.reshape(-1))

    def column_sums(self, a2):
        out = self.empty((a2.shape[1],))
        _launch1d(self.kc.column_sums, a2.shape[1])(a2, out, self.zero)
        return out

    def gemm(
        self,
        a,
        bm,
        c,
        *,
        trans_a=False,
        trans_b=False,
        accumulate=False,
        rows=None,
        M=None,
        bias1=None,
        bias2=None,
    ):
        """c (M, N) [+]= op(a) @ op(bm) [+ bias1 + bias2]; with rows, row m of a and c is rows[m], m < M."""
        kc = self.kc
        N = c.shape[1]
        K = a.shape[0] if trans_a else a.shape[1]
        if M is None:
            M = c.shape[0]
        if M == 0 or N == 0:
            return
        if M <= kc.GEMM_SKINNY_M:
            block = (kc.GEMM_SKINNY_TX, 1)
        else:
            block = (kc.GEMM_TX, kc.GEMM_TY)
        bm_rows = block[1] * kc.GEMM_RM
        bn = block[0] * kc.GEMM_RN
        grid = (-(-N // bn), -(-M // bm_rows))
        bk = kc.GEMM_BK
        shmem = bk * (bm_rows + bn) * self.dt.itemsize
        nbias = 0 if bias1 is None else (1 if bias2 is None else 2)
        _launcher(self.gemm_kernel, grid, block, shmem)(
            a,
            bm,
            c,
            self.no_rows if rows is None else rows,
            rows is not None,
            trans_a,
            trans_b,
            accumulate,
            self.dummy1 if bias1 is None else bias1,
            self.dummy1 if bias2 is None else bias2,
            nbias,
            M,
            N,
            K,
            bk,
            self.zero,
        )

    def gate_launcher(self, kernel, nb, H):
        kc = self.kc
        grid = (-(-H // kc.GATE_TX), -(-nb // kc.GATE_TY))
        return _launcher(kernel, grid, (kc.GATE_TX, kc.GATE_TY))

    def persistent_rows(self, GH, H, B):
        """Rows per block for the persistent kernel, or 0 when W_hh does not fit (use the per-step path)."""
        it = self.dt.itemsize
        best = 0
        for rb in range(1, min(self.kc.PERSIST_MAX_ROWS, B) + 1):
            if (GH * H + rb * (H + GH)) * it <= PERSISTENT_MAX_BYTES:
                best = rb
        return best


_DEVICES: dict = {}


def _device(dtype) -> _Device:
    key = np.dtype(dtype).name
    if key not in _DEVICES:
        _DEVICES[key] = _Device(dtype)
    return _DEVICES[key]


# ----------------------------------------------------------------------------------------------- tape


@dataclass
class _DirTape:
    gates: object  # activated gates (T, B, G*H) (LSTM, GRU) or None
    c_all: object  # LSTM cell states (T, B, H) or None
    ghn: object  # GRU W_hn h + b_hn (T, B, H) or None


@dataclass
class Tape:
    spec: object
    params: dict  # the caller's parameters (host or device), to place gradients alike
    dev_params: dict  # device copies used by forward
    on_device: bool  # was x a device array: then the input, h0, c0 gradients stay on the device
    lengths: np.ndarray  # (B,) host
    batch_sizes: np.ndarray  # (T,) host: rows still running at each step
    rows: object  # (B,) int32 device: rows sorted by length, longest first
    lengths_d: object  # (B,) int32 device
    padded: bool  # some length < T
    h0: object  # (L*D, B, H) device
    c0: object
    inputs: list = field(default_factory=list)  # per layer, its input (T, B, I_l) (after dropout)
    outs: list = field(default_factory=list)  # per layer, its raw output (T, B, D*H) (before dropout)
    masks: list | None = None  # device dropout factors
    dirs: list = field(default_factory=list)  # per layer * D + d


# ---------------------------------------------------------------------------------------------- forward


def _upload_params(dev, spec, params):
    """Device copies of NumPy parameters (every call: optimisers update the host arrays in place); device
    parameters are used as they are."""
    return {name: as_device_array(name, params[name], dev.dt) for name in spec.param_shapes()}


def _run_direction(
    dev, spec, xw, W_hh, b_hh, lengths_d, rows, batch_sizes, steps, reverse, h, c, out, col0, keep, dtape
):
    """One layer and direction forward: h, c (B, H) in place, out[:, :, col0:col0+H] written."""
    kc = dev.kc
    B, GH = xw.shape[1], xw.shape[2]
    H = spec.hidden_size
    cell = spec.cell
    gates = dtape.gates if dtape is not None and dtape.gates is not None else dev.dummy3
    c_all = dtape.c_all if dtape is not None and dtape.c_all is not None else dev.dummy3
    ghn = dtape.ghn if dtape is not None and dtape.ghn is not None else dev.dummy3
    c_arr = c if c is not None else dev.dummy2
    b_hh_gru = b_hh if b_hh is not None else dev.zeros((GH,))
    rb = dev.persistent_rows(GH, H, B)
    if rb:
        shmem = (GH * H + rb * (H + GH)) * dev.dt.itemsize
        grid = (-(-B // rb),)
        _launcher(dev.persist_fwd, grid, (kc.PERSIST_THREADS,), shmem)(
            kc.CELL_CODES[cell],
            xw,
            W_hh,
            b_hh_gru,
            lengths_d,
            rows,
            rb,
            reverse,
            h,
            c_arr,
            out,
            col0,
            keep,
            gates,
            c_all,
            ghn,
            dev.one,
        )
        return
    gh = dev.empty((B, GH))
    for s in range(steps):
        nb = int(batch_sizes[s])
        dev.gemm(h, W_hh, gh, trans_b=True, rows=rows, M=nb)
        launch = dev.gate_launcher
        if cell == "lstm":
            launch(kc.lstm_step_forward, nb, H)(
                xw, gh, lengths_d, rows, nb, s, reverse, h, c_arr, out, col0, keep, gates, c_all, dev.one
            )
        elif cell == "gru":
            launch(kc.gru_step_forward, nb, H)(
                xw, gh, b_hh_gru, lengths_d, rows, nb, s, reverse, h, out, col0, keep, gates, ghn, dev.one
            )
        else:
            launch(kc.rnn_step_forward, nb, H)(
                xw, gh, lengths_d, rows, nb, s, reverse, cell == "rnn_relu", h, out, col0, dev.one
            )


def _empty_result(dev, spec, x, h0, c0, on_device):
    T, B, _ = x.shape
    DH = spec.directions * spec.hidden_size
    if on_device:
        out = dev.zeros((T, B, DH))
        h_n = as_device_array("h0", h0, dev.dt)
        c_n = as_device_array("c0", c0, dev.dt) if c0 is not None else None
        return out, dev.copy(h_n), (dev.copy(c_n) if c_n is not None else None), None
    out = np.zeros((T, B, DH), dtype=dev.dt)
    return out, to_host(h0).copy(), (to_host(c0).copy() if c0 is not None else None), None


def forward(spec, params, x, lengths, h0, c0, masks, keep):
    """The executor contract's forward (graphrnn/executors.py), on the GPU."""
    dev = _device(spec.np_dtype)
    kc = dev.kc
    on_device = is_device_array(x)
    T, B, _ = x.shape
    H, D, L = spec.hidden_size, spec.directions, spec.num_layers
    GH = spec.gates * H
    lengths = np.asarray(to_host(lengths), dtype=np.int64) if lengths is not None else np.full(B, T, np.int64)
    if T == 0 or B == 0:
        return _empty_result(dev, spec, x, h0, c0, on_device)
    padded = bool((lengths < T).any())
    x_d = as_device_array("x", x, dev.dt)
    if on_device and padded:  # the contract wants zeros at padded positions (NaN there must not leak)
        masked = dev.empty(x_d.shape)
        _launch1d(kc.zero_padded_copy, masked.size)(masked, x_d, dev.cuda.to_device(lengths), dev.zero)
        x_d = masked
    order = np.argsort(-lengths, kind="stable")
    rows = dev.cuda.to_device(order.astype(np.int32))
    lengths_d = dev.cuda.to_device(lengths.astype(np.int32))
    batch_sizes = (lengths[None, :] > np.arange(T)[:, None]).sum(axis=1)
    steps = int(lengths.max())
    h_n = dev.copy(as_device_array("h0", h0, dev.dt))
    c_n = dev.copy(as_device_array("c0", c0, dev.dt)) if c0 is not None else None
    dev_params = _upload_params(dev, spec, params)
    masks_d = [as_device_array("masks", m, dev.dt) for m in masks] if masks is not None else None
    tape = None
    if keep:
        tape = Tape(
            spec,
            params,
            dev_params,
            on_device,
            lengths,
            batch_sizes,
            rows,
            lengths_d,
            padded,
            dev.copy(h_n),
            dev.copy(c_n) if c_n is not None else None,
            masks=masks_d,
        )

    layer_in = x_d
    for layer in range(L):
        I_l = layer_in.shape[2]
        raw = dev.zeros((T, B, D * H)) if padded else dev.empty((T, B, D * H))
        for d in range(D):
            k = layer * D + d
            W_ih, W_hh, b_ih, b_hh = spec.layer_params(dev_params, layer, d)
            xw = dev.empty((T, B, GH))
            fold = spec.cell != "gru"  # RNN and LSTM add b_hh here too; the GRU gate needs it apart
            dev.gemm(
                layer_in.reshape(T * B, I_l),
                W_ih,
                xw.reshape(T * B, GH),
                trans_b=True,
                bias1=b_ih,
                bias2=b_hh if (fold and b_ih is not None) else None,
            )
            dtape = None
            if keep:
                dtape = _DirTape(
                    dev.empty((T, B, GH)) if spec.cell in ("lstm", "gru") else None,
                    dev.empty((T, B, H)) if spec.cell == "lstm" else None,
                    dev.empty((T, B, H)) if spec.cell == "gru" else None,
                )
                tape.dirs.append(dtape)
            _run_direction(
                dev,
                spec,
                xw,
                W_hh,
                b_hh,
                lengths_d,
                rows,
                batch_sizes,
                steps,
                d == 1,
                h_n[k],
                c_n[k] if c_n is not None else None,
                raw,
                d * H,
                keep,
                dtape,
            )
        if keep:
            tape.inputs.append(layer_in)
            tape.outs.append(raw)
        if masks_d is not None and layer < L - 1:
            nxt = dev.empty(raw.shape)
            dev.multiply(nxt, raw, masks_d[layer])
            layer_in = nxt
        else:
            layer_in = raw

    out = layer_in
    if not on_device:
        out = out.copy_to_host()
        h_n = h_n.copy_to_host()
        c_n = c_n.copy_to_host() if c_n is not None else None
    return out, h_n, c_n, tape


# --------------------------------------------------------------------------------------------- backward


def _backward_direction(dev, spec, tape, layer, d, g_layer, W_hh, dh, dc, dxw, dgh, hprev):
    kc = dev.kc
    B = g_layer.shape[1]
    H = spec.hidden_size
    GH = W_hh.shape[0]
    cell = spec.cell
    k = layer * spec.directions + d
    dtape = tape.dirs[k]
    out = tape.outs[layer]
    h0 = tape.h0[k]
    c0 = tape.c0[k] if tape.c0 is not None else dev.dummy2
    gates = dtape.gates if dtape.gates is not None else dev.dummy3
    c_all = dtape.c_all if dtape.c_all is not None else dev.dummy3
    ghn = dtape.ghn if dtape.ghn is not None else dev.dummy3
    dc_arr = dc if dc is not None else dev.dummy2
    col0 = d * H
    reverse = d == 1
    rows, lengths_d = tape.rows, tape.lengths_d
    rb = dev.persistent_rows(GH, H, B)
    if rb:
        shmem = (GH * H + rb * (H + GH)) * dev.dt.itemsize
        _launcher(dev.persist_bwd, (-(-B // rb),), (kc.PERSIST_THREADS,), shmem)(
            kc.CELL_CODES[cell],
            g_layer,
            out,
            h0,
            gates,
            c_all,
            c0,
            ghn,
            W_hh,
            lengths_d,
            rows,
            rb,
            reverse,
            col0,
            dh,
            dc_arr,
            dxw,
            dgh,
            hprev,
            dev.one,
        )
        return
    ds = dev.empty((B, GH))
    steps = int(tape.lengths.max())
    for s in range(steps - 1, -1, -1):
        nb = int(tape.batch_sizes[s])
        launch = dev.gate_launcher
        if cell == "lstm":
            launch(kc.lstm_step_backward, nb, H)(
                g_layer,
                out,
                h0,
                gates,
                c_all,
                c0,
                lengths_d,
                rows,
                nb,
                s,
                reverse,
                col0,
                dh,
                dc_arr,
                dxw,
                ds,
                hprev,
                dev.one,
            )
        elif cell == "gru":
            launch(kc.gru_step_backward, nb, H)(
                g_layer,
                out,
                h0,
                gates,
                ghn,
                lengths_d,
                rows,
                nb,
                s,
                reverse,
                col0,
                dh,
                dxw,
                dgh,
                ds,
                hprev,
                dev.one,
            )
        else:
            launch(kc.rnn_step_backward, nb, H)(
                g_layer,
                out,
                h0,
                lengths_d,
                rows,
                nb,
                s,
                reverse,
                cell == "rnn_relu",
                col0,
                dh,
                dxw,
                ds,
                hprev,
                dev.one,
            )
        dev.gemm(ds, W_hh, dh, rows=rows, M=nb, accumulate=(cell == "gru"))


def backward(tape, g_out, g_hn, g_cn):
    """The executor contract's backward (graphrnn/executors.py), on the GPU."""
    spec = tape.spec
    dev = _device(spec.np_dtype)
    H, D, L = spec.hidden_size, spec.directions, spec.num_layers
    GH = spec.gates * H
    T, B, _ = g_out.shape
    g_layer = as_device_array("g_out", g_out, dev.dt)
    g_h0 = dev.copy(as_device_array("g_hn", g_hn, dev.dt))
    g_c0 = dev.copy(as_device_array("g_cn", g_cn, dev.dt)) if g_cn is not None else None
    grads_d = {}
    for layer in range(L - 1, -1, -1):
        inp = tape.inputs[layer]
        I_l = inp.shape[2]
        g_in = dev.empty((T, B, I_l))
        for d in range(D):
            k = layer * D + d
            s = spec.suffix(layer, d)
            W_ih, W_hh, b_ih, _ = spec.layer_params(tape.dev_params, layer, d)
            make = dev.zeros if tape.padded else dev.empty  # padded positions must hold zeros for the GEMMs
            dxw = make((T, B, GH))
            dgh = make((T, B, GH)) if spec.cell == "gru" else dxw
            hprev = make((T, B, H))
            _backward_direction(
                dev,
                spec,
                tape,
                layer,
                d,
                g_layer,
                W_hh,
                g_h0[k],
                g_c0[k] if g_c0 is not None else None,
                dxw,
                dgh,
                hprev,
            )
            dxw2, dgh2 = dxw.reshape(T * B, GH), dgh.reshape(T * B, GH)
            gW_ih = dev.empty((GH, I_l))
            dev.gemm(dxw2, inp.reshape(T * B, I_l), gW_ih, trans_a=True)
            gW_hh = dev.empty((GH, H))
            dev.gemm(dgh2, hprev.reshape(T * B, H), gW_hh, trans_a=True)
            grads_d["weight_ih" + s] = gW_ih
            grads_d["weight_hh" + s] = gW_hh
            if b_ih is not None:
                grads_d["bias_ih" + s] = dev.column_sums(dxw2)
                grads_d["bias_hh" + s] = dev.column_sums(dgh2)
            dev.gemm(dxw2, W_ih, g_in.reshape(T * B, I_l), accumulate=(d > 0))
        if layer > 0 and tape.masks is not None:
            dev.multiply(g_in, g_in, tape.masks[layer - 1])
        g_layer = g_in

    grads = {}
    for name, g in grads_d.items():
        grads[name] = g if is_device_array(tape.params[name]) else g.copy_to_host()
    if tape.on_device:
        grads["input"], grads["h0"] = g_layer, g_h0
        if g_c0 is not None:
            grads["c0"] = g_c0
    else:
        grads["input"], grads["h0"] = g_layer.copy_to_host(), g_h0.copy_to_host()
        if g_c0 is not None:
            grads["c0"] = g_c0.copy_to_host()
    return grads
