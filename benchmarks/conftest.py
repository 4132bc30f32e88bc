"""pytest-benchmark suite settling the three claims (issue 3): ``pytest benchmarks --benchmark-only``.

Not part of the default test run (pyproject's testpaths is ``tests``). Each test runs one section of
``graphrnn.bench`` (the same code as ``graphrnn bench``, at full sizes): it checks every contender against
the NumPy reference first, times contenders interleaved in this one process, and records other
processes' CPU use beside each figure. pytest-benchmark times the whole section once (``pedantic``, one
round); the figures that matter are in the section's table, printed at the end of the run, stored in
``extra_info`` (``--benchmark-json``) and, with ``--bench-out DIR``, written as one JSON file per section
plus ``results.md`` as each test finishes.

Options: ``--bench-scale tiny`` (seconds: to check the suite itself) or ``full`` (default: about half an
hour on a quiet 2-core machine); ``--bench-threads 1,2``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import pytest

from graphrnn import bench

_SECTIONS: list = []


def pytest_addoption(parser):
    g = parser.getgroup("graphrnn-bench", "graphrnn benchmark suite")
    g.addoption(
        "--bench-scale",
        choices=("tiny", "full"),
        default="full",
        help="problem sizes: tiny (a smoke run of the suite) or full (default)",
    )
    g.addoption("--bench-threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    g.addoption(
        "--bench-out",
        default=None,
        metavar="DIR",
        help="write each section as DIR/<section>.json and all tables as DIR/results.md",
    )


@dataclass(frozen=True)
class Scale:
    name: str
    threads: tuple

    @property
    def full(self) -> bool:
        return self.name == "full"


@pytest.fixture(scope="session")
def scale(request) -> Scale:
    return Scale(
        request.config.getoption("--bench-scale"),
        tuple(bench.parse_threads(request.config.getoption("--bench-threads"))),
    )


@pytest.fixture(scope="session")
def gemm(scale, record_session):
    """The float32 GEMM peak per thread count, measured once per run (GFLOP/s)."""
    sec = bench.gemm_peaks(scale.threads, n=2048 if scale.full else 512)
    record_session(sec)
    return {r["threads"]: r["gflops"] for r in sec["rows"]}


@pytest.fixture(scope="session")
def record_session(request):
    out = request.config.getoption("--bench-out")
    if out:
        os.makedirs(out, exist_ok=True)

    def record(sec, key=None):
        sec = bench.to_jsonable(sec)
        meta = sec.setdefault("meta", {})
        meta["scale"] = request.config.getoption("--bench-scale")
        meta["git"] = bench._git_state()  # the executors may change between sections of a long run
        meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        _SECTIONS.append(sec)
        if out:
            name = key or sec["section"] + ("-" + sec["meta"]["dist"] if "dist" in sec["meta"] else "")
            with open(os.path.join(out, f"{name}.json"), "w") as f:
                json.dump(sec, f, indent=1)
            with open(os.path.join(out, "results.md"), "w") as f:
                f.write(bench.render_markdown(_SECTIONS + [bench.speed_targets(_SECTIONS)]))
        return sec

    return record


@pytest.fixture
def measure(record_session, benchmark):
    """measure(fn, **kwargs): run one section of graphrnn.bench as a single pytest-benchmark round (the
    round's time is the whole section's), keep it for the summary, attach it to the benchmark's
    extra_info, and return it."""

    def _measure(fn, *, key=None, **kwargs):
        sec = benchmark.pedantic(fn, kwargs=kwargs, rounds=1, iterations=1, warmup_rounds=0)
        sec = record_session(sec, key)
        benchmark.extra_info["section"] = sec
        return sec

    return _measure


def pytest_terminal_summary(terminalreporter):
    if not _SECTIONS:
        return
    tr = terminalreporter
    tr.section("graphrnn benchmark tables")
    info = bench.machine_info()
    tr.write_line(
        f"machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, numpy {info['numpy']}, "
        f"numba {info['numba']}, torch {info['torch']}, graphrnn {info['graphrnn']}"
    )
    for sec in _SECTIONS + [bench.speed_targets(_SECTIONS)]:
        if sec["rows"] or sec["notes"]:
            tr.write_line("")
            for line in bench.format_table(sec).splitlines():
                tr.write_line(line)
