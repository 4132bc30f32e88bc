"""The semantics contract (shared/DESIGN.md, issue 2 section 2), clause by clause, for both executors.

Ring 3: static vs dynamic vs ``kernels.reference.stack_forward`` over the product of options; then each
clause of the contract as its own test; then model gradients vs central finite differences in float64.
Letters: T time steps, B batch, I input features, H hidden units, L layers, D directions.
"""

import itertools

import numpy as np
import pytest
from gradcheck import assert_close, check_grads

import graphrnn
from graphrnn.kernels import reference

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
EXECUTORS = ("dynamic", "static")
T, B, I, H = 5, 4, 3, 2
LENGTHS = {"none": None, "equal": np.array([T] * B), "unsorted_with_0": np.array([3, 0, 5, 1])}


# ------------------------------------------------------------------------------------------------ helpers


def make(cell, input_size=I, hidden_size=H, **kw):
    kw.setdefault("dtype", np.float64)
    kw.setdefault("seed", 0)
    if cell == "lstm":
        return graphrnn.LSTM(input_size, hidden_size, **kw)
    if cell == "gru":
        return graphrnn.GRU(input_size, hidden_size, **kw)
    return graphrnn.RNN(input_size, hidden_size, nonlinearity=cell[4:], **kw)


def is_lstm(m):
    return m.spec.cell == "lstm"


def split(m, state):
    """state -> (h, c) with c None unless LSTM."""
    return state if is_lstm(m) else (state, None)


def join(m, h, c):
    """(h, c) -> the module's hx form; h None means hx=None."""
    if h is None:
        return None
    return (h, c) if is_lstm(m) else h


def random_state(m, rng, B=B, unbatched=False, scale=0.5):
    s = m.spec
    shape = (s.num_layers * s.directions, s.hidden_size) if unbatched else (
        s.num_layers * s.directions, B, s.hidden_size)
    h = (scale * rng.normal(size=shape)).astype(m.dtype)
    c = (scale * rng.normal(size=shape)).astype(m.dtype) if is_lstm(m) else None
    return h, c


def random_x(m, rng, T=T, B=B, lengths=None, garbage=0.0):
    """x in the model's layout; positions t >= lengths[b] hold ``garbage`` (they must not matter)."""
    x = rng.normal(size=(T, B, m.spec.input_size)).astype(m.dtype)
    if lengths is not None:
        x[np.arange(T)[:, None] >= np.asarray(lengths)[None, :]] = garbage
    return x.transpose(1, 0, 2).copy() if m.batch_first else x


def to_time_major(m, a):
    return a.transpose(1, 0, 2) if m.batch_first else a


def reference_run(m, x, lengths=None, h0=None, c0=None, masks=None):
    """kernels.reference.stack_forward on the user's layout: (out in the user's layout, h_n, c_n)."""
    xt = np.ascontiguousarray(to_time_major(m, x))
    out, h_n, c_n = reference.stack_forward(m.spec, m.params, xt, lengths, h0, c0, masks)
    return to_time_major(m, out), h_n, c_n


def run_with_grads(m, executor, x, lengths, h, c, g_out, g_h, g_c, **kw):
    out, st, tape = m.forward(x, lengths, join(m, h, c), executor=executor, **kw)
    grads = m.backward(tape, g_out, join(m, g_h, g_c) if g_h is not None else None)
    return out, st, grads


def cotangents(m, rng, out_shape, state_shape):
    g_out = rng.normal(size=out_shape).astype(m.dtype)
    g_h = rng.normal(size=state_shape).astype(m.dtype)
    g_c = rng.normal(size=state_shape).astype(m.dtype) if is_lstm(m) else None
    return g_out, g_h, g_c


def assert_grads_close(a, b, what, dtype):
    assert set(a) == set(b), f"{what}: keys {sorted(a)} vs {sorted(b)}"
    for k in sorted(a):
        assert_close(a[k], b[k], f"{what} grads[{k!r}]", dtype)


