"""Checkpoints: one .npz read without pickle, checksum verified, atomic writes, the model rebuilt alone."""

import json
import os

import numpy as np
import pytest

import graphrnn
from graphrnn import io
from graphrnn.data import build_vocab
from graphrnn.layers import Linear
from graphrnn.optim import SGD, Adam
from graphrnn.train import CharLM, SequenceClassifier


def _x(T=5, B=3, n_in=4, seed=0):
    return np.random.default_rng(seed).standard_normal((T, B, n_in)).astype(np.float32)


@pytest.mark.parametrize(
    "make",
    [
        lambda: graphrnn.LSTM(4, 6, num_layers=2, seed=1),
        lambda: graphrnn.GRU(4, 5, bidirectional=True, dtype=np.float64, seed=2),
        lambda: graphrnn.RNN(4, 3, nonlinearity="relu", bias=False, seed=3),
    ],
)
def test_round_trip_rebuilds_a_recurrent_module_that_gives_the_same_outputs(tmp_path, make):
    m = make()
    path = tmp_path / "m.npz"
    io.save(path, m)
    m2 = io.load(path)
    assert type(m2) is type(m) and m2.config == m.config
    for name, p in m.params.items():
        assert np.array_equal(m2.params[name], p) and m2.params[name].dtype == p.dtype, name
    lengths = np.array([5, 2, 0])
    out, _ = m(_x(), lengths)
    out2, _ = m2(_x(), lengths)
    assert np.array_equal(out, out2)


def test_file_holds_meta_params_optim_and_checksum_readable_without_pickle(tmp_path):
    m = graphrnn.LSTM(4, 6, seed=0)
    opt = Adam(m.params, lr=0.01)
    _, _, tape = m.forward(_x(), train=True)
    opt.step(m.backward(tape, np.ones((5, 3, 6), dtype=np.float32)))
    path = tmp_path / "c.npz"
    io.save(path, m, opt)
    with np.load(path, allow_pickle=False) as z:
        keys = set(z.files)
        meta = json.loads(z["meta"].tobytes().decode())
        assert z["meta"].dtype == np.uint8 and z["checksum"].dtype == np.uint8 and z["checksum"].size == 32
    assert {f"param/{n}" for n in m.params} <= keys
    assert {f"optim/exp_avg/{n}" for n in m.params} | {f"optim/exp_avg_sq/{n}" for n in m.params} <= keys
    assert meta["format_version"] == io.FORMAT_VERSION
    assert meta["model"] == {"class": "LSTM", "config": m.config}
    assert meta["optimizer"]["class"] == "Adam" and meta["optimizer"]["step"] == 1


def test_optimizer_state_round_trip_continues_training_identically(tmp_path):
    rng = np.random.default_rng(0)
    lin = Linear(3, 2, dtype=np.float64, seed=0)
    opt = SGD(lin.params, lr=0.1, momentum=0.9)
    grads = [{"weight": rng.standard_normal((2, 3)), "bias": rng.standard_normal(2)} for _ in range(4)]
    for g in grads[:2]:
        opt.step(g)
    io.save(tmp_path / "l.npz", lin, opt)
    ck = io.load_checkpoint(tmp_path / "l.npz")
    assert ck.optimizer.steps == 2 and ck.optimizer.config == opt.config
    for g in grads[2:]:
        opt.step(g)
        ck.optimizer.step(g)
    assert np.array_equal(ck.model.params["weight"], lin.params["weight"])


def test_language_model_round_trip_keeps_vocab_heads_and_outputs(tmp_path):
    vocab = build_vocab(["hello world", "abc"])
    lm = CharLM(vocab, cell="gru", hidden_size=8, embedding_dim=4, seed=5)
    io.save(tmp_path / "lm.npz", lm, extra={"note": "x"})
    ck = io.load_checkpoint(tmp_path / "lm.npz")
    lm2 = ck.model
    assert isinstance(lm2, CharLM) and lm2.vocab == vocab and ck.meta["task"] == "lm"
    assert ck.meta["heads"]["head"]["config"]["out_features"] == len(vocab)
    assert ck.meta["extra"] == {"note": "x"} and ck.optimizer is None
    inputs = np.array([[0, 0], [3, 4], [5, 6]])
    targets = np.array([[3, 4], [5, 6], [7, 2]])
    lengths = np.array([3, 2])
    assert lm.nll(inputs, targets, lengths) == lm2.nll(inputs, targets, lengths)


def test_classifier_round_trip_keeps_labels_and_normalisation(tmp_path):
    clf = SequenceClassifier(
        2, ["a", "b", "c"], hidden_size=4, bidirectional=True, mean=[1.0, 2.0], std=[0.5, 3.0], seed=0
    )
    io.save(tmp_path / "c.npz", clf)
    clf2 = io.load(tmp_path / "c.npz")
    assert clf2.labels == ["a", "b", "c"]
    assert np.array_equal(clf2.mean, clf.mean) and np.array_equal(clf2.std, clf.std)
    x, lengths = clf.batch([np.ones((4, 2)), np.zeros((2, 2))])
    assert np.array_equal(clf.logits(x, lengths), clf2.logits(x, lengths))


def test_a_changed_array_fails_the_checksum(tmp_path):
    m = graphrnn.GRU(2, 3, seed=0)
    path = tmp_path / "m.npz"
    io.save(path, m)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["param/weight_hh_l0"] = arrays["param/weight_hh_l0"] + np.float32(1e-3)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"corrupt: SHA-256 checksum does not match"):
        io.load(path)


def test_missing_file_foreign_npz_and_non_npz_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint not found: .*nope\.npz"):
        io.load(tmp_path / "nope.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match=r"not a graphrnn checkpoint: entry 'meta' is missing"):
        io.load(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match=r"is not a graphrnn checkpoint \(\.npz readable without pickle\)"):
        io.load(tmp_path / "text.npz")
    np.savez(tmp_path / "pickled.npz", meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"not a graphrnn checkpoint"):
        io.load(tmp_path / "pickled.npz")


def test_save_replaces_atomically_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "m.npz"
    io.save(path, graphrnn.RNN(2, 3, seed=0))
    io.save(path, graphrnn.RNN(2, 4, seed=0))
    assert io.load(path).config["hidden_size"] == 4
    assert os.listdir(tmp_path) == ["m.npz"]


def test_a_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "m.npz"
    io.save(path, graphrnn.RNN(2, 3, seed=0))
    with pytest.raises(ValueError, match=r"checkpoint meta must be JSON-serialisable"):
        io.save(path, graphrnn.RNN(2, 5, seed=0), extra={"bad": object()})
    assert io.load(path).config["hidden_size"] == 3
    assert os.listdir(tmp_path) == ["m.npz"]


def test_bad_arguments_name_what_was_expected_and_given(tmp_path):
    with pytest.raises(TypeError, match=r"model must be a graphrnn RNN, LSTM, GRU, .*got dict"):
        io.save(tmp_path / "x.npz", {"w": np.zeros(2)})
    m = graphrnn.RNN(2, 3, seed=0)
    with pytest.raises(ValueError, match=r"optimizer must hold the model's parameters"):
        io.save(tmp_path / "x.npz", m, Adam({"w": np.zeros(2)}))
    with pytest.raises(FileNotFoundError, match=r"folder for checkpoint .* does not exist"):
        io.save(tmp_path / "no" / "x.npz", m)
