"""The files one recording's results are written as, in the formats the software of people who
record for weeks opens.

- ``csv``: a row per segment (file, start, end, class, mean and largest probability, windows),
  the columns of ``esc50 predict --timeline --csv``.
- ``json``: the recording's timeline: every window with its top classes, and the segments.
- ``audacity``: a label track (``File > Import > Labels``): one line per segment, its start and
  end in seconds and its text, separated by tabs (the Audacity manual, "Importing and Exporting
  Labels"); the text is the class and its largest probability.
- ``raven``: a Raven selection table (``File > Open Selection Table``): tab-separated, a header
  line, a row per segment with the columns Selection (1, 2, ...), View ("Spectrogram 1"),
  Channel (1), Begin Time (s), End Time (s), Low Freq (Hz), High Freq (Hz) (the whole band the
  model hears: 0 to half its sample rate), then Class, Probability (the largest) and Mean
  Probability (the Raven Pro manual's selection tables; BirdNET-Analyzer writes the same
  columns).

Each file is named for the recording with its suffix kept (``rec.wav`` gives ``rec.wav.csv``,
``rec.wav.labels.txt``, ``rec.wav.selections.txt``, ``rec.wav.json``), so that ``rec.wav`` and
``rec.flac`` in one folder never share results (a name too long for that is cut:
:class:`~esc50.commands.analyze.results.ResultsTree`), and is written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

from esc50.commands.timeline import (SEGMENT_FIELDS, Segment, Timeline, csv_line,
                                          segment_json, segment_row)
from esc50.core.errors import Esc50Error
from esc50.core.files.write import output_folder, write_text

SUFFIXES = {"csv": ".csv", "json": ".json", "audacity": ".labels.txt",
            "raven": ".selections.txt"}
EMBEDDING_SUFFIXES = (".embeddings.npy", ".windows.csv")  # with --embeddings
RAVEN_COLUMNS = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)",
                 "Low Freq (Hz)", "High Freq (Hz)", "Class", "Probability", "Mean Probability"]


def checked_formats(formats: list[str]) -> list[str]:
    """``formats`` once each is known (in the order given, each once); csv when none."""
    unknown = [f for f in formats if f not in SUFFIXES]
    if unknown:
        raise Esc50Error(f"--format {unknown[0]!r} must be one of {', '.join(SUFFIXES)}")
    return list(dict.fromkeys(formats)) or ["csv"]


def output_path(base: Path, fmt: str) -> Path:
    """Where a recording's results in ``fmt`` go (``base``: its path in the results tree)."""
    return base.with_name(base.name + SUFFIXES[fmt])


def write_outputs(base: Path, formats: list[str], timeline: Timeline, source: str,
                  segments: list[Segment], nyquist: float) -> list[Path]:
    """Write a recording's ``segments`` (its timeline's, filtered) in every format of
    ``formats``; returns the files."""
    output_folder(base.parent, "results folder")
    written = []
    for fmt in formats:
        path = output_path(base, fmt)
        write_text(path, render(fmt, timeline, source, segments, nyquist))
        written.append(path)
    return written


def render(fmt: str, timeline: Timeline, source: str, segments: list[Segment],
           nyquist: float) -> str:
    """The text of one format (see the module docstring)."""
    if fmt == "csv":
        return csv_line(SEGMENT_FIELDS) + "".join(csv_line(segment_row(source, segment_json(s)))
                                                  for s in segments)
    if fmt == "json":
        values = timeline.to_dict()
        values["file"] = source
        values["segments"] = [segment_json(s) for s in segments]
        return json.dumps(values, indent=2) + "\n"
    if fmt == "audacity":
        return "".join(f"{s.start:.6f}\t{s.end:.6f}\t{s.label} {s.max_probability:.2f}\n"
                       for s in segments)
    rows = ["\t".join(RAVEN_COLUMNS)]
    rows += ["\t".join([str(number), "Spectrogram 1", "1", f"{s.start:.6f}", f"{s.end:.6f}",
                        "0.0", f"{nyquist:.1f}", s.label, f"{s.max_probability:.4f}",
                        f"{s.mean_probability:.4f}"])
             for number, s in enumerate(segments, start=1)]
    return "\n".join(rows) + "\n"
