"""Ring 1 for the static executor's fused masked step kernels (kernels/masked.py) against their NumPy twins.

Rows with mask 0 are padding: they keep their state exactly, get zero gates and zero pre-activation
gradients, and pass the incoming state gradient through unchanged.
"""

import numpy as np
import pytest
from gradcheck import assert_close, check_grads

from graphrnn.kernels import masked
from graphrnn.kernels import reference as ref

DTYPES = [np.float32, np.float64]
# (B, H, mask): one valid row; one padded row; odd H with padded rows in the middle and at the end
CASES = [(1, 1, [1]), (1, 4, [0]), (5, 7, [1, 0, 1, 1, 0]), (3, 3, [0, 0, 1])]


def rand(rng, *shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def empty(*shape, dtype):
    return np.full(shape, np.nan, dtype=dtype)  # NaN: any entry a kernel forgets to write shows up


def check_masked_rows_kept(mask, out, prev, what):
    rows = ~np.asarray(mask, bool)
    assert np.array_equal(out[rows], prev[rows]), f"{what}: masked rows changed"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,H,mask", CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_rnn_masked_step_matches_twin_and_keeps_masked_rows(dtype, B, H, mask, relu):
    rng = np.random.default_rng(0)
    m = np.array(mask, np.uint8)
    xw, gh, h_prev, dh = (rand(rng, B, H, dtype=dtype) for _ in range(4))
    act = "relu" if relu else "tanh"
    h = empty(B, H, dtype=dtype)
    masked.rnn_masked_fwd(xw, gh, h_prev, m, relu, h)
    assert_close(h, ref.rnn_masked_step(xw, gh, h_prev, m, act), "h'", dtype)
    check_masked_rows_kept(m, h, h_prev, "h'")

    dpre, dh_prev = empty(B, H, dtype=dtype), empty(B, H, dtype=dtype)
    masked.rnn_masked_bwd(dh, h, m, relu, dpre, dh_prev)
    want_dpre, want_dh_prev = ref.rnn_masked_step_bwd(dh, h, m, act)
    assert_close(dpre, want_dpre, "dpre", dtype)
    assert_close(dh_prev, want_dh_prev, "dh_prev", dtype)
    check_masked_rows_kept(m, dh_prev, dh, "dh_prev")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,H,mask", CASES)
def test_lstm_masked_step_matches_twin_and_keeps_masked_rows(dtype, B, H, mask):
    rng = np.random.default_rng(1)
    m = np.array(mask, np.uint8)
    xw, gh = rand(rng, B, 4 * H, dtype=dtype), rand(rng, B, 4 * H, dtype=dtype)
    c_prev, h_prev, dh, dc = (rand(rng, B, H, dtype=dtype) for _ in range(4))
    h, c, gates = empty(B, H, dtype=dtype), empty(B, H, dtype=dtype), empty(B, 4 * H, dtype=dtype)
    masked.lstm_masked_fwd(xw, gh, c_prev, h_prev, m, h, c, gates)
    want_h, want_c, want_gates = ref.lstm_masked_step(xw, gh, c_prev, h_prev, m)
    assert_close(h, want_h, "h'", dtype)
    assert_close(c, want_c, "c'", dtype)
    assert_close(gates, want_gates, "gates", dtype)
    check_masked_rows_kept(m, h, h_prev, "h'")
    check_masked_rows_kept(m, c, c_prev, "c'")

    dpre, dh_prev, dc_prev = empty(B, 4 * H, dtype=dtype), empty(B, H, dtype=dtype), empty(B, H, dtype=dtype)
    masked.lstm_masked_bwd(dh, dc, gates, c, c_prev, m, dpre, dh_prev, dc_prev)
    want = ref.lstm_masked_step_bwd(dh, dc, gates, c, c_prev, m)
    for got, exp, what in zip((dpre, dh_prev, dc_prev), want, ("dpre", "dh_prev", "dc_prev")):
        assert_close(got, exp, what, dtype)
    check_masked_rows_kept(m, dc_prev, dc, "dc_prev")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,H,mask", CASES)
def test_gru_masked_step_matches_twin_and_keeps_masked_rows(dtype, B, H, mask):
    rng = np.random.default_rng(2)
    m = np.array(mask, np.uint8)
    xw, gh = rand(rng, B, 3 * H, dtype=dtype), rand(rng, B, 3 * H, dtype=dtype)
    h_prev, dh = rand(rng, B, H, dtype=dtype), rand(rng, B, H, dtype=dtype)
    h, gates = empty(B, H, dtype=dtype), empty(B, 3 * H, dtype=dtype)
    masked.gru_masked_fwd(xw, gh, h_prev, m, h, gates)
    want_h, want_gates = ref.gru_masked_step(xw, gh, h_prev, m)
    assert_close(h, want_h, "h'", dtype)
    assert_close(gates, want_gates, "gates", dtype)
    check_masked_rows_kept(m, h, h_prev, "h'")

    dxw, dgh, dh_prev = empty(B, 3 * H, dtype=dtype), empty(B, 3 * H, dtype=dtype), empty(B, H, dtype=dtype)
    masked.gru_masked_bwd(dh, gates, h_prev, gh, m, dxw, dgh, dh_prev)
    want = ref.gru_masked_step_bwd(dh, gates, h_prev, gh, m)
    for got, exp, what in zip((dxw, dgh, dh_prev), want, ("dxw", "dgh", "dh_prev")):
        assert_close(got, exp, what, dtype)
    check_masked_rows_kept(m, dh_prev, dh, "dh_prev")


def test_masked_twins_match_the_unmasked_step_on_valid_rows():
    """The twins themselves: a full mask gives exactly the plain cell step of kernels.reference."""
    rng = np.random.default_rng(3)
    B, H = 2, 3
    ones = np.ones(B, np.uint8)
    xw, gh = rng.standard_normal((B, 4 * H)), rng.standard_normal((B, 4 * H))
    c, h = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    for got, want in zip(ref.lstm_masked_step(xw, gh, c, h, ones), ref.lstm_step(xw, gh, c)):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(ref.gru_masked_step(xw[:, : 3 * H], gh[:, : 3 * H], h, ones),
                         ref.gru_step(xw[:, : 3 * H], gh[:, : 3 * H], h)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ref.rnn_masked_step(xw[:, :H], gh[:, :H], h, ones),
                                  ref.rnn_step(xw[:, :H], gh[:, :H]))


def test_masked_step_gradients_match_finite_differences_of_the_twins():
    """Ties the backward twins to the forward twins (float64, central differences, every coordinate)."""
    rng = np.random.default_rng(4)
    B, H = 3, 2
    m = np.array([1, 0, 1], np.uint8)
    xw, gh = rng.standard_normal((B, 4 * H)), rng.standard_normal((B, 4 * H))
    c_prev, h_prev, wh, wc = (rng.standard_normal((B, H)) for _ in range(4))

    def lstm_loss(p):
        h, c, _ = ref.lstm_masked_step(p["xw"], gh, p["c_prev"], p["h_prev"], m)
        return np.sum(h * wh) + np.sum(c * wc)

    h, c, gates = ref.lstm_masked_step(xw, gh, c_prev, h_prev, m)
    dpre, dh_prev, dc_prev = ref.lstm_masked_step_bwd(wh, wc, gates, c, c_prev, m)
    check_grads(lstm_loss, {"xw": xw, "c_prev": c_prev, "h_prev": h_prev},
                {"xw": dpre, "c_prev": dc_prev, "h_prev": dh_prev})

    gx, gg = xw[:, : 3 * H], gh[:, : 3 * H]

    def gru_loss(p):
        return np.sum(ref.gru_masked_step(p["xw"], p["gh"], p["h_prev"], m)[0] * wh)

    h, gates = ref.gru_masked_step(gx, gg, h_prev, m)
    dxw, dgh, dh_prev = ref.gru_masked_step_bwd(wh, gates, h_prev, gg, m)
    check_grads(gru_loss, {"xw": gx, "gh": gg, "h_prev": h_prev}, {"xw": dxw, "gh": dgh, "h_prev": dh_prev})

    for act in ("tanh", "relu"):
        def rnn_loss(p, act=act):
            return np.sum(ref.rnn_masked_step(p["xw"], gh[:, :H], p["h_prev"], m, act) * wh)

        h = ref.rnn_masked_step(xw[:, :H], gh[:, :H], h_prev, m, act)
        dpre, dh_prev = ref.rnn_masked_step_bwd(wh, h, m, act)
        check_grads(rnn_loss, {"xw": xw[:, :H], "h_prev": h_prev}, {"xw": dpre, "h_prev": dh_prev})