# ------------------------------------------------------------------ static vs dynamic vs reference (product)

PRODUCT = list(itertools.product(CELLS, (1, 2), (False, True), (False, True), tuple(LENGTHS),
                                 ("float32", "float64")))


@pytest.mark.parametrize(
    "cell, layers, bidirectional, batch_first, lengths_kind, dtype", PRODUCT,
    ids=[f"{c}-L{n}-{'bi' if b else 'uni'}-{'bf' if f else 'tm'}-{k}-{d}" for c, n, b, f, k, d in PRODUCT],
)
def test_static_dynamic_and_reference_agree(cell, layers, bidirectional, batch_first, lengths_kind, dtype):
    dt = np.dtype(dtype)
    case = (cell, layers, bidirectional, batch_first, lengths_kind, dtype)
    rng = np.random.default_rng(PRODUCT.index(case))
    m = make(cell, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, dtype=dt, seed=3)
    lengths = LENGTHS[lengths_kind]
    x = random_x(m, rng, lengths=lengths, garbage=7.0)
    h, c = random_state(m, rng)
    out_shape = (B, T, m.spec.directions * H) if batch_first else (T, B, m.spec.directions * H)
    g_out, g_h, g_c = cotangents(m, rng, out_shape, h.shape)

    ref_out, ref_h, ref_c = reference_run(m, x, lengths, h, c)
    results = {}
    for ex in EXECUTORS:
        out, st, grads = run_with_grads(m, ex, x, lengths, h, c, g_out, g_h, g_c)
        h_n, c_n = split(m, st)
        assert out.dtype == dt and h_n.dtype == dt and all(g.dtype == dt for g in grads.values())
        assert_close(out, ref_out, f"[{ex}] output vs reference", dt)
        assert_close(h_n, ref_h, f"[{ex}] h_n vs reference", dt)
        if c is not None:
            assert_close(c_n, ref_c, f"[{ex}] c_n vs reference", dt)
        if lengths is not None:  # padded positions of x do not receive gradient
            pad = np.arange(T)[:, None] >= lengths[None, :]
            assert np.all(to_time_major(m, grads["input"])[pad] == 0), f"[{ex}] grad of padded input not 0"
        results[ex] = grads
    assert_grads_close(results["static"], results["dynamic"], "static vs dynamic", dt)


# ------------------------------------------------------------------------------------- contract clauses


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cell", CELLS)
def test_padded_outputs_are_exactly_zero(cell, executor):
    rng = np.random.default_rng(1)
    m = make(cell, num_layers=2, bidirectional=True)
    lengths = np.array([3, 0, 5, 1])
    x = random_x(m, rng, lengths=lengths, garbage=5.0)
    out, _, grads = run_with_grads(m, executor, x, lengths, None, None, np.ones((T, B, 2 * H)), None, None)
    pad = np.arange(T)[:, None] >= lengths[None, :]
    assert np.all(out[pad] == 0), f"nonzero padded outputs at {np.argwhere((out != 0).any(-1) & pad)}"
    assert np.all(grads["input"][pad] == 0)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cell", CELLS)
def test_values_at_padded_positions_do_not_influence_anything_even_nan(cell, executor):
    rng = np.random.default_rng(2)
    m = make(cell, num_layers=2, bidirectional=True)
    lengths = np.array([3, 0, 5, 1])
    x = random_x(m, rng, lengths=lengths)
    x_nan = x.copy()
    x_nan[np.arange(T)[:, None] >= lengths[None, :]] = np.nan
    out, st = m(x, lengths, executor=executor)
    out_nan, st_nan = m(x_nan, lengths, executor=executor)
    assert np.array_equal(out, out_nan)
    for a, b in zip(split(m, st), split(m, st_nan)):
        if a is not None:
            assert np.array_equal(a, b)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cell", CELLS)
