"""Training loops: gradients of the whole models vs finite differences, a real short run whose held-out loss
falls, batch size 1, reproducibility, the classifier's last-valid-state features, and sampling."""

import ast
import math
import os

import numpy as np
import pytest

from graphrnn import data
from graphrnn.losses import cross_entropy
from graphrnn.train import CharLM, SequenceClassifier, evaluate_lm, generate, train_classifier, train_lm

TOY = os.path.join(os.path.dirname(__file__), "data")


def numeric_grad_at(f, a, idx, eps=1e-6):
    old = a[idx]
    a[idx] = old + eps
    up = f()
    a[idx] = old - eps
    down = f()
    a[idx] = old
    return (up - down) / (2 * eps)


def check_model_grads(model, loss_fn, grads, n_coords=6, seed=0):
    """Compare analytic gradients with central differences at a few random coordinates of every parameter."""
    rng = np.random.default_rng(seed)
    for name, p in model.params.items():
        for _ in range(n_coords):
            idx = tuple(int(rng.integers(0, s)) for s in p.shape)
            num = numeric_grad_at(loss_fn, p, idx)
            ana = grads[name][idx]
            assert abs(num - ana) <= 1e-6 + 1e-5 * abs(num), f"{name}{idx}: analytic {ana} vs numeric {num}"


@pytest.fixture(scope="module")
def stdlib_text():
    """Real standard-library docstrings (a few modules, read the same way as the default corpus)."""
    files = dict(data._iter_stdlib_files(data._stdlib_root()))
    docs = []
    for rel in ("textwrap.py", "string.py", "json/__init__.py", "shlex.py", "fnmatch.py", "bisect.py"):
        with open(files[rel], "rb") as f:
            docs.extend(data._docstrings_of(ast.parse(f.read())))
    train, held = data._split_units(docs, 64)
    return data.TextCorpus(train, held, {"kind": "test"})


def test_language_model_gradients_match_finite_differences_with_padding():
    vocab = data.build_vocab(["abcde"])
    lm = CharLM(vocab, cell="lstm", hidden_size=3, num_layers=2, embedding_dim=2, dtype=np.float64, seed=0)
    seqs = [data.encode(t, vocab) for t in ("abcab", "ed", "cca")]
    inputs, targets, lengths = data.lm_batch(seqs)
    _, count, grads = lm.loss_and_grads(inputs, targets, lengths)
    assert count == 10

    def loss():
        total, n = lm.nll(inputs, targets, lengths)
        return total / n

    check_model_grads(lm, loss, grads)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bidirectional_classifier_gradients_match_finite_differences(cell):
    rng = np.random.default_rng(1)
    clf = SequenceClassifier(
        2,
        ["a", "b", "c"],
        cell=cell,
        hidden_size=3,
        num_layers=2,
        bidirectional=True,
        dtype=np.float64,
        seed=0,
    )
    x, lengths = clf.batch([rng.standard_normal((n, 2)) for n in (4, 2, 3)])
    y = np.array([0, 2, 1])
    _, n, grads = clf.loss_and_grads(x, lengths, y)
    assert n == 3

    def loss():
        return cross_entropy(clf.logits(x, lengths), y)[0]

    check_model_grads(clf, loss, grads, n_coords=4)


def test_classifier_reads_each_directions_state_after_the_whole_sequence():
    rng = np.random.default_rng(2)
    clf = SequenceClassifier(2, ["a", "b"], hidden_size=4, bidirectional=True, dtype=np.float64, seed=0)
    x, lengths = clf.batch([rng.standard_normal((n, 2)) for n in (5, 2)])
    out, state = clf.rnn(x, lengths)
    feats = clf._features(state[0])
    H = 4
    for b, n in enumerate(lengths):
        assert np.array_equal(feats[b, :H], out[n - 1, b, :H]), "forward: output at the last valid step"
        assert np.array_equal(feats[b, H:], out[0, b, H:]), "reverse: output after consuming t = 0"


def test_short_real_training_run_lowers_held_out_loss(stdlib_text):
    vocab = data.build_vocab(stdlib_text.train)
    lm = CharLM(vocab, hidden_size=48, embedding_dim=16, seed=0)
    before = evaluate_lm(lm, stdlib_text.heldout)
    assert before == pytest.approx(math.log(len(vocab)), rel=0.1), "an untrained model is near uniform"
    result = train_lm(
        stdlib_text, model=lm, epochs=3, batch_size=8, lr=1e-2, chars_per_epoch=None, progress=False
    )
    after = result.info["heldout_nats_per_char"]
    assert result.train_loss[-1] < result.train_loss[0]
    assert after < before - 0.8, f"held-out nats/char {before:.3f} -> {after:.3f}"
    assert result.metric == {"name": "bits_per_char", "value": pytest.approx(after / math.log(2))}
    assert result.info["train_chars_seen"] == 3 * stdlib_text.train_chars


