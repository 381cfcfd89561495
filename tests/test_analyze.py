"""`esc50 analyze`: a tree of recordings into per-recording CSV, JSON, Audacity and Raven files
(each checked against its format's rules), a combined table and a summary; resumed after a
kill with every recording exactly once; worker processes and shards covering the tree once;
the review page in headless Chromium; class filters and embeddings."""

from __future__ import annotations

import collections
import csv
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

import esc50
from esc50 import Esc50Error
from esc50.cli.main import cli
from esc50.commands.analyze.formats import RAVEN_COLUMNS, SUFFIXES, output_path
from esc50.commands.analyze.recordings import Recording, parse_shard, shard_share
from esc50.commands.analyze.results import ResultsTree
from esc50.commands.analyze.review import NOTHING_TO_REVIEW
from esc50.core.files.write import write_text
from esc50.core.training import device
from tests.conftest import (FREQS, SR, full_disk_at, held_at_start, killed_mid_message,
                            never_finished, tone, trained_tone_run, unlistable,
                            write_leftover)

# each recording: its tones (class per second-long stretch), at 8 kHz
TREE = {"site1/day1/morning.wav": [0, 0, 0, 2, 2, 2], "site1/day1/noon.flac": [1, 1, 1, 1],
        "site1/day2/evening.ogg": [3, 3, 3, 3, 3, 0, 0, 0], "site2/long.wav": [2] * 12,
        "site2/short.wav": [1, 1, 1]}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A CRNN that tells the four tones apart (1-second windows at 8 kHz)."""
    return trained_tone_run(tmp_path_factory.mktemp("analyze"), num_epochs=12)


def write_tree(root: Path) -> Path:
    for name, classes in TREE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.concatenate([tone(FREQS[c], 1.0, seed=k) for k, c in
                                       enumerate(classes)]), SR)
    return root


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["analyze", *args, "--no-progress"])
    return result.exit_code, result.output


def test_a_tree_is_labelled_into_every_format_by_its_rules(model_dir, tmp_path):
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out), "--format", "csv",
                           "--format", "json", "--format", "audacity", "--format", "raven")
    assert code == 0, output
    combined = list(csv.DictReader((out / "segments.csv").open()))
    for name, classes in TREE.items():
        base = out / name
        rows = list(csv.DictReader(Path(f"{base}.csv").open()))
        assert [r for r in combined if r["file"] == name] == rows
        assert [r["class"] for r in rows] == [str(c) for c in dict.fromkeys(classes)]
        # Audacity: start, end and text, tab-separated, one label a line, in time order
        labels = [line.split("\t") for line in Path(f"{base}.labels.txt").read_text()
                  .splitlines()]
        assert all(len(fields) == 3 and float(fields[0]) <= float(fields[1]) and fields[2]
                   for fields in labels)
        assert [float(f[0]) for f in labels] == sorted(float(f[0]) for f in labels)
        assert [f[2].split()[0] for f in labels] == [r["class"] for r in rows]
        # Raven: the header, then a row per selection with every column, numbered from 1
        raven = [line.split("\t") for line in Path(f"{base}.selections.txt").read_text()
                 .splitlines()]
        assert raven[0] == RAVEN_COLUMNS and len(raven) == len(rows) + 1
        for number, row in enumerate(raven[1:], start=1):
            assert len(row) == len(RAVEN_COLUMNS) and int(row[0]) == number
            assert row[1] == "Spectrogram 1" and int(row[2]) == 1
            assert 0 <= float(row[3]) < float(row[4]) <= len(classes) + 1e-6
            assert 0 <= float(row[5]) < float(row[6]) <= SR / 2
            assert 0 <= float(row[8]) <= 1
        timeline = json.loads(Path(f"{base}.json").read_text())
        assert timeline["file"] == name and len(timeline["windows"]) >= len(classes)
        assert [s["class"] for s in timeline["segments"]] == [r["class"] for r in rows]
    summary = json.loads((out / "summary.json").read_text())
    seconds = sum(len(c) for c in TREE.values())
    assert summary["done"] == len(TREE) and abs(summary["audio_hours"] * 3600 - seconds) < 1e-3
    assert abs(sum(c["seconds"] for c in summary["classes"].values()) - seconds) < 1e-3
    assert summary["files"]["site2/long.wav"]["top"] == [["2", 12.0]]
    assert "x real time" in (out / "summary.txt").read_text()


def test_a_bad_recording_costs_only_itself_and_the_class_filter_keeps_what_is_asked(
        model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the tree named relative to here, as people type it
    tree, out = write_tree(Path("tree")), tmp_path / "out"
    (tree / "site2" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    sf.write(tree / "site2" / "silent.wav", np.zeros(SR), SR)
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out), "--classes", "2,3")
    assert code == 1 and "error: " in output and "broken.wav" in output
    failed = list(csv.DictReader((out / "failed.csv").open()))
    assert [f["file"] for f in failed] == ["site2/broken.wav", "site2/silent.wav"]
    # each file named once, as given, whichever check refused it
    assert failed[0]["error"].startswith("tree/site2/broken.wav: cannot decode audio (")
    assert failed[1]["error"] == "tree/site2/silent.wav: the audio is all silence (every " \
        "sample is zero)"
    assert {r["class"] for r in csv.DictReader((out / "segments.csv").open())} == {"2", "3"}
    assert json.loads((out / "summary.json").read_text())["done"] == len(TREE)
    code, output = run_cli(str(model_dir), str(tree), "--out", str(tmp_path / "o2"),
                           "--classes", "2,dgo")
    assert code == 1 and "'dgo' is not one of the model's 4 classes" in output
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out), "--classes", "3,2,3")
    assert f"{len(TREE)} already done" in output  # the same classes: a set, not a sequence
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out), "--classes", "1")
    assert code == 1 and "holds results made with other settings (classes)" in output


def test_files_left_out_for_their_names_are_counted_and_audio_it_cannot_decode_is_named(
        model_dir, tmp_path):
    """Phones record AAC in .m4a, which libsndfile does not decode: such files, like the notes
    beside the recordings, were left out without a word, so a tree of them looked analysed.
    They are counted by extension in one line (and in the summary), the undecodable audio named
    with what to do."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    for name in ("site1/call.m4a", "site1/day1/notes.txt", "site2/README", "site2/memo.m4a"):
        (tree / name).write_bytes(b"not audio esc50 reads")
    (tree / "site2" / ".DS_Store").write_bytes(b"hidden")  # hidden files stay unmentioned
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
    assert code == 0, output
    assert (f"note: 4 files under {tree} not analysed, their names not those of audio esc50 "
            "decodes: (no extension) 1, .m4a 2, .txt 1 (site1/call.m4a, site1/day1/notes.txt, "
            "site2/README, and 1 more); .m4a is audio esc50 cannot decode: convert such files "
            "first (ffmpeg -i rec.m4a rec.flac)\n") in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done"] == summary["recordings"] == len(TREE) and summary["failed"] == 0
    assert summary["not_audio"] == {"(no extension)": 1, ".m4a": 2, ".txt": 1}
    assert "recordings done, 4 other files not audio by name (summary.json: not_audio)" in \
        (out / "summary.txt").read_text()
    code, output = run_cli(str(model_dir), str(tree / "site1"), "--out", str(tmp_path / "o1"))
    assert code == 0 and (f"note: 2 files under {tree / 'site1'} not analysed, their names not "
                          "those of audio esc50 decodes: .m4a 1, .txt 1 (call.m4a, "
                          "day1/notes.txt); .m4a is audio") in output
    code, output = run_cli(str(model_dir), str(tree / "site1" / "day1"), "--out",
                           str(tmp_path / "o2"))
    assert code == 0 and (f"note: 1 file under {tree / 'site1' / 'day1'} not analysed, its name "
                          "not that of audio esc50 decodes: .txt 1 (notes.txt)\n") in output


