"""The graphrnn command: train (classify on the toy .ts pair, lm on a small text), --json, save/resume,
generate, evaluate, and one-line errors with exit status 2."""

import json
import os
import re
import subprocess
import sys

import pytest

from graphrnn import io
from graphrnn.cli import main

TOY = os.path.join(os.path.dirname(__file__), "data")
REQUIRED = {"task", "cell", "executor", "epochs", "train_loss", "metric", "seconds"}


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "story.txt"
    paras = [
        f"The {w} jumps over the lazy dog number {i}. It is a {w} day."
        for i, w in enumerate(["quick", "brown", "red", "slow", "happy"] * 6)
    ]
    path.write_text("\n\n".join(paras), encoding="utf-8")
    return path


def test_train_classify_prints_a_json_summary_as_the_last_line(capsys):
    rc = main(
        [
            "train",
            "--task",
            "classify",
            "--data",
            TOY,
            "--epochs",
            "2",
            "--hidden",
            "8",
            "--bidirectional",
            "--cell",
            "gru",
            "--json",
            "--no-progress",
        ]
    )
    assert rc == 0
    summary = last_json(capsys.readouterr().out)
    assert REQUIRED <= set(summary)
    assert (summary["task"], summary["cell"], summary["executor"], summary["epochs"]) == (
        "classify",
        "gru",
        "dynamic",
        2,
    )
    assert len(summary["train_loss"]) == 2 and summary["metric"]["name"] == "accuracy"
    assert 0.0 <= summary["metric"]["value"] <= 1.0 and summary["bidirectional"] is True


def test_train_lm_on_a_text_file_saves_a_checkpoint_that_generate_evaluate_and_resume_use(
    tmp_path, text_file, capsys
):
    ckpt = tmp_path / "lm.npz"
    rc = main(
        [
            "train",
            "--text",
            str(text_file),
            "--hidden",
            "16",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--save",
            str(ckpt),
            "--json",
            "--no-progress",
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # --json: stdout holds the JSON object and nothing else
    assert summary["task"] == "lm" and summary["metric"]["name"] == "bits_per_char"
    assert "samples:" in captured.err and os.path.exists(ckpt)
    meta = io.load_checkpoint(ckpt).meta
    assert meta["extra"]["source"]["kind"] == "text" and meta["optimizer"]["class"] == "Adam"

    assert (
        main(["generate", "--checkpoint", str(ckpt), "--prompt", "The ", "--length", "25", "--seed", "1"])
        == 0
    )
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("The ") and len(text) == 4 + 25

    assert main(["generate", "--checkpoint", str(ckpt), "--prompt", "Ж", "--length", "3", "--seed", "1"]) == 0
    assert "vocabulary lacks 'Ж'" in capsys.readouterr().err

    assert main(["evaluate", "--checkpoint", str(ckpt), "--json"]) == 0
    evaluated = last_json(capsys.readouterr().out)
    assert evaluated["metric"]["value"] == pytest.approx(summary["metric"]["value"], rel=1e-6)

    assert (
        main(
            ["train", "--resume", str(ckpt), "--epochs", "1", "--save", str(ckpt), "--json", "--no-progress"]
        )
        == 0
    )
    resumed = last_json(capsys.readouterr().out)
    assert resumed["epochs"] == 1
    ck = io.load_checkpoint(ckpt)
    assert ck.meta["extra"]["epochs_done"] == 3 and len(ck.meta["extra"]["train_loss"]) == 3
    assert ck.optimizer.steps > meta["optimizer"]["step"]


def test_evaluate_classifier_checkpoint_on_a_test_file(tmp_path, capsys):
    ckpt = tmp_path / "c.npz"
    assert (
        main(
            [
                "train",
                "--data",
                os.path.join(TOY, "Toy_TRAIN.ts"),
                "--epochs",
                "1",
                "--hidden",
                "4",
                "--save",
                str(ckpt),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", os.path.join(TOY, "Toy_TEST.ts")]) == 0
    assert capsys.readouterr().out.startswith("accuracy: ")


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["train", "--task", "classify", "--data", "/no/such/path"], r"--data path not found: /no/such/path"),
        (["train", "--task", "classify"], r"--task classify needs --data PATH"),
        (["train", "--task", "classify", "--data", TOY, "--text", "x.txt"], r"--text is for --task lm"),
        (["train", "--text", "/no/such.txt"], r"text file not found: /no/such.txt"),
        (["train", "--bidirectional", "--text", "x"], r"--bidirectional is for --task classify"),
        (["generate", "--checkpoint", "/no/ckpt.npz"], r"checkpoint not found: /no/ckpt.npz"),
        (["evaluate", "--checkpoint", "/no/ckpt.npz"], r"checkpoint not found: /no/ckpt.npz"),
    ],
)
def test_user_errors_print_one_line_on_stderr_and_exit_2(argv, pattern, capsys):
    rc = main(argv + ["--no-progress"] if argv[0] == "train" else argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and re.search(pattern, err[0]), err
    assert "Traceback" not in err[0]


def test_generate_on_a_classifier_checkpoint_is_an_error(tmp_path, capsys):
    ckpt = tmp_path / "c.npz"
    assert (
        main(["train", "--data", TOY, "--epochs", "1", "--hidden", "4", "--save", str(ckpt), "--no-progress"])
        == 0
    )
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(ckpt)]) == 2
    assert "must hold a language model (task lm), got a SequenceClassifier" in capsys.readouterr().err


def test_argument_type_errors_exit_2_through_argparse(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epochs", "0"])
    assert exc.value.code == 2
    assert "expected an integer >= 1, got 0" in capsys.readouterr().err


def test_console_entry_reports_errors_without_a_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from graphrnn.cli import main; sys.exit(main())",
            "evaluate",
            "--checkpoint",
            str(tmp_path / "missing.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == f"graphrnn evaluate: error: checkpoint not found: {tmp_path / 'missing.npz'}"
    )
