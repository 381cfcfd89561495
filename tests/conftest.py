"""Shared test helpers: generated audio folders and a small config for fast runs."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import settings

from esc50.core.config import TaskConfig
from esc50.testing import SMALL_STFT

# The property tests try the same examples on every run (derandomized, no example database), so
# no run's outcome depends on a fresh draw; `pytest --hypothesis-profile=explore` draws new ones
# (and keeps failing ones in .hypothesis/ to replay).
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile("repeatable")

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "esc50"
SR = 8000
FREQS = [300.0, 700.0, 1500.0, 3000.0]  # one tone per class of the synthetic task


def tone(freq: float, seconds: float = 1.0, sr: int = SR, amplitude: float = 0.5,
         noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """A sine with a little white noise, float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wav = amplitude * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)
    return wav.astype(np.float32)


def write_synthetic_dataset(root: Path, clips_per_class_per_fold: int = 2, folds=(1, 2, 3),
                            ext: str = "wav", with_csv: bool = False) -> Path:
    """A folder of `{fold}-{clip}-{take}-{target}.<ext>` tone clips, one frequency per class."""
    audio = root / "audio" if with_csv else root
    audio.mkdir(parents=True, exist_ok=True)
    rows = []
    for fold in folds:
        for target, freq in enumerate(FREQS):
            for k in range(clips_per_class_per_fold):
                seed = fold * 1000 + target * 100 + k
                jitter = 1 + 0.03 * np.random.default_rng(seed).uniform(-1, 1)
                name = f"{fold}-{seed}-A-{target}.{ext}"
                sf.write(audio / name, tone(freq * jitter, seed=seed), SR)
                rows.append(f"{name},{fold},{target},class{target},False,{seed},A")
    if with_csv:
        (root / "meta").mkdir()
        (root / "meta" / "esc50.csv").write_text(
            "filename,fold,target,category,esc10,src_file,take\n" + "\n".join(rows) + "\n")
    return root


# The small STFT as command-line flags: --set plugins.logmel.n_fft=256 ...
STFT_FLAGS = [arg for key, value in SMALL_STFT.items()
              for arg in ("--set", f"plugins.logmel.{key}={value}")]


def esc50_config(**changes) -> TaskConfig:
    """The defaults with what ESC-50 decides filled in: 50 classes, 5 s at 44.1 kHz."""
    return TaskConfig().override(num_classes=50, sample_rate=44_100, length_wav=220_500,
                                 **changes)


def small_config(data: Path, **changes) -> TaskConfig:
    """A config for 1-second 8 kHz clips with 4 classes that trains in seconds on a CPU."""
    base = dict(data=str(data), sample_rate=SR, length_wav=SR,
                options={"plugins.logmel": SMALL_STFT}, num_classes=len(FREQS), batch_size=16,
                learning_rate=3e-3, num_epochs=2, progress=False, val_fold=1)
    return TaskConfig().override(**base).override(**changes)



def write_leftover(path: Path) -> Path:
    """The temporary file an atomic write of ``path`` killed midway leaves beside it."""
    from esc50.core.files.write import temporary_beside

    fd, name = temporary_beside(path)
    os.write(fd, b"half a file")
    os.close(fd)
    return Path(name)


