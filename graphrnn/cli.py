"""The ``graphrnn`` command: ``train``, ``generate``, ``evaluate``, ``predict`` (and ``bench``).

``graphrnn train`` with no arguments trains a character-level LSTM language model on the docstrings of the
running Python's standard library and reports held-out bits per character; ``--task classify --data PATH``
trains a sequence classifier on a UEA/UCR ``.ts`` pair and reports test accuracy. Errors in what the user
gave (ValueError, TypeError, and OSError such as FileNotFoundError or PermissionError) and memory
exhaustion (MemoryError, e.g. a static graph over its memory budget) print one line on stderr and exit
with status 2, without a traceback.

Under MPI (``graphrnn.distributed``): ``mpiexec -n N graphrnn train --distributed ...`` trains data-parallel
(rank 0 alone prints, shows the progress bar, writes the checkpoint and the JSON summary);
``mpiexec -n N graphrnn predict ...`` splits the data across the ranks.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time

__all__ = ["main", "build_parser"]

SAMPLE_PROMPTS = ("Return the ", "This module ", "If the ")


def _int_at_least(minimum: int):
    """An argparse type: an integer >= minimum, with a one-line message otherwise."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {v}")
        return v

    return parse


_positive_int, _nonneg_int = _int_at_least(1), _int_at_least(0)


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return v


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    from graphrnn import __version__
    from graphrnn.train import CLASSIFY_DEFAULTS, LM_DEFAULTS

    p = argparse.ArgumentParser(
        prog="graphrnn", description="RNN, LSTM and GRU on NumPy: train and use models."
    )
    p.add_argument("--version", action="version", version=f"graphrnn {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser(
        "train",
        help="train a model (default: char-level LM on the stdlib docstrings)",
        description="Train a character-level language model (default: on the docstrings of this Python's "
        "standard library, no download) or, with --task classify --data PATH, a sequence classifier "
        "on a UEA/UCR .ts pair.",
    )
    t.add_argument(
        "--task", choices=["lm", "classify"], default=None, help="lm (default) or classify (needs --data)"
    )
    t.add_argument("--text", metavar="FILE", help="train the language model on this UTF-8 text file")
    t.add_argument(
        "--data", metavar="PATH", help="a *_TRAIN.ts file (its *_TEST.ts beside it) or a folder with one pair"
    )
    t.add_argument(
        "--cell", choices=["lstm", "gru", "rnn"], default=None, help="recurrent cell (default lstm)"
    )
    t.add_argument(
        "--hidden",
        type=_positive_int,
        default=None,
        help=f"hidden size (default {LM_DEFAULTS['hidden_size']} for lm, "
        f"{CLASSIFY_DEFAULTS['hidden_size']} for classify)",
    )
    t.add_argument("--layers", type=_positive_int, default=None, help="number of stacked layers (default 1)")
    t.add_argument(
        "--bidirectional", action="store_true", default=None, help="bidirectional stack (classify only)"
    )
    t.add_argument(
        "--executor", choices=["dynamic", "static"], default="dynamic", help="executor (default dynamic)"
    )
    t.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help=f"epochs (default {LM_DEFAULTS['epochs']} for lm, an epoch on the stdlib corpus being "
        f"{LM_DEFAULTS['chars_per_epoch']:,} sampled characters; "
        f"{CLASSIFY_DEFAULTS['epochs']} for classify)",
    )
    t.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help=f"sequences per batch; 1 trains on unpadded sequences (default {LM_DEFAULTS['batch_size']} "
        f"for lm, {CLASSIFY_DEFAULTS['batch_size']} for classify)",
    )
    t.add_argument(
        "--lr",
        type=_positive_float,
        default=None,
        help=f"Adam learning rate (default {LM_DEFAULTS['lr']} for lm, "
        f"{CLASSIFY_DEFAULTS['lr']} for classify)",
    )
    t.add_argument("--seed", type=_nonneg_int, default=0, help="seed for everything random (default 0)")
    t.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="BLAS and Numba threads (default 1: small recurrent products gain little from more, and "
        "a second busy process makes multi-threaded BLAS collapse; with --distributed: each rank's share "
        "of its node's cores)",
    )
    t.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel training over the ranks of mpiexec -n N (needs graphrnn[mpi]); --batch-size "
        "is the global batch, split across the ranks",
    )
    t.add_argument(
        "--check-every",
        type=_nonneg_int,
        default=0,
        metavar="N",
        help="with --distributed: check every N steps that all ranks hold identical parameters "
        "(default 0: at the start only)",
    )
    t.add_argument("--save", metavar="PATH", help="write the trained model and optimizer to this checkpoint")
    t.add_argument("--resume", metavar="PATH", help="continue training from this checkpoint")
    t.add_argument("--json", action="store_true", help="print one JSON summary object as the last line")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    g = sub.add_parser("generate", help="sample text from a language-model checkpoint")
    g.add_argument("--checkpoint", required=True, metavar="CKPT")
    g.add_argument("--prompt", default="", help="text to start from (default: empty)")
    g.add_argument("--length", type=_nonneg_int, default=200, help="characters to sample (default 200)")
    g.add_argument(
        "--temperature",
        type=_nonneg_float,
        default=0.8,
        help="sampling temperature; 0 takes the most likely character (default 0.8)",
    )
    g.add_argument("--seed", type=_nonneg_int, default=None, help="sampling seed (default: fresh entropy)")
    g.set_defaults(func=cmd_generate)

    e = sub.add_parser("evaluate", help="print the held-out metric of a checkpoint")
    e.add_argument("--checkpoint", required=True, metavar="CKPT")
    e.add_argument(
        "--data",
        metavar="PATH",
        help="lm: a text file scored whole; classify: a .ts pair (its test file) or a *_TEST.ts file "
        "(default: the held-out part of the data the checkpoint was trained on)",
    )
    e.add_argument("--executor", choices=["dynamic", "static"], default="dynamic")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser(
        "predict",
        help="per-item predictions of a checkpoint (also split across ranks under mpiexec)",
        description="lm checkpoint: bits per character of each non-empty line of a text file; classify "
        "checkpoint: the predicted class of each series of a .ts file (a folder: its *_TEST.ts). One line "
        "per item on stdout, in the data's order; the overall metric on stderr. Under mpiexec -n N the "
        "items are split across the ranks and rank 0 prints.",
    )
    r.add_argument("--checkpoint", required=True, metavar="CKPT")
    r.add_argument("--data", required=True, metavar="PATH", help="a text file (lm) or a .ts file or folder")
    r.add_argument("--executor", choices=["dynamic", "static"], default="dynamic")
    r.add_argument("--batch-size", type=_positive_int, default=64, help="sequences per batch (default 64)")
    r.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="BLAS and Numba threads (default 1; under mpiexec each rank's share of its node's cores)",
    )
    r.add_argument("--json", action="store_true", help="print one JSON object (with every prediction) last")
    r.set_defaults(func=cmd_predict)

    _add_bench(sub)
    return p