def test_h_n_is_taken_at_each_sequences_last_valid_step(cell, executor):
    """Each row of a padded batch gives what that sequence gives alone, unpadded (h_n, c_n and outputs)."""
    rng = np.random.default_rng(3)
    m = make(cell, num_layers=2, bidirectional=True)
    lengths = np.array([3, 0, 5, 1])
    x = random_x(m, rng, lengths=lengths, garbage=3.0)
    h, c = random_state(m, rng)
    out, st = m(x, lengths, join(m, h, c), executor=executor)
    h_n, c_n = split(m, st)
    for b, n in enumerate(lengths):
        hb = h[:, b : b + 1]
        cb = c[:, b : b + 1] if c is not None else None
        out_b, st_b = m(x[:n, b : b + 1], None, join(m, hb, cb), executor=executor)
        hb_n, cb_n = split(m, st_b)
        assert_close(out[:n, b : b + 1], out_b, f"row {b} (length {n}) output", m.dtype)
        assert_close(h_n[:, b : b + 1], hb_n, f"row {b} (length {n}) h_n", m.dtype)
        if c is not None:
            assert_close(c_n[:, b : b + 1], cb_n, f"row {b} (length {n}) c_n", m.dtype)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cell", CELLS)
def test_reverse_direction_starts_at_each_rows_own_last_valid_step(cell, executor):
    """Reverse half of out at t = len_b - 1 is one cell step from h0 on x[len_b - 1] (not on padding)."""
    rng = np.random.default_rng(4)
    m = make(cell, num_layers=1, bidirectional=True)
    lengths = np.array([3, 2, 5, 1])
    x = random_x(m, rng, lengths=lengths, garbage=9.0)
    h, c = random_state(m, rng)
    out, _ = m(x, lengths, join(m, h, c), executor=executor)
    for d, t_of in ((0, lambda n: 0), (1, lambda n: n - 1)):
        params = m.spec.layer_params(m.params, 0, d)
        for b, n in enumerate(lengths):
            t = t_of(n)
            expected, _ = reference.cell_step(m.spec.cell, x[t, b : b + 1], h[d, b : b + 1],
                                              None if c is None else c[d, b : b + 1], *params)
            assert_close(out[t, b, d * H : (d + 1) * H], expected[0],
                         f"direction {d}, row {b} (length {n}), first step at t={t}", m.dtype)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cell", CELLS)
def test_length_0_returns_the_initial_state(cell, executor):
    rng = np.random.default_rng(5)
    m = make(cell, num_layers=2, bidirectional=True)
    for lengths in (np.array([2, 0, 4, 0]), np.zeros(B, dtype=np.int64)):
        x = random_x(m, rng, lengths=lengths, garbage=1.0)
        h, c = random_state(m, rng)
        g_out, g_h, g_c = cotangents(m, rng, (T, B, 2 * H), h.shape)
        out, st, grads = run_with_grads(m, executor, x, lengths, h, c, g_out, g_h, g_c)
        h_n, c_n = split(m, st)
        zero = lengths == 0
        assert np.array_equal(h_n[:, zero], h[:, zero]), "h_n of a length-0 row is not h0"
        assert np.all(out[:, zero] == 0)
        assert np.all(grads["input"][:, zero] == 0)
        # h_n = h0 for those rows, so d/dh0 is exactly the incoming g_h there
        assert_close(grads["h0"][:, zero], g_h[:, zero], "grads['h0'] of length-0 rows", m.dtype)
        if c is not None:
            assert np.array_equal(c_n[:, zero], c[:, zero]), "c_n of a length-0 row is not c0"
            assert_close(grads["c0"][:, zero], g_c[:, zero], "grads['c0'] of length-0 rows", m.dtype)
        if zero.all():
            for name, p in m.params.items():
                assert np.all(grads[name] == 0), f"grads[{name!r}] nonzero with every length 0"


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cell", CELLS)
def test_unsorted_lengths_give_the_same_rows_as_sorted(cell, executor):
    rng = np.random.default_rng(6)
    m = make(cell, num_layers=2, bidirectional=True)
    lengths = np.array([3, 0, 5, 1])
    perm = np.argsort(-lengths, kind="stable")  # sorted, longest first
    x = random_x(m, rng, lengths=lengths)
    h, c = random_state(m, rng)
    g_out, g_h, g_c = cotangents(m, rng, (T, B, 2 * H), h.shape)
    out, st, grads = run_with_grads(m, executor, x, lengths, h, c, g_out, g_h, g_c)
    c_p = None if c is None else c[:, perm]
    g_c_p = None if g_c is None else g_c[:, perm]
    out_s, st_s, grads_s = run_with_grads(m, executor, x[:, perm], lengths[perm], h[:, perm], c_p,
                                          g_out[:, perm], g_h[:, perm], g_c_p)
    assert_close(out[:, perm], out_s, "output rows", m.dtype)
    for a, b, what in zip(split(m, st), split(m, st_s), ("h_n", "c_n")):
        if a is not None:
            assert_close(a[:, perm], b, what, m.dtype)
    for k in ("input", "h0") + (("c0",) if c is not None else ()):
        assert_close(grads[k][:, perm], grads_s[k], f"grads[{k!r}] rows", m.dtype)
    for k in m.params:
        assert_close(grads[k], grads_s[k], f"grads[{k!r}]", m.dtype)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", [(0, B), (T, 0), (0, 0)], ids=["T=0", "B=0", "T=B=0"])
