"""Files graphrnn reads, broken or hostile: checkpoints, .ts series and text corpora. Each gives one clear
ValueError (FileNotFoundError when absent) naming the file and the problem; none hangs; sizes declared
in a file never make a reader allocate beyond what the file holds. Also: a checkpoint writer killed in the
middle of a save leaves the previous checkpoint intact, and the CLI turns every such error into one line."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import graphrnn
from graphrnn import data, io
from graphrnn.cli import main
from graphrnn.optim import Adam


@contextlib.contextmanager
def within(seconds):
    """Fail (instead of hanging the suite) when the body takes longer than ``seconds``."""

    def expire(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s: it would hang")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ------------------------------------------------------------------------------------------ checkpoints


@pytest.fixture
def ckpt(tmp_path):
    """A saved GRU with an Adam optimizer after one step; returns (path, arrays as stored)."""
    m = graphrnn.GRU(3, 4, num_layers=2, seed=0)
    opt = Adam(m.params, lr=0.01)
    opt.step({k: np.ones_like(v) for k, v in m.params.items()})
    path = tmp_path / "ok.npz"
    io.save(path, m, opt)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return path, arrays


def rewrite(path, arrays, *, checksum=True, **savez_kw):
    """Write ``arrays`` as a checkpoint file, with a correct checksum unless told otherwise (so a test
    reaches the check it is aimed at, not the checksum)."""
    arrays = dict(arrays)
    if checksum:
        arrays.pop("checksum", None)
        arrays["checksum"] = io._digest(arrays)
    (np.savez_compressed if savez_kw.pop("compressed", False) else np.savez)(path, **arrays, **savez_kw)
    return path


def with_meta(arrays, change):
    meta = json.loads(arrays["meta"].tobytes())
    change(meta)
    return dict(arrays, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))


def raw_meta(arrays, text: bytes):
    return dict(arrays, meta=np.frombuffer(text, np.uint8))


def set_in(keys, value):
    def change(meta):
        d = meta
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value

    return change


def drop(arrays, key):
    return {k: v for k, v in arrays.items() if k != key}


BAD_CHECKPOINTS = {
    # name: (make arrays from the good ones, pattern of the message)
    "unknown entry": (lambda a: dict(a, evil=np.zeros(3)), r"unknown entries \['evil'\]"),
    "missing parameter": (lambda a: drop(a, "param/weight_hh_l1"), r"missing \['weight_hh_l1'\]"),
    "extra parameter": (
        lambda a: dict(a, **{"param/weight_hh_l2": np.zeros((12, 4), np.float32)}),
        r"unexpected \['weight_hh_l2'\]",
    ),
    "wrong shape": (
        lambda a: dict(a, **{"param/bias_ih_l0": np.zeros(13, np.float32)}),
        r"wrong shapes bias_ih_l0 \(13,\) \(expected \(12,\)\)",
    ),
    "integer parameter": (
        lambda a: dict(a, **{"param/bias_ih_l0": np.zeros(12, np.int32)}),
        r"'bias_ih_l0' must be a float array, got dtype int32",
    ),
    "complex parameter": (
        lambda a: dict(a, **{"param/bias_ih_l0": np.zeros(12, np.complex64)}),
        r"entry 'param/bias_ih_l0.npy' holds complex64 data",
    ),
    "string array": (
        lambda a: dict(a, **{"param/bias_ih_l0": np.array(["x"] * 12)}),
        r"holds <U1 data \(numbers expected",
    ),
    "meta not JSON": (lambda a: raw_meta(a, b"{not json"), r"unreadable meta JSON"),
    "meta not UTF-8": (lambda a: raw_meta(a, b"\xff\xfe{}"), r"unreadable meta JSON"),
    "meta a list": (lambda a: raw_meta(a, b"[1, 2]"), r"meta format is 'list'"),
    "meta deeply nested": (lambda a: raw_meta(a, b"[" * 100_000 + b"]" * 100_000), r"unreadable meta JSON"),
    "meta float array": (lambda a: dict(a, meta=np.zeros(4)), r"meta must be a 1-D uint8 array"),
    "foreign format": (lambda a: with_meta(a, set_in(["format"], "other")), r"meta format is 'other'"),
    "future version": (
        lambda a: with_meta(a, set_in(["format_version"], 99)),
        r"format_version must be 1, got 99",
    ),
    "model not an object": (
        lambda a: with_meta(a, set_in(["model"], [1])),
        r"meta model must be a JSON object",
    ),
    "config not an object": (
        lambda a: with_meta(a, set_in(["model", "config"], "x")),
        r"config must be a JSON object",
    ),
    "unknown model class": (
        lambda a: with_meta(a, set_in(["model", "class"], "Transformer")),
        r"class must be one of .* got 'Transformer'",
    ),
    "hidden size a string": (
        lambda a: with_meta(a, set_in(["model", "config", "hidden_size"], "4")),
        r"hidden_size must be an int >= 1, got '4'",
    ),
    "bogus dtype": (
        lambda a: with_meta(a, set_in(["model", "config", "dtype"], "float7")),
        r"dtype must be float32 or float64, got 'float7'",
    ),
    "unknown config key": (
        lambda a: with_meta(a, set_in(["model", "config", "colour"], "red")),
        r"cannot rebuild its GRU from meta: .*colour",
    ),
    "optimizer state without optimizer": (
        lambda a: with_meta(a, set_in(["optimizer"], None)),
        r"holds optimizer state .* but its meta has no optimizer",
    ),
    "unknown optimizer": (
        lambda a: with_meta(a, set_in(["optimizer", "class"], "Lion")),
        r"optimizer class must be one of \['Adam', 'SGD'\], got 'Lion'",
    ),
    "negative learning rate": (
        lambda a: with_meta(a, set_in(["optimizer", "config", "lr"], -1)),
        r"bad optimizer .* lr must lie in",
    ),
    "step a string": (
        lambda a: with_meta(a, set_in(["optimizer", "step"], "7")),
        r"step must be an int >= 0",
    ),
    "missing optimizer state": (
        lambda a: drop(a, "optim/exp_avg/bias_hh_l0"),
        r"missing \['exp_avg/bias_hh_l0'\]",
    ),
    "negative second moment": (
        lambda a: dict(a, **{"optim/exp_avg_sq/bias_hh_l0": -np.ones(12, np.float32)}),
        r"must be >= 0",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CHECKPOINTS))
def test_a_bad_checkpoint_is_a_value_error_naming_the_file_and_the_problem(ckpt, tmp_path, case):
    path, arrays = ckpt
    make, pattern = BAD_CHECKPOINTS[case]
    bad = rewrite(tmp_path / "bad.npz", make(arrays))
    with within(20), pytest.raises(ValueError, match=pattern) as e:
        io.load_checkpoint(bad)
    assert str(bad) in str(e.value)


def test_object_arrays_are_refused_without_unpickling_anything(ckpt, tmp_path):
    path, arrays = ckpt
    bad = rewrite(
        tmp_path / "pickle.npz",
        dict(arrays, **{"param/bias_ih_l0": np.array([{"x": 1}] * 12)}),
        allow_pickle=True,
    )
    with pytest.raises(ValueError, match=r"holds object data \(numbers expected, never objects\)"):
        io.load(bad)


@pytest.mark.parametrize("tamper", ["parameter", "meta", "checksum-length", "optimizer"])
def test_any_change_after_saving_fails_the_checksum(ckpt, tmp_path, tamper):
    path, arrays = ckpt
    a = dict(arrays)
    if tamper == "parameter":
        a["param/weight_ih_l0"] = a["param/weight_ih_l0"] * np.float32(1.0001)
    elif tamper == "meta":
        a = with_meta(a, set_in(["extra", "note"], "edited"))
    elif tamper == "checksum-length":
        a["checksum"] = a["checksum"][:16]
    else:
        a["optim/exp_avg/bias_hh_l0"] = a["optim/exp_avg/bias_hh_l0"] + np.float32(1)
    with pytest.raises(ValueError, match=r"corrupt: SHA-256 checksum does not match"):
        io.load(rewrite(tmp_path / "t.npz", a, checksum=False))


def test_a_hostile_hidden_size_is_refused_before_the_model_allocates_anything(ckpt, tmp_path):
    """meta says hidden_size = 200000 (this 2-layer GRU would need ~1 TB); the file holds 4 KB."""
    path, arrays = ckpt
    bad = rewrite(
        tmp_path / "huge.npz", with_meta(arrays, set_in(["model", "config", "hidden_size"], 200_000))
    )
    tracemalloc.start()
    with pytest.raises(
        ValueError,
        match=r"wrong shapes bias_hh_l0 \(12,\) \(expected \(600000,\)\), "
        r".*weight_hh_l0 \(12, 4\) \(expected \(600000, 200000\)\), .*and 2 more",
    ):
        io.load(bad)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5 * 2**20, f"{peak} bytes allocated"


def _npy_header_claiming(shape, dtype="<f4"):
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def test_an_array_header_declaring_more_than_the_file_holds_allocates_nothing(ckpt, tmp_path):
    path, arrays = ckpt
    bad = tmp_path / "liar.npz"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, a in arrays.items():
            if name == "param/weight_hh_l0":  # declares 10^12 floats (4 TB), holds 16 bytes
                zf.writestr(name + ".npy", _npy_header_claiming((10**6, 10**6)) + b"\0" * 16)
            else:
                with zf.open(name + ".npy", "w") as f:
                    np.lib.format.write_array(f, a)
    tracemalloc.start()
    with pytest.raises(ValueError, match=r"declares shape \(1000000, 1000000\) \(4000000000000 bytes"):
        io.load(bad)
    assert tracemalloc.get_traced_memory()[1] < 5 * 2**20
    tracemalloc.stop()


def test_compressed_truncated_empty_random_and_special_files_are_refused_without_hanging(ckpt, tmp_path):
    path, arrays = ckpt
    cases = {"compressed": rewrite(tmp_path / "z.npz", arrays, compressed=True)}
    blob = path.read_bytes()
    for name, content in (
        ("truncated", blob[: len(blob) // 2]),
        ("empty", b""),
        ("random", np.random.default_rng(0).bytes(5000)),
        ("text", b"hello"),
    ):
        cases[name] = tmp_path / f"{name}.npz"
        cases[name].write_bytes(content)
    cases["folder"] = tmp_path / "folder.npz"
    cases["folder"].mkdir()
    os.mkfifo(tmp_path / "fifo.npz")  # opening it would block until a writer appears
    cases["fifo"] = tmp_path / "fifo.npz"
    for name, bad in cases.items():
        with within(20), pytest.raises(ValueError) as e:
            io.load(bad)
        assert str(bad) in str(e.value), (name, str(e.value))
    assert io.load(path).config["hidden_size"] == 4  # the good one still loads


def test_float64_parameters_are_cast_to_a_float32_models_dtype(ckpt, tmp_path):
    path, arrays = ckpt
    a = {k: (v.astype(np.float64) if k.startswith("param/") else v) for k, v in arrays.items()}
    m = io.load(rewrite(tmp_path / "f64.npz", a))
    assert m.params["weight_ih_l0"].dtype == np.float32
    np.testing.assert_array_equal(m.params["weight_ih_l0"], arrays["param/weight_ih_l0"])


WRITER = textwrap.dedent("""
    import sys, numpy as np, graphrnn
    from graphrnn import io
    from graphrnn.optim import SGD
    m = graphrnn.GRU(512, 1024, seed=0)            # ~19 MB of parameters: a save takes a while
    opt = SGD(m.params, lr=0.1, momentum=0.9)      # and as much again of optimizer state
    i = 0
    while True:
        for p in m.params.values():
            p.fill(i)
        for a in opt.state_arrays().values():
            a.fill(-i)
        print("begin", i, flush=True)
        io.save(sys.argv[1], m, opt)
        print("done", i, flush=True)
        i += 1
