"""Data: the stdlib docstring corpus (skips, order, hold-out, chunks, cache), text, .ts files, batching."""

import ast
import json
import os
import platform

import numpy as np
import pytest

from graphrnn import data

HERE = os.path.dirname(__file__)
TOY = os.path.join(HERE, "data")


def _write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


@pytest.fixture
def fake_stdlib(tmp_path, monkeypatch):
    """A tiny standard library with test folders, site-packages, a broken file and an invalid escape."""
    root = str(tmp_path / "lib")
    _write(root, "b.py", '"""Module b."""\ndef f():\n    """Function f."""\n')
    _write(
        root,
        "a.py",
        '"""Module a."""\nclass C:\n    """Class C."""\n    def m(self):\n        """Method m."""\n'
        'def g():\n    """Function g."""\n',
    )
    _write(root, "pkg/__init__.py", '"""Package init."""\n')
    _write(root, "pkg/tests/t.py", '"""TEST FOLDER."""\n')
    _write(root, "test/x.py", '"""TEST FOLDER."""\n')
    _write(root, "idlelib/idle_test/y.py", '"""TEST FOLDER."""\n')
    _write(root, "lib2to3/tests/data/z.py", '"""TEST FOLDER."""\n')
    _write(root, "site-packages/numpy/w.py", '"""SITE PACKAGES."""\n')
    _write(root, "test_thing.py", '"""TEST FILE."""\n')
    _write(root, "broken.py", "def (:\n")
    _write(root, "esc.py", '"""Escape \\d here."""\nx = "\\d"\n')
    monkeypatch.setattr(data, "_stdlib_root", lambda: root)
    monkeypatch.setenv("GRAPHRNN_CACHE", str(tmp_path / "cache"))
    return root


def test_stdlib_docstrings_skip_tests_and_site_packages_in_sorted_file_and_source_order(fake_stdlib):
    docs = data.stdlib_docstrings()
    assert docs == [
        "Module a.",
        "Class C.",
        "Method m.",
        "Function g.",
        "Module b.",
        "Function f.",
        "Escape \\d here.",
        "Package init.",
    ]


def test_built_corpus_is_cached_under_graphrnn_cache_keyed_on_the_python_version(
    fake_stdlib, tmp_path, monkeypatch
):
    first = data.stdlib_docstrings()
    files = os.listdir(tmp_path / "cache")
    assert len(files) == 1 and platform.python_version() in files[0]

    def no_parse(root):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(data, "_extract_stdlib", no_parse)
    assert data.stdlib_docstrings() == first


def test_every_tenth_docstring_is_held_out_before_chunking():
    units = [f"{i:02d}" * (i + 1) for i in range(25)]
    train, held = data._split_units(units, chunk_len=6)
    assert "".join(held) == units[9] + units[19]
    assert "".join(train) == "".join(u for i, u in enumerate(units) if i % 10 != 9)
    assert max(map(len, train + held)) == 6


def test_real_stdlib_file_list_is_sorted_and_free_of_test_folders_and_its_docstrings_parse():
    root = data._stdlib_root()
    files = dict(data._iter_stdlib_files(root))
    rels = list(files)
    assert rels == sorted(rels) and len(rels) > 100
    assert not [
        f for f in rels if set(f.split("/")[:-1]) & data.SKIP_DIRS or f.split("/")[-1].startswith("test_")
    ]
    assert "textwrap.py" in rels and "json/__init__.py" in rels
    with open(files["textwrap.py"], "rb") as f:
        docs = data._docstrings_of(ast.parse(f.read()))
    assert docs[0].startswith("Text wrapping and filling.")
    assert any(d.startswith("Object for wrapping/filling text.") for d in docs)


def test_text_corpus_holds_out_every_tenth_paragraph(tmp_path):
    paras = [f"paragraph {i} " + "x" * (i % 7) for i in range(30)]
    path = tmp_path / "t.txt"
    path.write_text("\n\n".join(paras), encoding="utf-8")
    corpus = data.text_corpus(path, chunk_len=1000)
    assert corpus.heldout == [paras[9], paras[19], paras[29]]
    assert len(corpus.train) == 27 and corpus.source["kind"] == "text"


def test_text_without_paragraphs_is_cut_into_chunks_and_every_tenth_chunk_held_out(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcdefghij" * 30, encoding="utf-8")
    corpus = data.text_corpus(path, chunk_len=10)
    assert len(corpus.train) == 27 and len(corpus.heldout) == 3


def test_text_corpus_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"text file not found: .*missing\.txt"):
        data.text_corpus(tmp_path / "missing.txt")
    (tmp_path / "short.txt").write_text("tiny")
    with pytest.raises(
        ValueError, match=r"text file must hold at least 10 chunks of 256 characters .* got 4 characters"
    ):
        data.text_corpus(tmp_path / "short.txt")
    with pytest.raises(ValueError, match=r"chunk_len must be an int >= 1, got 0"):
        data.text_corpus(tmp_path / "short.txt", chunk_len=0)


