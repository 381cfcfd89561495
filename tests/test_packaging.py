"""A regular (non-editable) build puts everything under the one import package `esc50`."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_only_the_esc50_package_and_its_entry_points(tmp_path):
    # Built from a copy: a build writes esc50.egg-info into its source folder, and one left in
    # the repository would shadow the installed package's entry points in later test runs.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "runs", "build", "*.egg-info", "__pycache__", "docs", "examples",
        "benchmarks", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(source)], check=True)
    wheel = next(tmp_path.glob("esc50-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"esc50", wheel.name.split("-py3")[0] + ".dist-info"}
    for module in ("esc50/core/training/trainer.py", "esc50/core/results/folder.py",
                   "esc50/plugins/models/crnn.py", "esc50/cli/main.py", "esc50/__main__.py",
                   "esc50/recipes/strong.toml", "esc50/commands/api.py",
                   "esc50/commands/analyze/run.py", "esc50/plugins/models/trained.toml"):
        assert module in names
    # the trained model esc50 ships, with its licence, card and record: usable after install
    shipped = "esc50/plugins/models/trained/esc50-rescnn/"
    for file in ("model.pt", "model.pt.sha256", "LICENSE", "ATTRIBUTION.txt", "MODEL_CARD.md",
                 "record/config.toml", "record/history.csv", "record/clips.txt"):
        assert shipped + file in names, file
    info = next(n for n in names if n.endswith("entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(info).decode()
    assert "esc50 = esc50.cli.main:cli" in entry_points
    assert "plugins.kumar = esc50.plugins.models.kumar" in entry_points