def test_empty_time_or_batch_gives_empty_outputs_and_h_n_equal_h0(shape, cell, executor):
    rng = np.random.default_rng(7)
    for batch_first in (False, True):
        m = make(cell, num_layers=2, bidirectional=True, batch_first=batch_first)
        Te, Be = shape
        x = random_x(m, rng, T=Te, B=Be)
        h, c = random_state(m, rng, B=Be)
        out_shape = (Be, Te, 2 * H) if batch_first else (Te, Be, 2 * H)
        g_out, g_h, g_c = cotangents(m, rng, out_shape, h.shape)
        lengths = np.zeros(Be, dtype=np.int64)
        for lens in (None, lengths):
            out, st, grads = run_with_grads(m, executor, x, lens, h, c, g_out, g_h, g_c)
            h_n, c_n = split(m, st)
            assert out.shape == out_shape and out.dtype == m.dtype
            assert np.array_equal(h_n, h) and (c is None or np.array_equal(c_n, c))
            assert grads["input"].shape == x.shape
            assert np.array_equal(grads["h0"], g_h) and (c is None or np.array_equal(grads["c0"], g_c))
            for name, p in m.params.items():
                assert grads[name].shape == p.shape and np.all(grads[name] == 0), name
        out, st = m(x, executor=executor)  # hx=None: h_n is the zero initial state
        assert out.shape == out_shape and np.all(split(m, st)[0] == 0)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cell", CELLS)
def test_unbatched_input_is_a_batch_of_one_without_the_batch_axis(cell, executor):
    rng = np.random.default_rng(8)
    m = make(cell, num_layers=2, bidirectional=True)
    x = rng.normal(size=(T, I))
    h, c = random_state(m, rng, unbatched=True)
    g_out = rng.normal(size=(T, 2 * H))
    _, g_h, g_c = cotangents(m, rng, (1,), h.shape)
    out, st, grads = run_with_grads(m, executor, x, None, h, c, g_out, g_h, g_c)
    c1 = None if c is None else c[:, None]
    g_c1 = None if g_c is None else g_c[:, None]
    out1, st1, grads1 = run_with_grads(m, executor, x[:, None], None, h[:, None], c1, g_out[:, None],
                                       g_h[:, None], g_c1)
    assert out.shape == (T, 2 * H)
    assert_close(out, out1[:, 0], "unbatched output", m.dtype)
    for a, b, what in zip(split(m, st), split(m, st1), ("h_n", "c_n")):
        if a is not None:
            assert a.shape == (4, H)
            assert_close(a, b[:, 0], what, m.dtype)
    assert grads["input"].shape == (T, I) and grads["h0"].shape == (4, H)
    assert_close(grads["input"], grads1["input"][:, 0], "grads['input']", m.dtype)
    for k in ("h0", "c0") if c is not None else ("h0",):
        assert_close(grads[k], grads1[k][:, 0], f"grads[{k!r}]", m.dtype)
    for k in m.params:
        assert_close(grads[k], grads1[k], f"grads[{k!r}]", m.dtype)
    out_none, _ = m(x, executor=executor)  # hx=None works unbatched too
    assert out_none.shape == (T, 2 * H)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cell", CELLS)
