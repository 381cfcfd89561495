"""Plugin packages written for earlier plugin APIs (tests/plugin_packages: API 1, 2 and 3, each
with a plugin of every kind its API had, unported, importing from the old module paths), pip
installed: they load with one warning per package naming what to change, train one epoch
through their real entry points, and the runs predict."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from tests.conftest import FREQS, SR, STFT_FLAGS, tone, write_synthetic_dataset

PACKAGES = Path(__file__).resolve().parent / "plugin_packages"
SMALL = ["--set", "sample_rate=8000", "--set", "length_wav=8000", "--batch-size", "8",
         "--epochs", "1", "--no-progress"]


def esc50(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "esc50", *args], capture_output=True, text=True)


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                   check=True)


@pytest.fixture(scope="module")
def legacy_packages():
    pip("install", "--no-deps", "--no-build-isolation",
        *[str(PACKAGES / f"esc50-legacy{v}") for v in (1, 2, 3)])
    yield
    pip("uninstall", "-y", *[f"esc50-legacy{v}" for v in (1, 2, 3)])


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_old_packages_load_with_one_warning_each_naming_what_to_change(legacy_packages):
    listing = json.loads(esc50("list-plugins", "--json").stdout)
    ids = {row["id"] for row in listing["plugins"]}
    assert {"old1.flip", "old1.bandmask", "old1.swap", "old1.logmel", "old1.meanmlp",
            "old2.gain", "old2.logmel", "old2.named", "old3.shift", "old3.epochs"} <= ids
    assert listing["problems"] == []
    warnings = {v: [w for w in listing["warnings"] if f"esc50-legacy{v}" in w] for v in (1, 2, 3)}
    assert all(len(found) == 1 for found in warnings.values()), listing["warnings"]
    one, two, three = (warnings[v][0] for v in (1, 2, 3))
    assert "is written for plugin API 1; esc50 (API 4) adapts it (that adapter is deprecated " \
        "since esc50 0.3 and goes away in esc50 0.5)" in one
    # each change that applies, naming the class and where it is; none that does not
    assert "(API 2) Flip (legacy1_esc50/plugin.py:15): move its draws into sample" in one
    assert "(API 2) BandMask (legacy1_esc50/plugin.py:29): rename its stage 'spec' to " \
        "'features'" in one and "Flip (legacy1_esc50/plugin.py:15): rename" not in one
    assert "(API 2) MeanMLP (legacy1_esc50/plugin.py:80): take hidden_size as keyword " \
        "options" in one
    assert "(API 3) LogMel (legacy1_esc50/plugin.py:58): take hop_length, n_fft, n_mels, " \
        "win_length as keyword options" in one
    assert "(API 4) Swap (legacy1_esc50/plugin.py:46): expect its per-example draws" in one
    assert "use esc50.testing.config()" in one
    assert "import from esc50 itself, not esc50.core.contracts (legacy1_esc50/plugin.py:9), " \
        "esc50.core.hookspecs (legacy1_esc50/plugin.py:10)" in one
    assert "written for plugin API 2" in two and "(API 2)" not in two and "(API 3)" in two
    assert "Gain (legacy2_esc50/plugin.py:17)" in two and "esc50.testing.config()" in two
    assert "written for plugin API 3" in three and "(API 4)" in three and "(API 3)" not in three
    assert "esc50.core.dataset (legacy2_esc50/plugin.py:11)" in two
    assert "esc50.core.loggers (legacy3_esc50/plugin.py:11)" in three
    assert "esc50.core.contracts (legacy3_esc50/helpers.py:3)" in three  # in another module


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_an_api_1_package_trains_and_predicts(legacy_packages, tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", folds=(1, 2))
    result = esc50("train", "--data", str(data), "--model", "old1.meanmlp", "--featurizer",
                   "old1.logmel", "--aug", "old1.flip:p=1", "--aug", "old1.bandmask",
                   "--aug", "old1.swap", "--set", "old1.logmel.n_fft=256",
                   "--set", "old1.logmel.hop_length=64", "--set", "old1.logmel.win_length=256",
                   "--set", "old1.logmel.n_mels=24", "--set", "old1.meanmlp.hidden_size=16",
                   "--output-dir", str(tmp_path), "--run-name", "one", "--val-fold", "1", *SMALL)
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())
    counts = metrics["augmented_in_last_epoch"]
    assert counts["old1.flip:p=1"]["transformed"] == counts["old1.flip:p=1"]["seen"] > 0
    checkpoint_config = (tmp_path / "one" / "config.toml").read_text()
    assert "[old1.logmel]" in checkpoint_config and "n_mels = 24" in checkpoint_config
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone(FREQS[1], seed=9), SR)
    predicted = esc50("predict", str(tmp_path / "one"), str(clip))
    assert predicted.returncode == 0 and predicted.stdout.startswith(str(clip)), predicted.stderr


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_api_2_and_3_packages_train_and_predict(legacy_packages, tmp_path):
    data = tmp_path / "named"
    data.mkdir()
    for i, freq in enumerate(FREQS):
        for k in range(4):
            sf.write(data / f"c{i}_{k}.wav", tone(freq, seed=k), SR)
    result = esc50("train", "--dataset", "old2.named", "--data", str(data), "--featurizer",
                   "old2.logmel", "--aug", "old2.gain", "--aug", "old3.shift:p=1",
                   "--logger", "old3.epochs", "--set", "old2.logmel.n_fft=256",
                   "--set", "old2.logmel.hop_length=64", "--set", "train_ratio=0.5",
                   "--output-dir", str(tmp_path), "--run-name", "two", *STFT_FLAGS, *SMALL)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = (tmp_path / "two" / "epochs.jsonl").read_text().splitlines()
    assert len(rows) == 1 and json.loads(rows[0])["epoch"] == 1
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["plugins"]["old2.named"]["package"] == "esc50-legacy2"
    predicted = esc50("predict", str(tmp_path / "two"), str(data / "c2_0.wav"))
    assert predicted.returncode == 0, predicted.stderr


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_an_api_3_augmentation_draws_on_the_training_device(legacy_packages):
    from esc50.core.config import TaskConfig
    from esc50.core.plugin_api.registry import load_registry

    registry = load_registry()
    shift = registry.create("augmentation", "old3.shift", TaskConfig())
    flip = registry.create("augmentation", "old1.flip", TaskConfig())
    gain = registry.create("augmentation", "plugins.volume", TaskConfig())
    assert shift.draws_on_device and not gain.draws_on_device
    assert type(flip).__name__ == "ForwardAugmentation" and flip.stage == "wave"


def test_every_deprecation_is_listed_with_the_release_it_goes_away_in():
    from esc50.core.moved import DEPRECATED

    docs = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    for what, (since, removed, instead) in DEPRECATED.items():
        assert f"| {what} | {since} | {removed} | {instead} |" in docs