def _add_bench(sub) -> None:
    """The ``bench`` slot: graphrnn/bench.py provides ``add_arguments(parser)`` and ``run(args) -> int``."""
    try:
        from graphrnn import bench
    except ImportError:
        bench = None
    b = sub.add_parser("bench", help="benchmarks (static vs dynamic vs PyTorch)")
    if bench is None:

        def unavailable(args):
            raise ValueError("bench is not available: graphrnn/bench.py is missing from this installation")

        b.set_defaults(func=unavailable)
    else:
        bench.add_arguments(b)
        b.set_defaults(func=bench.run)


# ------------------------------------------------------------------------------------------- train


def _emit(args, summary: dict) -> None:
    if args.json:
        print(json.dumps(summary), flush=True)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _resume_conflicts(args, model) -> None:
    """Architecture options that contradict the checkpoint being resumed are an error."""
    cfg = model.config
    given = {"cell": args.cell, "hidden": args.hidden, "layers": args.layers}
    have = {"cell": cfg["cell"], "hidden": cfg["hidden_size"], "layers": cfg["num_layers"]}
    if args.bidirectional is not None:
        given["bidirectional"] = args.bidirectional
        have["bidirectional"] = cfg.get("bidirectional", False)
    for k, v in given.items():
        if v is not None and v != have[k]:
            raise ValueError(f"--{k} must match the checkpoint being resumed ({have[k]!r}), got {v!r}")


def _quiet(msg: str) -> None:
    pass


_USER_ERRORS = (ValueError, TypeError, FileNotFoundError)


