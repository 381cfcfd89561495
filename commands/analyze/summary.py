"""What an analysis found, over every recording done in its results tree: the combined table of
segments, the list of recordings that failed, and the summary (per class: the time detected,
the segments and the recordings it was heard in; per recording: its length and top classes;
in all: the hours of audio, the time it took and how many times real time that is, and the
numerics each recording was scored in: bf16 or float32, which differ where a tree is split over
machines with and without bf16 instructions).

All of it is made again from the records of the tree (:mod:`results`) at the end of every run,
so after a resumed run or several shards it covers every recording done, each once."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from esc50.commands.analyze.results import ResultsTree
from esc50.commands.timeline import SEGMENT_FIELDS, csv_line, segment_row
from esc50.core.data.clips import by_extension
from esc50.core.errors import one_line
from esc50.core.files.write import write_text
from esc50.core.results.plots import clock

SEGMENTS, FAILED, SUMMARY, SUMMARY_TEXT = ("segments.csv", "failed.csv", "summary.json",
                                           "summary.txt")
TOP_CLASSES = 3  # a recording's top classes in the summary


def detected_time(segments: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds of each class's segments, most first."""
    seconds: dict[str, float] = defaultdict(float)
    for segment in segments:
        seconds[segment["class"]] += segment["end"] - segment["start"]
    return dict(sorted(seconds.items(), key=lambda item: (-item[1], item[0])))


def numerics_of(record: dict[str, Any]) -> str:
    """The numerics a recording was scored in (``not recorded`` in a record from before they
    were)."""
    return record.get("numerics", "not recorded")


def summarize(records: list[dict[str, Any]], failures: list[dict[str, str]],
              in_folder: set[str], wall_seconds: float, this_run_audio: float,
              unlisted: list[str], not_done: list[str], not_audio: list[str]
              ) -> dict[str, Any]:
    """The summary of ``records`` (every recording done) and ``failures``; ``in_folder``: the
    recordings the analysed folder holds (their paths in the results), which the counts are of
    (``damaged``: those read only up to where they stop decoding, or past a header that was
    never finished, with the notes on each);
    results of recordings no longer there are kept and named (``not_in_folder``); the time this
    run took for ``this_run_audio`` seconds of audio, and the recordings of its share it left
    neither done nor failed (``not_done``: a worker killed while analysing one, another process
    still analysing it); ``unlisted``: the folders of the tree that could not be listed, one
    line each; ``not_audio``: the other files of the tree, left out for their names (counted
    by extension)."""
    classes: dict[str, dict[str, Any]] = {}
    for record in records:
        for name, seconds in detected_time(record["segments"]).items():
            entry = classes.setdefault(name, {"seconds": 0.0, "segments": 0, "recordings": 0})
            entry["seconds"] += seconds
            entry["segments"] += sum(s["class"] == name for s in record["segments"])
            entry["recordings"] += 1
    audio = sum(r["duration"] for r in records)
    busy = sum(r["seconds"] for r in records)
    numerics = Counter(numerics_of(r) for r in records if r["file"] in in_folder)
    return {
        "recordings": len(in_folder), "done": sum(r["file"] in in_folder for r in records),
        "failed": sum(f["file"] in in_folder for f in failures),
        "damaged": [{"file": r["file"], "note": r["damaged"]} for r in records
                    if "damaged" in r and r["file"] in in_folder],
        "not_in_folder": sorted({r["file"] for r in records + failures} - in_folder),
        "audio_hours": audio / 3600, "processing_seconds": busy,
        "real_time_factor": audio / busy if busy else None,
        "numerics": dict(sorted(numerics.items())),
        "this_run": {"audio_seconds": this_run_audio, "wall_seconds": wall_seconds,
                     "real_time_factor": this_run_audio / wall_seconds if wall_seconds else None,
                     "not_done": not_done},
        "classes": dict(sorted(classes.items(), key=lambda item: (-item[1]["seconds"],
                                                                  item[0]))),
        "files": {r["file"]: {"duration": r["duration"], "top": r["top"],
                              "numerics": numerics_of(r)} for r in records},
        "failures": failures, "unlisted": unlisted,
        "not_audio": by_extension(not_audio)}


def write_combined(tree: ResultsTree, summary: dict[str, Any],
                   records: list[dict[str, Any]]) -> None:
    """The combined table, the failures and the summary (JSON and text), atomically."""
    write_text(tree.root / SEGMENTS, csv_line(SEGMENT_FIELDS) + "".join(
        csv_line(segment_row(r["file"], s)) for r in records for s in r["segments"]))
    write_text(tree.root / FAILED, csv_line(["file", "error"]) + "".join(
        csv_line([f["file"], f["error"]]) for f in summary["failures"]))
    write_text(tree.root / SUMMARY, json.dumps(summary, indent=2) + "\n")
    write_text(tree.root / SUMMARY_TEXT, "\n".join(summary_lines(summary)) + "\n")


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The summary as text: the totals, each class, each recording."""
    this_run = summary["this_run"]
    factor = this_run["real_time_factor"]
    lines = [f"{summary['done']} of {summary['recordings']} recordings done"
             + (f", {summary['failed']} failed (failed.csv)" if summary["failed"] else "")
             + (f", {len(summary['unlisted'])} "
                f"folder{'s' if len(summary['unlisted']) > 1 else ''} could not be listed "
                "(summary.json: unlisted)" if summary["unlisted"] else "")
             + (f", {len(summary['damaged'])} damaged, read as far as they decode "
                "(summary.json: damaged)" if summary["damaged"] else "")
             + (f", {others} other file{'s' if others > 1 else ''} not audio by name "
                "(summary.json: not_audio)" if (others := sum(summary["not_audio"].values()))
                else "")
             + f": {clock(summary['audio_hours'] * 3600, hours=True)} of audio"
             + (f"; the results also hold {len(summary['not_in_folder'])} no longer in the "
                "folder (summary.json: not_in_folder)" if summary["not_in_folder"] else ""),
             f"this run: {clock(this_run['audio_seconds'], hours=True)} of audio in "
             f"{this_run['wall_seconds']:.1f} s" + (f" ({factor:.0f}x real time)" if factor
                                                     else "")
             + (f"; {len(this_run['not_done'])} of its recordings not done (summary.json: "
                "this_run, not_done): the same command analyses them" if this_run["not_done"]
                else "")]
    if len(summary["numerics"]) > 1:  # shards or runs on machines with and without bf16
        lines.append("recordings scored in " + ", ".join(
            f"{kind} ({count})" for kind, count in summary["numerics"].items())
            + ": labels can differ by a few windows between them (summary.json: numerics, "
            "and each recording's under files)")
    lines += ["", f"{'class':<24} {'detected':>10} {'segments':>9} {'recordings':>11}"]
    lines += [f"{name:<24} {clock(c['seconds'], hours=True):>10} {c['segments']:>9} "
              f"{c['recordings']:>11}" for name, c in summary["classes"].items()]
    lines += ["", f"{'recording':<40} {'length':>10}  top classes (detected time)"]
    lines += [f"{one_line(name):<40} {clock(f['duration'], hours=True):>10}  "
              + ", ".join(f"{c} {clock(s)}" for c, s in f["top"]) for name, f in
              summary["files"].items()]
    return lines
