"""Checkpoints: atomic, checksummed, and loaded without running code."""

import os
import resource
import signal

import pytest
import torch

from esc50.core.results.checkpoint import checksum_file, load_checkpoint, save_checkpoint
from esc50.core.errors import Esc50Error

STATE = {"model": {"w": torch.arange(10000.0)}, "epoch": 3, "config": {"n_mels": 64}}


def test_round_trip_with_a_checksum_sidecar(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(STATE, path)
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], STATE["model"]["w"])
    assert len(checksum_file(path).read_text().split()) == 1
    save_checkpoint({**STATE, "epoch": 4}, path)
    assert load_checkpoint(path)["epoch"] == 4
    assert len(checksum_file(path).read_text().split()) == 1


def test_a_modified_byte_or_a_truncated_file_is_refused(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(STATE, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # torch.load alone would load this silently
    path.write_bytes(bytes(data))
    with pytest.raises(Esc50Error, match="does not match its checksum .*truncated or modified"):
        load_checkpoint(path)
    save_checkpoint(STATE, path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(Esc50Error, match="does not match its checksum"):
        load_checkpoint(path)
    checksum_file(path).write_text("")  # an emptied sidecar verifies nothing: refused
    with pytest.raises(Esc50Error, match="last.pt: its checksum file last.pt.sha256 is empty"):
        load_checkpoint(path)
    checksum_file(path).unlink()  # a deleted one neither, for a run's own checkpoints
    with pytest.raises(Esc50Error, match="has no last.pt.sha256 \\(deleted\\?\\), so it cannot be "
                                         "verified; refusing"):
        load_checkpoint(path)
    other = tmp_path / "weights.pt"  # a state dict from elsewhere has none: the zip reader
    other.write_bytes(path.read_bytes())  # still catches truncation
    with pytest.raises(Esc50Error, match="not a readable checkpoint"):
        load_checkpoint(other)


class Payload:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_a_checkpoint_needing_code_execution_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": Payload()}, path)
    with pytest.raises(Esc50Error, match="only arbitrary code execution could load; refused"):
        load_checkpoint(path)


def test_a_kill_while_replacing_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(STATE, path)

    real_replace = os.replace

    def killed_at_the_checkpoint(src, dst):
        if str(dst) == str(path):  # dies after the sidecar lists both digests, before the rename
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_at_the_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({**STATE, "epoch": 4}, path)
    monkeypatch.undo()
    assert len(checksum_file(path).read_text().split()) == 2
    assert load_checkpoint(path)["epoch"] == 3  # sidecar lists old and new: the old one loads
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_a_full_disk_gives_one_line_and_keeps_the_previous_checkpoint(tmp_path):
    """A real failed write: the kernel refuses to grow files past RLIMIT_FSIZE (EFBIG), as it
    refuses them on a full disk (ENOSPC)."""
    path = tmp_path / "last.pt"
    save_checkpoint(STATE, path)
    big = {**STATE, "epoch": 4, "model": {"w": torch.zeros(2_000_000)}}
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard))
    try:
        with pytest.raises(Esc50Error) as caught:
            save_checkpoint(big, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    message = str(caught.value)
    assert message == f"cannot write {path}: File too large; the previous last.pt is intact"
    assert load_checkpoint(path)["epoch"] == 3
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