def test_vocab_encoding_and_lm_batches_shift_targets_by_one_with_bos_first():
    vocab = data.build_vocab(["ba", "c"])
    assert vocab == [data.BOS, data.UNK, "a", "b", "c"]
    assert data.encode("abz", vocab).tolist() == [2, 3, 1]
    assert data.decode([0, 2, 1, 4], vocab) == "a\ufffdc"
    inputs, targets, lengths = data.lm_batch([data.encode("abc", vocab), data.encode("b", vocab)])
    assert lengths.tolist() == [3, 1]
    assert inputs[:, 0].tolist() == [0, 2, 3] and targets[:, 0].tolist() == [2, 3, 4]
    assert inputs[:, 1].tolist() == [0, 0, 0] and targets[:, 1].tolist() == [3, 0, 0]


def test_toy_ts_pair_reads_variable_length_multivariate_series_with_missing_values():
    train, test = data.load_ts_pair(TOY)
    assert (len(train), len(test), train.dimensions) == (36, 18, 2)
    assert train.class_labels == ["up", "down", "flat"] and train.name == "Toy"
    lengths = {len(s) for s in train.series}
    assert len(lengths) > 3 and min(lengths) >= 6
    assert np.isnan(train.series[4][2, 0]) and not np.isnan(train.series[4][:2]).any()
    short = train.series[7]
    assert np.isnan(short[-2:, 1]).all() and not np.isnan(short[:, 0]).any()
    assert set(train.labels) == {"up", "down", "flat"}


def test_ts_path_may_be_the_train_file_or_the_folder(tmp_path):
    assert data.resolve_ts_pair(os.path.join(TOY, "Toy_TRAIN.ts")) == data.resolve_ts_pair(TOY)
    with pytest.raises(ValueError, match=r"--data must be a \*_TRAIN.ts file or a folder holding one"):
        data.resolve_ts_pair(os.path.join(TOY, "Toy_TEST.ts"))
    (tmp_path / "A_TRAIN.ts").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"test file A_TEST.ts not found beside"):
        data.resolve_ts_pair(tmp_path)
    (tmp_path / "B_TRAIN.ts").write_text("x")
    with pytest.raises(ValueError, match=r"folder must hold exactly one \*_TRAIN.ts file, found 2"):
        data.resolve_ts_pair(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"--data path not found"):
        data.resolve_ts_pair(tmp_path / "nothing")


HEAD = "@problemName X\n@univariate true\n@classLabel true a b\n@data\n"


def test_nan_padded_trailing_steps_are_trimmed_to_the_true_length(tmp_path):
    p = tmp_path / "X_TRAIN.ts"
    p.write_text(HEAD + "1,2,3,?,?:a\n?,?,?:b\n4,?,5:b\n")
    ds = data.read_ts(p)
    assert [len(s) for s in ds.series] == [3, 0, 3]
    assert np.isnan(ds.series[2][1, 0])


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("@problemName X\n@data\n1,2:a\n", r"header must declare '@classLabel true <labels>' before @data"),
        (
            "@problemName X\n@timeStamps true\n@classLabel true a\n@data\n",
            r"time-stamped series .* not supported",
        ),
        ("@problemName X\n@classLabel false\n@data\n", r"only classification files are supported"),
        (HEAD + "1,2:c\n", r"class label must be one of \['a', 'b'\], got 'c'"),
        (HEAD + "1,x:a\n", r"values must be numbers or '\?', got 'x'"),
        (HEAD + "1,2:3,4:a\n", r"expected 1 dimensions, got 2"),
        (HEAD.replace("@data\n", ""), r"no @data section found"),
        (HEAD, r"the @data section holds no rows"),
        ("@problemName X\n@dimensions two\n", r"@dimensions must be an integer, got 'two'"),
    ],
)
def test_malformed_ts_files_raise_value_errors_naming_line_and_problem(tmp_path, text, pattern):
    p = tmp_path / "X_TRAIN.ts"
    p.write_text(text)
    with pytest.raises(ValueError, match=pattern):
        data.read_ts(p)


def test_bucketed_batches_cover_every_index_once_with_little_padding_and_are_seeded():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, 1000)
    batches = data.bucket_batches(lengths, 16, np.random.default_rng(1))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    padding = sum(int(lengths[b].max() * len(b) - lengths[b].sum()) for b in batches)
    random_padding = sum(
        int(lengths[b].max() * len(b) - lengths[b].sum()) for b in np.array_split(rng.permutation(1000), 63)
    )
    assert padding < random_padding / 10
    again = data.bucket_batches(lengths, 16, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    assert [len(b) for b in data.bucket_batches(lengths, 1, np.random.default_rng(2))] == [1] * 1000
    ordered = np.concatenate(data.bucket_batches(lengths, 7))
    assert np.all(np.diff(lengths[ordered]) >= 0)
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1, got 0"):
        data.bucket_batches(lengths, 0)


def test_cache_dir_follows_graphrnn_cache_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHRNN_CACHE", str(tmp_path / "g"))
    assert data.cache_dir() == str(tmp_path / "g")
    monkeypatch.delenv("GRAPHRNN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert data.cache_dir() == os.path.join(str(tmp_path / "x"), "graphrnn")


def test_unreadable_cache_is_rebuilt(fake_stdlib, tmp_path):
    first = data.stdlib_docstrings()
    (cache_file,) = os.listdir(tmp_path / "cache")
    (tmp_path / "cache" / cache_file).write_text("{not json")
    assert data.stdlib_docstrings() == first
    with open(tmp_path / "cache" / cache_file) as f:
        assert json.load(f)["docstrings"] == first
