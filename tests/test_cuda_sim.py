"""The CUDA executor gives the CPU executors' numbers: run under Numba's CUDA simulator, in a subprocess.

NUMBA_ENABLE_CUDASIM must be set before numba is imported, so one subprocess (tests/cuda_sim_cases.py, with
a NUMBA_CACHE_DIR of its own) runs every CUDA check once and writes its results; the tests here compare
them with the NumPy reference (``kernels.reference.stack_forward``), the dynamic executor (forward and every
gradient), the NumPy twin of each kernel and a few PyTorch fixtures, each to its dtype's tolerance.
Cases are a pairwise subset over cell x directions x layers (1, 2, 2 with dropout) x lengths x dtype x per-step/persistent path x
bias x hx, plus a one-step batch of one and a batch whose lengths are all 0.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
import types

import cuda_sim_cases as sim
import numpy as np
import pytest
from gradcheck import assert_close
from graphrnn.kernels import reference as ref

import graphrnn.cuda as gcuda
from graphrnn import dynamic

HERE = pathlib.Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
GOLDEN_NAMES = [n for n in sim.GOLDEN_NAMES if (GOLDEN / f"{n}.npz").exists()]
SIM_TIMEOUT_S = 400  # hard stop; the run itself takes well under a minute on 2 cores
DEVICE_CASE = "device-" + sim.case_name(sim.DEVICE_CASE)


def _subprocess_env(**overrides):
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    env.update(overrides)
    return env


def _expected(c):
    spec = c["spec"]
    out_r, hn_r, cn_r = ref.stack_forward(
        spec, c["params"], c["x"], c["lengths"], c["h0"], c["c0"], c["masks"]
    )
    out_d, hn_d, cn_d, tape = dynamic.forward(
        spec, c["params"], c["x"], c["lengths"], c["h0"], c["c0"], c["masks"], True
    )
    grads = dynamic.backward(tape, c["g_out"], c["g_hn"], c["g_cn"])
    return {"ref": (out_r, hn_r, cn_r), "dyn": (out_d, hn_d, cn_d), "grads": grads}


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory):
    """Run every CUDA check once under the simulator; returns (cases, expected, results, seconds)."""
    work = tmp_path_factory.mktemp("cudasim")
    meta = {"cases": {}, "golden": GOLDEN_NAMES, "golden_dir": str(GOLDEN), "device_case": DEVICE_CASE}
    arrays, cases, expected = {}, {}, {}
    for i, (name, case) in enumerate(list(sim.CASES.items()) + [(DEVICE_CASE, sim.DEVICE_CASE)]):
        c = sim.case_arrays(case, seed=i)
        cases[name] = c
        expected[name] = _expected(c)
        spec = c["spec"]
        meta["cases"][name] = {
            "spec": {
                "cell": spec.cell,
                "input_size": spec.input_size,
                "hidden_size": spec.hidden_size,
                "num_layers": spec.num_layers,
                "bidirectional": spec.bidirectional,
                "bias": spec.bias,
                "dtype": spec.dtype,
            },
            "path": case["path"],
            "n_masks": len(c["masks"]) if c["masks"] is not None else 0,
        }
        for k in ("x", "lengths", "h0", "c0", "g_out", "g_hn", "g_cn"):
            if c[k] is not None:
                arrays[f"{name}/{k}"] = c[k]
        for k, v in c["params"].items():
            arrays[f"{name}/param/{k}"] = v
        for j, m in enumerate(c["masks"] or []):
            arrays[f"{name}/mask{j}"] = m
    np.savez(work / "inputs.npz", **arrays)
    (work / "meta.json").write_text(json.dumps(meta))
    env = _subprocess_env(NUMBA_ENABLE_CUDASIM="1", NUMBA_CACHE_DIR=str(work / "numba_cache"))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(HERE / "cuda_sim_cases.py"), str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=SIM_TIMEOUT_S,
        check=False,
    )
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, (
        f"the simulator run failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-8000:]}"
    )
    with np.load(work / "results.npz", allow_pickle=False) as z:
        results = {k: z[k] for k in z.files}
    print(f"\ncuda simulator run: {seconds:.1f} s, parts {bytes(results['timings']).decode()}")
    return cases, expected, results, seconds


# ------------------------------------------------------------------------------------------ the cases


@pytest.mark.parametrize("name", list(sim.CASES))
def test_cuda_output_and_final_state_match_the_numpy_reference(sim_run, name):
    cases, expected, res, _ = sim_run
    dt = cases[name]["spec"].np_dtype
    out_r, hn_r, cn_r = expected[name]["ref"]
    assert res[f"{name}/out"].dtype == dt
    assert_close(res[f"{name}/out"], out_r, f"{name}: output", dt)
    assert_close(res[f"{name}/h_n"], hn_r, f"{name}: h_n", dt)
    if cn_r is not None:
        assert_close(res[f"{name}/c_n"], cn_r, f"{name}: c_n", dt)


@pytest.mark.parametrize("name", list(sim.CASES))
def test_cuda_gradients_match_the_dynamic_executor(sim_run, name):
    cases, expected, res, _ = sim_run
    dt = cases[name]["spec"].np_dtype
    want = expected[name]["grads"]
    got = {k[len(f"{name}/grad/") :]: v for k, v in res.items() if k.startswith(f"{name}/grad/")}
    assert set(got) == set(want), f"{name}: gradient keys {sorted(got)}, expected {sorted(want)}"
    for key in sorted(want):
        assert got[key].dtype == dt, f"{name}: grads[{key!r}] has dtype {got[key].dtype}"
        assert_close(got[key], want[key], f"{name}: grads[{key!r}]", dt)


@pytest.mark.parametrize("name", list(sim.CASES))
def test_inference_gives_the_training_output_and_keeps_no_tape(sim_run, name):
    cases, _, res, _ = sim_run
    assert bool(res[f"{name}/tape_is_none"])
    assert_close(
        res[f"{name}/out_inference"],
        res[f"{name}/out"],
        f"{name}: inference output",
        cases[name]["spec"].np_dtype,
    )


@pytest.mark.parametrize("name", [n for n, c in sim.CASES.items() if c["lengths"] != "full"])
def test_padded_outputs_are_exactly_zero_and_length_zero_rows_keep_the_initial_state(sim_run, name):
    cases, _, res, _ = sim_run
    c = cases[name]
    T = c["x"].shape[0]
    pad = np.arange(T)[:, None] >= c["lengths"][None, :]  # (T, B)
    assert np.all(res[f"{name}/out"][pad] == 0), f"{name}: output not exactly 0 at padded positions"
    empty = c["lengths"] == 0
    assert empty.any()
    assert np.array_equal(res[f"{name}/h_n"][:, empty], c["h0"][:, empty]), f"{name}: h_n of a length-0 row"
    if c["c0"] is not None:
        assert np.array_equal(res[f"{name}/c_n"][:, empty], c["c0"][:, empty]), (
            f"{name}: c_n of a length-0 row"
        )
    # nothing flows through a length-0 row: dL/dh0 there is exactly g_hn, its input gradient exactly 0
    assert np.array_equal(res[f"{name}/grad/h0"][:, empty], c["g_hn"][:, empty])
    assert np.all(res[f"{name}/grad/input"][pad] == 0), f"{name}: input gradient not 0 at padded positions"


def test_pairwise_cases_cover_every_pair_of_factor_levels():
    cases = sim.pairwise(sim.FACTORS)
    names = list(sim.FACTORS)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            seen = {(c[a], c[b]) for c in cases}
            missing = {(va, vb) for va in sim.FACTORS[a] for vb in sim.FACTORS[b]} - seen
            assert not missing, f"pairs of {a} x {b} never run: {sorted(missing)}"
    assert len(sim.CASES) <= 16, "the simulator is slow: keep the case list short"


# ------------------------------------------------------------------------------------- single kernels


@pytest.mark.parametrize("check", sim.KERNEL_CHECKS)
def test_kernel_matches_its_numpy_twin(sim_run, check):
    _, _, res, _ = sim_run
    dt = np.dtype(check.rsplit("-", 1)[1])
    got, want = res[f"kernel/{check}/got"], res[f"kernel/{check}/want"]
    if check.startswith("cast_copy"):
        assert str(res[f"kernel/{check}/dtype"]) == dt.name
    assert_close(got, want, f"kernel {check}", dt)


# ------------------------------------------------------------------------------------ PyTorch fixtures


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_modules_with_executor_cuda_match_pytorch_golden_values(sim_run, name):
    _, _, res, _ = sim_run
    with np.load(GOLDEN / f"{name}.npz", allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    meta = json.loads(a.pop("meta").tobytes())
    dt = np.dtype(meta["dtype"])
    assert_close(res[f"golden/{name}/out"], a["out"], f"{name} [cuda] output", dt)
    assert_close(res[f"golden/{name}/h_n"], a["h_n"], f"{name} [cuda] h_n", dt)
    if meta["cell"] == "lstm":
        assert_close(res[f"golden/{name}/c_n"], a["c_n"], f"{name} [cuda] c_n", dt)
    grads = {
        k[len(f"golden/{name}/grad/") :]: v for k, v in res.items() if k.startswith(f"golden/{name}/grad/")
    }
    want = {k[len("grad/") :]: v for k, v in a.items() if k.startswith("grad/")}
    assert set(grads) == set(want)
    for key in sorted(want):
        assert_close(grads[key], want[key], f"{name} [cuda] grads[{key!r}]", dt)


# ------------------------------------------------------------------------------------ device arrays


def test_device_inputs_give_device_results_with_the_host_numbers(sim_run):
    cases, expected, res, _ = sim_run
    dt = cases[DEVICE_CASE]["spec"].np_dtype
    assert res["device/forward_types_on_device"].all(), "forward on device input must return device arrays"
    assert res["device/state_grads_on_device"].all(), (
        "input/h0/c0 gradients of a device input must stay on device"
    )
    assert res["device/param_grads_on_host"].all(), "gradients of host parameters must be host arrays"
    out_d, hn_d, _ = expected[DEVICE_CASE]["dyn"]
    assert_close(res["device/out"], out_d, "device input: output", dt)
    assert_close(res["device/h_n"], hn_d, "device input: h_n", dt)
    for key, want in expected[DEVICE_CASE]["grads"].items():
        assert_close(res[f"device/grad/{key}"], want, f"device input: grads[{key!r}]", dt)


def test_nan_at_padded_positions_of_a_device_input_does_not_leak(sim_run):
    cases, expected, res, _ = sim_run
    dt = cases[DEVICE_CASE]["spec"].np_dtype
    out_d, hn_d, _ = expected[DEVICE_CASE]["dyn"]
    assert_close(res["device/out_nan_padded"], out_d, "device input with NaN padding: output", dt)
    assert_close(res["device/h_n_nan_padded"], hn_d, "device input with NaN padding: h_n", dt)


# ------------------------------------------------------------------------- without a GPU or numba-cuda

_NO_GPU_SCRIPT = """
import sys
import numpy as np
import graphrnn, graphrnn.dynamic, graphrnn.cuda
from graphrnn.executors import get_executor
assert get_executor("cuda") is graphrnn.cuda
assert graphrnn.cuda.is_device_array(np.zeros(3)) is False
graphrnn.GRU(2, 3)(np.zeros((4, 1, 2), np.float32))  # the CPU path
print("IMPORTED", sorted(m for m in sys.modules if m.startswith(("numba.cuda", "numba_cuda"))))
try:
    graphrnn.GRU(2, 3)(np.zeros((4, 1, 2), np.float32), executor="cuda")
