"""torch's threads spin only briefly while they wait for each other (core/cpu_threads.py):
importing esc50 sets it before torch loads libgomp, which then runs with it; a setting of one's
own stays."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from esc50.core.cpu_threads import SPINS, WAIT_VARIABLES

# torch's Linux wheels bring libgomp; a torch built with another OpenMP reads other variables
pytestmark = pytest.mark.skipif(not list((Path(torch.__file__).parent / "lib").glob("libgomp*")),
                                reason="torch without libgomp")


def libgomp_settings(code: str, **variables: str) -> str:
    """What libgomp says of its settings when ``code`` (which imports torch) runs in a fresh
    Python with ``variables`` set (and no OpenMP wait variable inherited)."""
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARIABLES}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**env, "OMP_DISPLAY_ENV": "VERBOSE", **variables})
    return done.stderr


def test_importing_esc50_gives_torch_a_brief_spin():
    said = libgomp_settings("import esc50, torch; torch.ones(1)")
    assert f"GOMP_SPINCOUNT = '{SPINS}'" in said
    assert "GOMP_SPINCOUNT = '300000'" in libgomp_settings("import torch, esc50")  # too late


def test_a_wait_of_ones_own_stays():
    assert "GOMP_SPINCOUNT = '50'" in libgomp_settings("import esc50, torch", GOMP_SPINCOUNT="50")
    said = libgomp_settings("import esc50, torch", OMP_WAIT_POLICY="ACTIVE")
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in said and f"GOMP_SPINCOUNT = '{SPINS}'" not in said
