"""benchmarks/accuracy_gpu.sh, the script a lent GPU runs first, end to end on the CPU with a
tiny configuration: three folds side by side, the figures collected, no checkpoints."""

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import SMALL_STFT, write_synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "2", "--batch-size", "8", "--set", "warmup_epochs=1",
        "--set", "sample_rate=8000", "--set", "length_wav=8000", "--set", "cpu_amp=false",
        "--set", "plugins.rescnn.widths=8,16", "--set", "num_classes=4",
        *[arg for key, value in SMALL_STFT.items() for arg in ("--set", f"plugins.logmel.{key}={value}")]]


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_the_gpu_accuracy_script_runs_and_collects_small_files(tmp_path):
    """The layout a GPU machine gets: the script in a checkout whose prepared .data/esc50 it
    reads (no ../shared there), the figures collected into OUT."""
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2, 3), with_csv=True)
    checkout = tmp_path / "checkout"
    (checkout / "benchmarks").mkdir(parents=True)
    script = checkout / "benchmarks" / "accuracy_gpu.sh"
    shutil.copy(ROOT / "benchmarks" / "accuracy_gpu.sh", script)
    out = tmp_path / "out"
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "RECIPE": "gpu",
           "DEVICE": "cpu", "JOBS": "3", "LIMIT": "600", "HOME": str(tmp_path)}
    prepared = subprocess.run(["bash", str(script), "prepare"], capture_output=True, text=True,
                              env={**env, "SOURCE": str(data), "WHEELS": ""})  # no download
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    assert sorted(p.name for p in (checkout / ".data" / "esc50" / "audio").iterdir()) == \
        sorted(p.name for p in (data / "audio").iterdir())
    done = subprocess.run(["bash", str(script), "run", str(out), *TINY], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"clips from {checkout / '.data' / 'esc50'}" in (out / "log.txt").read_text()
    summary = json.loads((out / "cv.json").read_text())
    assert sorted(summary["folds"]) == ["1", "2", "3"] and summary["epochs"] == 2
    assert summary["model"] == "plugins.rescnn"
    with tarfile.open(out / "results.tar.gz") as archive:
        names = sorted(archive.getnames())
    assert names == sorted(f"fold-{k}/{f}" for k in (1, 2, 3)
                           for f in ("config.toml", "history.csv", "metrics.json"))
    assert sorted(p.name for p in out.iterdir()) == ["cv.json", "log.txt", "results.tar.gz"]
    assert "esc50 cv exit status 0" in (out / "log.txt").read_text()