""")


def temp_bytes(folder):
    try:
        return max((os.path.getsize(folder / f) for f in os.listdir(folder) if f.endswith(".tmp")), default=0)
    except FileNotFoundError:  # renamed between listing and measuring
        return 0


def test_killing_a_writer_in_the_middle_of_a_save_leaves_the_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "live.npz"
    interrupted = False
    for attempt in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        try:
            done = -1
            with within(120):
                for line in proc.stdout:  # let it finish two saves, then kill it while it writes the third
                    word, i = line.split()
                    done = int(i) if word == "done" else done
                    if word == "begin" and int(i) == 2:
                        while proc.poll() is None and temp_bytes(tmp_path) < 2**20:
                            time.sleep(0.0005)  # kill once the temporary file holds 1 MiB of ~38
                        os.kill(proc.pid, signal.SIGKILL)
                        break
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
        leftovers = [f for f in os.listdir(tmp_path) if f != "live.npz"]
        interrupted |= 2**20 <= temp_bytes(tmp_path) < 30 * 2**20  # a partial temporary file: killed mid-save
        ckpt = io.load_checkpoint(path)  # checksum verified: the file is whole
        value = float(ckpt.model.params["weight_hh_l0"][0, 0])
        assert value in (done, done + 1), (value, done)  # the last finished save (or, if its rename
        assert all((p == value).all() for p in ckpt.model.params.values())  # just landed, the next one)
        assert all((a == -value).all() for a in ckpt.optimizer.state_arrays().values())
        for f in leftovers:
            os.unlink(tmp_path / f)
        if interrupted:
            break
    assert interrupted, "never managed to kill the writer in the middle of a save"


# --------------------------------------------------------------------------------------------- datasets


GOOD_TS = """@problemName Toy
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b
@data
1,2,3:4,5,6:a
1,2:3,4:b
"""

BAD_TS = {
    "truncated mid-row": (GOOD_TS[:-3], r":8: class label must be one of \['a', 'b'\], got '3,4'"),
    "truncated in the header": (GOOD_TS[:40], r"no @data section found"),
    "empty": ("", r"no @data section found"),
    "no rows": (GOOD_TS.split("1,2,3")[0], r"the @data section holds no rows"),
    "binary garbage": ("\x00\x01\x02\xff\xfe garbage\n", r":1: expected a header line starting with '@'"),
    "word for a number": (
        GOOD_TS.replace("1,2,3", "1,two,3"),
        r":7: values must be numbers or '\?', got 'two'",
    ),
    "infinity": (
        GOOD_TS.replace("1,2,3", "1,inf,3"),
        r":7: values must be finite numbers or '\?', got 'inf'",
    ),
    "overflowing number": (GOOD_TS.replace("1,2,3", "1,1e999,3"), r"finite numbers or '\?', got '1e999'"),
    "unknown label": (GOOD_TS.replace(":a\n", ":c\n"), r":7: class label must be one of"),
    "dimension count": (GOOD_TS.replace("1,2:3,4:b", "1,2:b"), r":8: expected 2 dimensions, got 1"),
    "data before labels": (GOOD_TS.replace("@classLabel true a b\n", ""), r"must declare '@classLabel true"),
    "regression file": (
        GOOD_TS.replace("@classLabel true a b", "@classLabel false"),
        r"only classification files are supported",
    ),
    "time stamps": ("@timeStamps true\n" + GOOD_TS, r"time-stamped series"),
    "non-integer dimensions": (
        GOOD_TS.replace("@dimensions 2", "@dimensions two"),
        r":3: @dimensions must be an integer, got 'two'",
    ),
    "padding bomb": (
        GOOD_TS.replace("1,2,3:4,5,6", ":".join(["1"] * 3000) + "," + ",".join(["1"] * 3000))
        .replace("@dimensions 2", "@dimensions 3000")
        .replace("1,2:3,4:b", ""),
        r"NaN padding to 3001 x 3000 would need 9003000 cells for 6000 values",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TS))
def test_a_broken_ts_file_is_a_value_error_naming_the_file_line_and_problem(tmp_path, case):
    text, pattern = BAD_TS[case]
    path = tmp_path / "Bad_TRAIN.ts"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    with within(20), pytest.raises(ValueError, match=pattern) as e:
        data.read_ts(path)
    assert str(path) in str(e.value)


def test_sizes_declared_in_a_ts_header_allocate_nothing(tmp_path):
    path = tmp_path / "Liar_TRAIN.ts"
    path.write_text(
        GOOD_TS.replace("@equalLength false", "@equalLength true\n@seriesLength 1000000000000").replace(
            "@dimensions 2", "@dimensions 2"
        ),
        encoding="utf-8",
    )
    tracemalloc.start()
    ds = data.read_ts(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [s.shape for s in ds.series] == [(3, 2), (2, 2)] and peak < 2**20
    path.write_text(GOOD_TS.replace("@dimensions 2", "@dimensions 1000000000"), encoding="utf-8")
    with pytest.raises(ValueError, match=r":7: expected 1000000000 dimensions, got 2"):
        data.read_ts(path)


def test_many_labels_and_rows_are_read_in_linear_time(tmp_path):
    labels = [f"c{i}" for i in range(20_000)]
    rows = "".join(f"{i % 7},{i % 5}:c{i % 20_000}\n" for i in range(40_000))
    path = tmp_path / "Wide_TRAIN.ts"
    path.write_text(f"@classLabel true {' '.join(labels)}\n@data\n{rows}", encoding="utf-8")
    with within(30):
        ds = data.read_ts(path)
    assert len(ds) == 40_000 and len(ds.class_labels) == 20_000


@pytest.mark.parametrize("reader", ["ts", "text"])
def test_fifos_and_devices_are_refused_instead_of_blocking_or_reading_forever(tmp_path, reader):
    read = data.read_ts if reader == "ts" else data.text_corpus
    fifo = tmp_path / "pipe_TRAIN.ts"
    os.mkfifo(fifo)
    for special in (fifo, "/dev/zero"):
        with within(10), pytest.raises(ValueError, match=r"must be a regular file, got a special file"):
            read(special)


def test_a_binary_or_non_utf8_text_file_is_a_value_error_naming_the_offset(tmp_path):
    good = "\n\n".join(f"paragraph {i} with some words" for i in range(30))
    path = tmp_path / "t.txt"
    path.write_bytes(good.encode()[:100] + b"\0" + good.encode()[100:])
    with pytest.raises(ValueError, match=r"binary data \(a NUL byte at offset 100\)"):
        data.text_corpus(path)
    path.write_bytes(good.encode()[:50] + b"\xe9" + good.encode()[50:])
    with pytest.raises(ValueError, match=r"byte 0xe9 at offset 50 that is not UTF-8"):
        data.text_corpus(path)
    path.write_bytes(good.encode())
    assert len(data.text_corpus(path, chunk_len=64).train) > 0


# -------------------------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (
            ["evaluate", "--checkpoint", "{bad}"],
            r"^graphrnn evaluate: error: .*bad\.npz is not a graphrnn checkpoint",
        ),
        (["generate", "--checkpoint", "{huge}"], r"^graphrnn generate: error: .* parameters do not fit"),
        (
            ["train", "--task", "classify", "--data", "{ts}", "--no-progress"],
            r"^graphrnn train: error: .*:7: values",
        ),
        (
            ["train", "--text", "{bin}", "--no-progress"],
            r"^graphrnn train: error: --text must be a UTF-8 text file",
        ),
        (
            ["train", "--text", "{fifo}", "--no-progress"],
            r"^graphrnn train: error: --text must be a regular file",
        ),
        (
            [
                "train",
                "--text",
                "{txt}",
                "--save",
                "{dir}",
                "--no-progress",
                "--epochs",
                "1",
                "--hidden",
                "4",
            ],
            r"^graphrnn train: error: Is a directory: .*/a-folder$",
        ),
    ],
)
def test_cli_turns_bad_files_into_one_line_and_exit_status_2(ckpt, tmp_path, capsys, argv, pattern):
    path, arrays = ckpt
    files = {
        "bad": tmp_path / "bad.npz",
        "huge": tmp_path / "huge.npz",
        "ts": tmp_path / "X_TRAIN.ts",
        "bin": tmp_path / "b.txt",
        "fifo": tmp_path / "f.txt",
        "txt": tmp_path / "ok.txt",
        "dir": tmp_path / "a-folder",
    }
    files["bad"].write_bytes(b"PK\x03\x04 not really a zip")
    rewrite(files["huge"], with_meta(arrays, set_in(["model", "config", "hidden_size"], 10**6)))
    files["ts"].write_text(GOOD_TS.replace("1,2,3", "1,x,3"), encoding="utf-8")
    (tmp_path / "X_TEST.ts").write_text(GOOD_TS, encoding="utf-8")
    files["bin"].write_bytes(b"\0\1\2" * 100)
    os.mkfifo(files["fifo"])
    files["txt"].write_text(
        "\n\n".join(f"paragraph number {i} of the story" for i in range(40)), encoding="utf-8"
    )
    files["dir"].mkdir()
    with within(120):
        rc = main([a.format(**files) for a in argv])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if " error: " in line]
    assert rc == 2 and len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err  # (progress
    assert "Traceback" not in err  # lines may come first)
    assert re.search(pattern, errors[0]), errors[0]


def test_cli_reports_a_static_graph_over_the_memory_budget_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GRAPHRNN_STATIC_MEMORY_BUDGET", "1k")
    text = tmp_path / "ok.txt"
    text.write_text("\n\n".join(f"paragraph number {i} of the story" for i in range(40)), encoding="utf-8")
    rc = main(
        [
            "train",
            "--text",
            str(text),
            "--executor",
            "static",
            "--epochs",
            "1",
            "--hidden",
            "4",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert rc == 2 and "Traceback" not in err
    assert last.startswith("graphrnn train: error: the static graph") and 'executor="dynamic"' in last, err