def full_disk_at(name_start: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk is full for the files whose temporary file's name starts with ``name_start``
    (``.last.pt``, say: core/files/write.py names them): making one fails as the system fails
    it, with ENOSPC."""
    make = tempfile.mkstemp

    def mkstemp(*args: Any, prefix: str = "", **kwargs: Any) -> tuple[int, str]:
        if prefix.startswith(name_start):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return make(*args, prefix=prefix, **kwargs)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def never_finished(wav: Path, out: Path) -> Path:
    """``wav`` as a recorder that lost power leaves it: the RIFF and data sizes still 0."""
    data = bytearray(wav.read_bytes())
    position = 12
    while data[position:position + 4] != b"data":
        position += 8 + int.from_bytes(data[position + 4:position + 8], "little")
    data[4:8] = data[position + 4:position + 8] = bytes(4)
    out.write_bytes(bytes(data))
    return out


def unlistable(folders: set[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The system refuses to list ``folders`` (EACCES, as for a folder without read permission,
    which a test running as root cannot make); remove one from the set to let it be listed."""
    list_folder = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(os.fspath(path)) in folders:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return list_folder(path)
    monkeypatch.setattr(os, "scandir", scandir)


DYING_SITE = """
import os, signal, struct
from multiprocessing import connection

send = connection.Connection._send_bytes


def half_then_killed(self, buf):
    # The first process to write a message holding MARK writes half of it and is killed.
    data = bytes(buf)
    if os.environ["ESC50_DIE_WRITING"].encode() in data:
        try:
            os.close(os.open(os.environ["ESC50_DIE_TOKEN"], os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return send(self, buf)
        self._send(struct.pack("!i", len(data)) + data[:len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return send(self, buf)


if os.environ.get("ESC50_DIE_WRITING"):
    connection.Connection._send_bytes = half_then_killed
"""


def killed_mid_message(marker: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The first process Python starts from now on that writes a message to a multiprocessing
    pipe or queue holding ``marker`` is killed (SIGKILL) halfway through writing it, as the
    system's out-of-memory killer may strike: a ``sitecustomize`` module on PYTHONPATH does it
    in each new process. Returns the file whose existence says a process was killed so."""
    (folder / "sitecustomize.py").write_text(DYING_SITE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p))
    monkeypatch.setenv("ESC50_DIE_WRITING", marker)
    monkeypatch.setenv("ESC50_DIE_TOKEN", str(folder / "killed"))
    return folder / "killed"


HELD_SITE = """
import os, sys, time

if os.environ.get("ESC50_HOLD_START") and "--multiprocessing-fork" in sys.argv:
    gate = os.environ["ESC50_HOLD_START"]
    open(os.path.join(gate, f"started-{os.getpid()}"), "w").close()
    while not os.path.exists(os.path.join(gate, "go")):
        time.sleep(0.01)
"""


def held_at_start(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every worker process multiprocessing spawns from now on stops in its start-up, before
    it imports what its target needs (a ``sitecustomize`` module on PYTHONPATH), writes
    ``started-PID`` into the folder returned and goes on once a file ``go`` is there."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(HELD_SITE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p))
    monkeypatch.setenv("ESC50_HOLD_START", str(folder))
    return folder


@pytest.fixture
def exfat_disk(tmp_path):
    """A real exFAT file system, as on the SD cards and USB drives recordings travel on (a
    16 MiB image through a loop device and Linux's FUSE exFAT), where this machine lets tests
    mount one (root, and the packages exfat-fuse and exfatprogs, which .ci/run installs)."""
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in (
            "losetup", "mkfs.exfat", "mount.exfat-fuse", "umount")):
        pytest.skip("mounting an exFAT image needs root, losetup, exfatprogs and exfat-fuse")
    image, disk = tmp_path / "exfat.img", tmp_path / "exfat"
    with image.open("wb") as handle:
        handle.truncate(16 << 20)
    disk.mkdir()
    made = subprocess.run(["mkfs.exfat", str(image)], capture_output=True)
    loop = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True,
                          text=True) if made.returncode == 0 else made
    if loop.returncode:
        pytest.skip(f"no loop device for an exFAT image: {loop.stderr.strip()}")
    device = loop.stdout.strip()
    mounted = subprocess.run(["mount.exfat-fuse", device, str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode:
        subprocess.run(["losetup", "-d", device])
        pytest.skip(f"FUSE exFAT would not mount: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)
    subprocess.run(["losetup", "-d", device], check=True)


@pytest.fixture
def small_disk(tmp_path):
    """A real file system of 64 KiB (tmpfs), where this machine lets tests mount one."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                             capture_output=True) if shutil.which("mount") else None
    if mounted is None or mounted.returncode:
        pytest.skip("mounting a small tmpfs needs root and the mount command")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def trained_tone_run(folder: Path, num_epochs: int) -> Path:
    """The run folder of a CRNN trained on the tone task (4 clips a class a fold, 1 s at 8 kHz)
    under ``folder``, which it tells apart after a dozen epochs."""
    from esc50.core.plugin_api.registry import load_registry
    from esc50.core.training.trainer import Trainer

    data = write_synthetic_dataset(folder / "data", clips_per_class_per_fold=4)
    config = small_config(data, num_epochs=num_epochs, output_dir=str(folder / "runs"),
                          run_name="tones")
    return Trainer(config, load_registry(), log=lambda _: None).fit()

@pytest.fixture
def synthetic_data(tmp_path: Path) -> Path:
    return write_synthetic_dataset(tmp_path / "data")


@pytest.fixture
def real_data() -> Path:
    if not (REAL_DATA / "meta" / "esc50.csv").is_file():
        pytest.skip(f"real ESC-50 clips not found at {REAL_DATA}")
    return REAL_DATA


# The quick recipe, narrowed (a narrower network, 32 bands at 16 kHz, 8 epochs) on ESC-10:
# accuracy well between chance and 100 %, in about a minute on 2 CPU cores.
ESC10_QUICK = ["--recipe", "quick", "--dataset", "plugins.esc10", "--epochs", "8",
               "--set", "plugins.rescnn.widths=[8, 16, 32, 64]",
               "--set", "plugins.logmel.n_mels=32", "--set", "sample_rate=16000", "--no-progress"]


@pytest.fixture(scope="session")
def esc10_cv(tmp_path_factory):
    """``esc50 cv`` of ESC10_QUICK on the real ESC-10 clips, fold 1 held out (trained on folds
    2-5): (its cross-validation folder, what the command printed)."""
    if not (REAL_DATA / "meta" / "esc50.csv").is_file():
        pytest.skip(f"real ESC-50 clips not found at {REAL_DATA}")
    from click.testing import CliRunner

    from esc50.cli.main import cli

    runs = tmp_path_factory.mktemp("esc10") / "runs"
    result = CliRunner().invoke(cli, ["cv", "--data", str(REAL_DATA), "--output-dir", str(runs),
                                      "--name", "esc10", "--folds", "1", *ESC10_QUICK])
    assert result.exit_code == 0, result.output
    return runs / "esc10", result.output


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same random state (torch, NumPy, Python), so no outcome
    depends on draws that differ from run to run."""
    import random

    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
