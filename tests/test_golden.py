"""Golden values from PyTorch 2.13 (tests/golden/make_golden.py): same weights, same outputs, same gradients.

Every fixture is loaded into graphrnn.RNN/LSTM/GRU through load_state_dict and run with both executors; the
output, final state and the gradient of every parameter, the input, h0 and c0 must match PyTorch's to the
dtype's tolerance. No torch is needed here.
"""

import json
import pathlib

import numpy as np
import pytest
from gradcheck import assert_close

import graphrnn

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden"
INDEX = json.loads((GOLDEN / "index.json").read_text())
EXECUTORS = ("dynamic", "static")


def load_fixture(name):
    with np.load(GOLDEN / f"{name}.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    return meta, arrays


def build_model(meta):
    kw = dict(num_layers=meta["num_layers"], bias=meta["bias"], batch_first=meta["batch_first"],
              bidirectional=meta["bidirectional"], dtype=np.dtype(meta["dtype"]), seed=0)
    cell = meta["cell"]
    if cell == "lstm":
        return graphrnn.LSTM(meta["input_size"], meta["hidden_size"], **kw)
    if cell == "gru":
        return graphrnn.GRU(meta["input_size"], meta["hidden_size"], **kw)
    return graphrnn.RNN(meta["input_size"], meta["hidden_size"], nonlinearity=cell[4:], **kw)


def test_fixture_index_lists_every_npz_file_and_covers_each_cell_and_dtype():
    names = {e["name"] for e in INDEX}
    assert names == {p.stem for p in GOLDEN.glob("*.npz")}
    combos = {(e["cell"], e["dtype"]) for e in INDEX}
    assert combos == {(c, d) for c in ("rnn_tanh", "rnn_relu", "lstm", "gru") for d in ("float32", "float64")}
    for key in ("num_layers", "bidirectional", "has_lengths", "batch_first", "bias", "hx_given", "unbatched"):
        assert len({e[key] for e in INDEX}) == 2, key


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("name", [e["name"] for e in INDEX])
def test_matches_pytorch_output_state_and_every_gradient(name, executor):
    meta, a = load_fixture(name)
    dt = np.dtype(meta["dtype"])
    is_lstm = meta["cell"] == "lstm"
    m = build_model(meta)
    state = {k[len("param/"):]: v for k, v in a.items() if k.startswith("param/")}
    m.load_state_dict(state)
    for k, v in state.items():
        assert np.array_equal(m.params[k], v), f"load_state_dict did not copy {k}"

    lengths = a.get("lengths")
    hx = None
    if meta["hx_given"]:
        hx = (a["h0"], a["c0"]) if is_lstm else a["h0"]
    out, st, tape = m.forward(a["x"], lengths, hx, executor=executor)

    # the inference call gives the same numbers as forward()
    out_inf, st_inf = m(a["x"], lengths, hx, executor=executor)
    assert_close(out_inf, out, f"{name} [{executor}] inference output vs forward output", dt)

    h_n, c_n = st if is_lstm else (st, None)
    assert out.dtype == dt and h_n.dtype == dt
    assert_close(out, a["out"], f"{name} [{executor}] output", dt)
    if lengths is not None:  # PyTorch's packed output is exactly 0 at padded positions; so must ours be
        T = a["x"].shape[1] if meta["batch_first"] else a["x"].shape[0]
        pad = np.arange(T)[None, :] >= lengths[:, None]  # (B, T)
        padded = out[pad] if meta["batch_first"] else out.transpose(1, 0, 2)[pad]
        assert np.all(padded == 0), f"{name} [{executor}] output not exactly 0 at padded positions"
    assert_close(h_n, a["h_n"], f"{name} [{executor}] h_n", dt)
    if is_lstm:
        assert_close(c_n, a["c_n"], f"{name} [{executor}] c_n", dt)

    gs = meta["grad_state"]
    if gs == "none":
        grad_state = None
    elif is_lstm:
        grad_state = (a["g_h"], None if gs == "h_only" else a["g_c"])
    else:
        grad_state = a["g_h"]
    grads = m.backward(tape, a["g_out"], grad_state)

    expected_keys = set(state) | {"input", "h0"} | ({"c0"} if is_lstm else set())
    assert set(grads) == expected_keys
    for key in sorted(expected_keys):
        assert grads[key].dtype == dt, f"grads[{key!r}] has dtype {grads[key].dtype}, expected {dt}"
        assert_close(grads[key], a[f"grad/{key}"], f"{name} [{executor}] grads[{key!r}]", dt)
