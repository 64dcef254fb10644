"""The process-wide settings ``import slomo`` applies (slomo.runtime), observed in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from slomo import runtime

#: a numpy expression on frame-sized arrays, as a model's step makes them; page faults an iteration
_FAULTS = """
import json, os, resource, sys
import numpy as np
import slomo
frame = np.ones((272, 640, 3), np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    doubled = frame * 2.0
    summed = doubled + frame
    del doubled, summed
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50
print(json.dumps({"faults": faults, "omp": os.environ.get("OMP_WAIT_POLICY")}))
"""


def _run(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in (*runtime.MALLOC_VARIABLES, "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", _FAULTS], env={**clean, **env}, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_frames_are_reused_not_faulted_in_again_unless_the_user_tuned_malloc():
    ours = _run()
    # a tunable that changes nothing tells slomo the user tuned malloc: glibc's own behaviour
    glibc = _run(GLIBC_TUNABLES="glibc.malloc.perturb=0")
    if glibc["faults"] < 100:
        pytest.skip(f"this system faults {glibc['faults']:.0f} pages an iteration as it is: nothing to save")
    assert ours["faults"] < 0.2 * glibc["faults"], (ours, glibc)


def test_torch_threads_wait_passively_unless_the_user_said_otherwise():
    assert _run()["omp"] == "PASSIVE"
    assert _run(OMP_WAIT_POLICY="ACTIVE")["omp"] == "ACTIVE"