except graphrnn.cuda.CudaUnavailableError as e:
    print("ERROR", e)
"""


@pytest.fixture(scope="module")
def no_gpu_run():
    env = _subprocess_env(NUMBA_ENABLE_CUDASIM="0", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", _NO_GPU_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    return proc.stdout


def test_cpu_import_path_never_imports_numba_cuda(no_gpu_run):
    line = next(ln for ln in no_gpu_run.splitlines() if ln.startswith("IMPORTED"))
    assert line == "IMPORTED []", f"numba.cuda was imported without executor='cuda': {line}"


def test_executor_cuda_without_a_gpu_raises_an_error_saying_what_to_install(no_gpu_run):
    line = next((ln for ln in no_gpu_run.splitlines() if ln.startswith("ERROR")), None)
    assert line is not None, f"no CudaUnavailableError raised; output:\n{no_gpu_run}"
    for needed in ("no usable CUDA GPU", "graphrnn[cuda]", "numba-cuda", "NUMBA_ENABLE_CUDASIM=1"):
        assert needed in line, f"error message lacks {needed!r}: {line}"


def test_numbas_builtin_cuda_target_is_refused_with_an_install_hint(monkeypatch):
    import numba

    fake = types.ModuleType("numba.cuda")
    fake.implementation = "Built-in"
    fake.is_available = lambda: True
    monkeypatch.setitem(sys.modules, "numba.cuda", fake)
    monkeypatch.setattr(numba, "cuda", fake, raising=False)
    monkeypatch.setattr(gcuda, "_BACKEND", None)
    with pytest.raises(gcuda.CudaUnavailableError, match=r"numba-cuda.*NUMBA_ENABLE_CUDASIM=1"):
        gcuda._backend()


def test_missing_numba_cuda_raises_an_error_saying_what_to_install(monkeypatch):
    import numba

    monkeypatch.setitem(sys.modules, "numba.cuda", None)  # makes `from numba import cuda` an ImportError
    monkeypatch.delattr(numba, "cuda", raising=False)
    monkeypatch.setattr(gcuda, "_BACKEND", None)
    with pytest.raises(gcuda.CudaUnavailableError, match=r"graphrnn\[cuda\]"):
        gcuda._backend()