def test_batch_first_moves_only_x_and_output_axes(cell, executor):
    rng = np.random.default_rng(9)
    tm = make(cell, num_layers=2, bidirectional=True, batch_first=False)
    bf = make(cell, num_layers=2, bidirectional=True, batch_first=True)
    bf.load_state_dict(tm.state_dict())
    lengths = np.array([3, 0, 5, 1])
    x = random_x(tm, rng, lengths=lengths)
    h, c = random_state(tm, rng)
    g_out, g_h, g_c = cotangents(tm, rng, (T, B, 2 * H), h.shape)
    out, st, grads = run_with_grads(tm, executor, x, lengths, h, c, g_out, g_h, g_c)
    out_b, st_b, grads_b = run_with_grads(bf, executor, x.transpose(1, 0, 2), lengths, h, c,
                                          g_out.transpose(1, 0, 2), g_h, g_c)
    assert out_b.shape == (B, T, 2 * H)
    assert_close(out_b, out.transpose(1, 0, 2), "batch_first output", tm.dtype)
    for a, b, what in zip(split(tm, st), split(bf, st_b), ("h_n", "c_n")):
        if a is not None:
            assert b.shape == (4, B, H)
            assert_close(b, a, what + " (stays (L*D, B, H))", tm.dtype)
    assert_close(grads_b["input"], grads["input"].transpose(1, 0, 2), "grads['input']", tm.dtype)
    for k in set(grads) - {"input"}:
        assert_close(grads_b[k], grads[k], f"grads[{k!r}]", tm.dtype)


@pytest.mark.parametrize("cell", CELLS)
def test_static_len_pads_the_graph_and_output_keeps_the_inputs_T(cell):
    rng = np.random.default_rng(10)
    m = make(cell, num_layers=2, bidirectional=True)
    lengths = np.array([3, 0, 5, 1])
    x = random_x(m, rng, lengths=lengths)
    h, c = random_state(m, rng)
    g_out, g_h, g_c = cotangents(m, rng, (T, B, 2 * H), h.shape)
    out_d, st_d, grads_d = run_with_grads(m, "dynamic", x, lengths, h, c, g_out, g_h, g_c)
    for static_len in (T, T + 3):
        out_s, st_s, grads_s = run_with_grads(m, "static", x, lengths, h, c, g_out, g_h, g_c,
                                              static_len=static_len)
        assert out_s.shape == (T, B, 2 * H)
        assert_close(out_s, out_d, f"static_len={static_len} output", m.dtype)
        for a, b, what in zip(split(m, st_s), split(m, st_d), ("h_n", "c_n")):
            if a is not None:
                assert_close(a, b, f"static_len={static_len} {what}", m.dtype)
        assert_grads_close(grads_s, grads_d, f"static_len={static_len}", m.dtype)
        out_i, _ = m(x[:3], None, join(m, h, c), executor="static", static_len=static_len)
        assert out_i.shape == (3, B, 2 * H)


@pytest.mark.parametrize("call", ("inference", "forward"))
def test_input_longer_than_static_len_is_a_value_error_naming_both(call):
    m = make("gru")
    x = np.zeros((7, 2, I))
    run = m if call == "inference" else m.forward
    with pytest.raises(ValueError, match="static_len") as e:
        run(x, executor="static", static_len=4)
    assert "7" in str(e.value) and "4" in str(e.value), str(e.value)


