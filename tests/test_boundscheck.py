"""A subset of the kernel and executor tests (tests/boundscheck_cases.py) runs again in a subprocess with
NUMBA_BOUNDSCHECK=1, so an out-of-bounds index in any jitted kernel fails loudly instead of reading or
writing past an array.

The subprocess gets a fresh, empty NUMBA_CACHE_DIR: Numba's cache does not key on bounds checking, so a
warm cache would serve the unchecked kernels. It also sets NUMBA_OPT=0: LLVM's optimisation passes are most
of the compile time and play no part in bounds checking (the checks are in the code Numba emits, and an
optimiser may only drop checks it proves cannot fail); Numba then cannot cache the float32 kernels (it
warns that they use dynamic globals), which a throwaway cache does not need.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "boundscheck_cases.py"


def test_kernels_and_executors_pass_with_numba_bounds_checks_in_a_fresh_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), NUMBA_OPT="0")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore:Cannot cache compiled function:numba.core.errors.NumbaWarning",
        str(CASES),
    ]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    report = f"\n--- stdout ---\n{run.stdout[-6000:]}\n--- stderr ---\n{run.stderr[-3000:]}"
    assert run.returncode == 0, "bounds-checked subset failed" + report
    passed = re.search(r"(\d+) passed", run.stdout)
    assert passed and int(passed.group(1)) >= 12 and "failed" not in run.stdout, report