def _mpi_comm(distributed: bool):
    """COMM_WORLD for a distributed run; None for a plain run, which must not be started N times."""
    from graphrnn import distributed as gdist

    if distributed:
        return gdist.world()
    n = gdist.launched_world_size()
    if n > 1:
        raise ValueError(
            f"graphrnn train runs under an MPI launcher with {n} ranks: add --distributed (otherwise every "
            "rank would train the same model alone and write the same files)"
        )
    return None


def _threads(comm, threads) -> int:
    """Set and return BLAS + Numba threads: ``threads`` (default 1), or each rank's share under MPI."""
    if comm is None:
        import graphrnn

        graphrnn.set_num_threads(threads or 1)
        return threads or 1
    from graphrnn import distributed as gdist

    return gdist.configure_threads(comm, threads)


def cmd_train(args) -> int:
    comm = _mpi_comm(args.distributed)
    if comm is None:
        return _train(args, None)
    from graphrnn import distributed as gdist

    with gdist.abort_on_error(
        comm, _USER_ERRORS, "graphrnn train"
    ):  # one rank failing must not hang the rest
        return _train(args, comm)


def _train(args, comm) -> int:
    from graphrnn import data as gdata
    from graphrnn import io, train

    t_start = time.perf_counter()
    threads = _threads(comm, args.threads)
    root = comm is None or comm.Get_rank() == 0
    log = _log if root else _quiet
    # results for people: on stdout, or on stderr when --json keeps stdout for the JSON object alone
    say = functools.partial(print, file=sys.stderr if args.json else sys.stdout, flush=True)
    ckpt = io.load_checkpoint(args.resume) if args.resume else None
    task = args.task or (ckpt.meta.get("task") if ckpt else None) or ("classify" if args.data else "lm")
    if ckpt is not None and ckpt.meta.get("task") != task:
        raise ValueError(
            f"--task must match the checkpoint being resumed ({ckpt.meta.get('task')!r}), got {task!r}"
        )
    if ckpt is not None:
        _resume_conflicts(args, ckpt.model)
    model = ckpt.model if ckpt else None
    optimizer = ckpt.optimizer if ckpt else None
    extra = ckpt.meta.get("extra", {}) if ckpt else {}
    start_epoch = int(extra.get("epochs_done", 0))
    if optimizer is not None and args.lr is not None:
        optimizer.lr = args.lr
    # the options both tasks hand their training loop
    loop = dict(model=model, optimizer=optimizer, cell=args.cell, hidden_size=args.hidden,
                num_layers=args.layers, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                seed=args.seed, executor=args.executor, start_epoch=start_epoch,
                progress=not args.no_progress, log=log, comm=comm, check_every=args.check_every)

    if task == "lm":
        if args.data:
            raise ValueError("--data is for --task classify; give a language model's text with --text FILE")
        if args.bidirectional:
            raise ValueError(
                "--bidirectional is for --task classify (a language model must read left to right)"
            )
        source = extra.get("source", {}) if ckpt else {}
        if args.text:
            corpus = gdata.text_corpus(args.text, train.LM_DEFAULTS["chunk_len"])
        elif source.get("kind") == "text":
            corpus = gdata.text_corpus(
                source["path"], source.get("chunk_len", train.LM_DEFAULTS["chunk_len"])
            )
        else:
            corpus = gdata.stdlib_corpus(source.get("chunk_len", train.LM_DEFAULTS["chunk_len"]))
        log(
            f"graphrnn train: lm on {corpus.source.get('kind')} corpus: {len(corpus.train)} train sequences "
            f"({corpus.train_chars:,} chars), {len(corpus.heldout)} held out ({corpus.heldout_chars:,} chars)"
        )
        result = train.train_lm(corpus, **loop)
        if not root:
            return 0
        samples = [
            (p, train.generate(result.model, p, length=120, temperature=0.7, seed=args.seed + i))
            for i, p in enumerate(_sample_prompts(corpus))
        ]
        say(
            f"held-out bits per character: {result.metric['value']:.3f} "
            f"({result.info['heldout_chars']:,} chars), "
            f"{result.info['chars_per_second']:,.0f} chars/s training"
        )
        say("samples:")
        for p, s in samples:
            say("  " + repr(p + s))
    else:
        if args.text:
            raise ValueError("--text is for --task lm; give a classification .ts pair with --data PATH")
        source = extra.get("source", {}) if ckpt else {}
        path = args.data or source.get("path")
        if not path:
            raise ValueError(
                "--task classify needs --data PATH (a *_TRAIN.ts file or a folder holding one pair)"
            )
        train_set, test_set = gdata.load_ts_pair(path)
        log(
            f"graphrnn train: classify {train_set.name}: {len(train_set)} train / "
            f"{len(test_set)} test series, "
            f"{train_set.dimensions} channels, {len(train_set.class_labels)} classes"
        )
        result = train.train_classifier(train_set, test_set, bidirectional=bool(args.bidirectional), **loop)
        if not root:
            return 0
        say(
            f"test accuracy: {result.metric['value']:.4f} ({len(test_set)} series), "
            f"{result.info['seqs_per_second']:,.1f} sequences/s training"
        )

    if args.save:
        extra_out = {
            "source": result.info["source"],
            "epochs_done": result.info["epochs_done"],
            "train_loss": list(extra.get("train_loss", [])) + result.train_loss,
            "metric": result.metric,
            "seed": args.seed,
        }
        io.save(args.save, result.model, result.optimizer, extra=extra_out)
        log(f"saved checkpoint to {args.save}")
    seconds = time.perf_counter() - t_start
    model = result.model
    summary = {
        "task": task,
        "cell": model.config["cell"],
        "executor": args.executor,
        "epochs": len(result.train_loss),
        "train_loss": result.train_loss,
        "metric": result.metric,
        "seconds": seconds,
        "hidden": model.config["hidden_size"],
        "layers": model.config["num_layers"],
        "batch_size": args.batch_size
        or (train.LM_DEFAULTS if task == "lm" else train.CLASSIFY_DEFAULTS)["batch_size"],
        "seed": args.seed,
        "threads": threads,
        "ranks": result.info["ranks"],
        "python": platform.python_version(),
    }
    if task == "lm":
        summary["chars_per_second"] = result.info["chars_per_second"]
    else:
        summary["seqs_per_second"] = result.info["seqs_per_second"]
        summary["bidirectional"] = model.config["bidirectional"]
    _emit(args, summary)
    return 0