# ------------------------------------------------------------------------------------------------ dropout


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_masks_are_identical_for_static_and_dynamic_with_the_same_seed(cell):
    rng = np.random.default_rng(11)
    kw = dict(num_layers=3, bidirectional=True, dropout=0.5, seed=42)
    a, b = make(cell, **kw), make(cell, **kw)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    lengths = np.array([3, 0, 5, 1])
    x = random_x(a, rng, lengths=lengths)
    g_out = rng.normal(size=(T, B, 2 * H))
    for call in range(2):  # masks advance per call, in step for both models
        out_d, _, tape_d = a.forward(x, lengths, executor="dynamic", train=True)
        out_s, _, tape_s = b.forward(x, lengths, executor="static", train=True)
        assert_close(out_s, out_d, f"call {call}: train output static vs dynamic", a.dtype)
        assert_grads_close(b.backward(tape_s, g_out), a.backward(tape_d, g_out), f"call {call}", a.dtype)
    out_inf, _ = a(x, lengths)
    assert not np.allclose(out_d, out_inf), "train=True with dropout=0.5 changed nothing"
    out_again, _, _ = a.forward(x, lengths, train=True)
    assert not np.array_equal(out_again, out_d), "dropout masks did not advance between calls"


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cell", CELLS)
def test_dropout_p_1_gives_zeros_in_inner_layers(cell, executor):
    """With p = 1 the second layer sees zero input: it equals a one-layer model fed zeros."""
    rng = np.random.default_rng(12)
    m = make(cell, num_layers=2, bidirectional=True, dropout=1.0, seed=1)
    x = random_x(m, rng)
    h, c = random_state(m, rng)
    out, st, tape = m.forward(x, None, join(m, h, c), executor=executor, train=True)
    top = make(cell, input_size=2 * H, num_layers=1, bidirectional=True)
    top.load_state_dict({k.replace("_l1", "_l0"): v for k, v in m.params.items() if "_l1" in k})
    out_top, st_top = top(np.zeros((T, B, 2 * H)), None, join(top, h[2:], None if c is None else c[2:]))
    assert_close(out, out_top, "output with p=1", m.dtype)
    h_n = split(m, st)[0]
    assert_close(h_n[2:], split(top, st_top)[0], "top layer h_n with p=1", m.dtype)
    h_inf = split(m, m(x, None, join(m, h, c), executor=executor)[1])[0]
    assert_close(h_n[:2], h_inf[:2], "first layer h_n (dropout acts between layers only)", m.dtype)
    grads = m.backward(tape, rng.normal(size=out.shape))
    for k in m.params:
        if "_l0" in k:
            assert np.all(grads[k] == 0), f"grads[{k!r}] nonzero behind a p=1 dropout"
    assert np.all(grads["input"] == 0)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cell", CELLS)
def test_inference_call_applies_no_dropout(cell, executor):
    rng = np.random.default_rng(13)
    m = make(cell, num_layers=3, dropout=0.5, seed=5)
    x = random_x(m, rng)
    out1, _ = m(x, executor=executor)
    out2, _ = m(x, executor=executor)
    out3, _, _ = m.forward(x, executor=executor)  # train=False by default
    ref_out, _, _ = reference_run(m, x)
    assert_close(out1, ref_out, "inference output vs reference without masks", m.dtype)
    assert np.array_equal(out1, out2)
    assert_close(out3, out1, "forward(train=False)", m.dtype)


# --------------------------------------------------------------------------------------------------- step