def test_the_default_hop_given_or_not_continues_one_tree(model_dir, tmp_path):
    """The default hop is recorded as its value (half the model's 1-second window), so giving
    it continues the tree, and a tree made when it was recorded as null continues either way."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    assert run_cli(str(model_dir), str(tree), "--out", str(out))[0] == 0
    recorded = out / ".esc50-analyze" / "settings.json"
    settings = json.loads(recorded.read_text())
    assert settings["hop"] == 0.5
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out), "--hop", "0.5")
    assert code == 0 and f"{len(TREE)} already done" in output
    recorded.write_text(json.dumps({**settings, "hop": None}))  # as older trees hold it
    for hop in ([], ["--hop", "0.5"]):
        code, output = run_cli(str(model_dir), str(tree), "--out", str(out), *hop)
        assert code == 0 and f"{len(TREE)} already done" in output
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out), "--hop", "0.25")
    assert code == 1 and "holds results made with other settings (hop)" in output


def test_a_fifo_or_broken_link_in_the_tree_is_one_failure_and_is_never_opened(model_dir,
                                                                             tmp_path):
    """A FIFO named like audio would block whoever opens it: analyze lists it as failed without
    opening it (a writer waiting on it would be let through by any reader), and the rest go on."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    pipe, gone = tree / "site2" / "pipe.wav", tree / "site1" / "gone.wav"
    os.mkfifo(pipe)
    gone.symlink_to(tree / "nowhere.wav")
    opened = threading.Event()

    def writer() -> None:
        with open(pipe, "wb") as handle:  # blocks until someone opens the FIFO to read
            opened.set()
            handle.write(b"RIFF")

    threading.Thread(target=writer, daemon=True).start()
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
    assert code == 1 and not opened.is_set()
    failed = {f["file"]: f["error"] for f in csv.DictReader((out / "failed.csv").open())}
    assert set(failed) == {"site2/pipe.wav", "site1/gone.wav"}
    assert "is a FIFO (named pipe), not a regular file" in failed["site2/pipe.wav"]
    assert "is a broken link" in failed["site1/gone.wav"]
    assert json.loads((out / "summary.json").read_text())["done"] == len(TREE)
    code, output = run_cli(str(model_dir), str(pipe), "--out", str(tmp_path / "one"))
    assert code == 1 and not opened.is_set()
    assert output.strip().endswith(f"recordings {pipe} is a FIFO (named pipe), not a regular file")


def test_links_to_folders_are_followed_and_what_they_reach_is_listed_once(model_dir, tmp_path):
    """An archive spread over disks by links: a linked folder is analysed; a second link to it,
    a link back up the tree and a second name for a recording add nothing."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    elsewhere = tmp_path / "disk2" / "site3"
    elsewhere.mkdir(parents=True)
    shutil.copy(tree / "site2" / "short.wav", elsewhere / "dawn.wav")
    (tree / "site3").symlink_to(elsewhere)
    (tree / "site3-again").symlink_to(elsewhere)
    (tree / "site1" / "day1" / "up").symlink_to(tree)
    (tree / "site2" / "same.wav").symlink_to(tree / "site2" / "long.wav")
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
    assert code == 0, output
    files = json.loads((out / "summary.json").read_text())["files"]
    assert sorted(files) == sorted([*TREE, "site3/dawn.wav"])
    assert files["site3/dawn.wav"]["top"] == [["1", 3.0]]


def test_a_folder_that_cannot_be_listed_is_named_and_the_others_are_analysed(model_dir, tmp_path,
                                                                             monkeypatch):
    """A folder the system refuses to list (its permissions, a failing disk) is one error line
    and one entry of the summary, the command exits 1, and the same command lists it again."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    refused = {tree, tree / "site2"}
    unlistable(refused, monkeypatch)
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
    assert code == 1 and output.splitlines()[-1] == f"Error: {tree}: cannot list the folder " \
        "(Permission denied)"
    refused.remove(tree)
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
    line = f"{tree / 'site2'}: cannot list the folder (Permission denied): the recordings in " \
        "it are not analysed"
    assert code == 1 and f"error: {line}" in output.splitlines()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unlisted"] == [line] and summary["failed"] == 0
    assert sorted(summary["files"]) == sorted(n for n in TREE if n.startswith("site1/"))
    assert (out / "summary.txt").read_text().startswith(
        "3 of 3 recordings done, 1 folder could not be listed (summary.json: unlisted)")
    refused.clear()
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
    assert code == 0 and "3 already done; analysing 2" in output
    assert json.loads((out / "summary.json").read_text())["unlisted"] == []


def test_a_recording_whose_header_was_never_finished_is_analysed_whole(model_dir, tmp_path):
    """A recorder that lost power leaves its WAV's sizes at 0: analysed as its finished copy,
    and noted as damaged (other programs read no sample of it)."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    unclosed = never_finished(tree / "site1" / "day1" / "morning.wav",
                              tree / "site1" / "unclosed.wav")
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
    assert code == 0, output
    rows = list(csv.DictReader((out / "segments.csv").open()))
    assert [{**r, "file": ""} for r in rows if r["file"] == "site1/unclosed.wav"] == \
        [{**r, "file": ""} for r in rows if r["file"] == "site1/day1/morning.wav"]
    summary = json.loads((out / "summary.json").read_text())
    seconds = len(TREE["site1/day1/morning.wav"])
    assert summary["files"]["site1/unclosed.wav"]["duration"] == seconds
    note = (f"{unclosed}: its header says 0.0 s of the {seconds:.1f} s of samples it holds (a "
            "header never finished, or a size past 4 GiB), so all were read")
    assert summary["damaged"] == [{"file": "site1/unclosed.wav", "note": note}]
    assert f"note: {note}" in output


def test_a_recording_whose_results_path_is_too_long_for_the_system_fails_alone(model_dir,
                                                                               tmp_path):
    """A recording deep in a tree whose results, under a longer --out, would pass the system's
    4096 bytes a path: it stopped the whole analysis ("File name too long", from the search
    for its earlier failure record). It fails in one line; the others are done, twice."""
    tree = write_tree(tmp_path / "tree")
    deep = tree.joinpath(*[f"d{k:02d}" + "x" * 237 for k in range(15)])
    deep.mkdir(parents=True)
    with (deep / "rec.wav").open("wb") as handle:  # soundfile cannot write it by its name
        sf.write(handle, tone(FREQS[2], 2.0), SR, format="WAV")
    out = tmp_path / ("o" * 250) / ("p" * 250)
    assert len(os.fsencode(deep / "rec.wav")) < 4096 < len(os.fsencode(out)) + len(
        os.fsencode((deep / "rec.wav").relative_to(tree)))
    for _ in range(2):
        code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
        assert code == 1 and f"{len(TREE)} of {len(TREE) + 1} recordings done, 1 failed" in \
            output, output[-500:]
        errors = [line for line in output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and errors[0].startswith(
            f"error: cannot create results folder {out}/d00") and errors[0].endswith(
            ": File name too long"), errors


def test_recordings_named_as_an_exfat_drive_cannot_hold_fail_alone(model_dir, tmp_path,
                                                                   exfat_disk):
    """Results written to an exFAT drive, which holds no ':' and no name that is not UTF-8:
    those recordings fail, each in one line saying why, and the others are done (the first
    such name stopped the whole analysis: its failure could not be recorded either)."""
    tree, out = write_tree(tmp_path / "tree"), exfat_disk / "results"
    folders = ["site:3", os.fsdecode(b"sit\xe9")]
    for name in ("site2/12:00.wav", os.fsdecode(b"site2/caf\xe9.wav"),
                 *(f"{folder}/dawn.wav" for folder in folders)):
        (tree / name).parent.mkdir(exist_ok=True)
        shutil.copy(tree / "site2" / "short.wav", tree / name)
    for run in range(2):  # the same command again: the same failures, nothing twice
        code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
        with (out / "failed.csv").open(newline="", errors="surrogateescape") as handle:
            failed = {f["file"]: f["error"] for f in csv.DictReader(handle)}
        assert code == 1 and sorted(failed) == sorted(["site2/12:00.wav", "site2/caf\udce9.wav",
                                                       "site:3/dawn.wav", "sit\udce9/dawn.wav"])
        refused = "the file system there refuses this name ("
        assert all(failed[name].startswith(f"cannot write {out / name}.csv: {refused}")
                   for name in ("site2/12:00.wav", "site2/caf\udce9.wav"))
        assert all(failed[f"{folder}/dawn.wav"].startswith(
            f"cannot create results folder {out / folder}: {refused}") for folder in folders)
        assert json.loads((out / "summary.json").read_text())["done"] == len(TREE)
    assert f"{len(TREE)} already done" in output


def test_names_an_exfat_drive_takes_for_one_fail_the_second_not_the_first(model_dir, tmp_path,
                                                                          exfat_disk):
    """exFAT finds a file by any case of its name, so site2/SHORT.wav's results would be
    site2/short.wav's: the second by path fails in one line saying so, the first is analysed
    once. They overwrote each other's results and records, each run analysing one again."""
    tree, out = write_tree(tmp_path / "tree"), exfat_disk / "results"
    sf.write(tree / "site2" / "SHORT.wav", tone(FREQS[3], 2.0), SR)
    for run in range(2):
        code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
        failed = {f["file"]: f["error"] for f in csv.DictReader((out / "failed.csv").open())}
        assert code == 1 and failed == {"site2/short.wav": (
            f"{tree / 'site2' / 'short.wav'}: its result files would be those of site2/SHORT.wav: "
            f"the file system of {out} does not tell upper from lower case in names; rename one "
            "of them, or give --out a folder on a file system that does")}
        summary = json.loads((out / "summary.json").read_text())
        assert summary["done"] == len(TREE) and summary["files"]["site2/SHORT.wav"]["top"] == \
            [["3", 2.0]] and not summary["this_run"]["not_done"]
    assert f"; {len(TREE)} already done; analysing 0 " in output
    sharded = exfat_disk / "sharded"  # the two fall to two shards (dealt by length)
    for shard in ("1/2", "2/2"):
        code, output = run_cli(str(model_dir), str(tree), "--out", str(sharded), "--shard", shard)
    failed = [f["file"] for f in csv.DictReader((sharded / "failed.csv").open())]
    summary = json.loads((sharded / "summary.json").read_text())
    assert failed == ["site2/short.wav"] and summary["done"] == len(TREE)
    assert summary["files"]["site2/SHORT.wav"]["top"] == [["3", 2.0]]