# ---------------------------------------------------------------------------------------- generate


def _sample_prompts(corpus) -> list[str]:
    """The stdlib's own openings for the default corpus; for the user's text, its held-out part's openings."""
    if corpus.source.get("kind") == "stdlib":
        return list(SAMPLE_PROMPTS)
    starts = [seq[:8] for seq in (corpus.heldout or corpus.train)[:3] if seq[:8].strip()]
    return starts or [""]


def cmd_generate(args) -> int:
    from graphrnn import io, train

    model = io.load(args.checkpoint)
    if not isinstance(model, train.CharLM):
        raise ValueError(f"--checkpoint must hold a language model (task lm), got a {type(model).__name__}")
    unknown = sorted(set(args.prompt) - set(model.vocab))
    if unknown:
        print(f"graphrnn generate: note: the model's vocabulary lacks {''.join(unknown)!r}; "
              "those prompt characters are read as unknown", file=sys.stderr)
    text = train.generate(
        model, args.prompt, length=args.length, temperature=args.temperature, seed=args.seed
    )
    print(args.prompt + text)
    return 0


# ---------------------------------------------------------------------------------------- evaluate


def cmd_evaluate(args) -> int:
    from graphrnn import data as gdata
    from graphrnn import io, train

    ckpt = io.load_checkpoint(args.checkpoint)
    model, extra = ckpt.model, ckpt.meta.get("extra", {})
    source = extra.get("source", {})
    if isinstance(model, train.CharLM):
        chunk_len = source.get("chunk_len", train.LM_DEFAULTS["chunk_len"])
        if args.data:
            corpus = gdata.text_corpus(args.data, chunk_len)
            texts, what = corpus.train + corpus.heldout, f"all of {args.data}"
        elif source.get("kind") == "text":
            texts, what = (
                gdata.text_corpus(source["path"], chunk_len).heldout,
                f"held-out part of {source['path']}",
            )
        else:
            texts, what = gdata.stdlib_corpus(chunk_len).heldout, "held-out stdlib docstrings"
        nats = train.evaluate_lm(model, texts, executor=args.executor)
        metric = {"name": "bits_per_char", "value": nats / train.LN2}
        print(f"bits per character: {metric['value']:.4f} on {what} ({sum(map(len, texts)):,} chars)")
    elif isinstance(model, train.SequenceClassifier):
        path = args.data or source.get("path")
        if not path:
            raise ValueError("--data PATH is needed: the checkpoint does not record its data")
        if str(path).upper().endswith("_TEST.TS"):
            test_set = gdata.read_ts(path)
        else:
            test_set = gdata.load_ts_pair(path)[1]
        acc = train.evaluate_classifier(model, test_set, executor=args.executor)
        metric = {"name": "accuracy", "value": acc}
        print(f"accuracy: {acc:.4f} on {test_set.path} ({len(test_set)} series)")
    else:
        raise ValueError(
            f"--checkpoint must hold a model trained by graphrnn train, got a {type(model).__name__}"
        )
    _emit(args, {"task": ckpt.meta.get("task"), "metric": metric, "checkpoint": args.checkpoint})
    return 0