@pytest.mark.parametrize("layers", (1, 2))
@pytest.mark.parametrize("cell", CELLS)
def test_step_matches_the_first_step_and_repeated_steps_equal_the_full_sequence(cell, layers):
    rng = np.random.default_rng(14)
    m = make(cell, num_layers=layers)
    x = random_x(m, rng)
    h, c = random_state(m, rng)
    out, st = m(x, None, join(m, h, c))
    out0, st0 = m.step(x[0], join(m, h, c))
    assert out0.shape == (B, H)
    assert_close(out0, out[0], "step output vs out[0]", m.dtype)
    state = join(m, h, c)
    for t in range(T):
        out_t, state = m.step(x[t], state)
        assert_close(out_t, out[t], f"step {t} output", m.dtype)
    for a, b, what in zip(split(m, state), split(m, st), ("h", "c")):
        if a is not None:
            assert_close(a, b, f"{what} after {T} steps vs full sequence", m.dtype)
    # hx=None starts from zeros; unbatched x_t (I,) gives (H,)
    out_z, _ = m(x[:1])
    assert_close(m.step(x[0])[0], out_z[0], "step from hx=None", m.dtype)
    out_u, st_u = m.step(x[0, 0])
    assert out_u.shape == (H,) and split(m, st_u)[0].shape == (layers, H)
    assert_close(out_u, out_z[0, 0], "unbatched step", m.dtype)


# ---------------------------------------------------------------------------- finite-difference gradients


def objective(m, out, st, g_out, g_h, g_c):
    h_n, c_n = split(m, st)
    total = np.sum(out * g_out) + np.sum(h_n * g_h)
    return float(total + (np.sum(c_n * g_c) if c_n is not None else 0.0))


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cell", CELLS)
def test_model_gradients_match_finite_differences(cell, executor):
    """Every parameter, input, h0 (and c0), 2 layers, bidirectional, lengths with a 0, float64."""
    Tg, Bg, Ig, Hg = 4, 3, 2, 2
    rng = np.random.default_rng(15)
    m = make(cell, input_size=Ig, hidden_size=Hg, num_layers=2, bidirectional=True, seed=2)
    lengths = np.array([3, 0, 4])
    x = rng.normal(size=(Tg, Bg, Ig))
    x[np.arange(Tg)[:, None] >= lengths[None, :]] = 0
    h, c = random_state(m, rng, B=Bg)
    g_out, g_h, g_c = cotangents(m, rng, (Tg, Bg, 2 * Hg), h.shape)
    _, _, grads = run_with_grads(m, executor, x, lengths, h, c, g_out, g_h, g_c)

    names = list(m.params)
    args = {k: m.params[k].copy() for k in names}
    args.update(input=x, h0=h)
    if c is not None:
        args["c0"] = c

    def f(p):
        for k in names:
            m.params[k][...] = p[k]
        out, st = m(p["input"], lengths, join(m, p["h0"], p.get("c0")), executor=executor)
        return objective(m, out, st, g_out, g_h, g_c)

    try:
        check_grads(f, args, grads)
    finally:
        for k in names:
            m.params[k][...] = args[k]


@pytest.mark.parametrize("cell", CELLS)
def test_model_gradients_match_finite_differences_batch_first_without_bias(cell):
    Tg, Bg, Ig, Hg = 3, 2, 2, 3
    rng = np.random.default_rng(16)
    m = make(cell, input_size=Ig, hidden_size=Hg, num_layers=1, bias=False, batch_first=True, seed=4)
    lengths = np.array([2, 3])
    x = rng.normal(size=(Bg, Tg, Ig))
    x[0, 2:] = 0
    h, c = random_state(m, rng, B=Bg)
    g_out, g_h, g_c = cotangents(m, rng, (Bg, Tg, Hg), h.shape)
    _, _, grads = run_with_grads(m, "dynamic", x, lengths, h, c, g_out, g_h, g_c)
    assert not any(k.startswith("bias") for k in grads)
    args = {k: m.params[k].copy() for k in m.params}
    args.update(input=x, h0=h)
    if c is not None:
        args["c0"] = c

    def f(p):
        for k in m.params:
            m.params[k][...] = p[k]
        out, st = m(p["input"], lengths, join(m, p["h0"], p.get("c0")))
        return objective(m, out, st, g_out, g_h, g_c)

    check_grads(f, args, grads)