def test_batch_size_one_trains_on_unpadded_sequences(stdlib_text):
    small = data.TextCorpus(stdlib_text.train[:40], stdlib_text.heldout[:5], {"kind": "test"})
    result = train_lm(small, hidden_size=16, embedding_dim=8, epochs=1, batch_size=1, progress=False)
    assert len(result.train_loss) == 1 and math.isfinite(result.train_loss[0])
    assert result.optimizer.steps == 40


def test_same_seed_reproduces_a_run_and_another_seed_differs(stdlib_text):
    small = data.TextCorpus(stdlib_text.train[:30], stdlib_text.heldout[:5], {"kind": "test"})

    def run(seed):
        return train_lm(
            small,
            hidden_size=16,
            embedding_dim=8,
            epochs=2,
            batch_size=4,
            seed=seed,
            chars_per_epoch=600,
            progress=False,
        )

    a, b, c = run(3), run(3), run(4)
    assert a.train_loss == b.train_loss and a.metric == b.metric
    assert a.train_loss != c.train_loss


def test_static_and_dynamic_executors_train_the_same_model(stdlib_text):
    small = data.TextCorpus(stdlib_text.train[:24], stdlib_text.heldout[:4], {"kind": "test"})
    runs = [
        train_lm(small, hidden_size=8, embedding_dim=4, epochs=2, batch_size=6, executor=ex, progress=False)
        for ex in ("dynamic", "static")
    ]
    assert runs[0].train_loss == pytest.approx(runs[1].train_loss, rel=1e-4)
    assert runs[0].metric["value"] == pytest.approx(runs[1].metric["value"], rel=1e-4)


def test_classifier_learns_the_toy_ts_data():
    train_set, test_set = data.load_ts_pair(TOY)
    result = train_classifier(
        train_set, test_set, hidden_size=16, epochs=12, batch_size=6, lr=1e-2, progress=False
    )
    assert result.metric["name"] == "accuracy"
    assert result.metric["value"] >= 0.8, result.metric
    assert result.train_loss[-1] < result.train_loss[0]


def test_generate_samples_vocabulary_characters_reproducibly():
    vocab = data.build_vocab(["hello world"])
    lm = CharLM(vocab, hidden_size=8, embedding_dim=4, seed=0)
    a = generate(lm, "he", length=30, temperature=1.0, seed=5)
    assert len(a) == 30 and set(a) <= set(vocab[2:])
    assert a == generate(lm, "he", length=30, temperature=1.0, seed=5)
    greedy = generate(lm, "he", length=10, temperature=0)
    assert greedy == generate(lm, "he", length=10, temperature=0, seed=99)
    assert generate(lm, "", length=0) == ""


def test_bad_arguments_name_what_was_expected_and_given():
    vocab = data.build_vocab(["ab"])
    lm = CharLM(vocab, hidden_size=4, embedding_dim=2, seed=0)
    with pytest.raises(ValueError, match=r"temperature must be a number >= 0, got -1"):
        generate(lm, temperature=-1)
    with pytest.raises(TypeError, match=r"model must be a CharLM .*got SequenceClassifier"):
        generate(SequenceClassifier(1, ["a", "b"], hidden_size=2))
    with pytest.raises(ValueError, match=r"cell must be one of \['gru', 'lstm', 'rnn'\], got 'tcn'"):
        CharLM(vocab, cell="tcn")
    with pytest.raises(ValueError, match=r"vocab must start with \['<bos>', '<unk>'\]"):
        CharLM(["a", "b", "c"])
    corpus = data.TextCorpus(["ab"], ["a"], {})
    with pytest.raises(ValueError, match=r"epochs must be an int >= 1, got 0"):
        train_lm(corpus, model=lm, epochs=0, progress=False)
    with pytest.raises(ValueError, match=r"executor must be 'dynamic' or 'static', got 'jit'"):
        train_lm(corpus, model=lm, executor="jit", progress=False)
    with pytest.raises(ValueError, match=r"each series must have shape \(T, 1\), got \(3, 2\)"):
        SequenceClassifier(1, ["a", "b"], hidden_size=2).batch([np.ones((3, 2))])