def test_a_failure_recorded_by_an_earlier_release_goes_once_the_recording_is_done(model_dir,
                                                                                 tmp_path):
    """Earlier releases named a failure record as the recording (failed/site2/short.wav.json);
    one that is done since leaves failed.csv, and a new failure replaces it."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    assert run_cli(str(model_dir), str(tree), "--out", str(out))[0] == 0
    state = out / ".esc50-analyze"
    for name in ("short.wav", "long.wav"):
        (state / "done" / "site2" / f"{name}.json").unlink()
        (state / "failed" / "site2").mkdir(exist_ok=True)
        (state / "failed" / "site2" / f"{name}.json").write_text(json.dumps(
            {"file": f"site2/{name}", "error": "an earlier failure"}))
    (tree / "site2" / "long.wav").write_bytes(b"RIFF junk")
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
    failed = list(csv.DictReader((out / "failed.csv").open()))
    assert code == 1 and [f["file"] for f in failed] == ["site2/long.wav"]
    assert failed[0]["error"] != "an earlier failure"
    assert not list((state / "failed" / "site2").iterdir())


def test_a_file_name_that_is_not_utf8_is_analysed_and_written_as_its_bytes(model_dir, tmp_path):
    """An archive from a Latin-1 system: 'café.wav' in Latin-1 bytes is no UTF-8 name."""
    tree, out, review = write_tree(tmp_path / "tree"), tmp_path / "out", tmp_path / "review"
    name = os.fsdecode(b"site2/caf\xe9.wav")
    (tree / "site2" / "short.wav").rename(tree / name)
    summary = esc50.analyze(model_dir, tree, out, formats=["csv", "json", "audacity", "raven"],
                            segments=review, log=lambda _: None, progress=False)
    assert summary["done"] == len(TREE) and summary["failed"] == 0 and name in summary["files"]
    assert all((out / f"{name}{suffix}").is_file()
               for suffix in (".csv", ".json", ".labels.txt", ".selections.txt"))
    row = b"\nsite2/caf\xe9.wav,"  # its rows, in the combined table as in its own
    count = (out / "segments.csv").read_bytes().count(row)
    assert count >= 1 and (out / f"{name}.csv").read_bytes().count(row) == count
    assert b"site2/caf\xe9.wav" in (review / "index.html").read_bytes()


def test_names_holding_line_breaks_stay_on_their_line_in_what_is_printed(model_dir, tmp_path):
    """Names with a line break, a tab or a terminal escape: the tables keep them as they are
    (quoted in CSV); the terminal and summary.txt show them escaped, each on its one line."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    odd = "site2/two\nlines\t\x1b[31mred.wav"
    (tree / "site2" / "short.wav").rename(tree / odd)
    (tree / "site2" / "bad\nname.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
    assert code == 1 and "\x1b" not in output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: {tree}/site2/bad\\nname.wav: cannot decode audio (")
    shown = "site2/two\\nlines\\t\\x1b[31mred.wav"
    lines = (out / "summary.txt").read_text().splitlines()
    assert sum(line.startswith(shown + " ") for line in lines) == 1
    table = lines[lines.index(next(line for line in lines if line.startswith("recording "))):]
    assert len(table) == 1 + len(TREE)  # the header and a line per recording done
    assert odd in {row["file"] for row in csv.DictReader((out / "segments.csv").open())}
    failed = list(csv.DictReader((out / "failed.csv").open()))
    assert [row["file"] for row in failed] == ["site2/bad\nname.wav"]


def test_recordings_named_too_long_for_their_result_files_are_analysed(model_dir, tmp_path):
    """A name of up to 255 bytes is a recording; its result files, records and temporary files
    would add a suffix past what a file system holds: they are cut and end with a digest."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    names = ["a" * 240 + "x1.wav", "a" * 240 + "x2.wav", "é" * 125 + ".wav"]  # differ at the end
    for name in names:
        shutil.copy(tree / "site2" / "short.wav", tree / "site2" / name)
    analysed = dict(formats=["csv", "json", "audacity", "raven"], embeddings=True,
                    progress=False)
    summary = esc50.analyze(model_dir, tree, out, log=lambda _: None, **analysed)
    assert summary["done"] == len(TREE) + len(names) and summary["failed"] == 0
    rows = list(csv.DictReader((out / "segments.csv").open(encoding="utf-8")))
    for name in names:  # named in full in the tables, scored as the clip they copy
        assert [r["class"] for r in rows if r["file"] == f"site2/{name}"] == ["1"]
    results = list((out / "site2").iterdir())
    assert len(results) == 6 * (2 + len(names))  # six files for each recording of site2
    assert max(len(os.fsencode(p.name)) for p in results) <= 255
    said: list[str] = []
    esc50.analyze(model_dir, tree, out, log=said.append, **analysed)
    assert f"; {len(TREE) + len(names)} already done; analysing 0 " in said[0]


def test_a_full_disk_stops_the_analysis_in_one_line_and_blames_no_recording(model_dir, tmp_path,
                                                                             monkeypatch):
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    with monkeypatch.context() as patched:  # longest first: short.wav comes after noon.flac
        full_disk_at(".noon.flac", patched)
        code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
    assert code == 1 and output.splitlines()[-1] == (
        f"Error: cannot write {out}/site1/day1/noon.flac.csv: No space left on device; nothing "
        "was written. Every recording done is kept: make room, then the same command analyses "
        "the others")
    state = out / ".esc50-analyze"
    done = {p.relative_to(state / "done").as_posix()[:-len(".json")]
            for p in (state / "done").rglob("*.json")}
    assert done == set(TREE) - {"site1/day1/noon.flac", "site2/short.wav"}  # none started after
    assert not list((state / "failed").rglob("*.json"))  # the disk's fault, not a recording's
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
    assert code == 0 and f"; {len(done)} already done; analysing 2 " in output
    assert json.loads((out / "summary.json").read_text())["done"] == len(TREE)


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_worker_processes_stop_together_on_a_full_disk(model_dir, tmp_path, small_disk):
    tree, out = write_tree(tmp_path / "tree"), small_disk / "out"
    for k in range(12):  # more recordings than 64 KiB holds the results of
        shutil.copy(tree / "site2" / "short.wav", tree / "site2" / f"copy{k}.wav")
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out), "--jobs", "2")
    last = output.splitlines()[-1]
    assert code == 1 and last.startswith(f"Error: cannot write {out}/") and last.endswith(
        ": No space left on device; nothing was written. Every recording done is kept: make "
        "room, then the same command analyses the others")
    state = out / ".esc50-analyze"
    done = len(list((state / "done").rglob("*.json")))
    assert 0 < done < len(TREE) + 12 and not list((state / "failed").rglob("*.json"))
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out), "--jobs", "2")
    assert code == 0 and f"; {done} already done; " in output
    assert json.loads((out / "summary.json").read_text())["done"] == len(TREE) + 12


def decodable_seconds(path: Path, step: int = 100) -> float:
    """How much of ``path`` soundfile decodes, ``step`` frames at a time, before it fails."""
    frames = 0
    with sf.SoundFile(path) as audio:
        try:
            while len(block := audio.read(step)):
                frames += len(block)
        except sf.LibsndfileError:
            pass
    return frames / SR


def test_a_recording_that_stops_decoding_part_way_is_analysed_up_to_there(model_dir, tmp_path):
    """A FLAC cut short (a copy interrupted, a recorder out of power) is analysed as far as it
    decodes, noted as such, and done; where it fails to decode from the start it fails."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    cut = tree / "site2" / "cut.flac"
    sf.write(cut, np.concatenate([tone(FREQS[k % 4], 1.0, seed=k) for k in range(24)]), SR)
    cut.write_bytes(cut.read_bytes()[:cut.stat().st_size // 2])
    decodable = decodable_seconds(cut)
    assert 4 < decodable < 20
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
    assert code == 0 and f"note: {cut}: decodes up to " in output and "b'" not in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done"] == len(TREE) + 1 and summary["failed"] == 0
    assert [d["file"] for d in summary["damaged"]] == ["site2/cut.flac"]
    assert "the rest is damaged" in summary["damaged"][0]["note"]
    duration = summary["files"]["site2/cut.flac"]["duration"]
    assert decodable - 0.1 <= duration <= decodable  # to the tenth of a second before the damage
    assert summary["this_run"]["audio_seconds"] == pytest.approx(  # the audio analysed
        sum(f["duration"] for f in summary["files"].values()))
    rows = [r for r in csv.DictReader((out / "segments.csv").open())
            if r["file"] == "site2/cut.flac"]
    assert rows and float(rows[-1]["end"]) == pytest.approx(duration, abs=1e-3)
    assert "1 damaged, read as far as they decode" in (out / "summary.txt").read_text()
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
    assert code == 0 and f"{len(TREE) + 1} already done" in output  # not tried again


def mp3_with_a_damaged_frame(path: Path) -> int:
    """A 6-second tone MP3 whose first frame header past the middle is zeros, as a copy error
    leaves it (libmpg123 prints lines of its own on it, resyncs and stops short); where that
    header is."""
    sf.write(path, np.concatenate([tone(FREQS[k % 4], 1.0, seed=k) for k in range(6)]), SR)
    data = bytearray(path.read_bytes())
    at = next(i for i in range(len(data) // 2, len(data) - 1)
              if data[i] == 0xFF and data[i + 1] & 0xE0 == 0xE0)  # a frame's sync word
    data[at:at + 4] = bytes(4)
    path.write_bytes(bytes(data))
    return at


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without MPEG")
def test_the_mp3_decoders_own_lines_become_one_note_naming_the_file(model_dir, tmp_path,
                                                                     capfd):
    """libmpg123 writes its notes on damaged frames straight to standard error, several a file
    and naming none. They reach the terminal no more: analyze says in one line naming the file
    what the decoder said and skipped, and decoding in threads (as training's does) keeps them
    too, each thread's file read as alone."""
    from esc50.core.data.audio import load_clip

    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    damaged, stopped = tree / "site2" / "copied.mp3", tree / "site2" / "stopped.mp3"
    at = mp3_with_a_damaged_frame(damaged)
    rate = 22050  # 12 s, 3000 bytes garbled from a third of the way in: libsndfile stops there
    sf.write(stopped, 0.3 * np.sin(2 * np.pi * 440 * np.arange(12 * rate) / rate), rate)
    data = bytearray(stopped.read_bytes())
    third = len(data) // 3
    data[third:third + 3000] = bytes((byte * 7 + 13) & 255 for byte in data[third:third + 3000])
    stopped.write_bytes(bytes(data))
    with sf.SoundFile(damaged) as audio:
        alone = audio.read(dtype="float32")
        header = audio.frames
    printed = capfd.readouterr().err
    assert "Illegal Audio-MPEG-Header" in printed and 0 < len(alone) < header  # libsndfile's way
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
    assert code == 0, output
    note, stop = json.loads((out / "summary.json").read_text())["damaged"]
    assert note["file"] == "site2/copied.mp3" and stop["file"] == "site2/stopped.mp3"
    assert stop["note"].startswith(f"{stopped}: decodes up to ") and re.search(
        r"; the rest is damaged \(.+; its decoder said \"[^\"]+\", and \d+ more such lines\), so "
        "only that much was read$", stop["note"])
    assert note["note"] == (
        f"{damaged}: parts of it are damaged (its decoder said \"Illegal Audio-MPEG-Header "
        f"0x00000000 at offset {at}.\", and 1 more "
        f"such line); the decoder skipped them: {len(alone) / SR:.2f} s of audio read, where "
        f"its header gives {header / SR:.2f} s")
    assert f"note: {note['note']}" in output
    mp3s = [tmp_path / f"{k}.mp3" for k in range(8)]
    for path in mp3s:
        mp3_with_a_damaged_frame(path)
    with ThreadPoolExecutor(max_workers=4) as pool:
        clips = list(pool.map(lambda path: load_clip(path, SR)[0], mp3s))
    assert all(torch.equal(clip, clips[0]) for clip in clips)
    assert clips[0].shape[0] == len(alone)
    assert capfd.readouterr().err == ""  # nothing of the decoder's printed


def test_predict_reads_a_damaged_recording_as_far_as_it_decodes_and_says_so(model_dir,
                                                                              tmp_path, capfd):
    """predict and the Python API read a recording cut short, one whose MP3 decoder skipped a
    damaged frame and one whose WAV header was never finished as analyze does: as far as they
    decode, each with a one-line note naming it, also in its JSON result (a cut one was an
    error, the others silent), and the decoder's own lines never reach the terminal."""
    tree = write_tree(tmp_path / "tree")
    cut = tree / "cut.flac"
    sf.write(cut, np.concatenate([tone(FREQS[k % 4], 1.0, seed=k) for k in range(24)]), SR)
    cut.write_bytes(cut.read_bytes()[:cut.stat().st_size // 2])
    unclosed = never_finished(tree / "site1" / "day1" / "morning.wav", tree / "unclosed.wav")
    damaged = [unclosed, cut]
    if "MP3" in sf.available_formats():
        damaged.append(tree / "copied.mp3")
        mp3_with_a_damaged_frame(damaged[-1])
    result = CliRunner().invoke(cli, ["predict", str(model_dir), *map(str, damaged), "--json"])
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.stdout)
    assert [p["file"] for p in predictions] == list(map(str, damaged))
    assert all(p["error"] is None and len(p["top"]) == 3 for p in predictions)
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert [next(str(p) for p in damaged if line.startswith(f"note: {p}: ")) for line in notes] \
        == list(map(str, damaged))
    assert "decodes up to" in notes[1] and "its header says 0.0 s" in notes[0]
    assert [p["notes"] for p in predictions] == [[line.removeprefix("note: ")] for line in notes]
    said: list[str] = []
    model = esc50.load(model_dir, warn=said.append)
    timeline = model.timeline(cut)
    assert said == [notes[1]]
    [result] = model.predict_files([cut])
    assert result.notes == [notes[1].removeprefix("note: ")] and said == [notes[1]] * 2
    assert timeline.windows[-1].end == pytest.approx(decodable_seconds(cut), abs=0.1)
    assert "Illegal Audio-MPEG-Header" not in capfd.readouterr().err


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without MPEG")
def test_a_decoder_whose_lines_cannot_be_kept_still_decodes(tmp_path, capfd, monkeypatch):
    """Where no file can be had to keep the decoder's lines in (memory refused, the temporary
    folder gone), they are printed as libsndfile prints them, and the audio is decoded alike."""
    import errno
    import tempfile

    from esc50.core.data.audio import load_clip

    mp3_with_a_damaged_frame(tmp_path / "copied.mp3")
    kept = load_clip(tmp_path / "copied.mp3", SR)[0]
    assert capfd.readouterr().err == ""

    def refused(*args):
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    with monkeypatch.context() as patch:
        patch.setattr(os, "memfd_create", refused, raising=False)
        patch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
        printed = load_clip(tmp_path / "copied.mp3", SR)[0]
    assert torch.equal(printed, kept) and "Illegal Audio-MPEG-Header" in capfd.readouterr().err


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_a_killed_analysis_resumes_with_every_recording_exactly_once(model_dir, tmp_path):
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    (tree / "more").mkdir()
    for k in range(8):  # more recordings, so that the kill lands in the middle
        sf.write(tree / "more" / f"{k}.wav", tone(FREQS[k % 4], 20.0, seed=k), SR)
    command = [sys.executable, "-m", "esc50", "analyze", str(model_dir), str(tree), "--out",
               str(out), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = out / ".esc50-analyze" / "done"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and \
            len(list(done.rglob("*.json"))) < 3:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    first = {p: p.read_bytes() for p in done.rglob("*.json")}
    assert 3 <= len(first) < len(TREE) + 8
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"{len(first)} already done" in result.stderr
    assert {p: p.read_bytes() for p in first} == first  # none labelled twice
    assert len(list(done.rglob("*.json"))) == len(TREE) + 8
    assert not list(out.rglob("*.tmp"))  # nothing half-written
    files = [r["file"] for r in csv.DictReader((out / "segments.csv").open())]
    assert sorted(set(files)) == sorted([*TREE, *(f"more/{k}.wav" for k in range(8))])
    for path in out.rglob("*.csv"):
        list(csv.reader(path.open()))  # every result file whole


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_ctrl_c_stops_worker_processes_in_one_line(model_dir, tmp_path):
    """Ctrl-C reaches the whole process group, workers included: the command says "Aborted!"
    once, no worker prints a traceback, and the same command finishes the tree."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    (tree / "more").mkdir()
    for k in range(8):  # more recordings, so that Ctrl-C lands in the middle
        sf.write(tree / "more" / f"{k}.wav", tone(FREQS[k % 4], 20.0, seed=k), SR)
    command = [sys.executable, "-m", "esc50", "analyze", str(model_dir), str(tree), "--out",
               str(out), "--no-progress", "--jobs", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    done = out / ".esc50-analyze" / "done"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and \
            not list(done.rglob("*.json")):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate()
    assert process.returncode == 1 and stderr.rstrip().endswith("Aborted!")
    assert "Traceback" not in stdout + stderr
    assert 1 <= len(list(done.rglob("*.json"))) < len(TREE) + 8  # it did stop in the middle
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(list(done.rglob("*.json"))) == len(TREE) + 8


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_ctrl_c_while_workers_start_is_one_line_too(model_dir, tmp_path, monkeypatch):
    """A spawned worker imports for a second or more before its body runs, and Ctrl-C then
    printed a KeyboardInterrupt traceback from the middle of an import. Both workers are held
    in their start-up while Ctrl-C reaches the process group: "Aborted!" once, no traceback."""
    gate = held_at_start(tmp_path / "site", monkeypatch)
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    command = [sys.executable, "-m", "esc50", "analyze", str(model_dir), str(tree), "--out",
               str(out), "--no-progress", "--jobs", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and \
            len(list(gate.glob("started-*"))) < 2:
        time.sleep(0.05)
    assert len(list(gate.glob("started-*"))) == 2, process.communicate()
    os.killpg(process.pid, signal.SIGINT)
    (gate / "go").touch()
    stdout, stderr = process.communicate()
    assert process.returncode == 1 and stderr.rstrip().endswith("Aborted!"), stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr


def claim_file(out: Path, recording: str) -> Path:
    """The lock a process analysing ``recording`` holds: named by the sha256 of its path."""
    digest = hashlib.sha256(recording.encode()).hexdigest()
    return out / ".esc50-analyze" / "claims" / f"{digest}.lock"


def lock_holder(path: Path) -> int | None:
    """The process holding a flock on ``path``, by /proc/locks (None while none does)."""
    try:
        inode = os.stat(path).st_ino
    except FileNotFoundError:
        return None
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "FLOCK" and int(fields[5].split(":")[-1]) == inode:
            return int(fields[4])
    return None


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="reads the holder of a lock in "
                    "Linux's /proc/locks")
def test_a_worker_killed_while_analysing_leaves_its_recording_not_done_and_exits_1(
        model_dir, tmp_path):
    """A worker the system kills (as it does when memory runs out) takes its recording's
    analysis with it: the command names the recording, says that it is not done and exits 1
    (it exited 0), and the same command analyses it."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    sf.write(tree / "site2" / "hour.wav", tone(FREQS[1], 600.0), SR)  # the longest: first
    command = [sys.executable, "-m", "esc50", "analyze", str(model_dir), str(tree), "--out",
               str(out), "--no-progress", "--jobs", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    claim, holder = claim_file(out, "site2/hour.wav"), None
    while process.poll() is None and holder is None:
        holder = lock_holder(claim)
        time.sleep(0.01)
    assert holder is not None and holder != process.pid
    os.kill(holder, signal.SIGKILL)
    stdout, stderr = process.communicate()
    assert process.returncode == 1
    assert f"was killed by SIGKILL (as the system ends a process when memory runs out: fewer " \
        f"--jobs need less) while analysing {tree / 'site2' / 'hour.wav'}" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["this_run"]["not_done"] == ["site2/hour.wav"]
    assert summary["done"] == len(TREE) and not summary["failures"]
    assert "1 of its recordings not done (summary.json: this_run, not_done)" in stdout
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done"] == len(TREE) + 1 and summary["this_run"]["not_done"] == []


def test_a_worker_killed_halfway_through_a_message_is_named_and_the_others_go_on(
        model_dir, tmp_path, monkeypatch):
    """A worker killed while it writes to the command (its pipe holds half a message) is named
    with the recording it held; the other worker analyses the rest, and the command neither
    hangs nor reads the half message as one."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    (tmp_path / "site").mkdir()
    killed = killed_mid_message("audio", tmp_path / "site", monkeypatch)  # its first progress
    lines: list[str] = []
    summary = esc50.analyze(model_dir, tree, out, jobs=2, log=lines.append, progress=False)
    assert killed.exists()
    lost = [line for line in lines if line.startswith("error: worker ")]
    assert len(lost) == 1 and " was killed by SIGKILL " in lost[0], lines
    assert summary["this_run"]["not_done"] == [
        name for name in TREE if f"while analysing {tree / name} (it stays not done" in lost[0]]
    assert summary["done"] == len(TREE) - 1 and not summary["failures"]
    monkeypatch.delenv("ESC50_DIE_WRITING")
    summary = esc50.analyze(model_dir, tree, out, log=lines.append, progress=False)
    assert summary["done"] == len(TREE) and summary["this_run"]["not_done"] == []


def test_a_recording_changed_since_its_analysis_is_analysed_again(model_dir, tmp_path):
    """A file still being recorded when the archive was first analysed grows: its results are
    made again from the whole file, the others are not touched."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    growing = tree / "site2" / "short.wav"
    esc50.analyze(model_dir, tree, out, log=lambda _: None, progress=False)
    untouched = {p: p.stat().st_mtime_ns for p in out.rglob("*.csv") if p.name != "short.wav.csv"
                 and p.parent != out}
    sf.write(growing, np.concatenate([tone(FREQS[c], 1.0, seed=k)
                                      for k, c in enumerate([1, 1, 1, 3, 3, 3, 3])]), SR)
    lines: list[str] = []
    summary = esc50.analyze(model_dir, tree, out, log=lines.append, progress=False)
    assert f"{len(TREE) - 1} already done, 1 changed since their analysis; analysing 1 " in lines[0]
    assert summary["done"] == len(TREE) and summary["files"]["site2/short.wav"]["duration"] == 7.0
    rows = list(csv.DictReader((out / "site2" / "short.wav.csv").open()))
    assert (rows[0]["class"], rows[-1]["class"], float(rows[-1]["end"])) == ("1", "3", 7.0)
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched
    again: list[str] = []
    esc50.analyze(model_dir, tree, out, log=again.append, progress=False)
    assert f"{len(TREE)} already done; analysing 0 " in again[0]


def test_a_recording_another_process_is_analysing_is_left_to_it(model_dir, tmp_path):
    """Two commands on one tree at once (a nightly job still running when the next starts):
    the recording the first one holds (its claim locked, as a running analysis locks it) is
    not analysed by the second; once the first lets go, the same command finishes the tree."""
    tree, out, review = write_tree(tmp_path / "tree"), tmp_path / "out", tmp_path / "review"
    busy = "site2/long.wav"
    claim = claim_file(out, busy)
    claim.parent.mkdir(parents=True)
    with claim.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        lines: list[str] = []
        summary = esc50.analyze(model_dir, tree, out, segments=review, log=lines.append,
                                progress=False)
    assert f"note: {busy}: another process is analysing it; left to it" in lines
    assert summary["done"] == len(TREE) - 1 and busy not in summary["files"]
    assert any("the review page waits for every recording: 1 not analysed yet" in line
               for line in lines) and not review.exists()
    lines = []
    summary = esc50.analyze(model_dir, tree, out, segments=review, log=lines.append,
                            progress=False)
    assert f"{len(TREE) - 1} already done; analysing 1 " in lines[0]
    assert summary["done"] == len(TREE) and (review / "index.html").is_file()


def test_recordings_left_to_another_process_are_said_in_one_line(model_dir, tmp_path):
    """Two commands on one tree at once leave each other most of it, a note each: said once,
    counted, at the end, not a line a recording."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    busy = sorted(TREE)[:3]
    with ExitStack() as stack:
        for name in busy:
            claim = claim_file(out, name)
            claim.parent.mkdir(parents=True, exist_ok=True)
            fcntl.flock(stack.enter_context(claim.open("a")), fcntl.LOCK_EX)
        lines: list[str] = []
        summary = esc50.analyze(model_dir, tree, out, log=lines.append, progress=False)
    notes = [line for line in lines if "another process" in line]
    assert len(notes) == 1 and notes[0].startswith(
        "note: 3 recordings left to another process analysing this tree into these results "
        "(the same command started twice?): ")
    assert notes[0].endswith("another process is analysing it; left to it; and 1 more")
    assert sum(name in notes[0] for name in busy) == 2
    assert summary["done"] == len(TREE) - 3 and not set(busy) & set(summary["files"])


def test_what_a_killed_write_left_of_a_recording_is_removed_and_nothing_else(model_dir,
                                                                            tmp_path):
    """The temporary files a run killed while writing left (of a result file or a record) are
    deleted when the recording is analysed again; a file beside them that only starts with
    the same name (another recording's) is not the analysis's to delete."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    (out / "site2").mkdir(parents=True)
    (out / ".esc50-analyze" / "done" / "site2").mkdir(parents=True)
    left = [write_leftover(out / "site2" / "short.wav.csv"),
            write_leftover(out / ".esc50-analyze" / "done" / "site2" / "short.wav.json")]
    other = write_leftover(out / "site2" / "short.wav.flac.csv")
    assert run_cli(str(model_dir), str(tree), "--out", str(out))[0] == 0
    assert not any(path.exists() for path in left) and other.read_bytes() == b"half a file"
    assert (out / "site2" / "short.wav.csv").is_file()


KILLED_WHILE_WRITING = """
import os, signal, sys
from pathlib import Path
from esc50.commands.analyze.results import ResultsTree
from esc50.core.files.write import temporary_beside

tree = ResultsTree(Path(sys.argv[1]), {"each_window": False})
with tree.claimed(Path("late.wav")):
    fd, name = temporary_beside(Path(sys.argv[2]))
    os.write(fd, b"half a file")
    print(name, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_folder_of_many_recordings_is_looked_in_once_not_once_a_recording(tmp_path,
                                                                          monkeypatch):
    """Clearing what killed writes left of a recording listed its folders again for each one,
    six times for its results' folder: the time a recording took grew with the folder (74 ms
    a recording at 20 000, 5.8 at 1 000: benchmarks/results_tree.py). Each folder is listed
    once a process; what a process killed while writing since then left is still found, as its
    claim says that it ended midway."""
    tree = ResultsTree(tmp_path / "out", {"each_window": False})
    listed: list[Path] = []
    scan = os.scandir

    def counted(path: Any = ".") -> Any:
        listed.append(Path(os.fspath(path)))
        return scan(path)
    monkeypatch.setattr(os, "scandir", counted)
    for k in range(30):
        relative = Path(f"rec{k}.wav")
        base = tree.result_base(relative)
        with tree.claimed(relative) as mine:
            assert mine
            tree.clear_leftovers(relative, [output_path(base, f) for f in SUFFIXES])
            write_text(output_path(base, "csv"), "start,end\n")
            tree.mark_done(relative, {"file": relative.as_posix()})
    assert listed and set(collections.Counter(listed).values()) == {1}, listed
    late = output_path(tree.result_base(Path("late.wav")), "csv")
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(tree.root),
                             str(late)], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    leftover = Path(killed.stdout.strip())
    assert leftover.parent == late.parent and leftover.read_bytes() == b"half a file"
    with tree.claimed(Path("late.wav")) as mine:
        assert mine
        tree.clear_leftovers(Path("late.wav"), [late])
    assert not leftover.exists()


def same_segments(found: dict[str, list], expected: dict[str, list]) -> bool:
    """The same files with the same segments: times and classes exactly, probabilities to float
    rounding (a worker process runs on fewer threads, and a matrix product of MKL kept to AVX2
    can round another way on another number of threads)."""
    def rounded(segments: list[dict]) -> list[dict]:
        return [{k: round(v, 5) if k.endswith("probability") else v for k, v in s.items()}
                for s in segments]
    return found.keys() == expected.keys() and all(
        rounded(found[f]) == rounded(expected[f]) for f in expected)


def test_shards_scored_with_and_without_bf16_say_which_recording_was_which(tmp_path,
                                                                          monkeypatch):
    """Two shards, one on a machine with bf16 instructions and one without: the shipped model
    (its run scored in bf16) labels the first share in bf16 and the second in float32, and the
    summary counts both and names each recording's."""
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    found = []
    for shard, has_bf16 in (("1/2", True), ("2/2", False)):
        monkeypatch.setattr(device, "cpu_has_bf16", lambda value=has_bf16: value)
        found.append(esc50.analyze("esc50-rescnn", tree, out, shard=shard, log=lambda _: None,
                                   progress=False))
        text = (out / "summary.txt").read_text()
        assert ("recordings scored in" in text) == (shard == "2/2")
    first, both = found
    assert set(first["numerics"]) == {"bf16"}
    numerics = {name: entry["numerics"] for name, entry in both["files"].items()}
    assert sorted(numerics) == sorted(TREE)
    assert {name for name, kind in numerics.items() if kind == "bf16"} == set(first["files"])
    counts = {"bf16": len(first["files"]), "float32": len(TREE) - len(first["files"])}
    assert both["numerics"] == counts and 0 < counts["bf16"] < len(TREE)
    assert f"recordings scored in bf16 ({counts['bf16']}), float32 ({counts['float32']})" in text


def test_worker_processes_that_do_not_fit_in_memory_are_not_started(model_dir, tmp_path,
                                                                    monkeypatch):
    """A worker will hold what this process holds having loaded the model and scored the most
    windows it scores at a time: with room for less than one more such process, the tree is
    analysed in this process, as the note says, and every recording is done."""
    from esc50.core.training.memory import resident_bytes

    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    monkeypatch.setenv("ESC50_MEMORY_LIMIT", str(resident_bytes() + 2**29))  # 512 MiB more
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out), "--jobs", "3")
    assert code == 0, output
    note = next(line for line in output.splitlines() if line.startswith("memory: "))
    assert note.startswith("memory: 3 worker processes need about ") and \
        "ESC50_MEMORY_LIMIT" in note and note.endswith("running in this process alone")
    assert len(list((out / ".esc50-analyze" / "done").rglob("*.json"))) == len(TREE)


MIB = 2**20


@pytest.mark.parametrize("jobs, room, planned, note", [
    (4, 520 * MIB, 4, None),  # 4 x 110 MiB within 85 % of 520 MiB
    (4, 330 * MIB, 2, "running 2"),
    (4, 200 * MIB, 1, "running in this process alone"),  # room for one worker only
    (1, 100 * MIB, 1, None)])
def test_the_memory_plan_starts_the_worker_processes_that_fit(monkeypatch, jobs, room, planned,
                                                              note):
    """Each worker will hold 110 MiB; the plan keeps to 85 % of the room left
    (``ESC50_MEMORY_LIMIT`` less what this process holds)."""
    from esc50.core.training import memory

    monkeypatch.setattr(memory, "resident_bytes", lambda: 100 * MIB)
    monkeypatch.setenv("ESC50_MEMORY_LIMIT", str(100 * MIB + room))
    processes, said = memory.plan_workers(jobs, 110 * MIB, "scoring")
    assert processes == planned
    if note is None:
        assert said is None
    else:
        assert said == (f"memory: 4 worker processes need about 0.4 GiB (0.11 GiB each for "
                        f"scoring), {room / 2**30:.1f} GiB is available (ESC50_MEMORY_LIMIT="
                        f"{100 * MIB + room}, of which this process already holds 0.10 GiB): "
                        f"{note}")


def test_a_worker_ended_by_a_signal_is_named_by_it():
    from esc50.commands.workers import ended

    assert ended(-signal.SIGKILL) == ("was killed by SIGKILL (as the system ends a process when "
                                      "memory runs out: fewer --jobs need less)")
    assert ended(-signal.SIGTERM) == "was killed by SIGTERM"
    assert ended(1) == "ended with exit code 1"


def test_worker_processes_and_two_shards_cover_the_tree_exactly_once(model_dir, tmp_path):
    tree = write_tree(tmp_path / "tree")
    alone, workers, shards = tmp_path / "alone", tmp_path / "workers", tmp_path / "shards"
    assert run_cli(str(model_dir), str(tree), "--out", str(alone))[0] == 0
    code, output = run_cli(str(model_dir), str(tree), "--out", str(workers), "--jobs", "2")
    assert code == 0, output
    for index in (1, 2):
        code, output = run_cli(str(model_dir), str(tree), "--out", str(shards), "--shard",
                               f"{index}/2", "--segments", str(shards / "review"))
        assert code == 0, output
    assert "the review page waits for every recording" in first_shard_output(
        model_dir, tree, tmp_path)

    def records(root: Path) -> dict[str, list]:
        found = {}
        for path in (root / ".esc50-analyze" / "done").rglob("*.json"):
            record = json.loads(path.read_text())
            found[record["file"]] = record["segments"]
        return found

    assert same_segments(records(workers), records(alone))
    assert same_segments(records(shards), records(alone))
    assert len(records(shards)) == len(TREE)
    assert (shards / "review" / "index.html").is_file()  # the second shard completed the tree


def first_shard_output(model_dir: Path, tree: Path, tmp_path: Path) -> str:
    return run_cli(str(model_dir), str(tree), "--out", str(tmp_path / "half"), "--shard",
                   "1/2", "--segments", str(tmp_path / "half" / "review"))[1]


def test_shards_split_by_length_and_torchrun_names_the_shard():
    recordings = [Recording(Path(f"{k}.wav"), Path(f"{k}.wav"), float(s))
                  for k, s in enumerate([100, 10, 10, 10, 10, 10, 10, 1])]
    shares = [shard_share(recordings, i, 3) for i in (1, 2, 3)]
    assert sorted(r.relative.name for s in shares for r in s) == \
        sorted(r.relative.name for r in recordings)
    assert [r.seconds for r in shares[0]] == [100]  # the long one alone
    assert parse_shard(None, {"RANK": "1", "WORLD_SIZE": "4"}) == (2, 4)
    assert parse_shard("3/4", {}) == (3, 4) and parse_shard(None, {}) == (1, 1)
    for bad in ("0/2", "3/2", "two/2", "1-2"):
        with pytest.raises(Esc50Error, match="--shard|shard"):
            parse_shard(bad, {})
    with pytest.raises(Esc50Error, match="disagree"):
        parse_shard("1/2", {"RANK": "0", "WORLD_SIZE": "4"})
    with pytest.raises(Esc50Error, match=r"^RANK=2 with WORLD_SIZE=2: torchrun's RANK runs "):
        parse_shard(None, {"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(Esc50Error, match=r"^WORLD_SIZE=2 is set but RANK is not: run under "):
        parse_shard(None, {"WORLD_SIZE": "2"})  # never half the tree taken for all of it
    assert parse_shard("2/3", {"WORLD_SIZE": "2"}) == (2, 3)


def test_embeddings_come_with_the_window_table(model_dir, tmp_path):
    tree = write_tree(tmp_path / "tree")
    summary = esc50.analyze(model_dir, tree, tmp_path / "out", embeddings=True,
                            log=lambda _: None, progress=False)
    assert summary["done"] == len(TREE)
    base = tmp_path / "out" / "site2" / "long.wav"
    matrix = np.load(f"{base}.embeddings.npy")
    windows = list(csv.DictReader(Path(f"{base}.windows.csv").open()))
    assert matrix.shape[0] == len(windows) == 23 and matrix.shape[1] > 4
    assert np.isfinite(matrix).all()
    # windows of one tone sit closer to each other than to another tone's
    other = np.load(tmp_path / "out" / "site1" / "day1" / "noon.flac.embeddings.npy")
    same = np.linalg.norm(matrix[0] - matrix[5])
    assert same < np.linalg.norm(matrix[0] - other[0])


BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PLAYERS = """async () => {
  const audios = [...document.querySelectorAll('audio')];
  const durations = await Promise.all(audios.map(a => new Promise(done => {
    a.addEventListener('loadedmetadata', () => done(a.duration));
    a.addEventListener('error', () => done(-1));
    a.preload = 'metadata'; a.load();
  })));
  return {sources: audios.map(a => a.getAttribute('src')), durations,
          images: [...document.images].map(i => i.complete ? i.naturalWidth : 0),
          sections: [...document.querySelectorAll('section h2')].map(h => h.textContent)};
}"""


def test_the_review_page_plays_every_detection_in_headless_chromium(model_dir, tmp_path):
    tree, review = write_tree(tmp_path / "tree"), tmp_path / "review"
    esc50.analyze(model_dir, tree, tmp_path / "out", segments=review, per_class=2,
                  log=lambda _: None, progress=False)
    page = (review / "index.html").read_text()
    sources = [part.split('"')[0] for part in page.split('<audio controls preload="none" '
                                                         'src="')[1:]]
    assert sources and all((review / s).is_file() for s in sources)
    assert "<script" not in page and "http" not in page
    clip, rate = sf.read(review / sources[0])
    assert rate == SR and len(clip) == SR  # one window: the model's clip length
    browser_path = next(filter(None, map(shutil.which, BROWSERS)), None)
    if browser_path is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        view = browser.new_page(viewport={"width": 1300, "height": 900})
        view.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        view.goto((review / "index.html").as_uri())
        facts = view.evaluate(PLAYERS)
        view.screenshot(path=str(review / "screenshot.png"), full_page=True)
        browser.close()
    assert problems == []
    assert facts["sources"] == sources
    assert all(abs(d - 1.0) < 0.01 for d in facts["durations"]), facts["durations"]
    assert all(width > 0 for width in facts["images"])
    assert sorted(facts["sections"]) == ["0", "1", "2", "3"]


def test_a_recording_gone_or_damaged_since_its_analysis_costs_the_review_only_its_clips(
        model_dir, tmp_path):
    tree, out, review = write_tree(tmp_path / "tree"), tmp_path / "out", tmp_path / "review"
    gone, damaged = "site2/long.wav", "site1/day1/noon.flac"

    def analyze() -> tuple[dict, list[str], str]:
        lines: list[str] = []
        summary = esc50.analyze(model_dir, tree, out, segments=review, per_class=50,
                                log=lines.append, progress=False)
        return summary, lines, (review / "index.html").read_text()

    _, _, page = analyze()
    assert gone in page and damaged in page
    (tree / gone).unlink()
    before = (tree / damaged).stat()  # damaged in place (bit rot): same size and time
    (tree / damaged).write_bytes(b"\0" * before.st_size)
    os.utime(tree / damaged, ns=(before.st_atime_ns, before.st_mtime_ns))
    summary, lines, page = analyze()
    assert summary["not_in_folder"] == [gone]
    assert summary["recordings"] == summary["done"] == len(TREE) - 1
    skipped = sorted(line for line in lines if line.endswith("; its detections are left out"))
    assert len(skipped) == 2
    assert skipped[0].startswith(f"review page: {tree / damaged}: cannot decode audio: its "
                                 "first 4096 bytes are zeros ")
    assert skipped[1] == f"review page: {gone} is no longer in the analysed folder; its " \
                         "detections are left out"
    assert gone not in page and damaged not in page
    kept = [row for row in csv.DictReader((out / "segments.csv").open())
            if row["file"] not in (gone, damaged)]
    assert kept and page.count("<figure>") == len(kept)  # every other detection, each playable
    sources = [part.split('"')[0] for part in page.split('preload="none" src="')[1:]]
    assert len(sources) == len(kept) and all((review / s).is_file() for s in sources)


def test_a_review_page_with_nothing_to_review_says_so(model_dir, tmp_path):
    tree, review = tmp_path / "tree", tmp_path / "review"
    tree.mkdir()
    (tree / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    code, output = run_cli(str(model_dir), str(tree), "--out", str(tmp_path / "out"),
                           "--segments", str(review))
    page = (review / "index.html").read_text()
    assert code == 1 and f"review page: {review / 'index.html'}" in output
    assert "<section" not in page and f"<p>{NOTHING_TO_REVIEW}</p>" in page
    assert "No detection to review" in page


def test_the_review_clips_are_never_taken_for_recordings(model_dir, tmp_path):
    tree = write_tree(tmp_path / "tree")
    for _ in range(2):  # the second run walks a tree holding the first run's clips
        summary = esc50.analyze(model_dir, tree, tree / "results", segments=tree / "review",
                                log=lambda _: None, progress=False)
    assert any((tree / "review" / "clips").rglob("*.wav"))
    assert summary["recordings"] == len(TREE) and sorted(summary["files"]) == sorted(TREE)
    code, output = run_cli(str(model_dir), str(tree), "--out", str(tmp_path / "other"),
                           "--segments", str(tree))
    assert code == 1 and output.count("\n") == 1
    assert f"--segments {tree} is the folder of recordings: the next run would take" in output
    assert not (tmp_path / "other").exists()


def test_a_damaged_settings_record_is_one_line(model_dir, tmp_path):
    tree, out = write_tree(tmp_path / "tree"), tmp_path / "out"
    (out / ".esc50-analyze").mkdir(parents=True)
    (out / ".esc50-analyze" / "settings.json").write_text("[1, 2")
    code, output = run_cli(str(model_dir), str(tree), "--out", str(out))
    assert code == 1 and "settings.json is damaged" in output and output.count("\n") == 1


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_the_worked_example_tree_is_scored_window_by_window_against_its_clips(real_data,
                                                                              tmp_path):
    """examples/field_recordings.py (docs/analyze.md's worked example) makes recordings of
    fold-1 clips and scores analyze's windows against them: with the shipped model, which
    trained on those clips, nearly every window covering one clip is right, so each window is
    matched to its own clip (one clip off would score near chance)."""
    example = Path(__file__).resolve().parents[1] / "examples" / "field_recordings.py"
    tree, out = tmp_path / "recordings", tmp_path / "results"
    made = subprocess.run([sys.executable, str(example), "make", str(real_data), str(tree)],
                          capture_output=True, text=True, check=True)
    assert "12 recordings of 12 fold-1 clips" in made.stdout
    with (tree / "truth.csv").open() as handle:
        truth = list(csv.DictReader(handle))
    assert len(truth) == 144 and len({row["recording"] for row in truth}) == 12
    assert sf.info(str(tree / "site1" / "day1.flac")).duration == pytest.approx(60.0)
    summary = esc50.analyze("esc50-rescnn", tree, out, formats=["json"], log=lambda _: None,
                            progress=False)
    assert summary["done"] == 12
    scored = subprocess.run([sys.executable, str(example), "score", str(tree), str(out)],
                            capture_output=True, text=True, check=True).stdout
    right, total = (int(word) for word in scored.split()[0:3:2])
    assert total == 144 and right >= 0.9 * total, scored