# ----------------------------------------------------------------------------------------- predict


def cmd_predict(args) -> int:
    from graphrnn import distributed as gdist

    comm = gdist.world() if gdist.launched_world_size() > 1 else None
    if comm is None:
        return _predict(args, None)
    with gdist.abort_on_error(comm, _USER_ERRORS, "graphrnn predict"):
        return _predict(args, comm)


def _predict(args, comm) -> int:
    from graphrnn import data as gdata
    from graphrnn import distributed as gdist
    from graphrnn import io, train

    t0 = time.perf_counter()
    threads = _threads(comm, args.threads)
    root = comm is None or comm.Get_rank() == 0
    model = io.load(args.checkpoint)
    if not os.path.exists(args.data):
        raise FileNotFoundError(f"--data path not found: {args.data}")
    if isinstance(model, train.CharLM):
        with open(args.data, encoding="utf-8") as f:
            numbered = [(i + 1, line) for i, line in enumerate(f.read().splitlines()) if line]
        if not numbered:
            raise ValueError(f"--data must hold at least one non-empty line, got none in {args.data}")
        items = [line for _, line in numbered]
    elif isinstance(model, train.SequenceClassifier):
        dataset = (
            gdata.read_ts(args.data) if not os.path.isdir(args.data) else gdata.load_ts_pair(args.data)[1]
        )
        if dataset.dimensions != model.config["input_size"]:
            raise ValueError(
                f"--data must have {model.config['input_size']} dimensions for this checkpoint, "
                f"got {dataset.dimensions} in {dataset.path}"
            )
        items = dataset.series
    else:
        raise ValueError(
            f"--checkpoint must hold a model trained by graphrnn train, got a {type(model).__name__}"
        )
    if comm is not None:  # rank 0 compiles (and caches) the kernels before the others load them
        gdist.warm_cache(comm, lambda: gdist.warm_model(model, args.executor, train=False))
    res = gdist.predict_model(model, items, comm=comm, executor=args.executor, batch_size=args.batch_size)
    if not root:
        return 0
    if isinstance(model, train.CharLM):
        nats, chars = res[:, 0], res[:, 1]
        bits = nats / chars / train.LN2
        predictions = [
            {"line": n, "chars": int(c), "bits_per_char": float(b)}
            for (n, _), c, b in zip(numbered, chars, bits)
        ]
        for p in predictions:
            print(f"{p['line']}\t{p['bits_per_char']:.4f}")
        metric = {"name": "bits_per_char", "value": float(nats.sum() / chars.sum() / train.LN2)}
        _log(
            f"bits per character: {metric['value']:.4f} over {len(items)} lines ({int(chars.sum()):,} chars)"
        )
    else:
        pred = res.argmax(axis=1)
        predictions = [{"index": i, "label": model.labels[k]} for i, k in enumerate(pred)]
        for p in predictions:
            print(f"{p['index']}\t{p['label']}")
        correct = sum(p["label"] == lab for p, lab in zip(predictions, dataset.labels))
        metric = {"name": "accuracy", "value": correct / len(items)}
        _log(f"accuracy: {metric['value']:.4f} on {dataset.path} ({len(items)} series)")
    summary = {
        "task": model.task,
        "checkpoint": args.checkpoint,
        "data": args.data,
        "n": len(items),
        "metric": metric,
        "ranks": 1 if comm is None else comm.Get_size(),
        "threads": threads,
        "seconds": time.perf_counter() - t0,
        "predictions": predictions,
    }
    _emit(args, summary)
    return 0


# -------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, OSError, MemoryError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and exc.filename:
            # e.g. PermissionError, IsADirectoryError: say which file
            msg = f"{exc.strerror or type(exc).__name__}: {exc.filename2 or exc.filename}"
        print(f"graphrnn {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"graphrnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
