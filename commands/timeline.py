"""`esc50 predict --timeline`: what sounds when, in a recording of any length.

Every window (the run's clip length, every ``hop`` samples: :mod:`esc50.commands.predict`)
gets its start and end in seconds and its top classes with their probabilities; with
``min_prob`` only the classes that reach it are kept. Consecutive windows with the same top
class (one that reaches ``min_prob``) are merged into segments: start, end, class, the mean and
the largest probability of that class over the segment's windows.

Where a segment starts and ends: each window speaks for the stretch of time nearer its centre
than any other window's (the first from the recording's start, the last to its end), so segments
tile the recording without overlapping, and a change of sound falls within half a hop of the
boundary between the windows on either side of it. (BirdNET-Analyzer reports its fixed 3-second
windows instead, with overlapping ones listed twice; PANNs' sound event detection gives frame-wise
probabilities. Merging by window centres keeps a window's figures as they were scored and gives
one segment per stretch of one sound.)
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch
from matplotlib.figure import Figure

from esc50.commands.predict import at_most_a_batch, default_hop, scored_windows
from esc50.core.errors import Esc50Error, optional_module
from esc50.core.results.plots import timeline_figure
from esc50.core.training.scoring import Member


HOP_FLOOR = 0.01  # seconds between windows, at least (a hundred windows a second)


@dataclass
class Window:
    """One scored window: start and end in seconds, its top classes (most probable first)."""

    start: float
    end: float
    top: list[tuple[str, float]]


@dataclass
class Segment:
    """A stretch of consecutive windows with one top class."""

    start: float
    end: float
    label: str
    mean_probability: float
    max_probability: float
    windows: int
    peak: float  # the start of its most probable window, in seconds


@dataclass
class Timeline:
    """The windows and segments of one recording (``source``), and every window's class
    probabilities (``probabilities`` [windows, classes]) for plots and tables."""

    source: str
    class_names: list[str]
    window_seconds: float
    hop_seconds: float
    models: int  # 1, or the members of an ensemble
    min_prob: float
    duration: float
    windows: list[Window] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings, windows (top classes as objects) and segments."""
        return {"file": self.source, "duration": round(self.duration, 3),
                "window_seconds": self.window_seconds, "hop_seconds": self.hop_seconds,
                "models": self.models, "min_prob": self.min_prob,
                "windows": [{"start": round(w.start, 3), "end": round(w.end, 3),
                             "top": [{"class": c, "probability": p} for c, p in w.top]}
                            for w in self.windows],
                "segments": [segment_json(s) for s in self.segments]}

    def dataframe(self, kind: str = "segments") -> Any:
        """A pandas DataFrame of the segments (``kind="segments"``) or of the windows (one row
        per window: start, end and every class's probability)."""
        pandas = optional_module("pandas", "pandas")
        if kind == "segments":
            return pandas.DataFrame([asdict(s) for s in self.segments],
                                    columns=[f.name for f in Segment.__dataclass_fields__.values()])
        if kind == "windows":
            frame = pandas.DataFrame(self.probabilities, columns=self.class_names)
            frame.insert(0, "end", [w.end for w in self.windows])
            frame.insert(0, "start", [w.start for w in self.windows])
            return frame
        raise Esc50Error(f"kind={kind!r} must be 'segments' or 'windows'")

    def plot(self, rows: int | None = None) -> Figure:
        """Time on x, a row for every class that leads a window (or the ``rows`` classes that
        lead most windows), probability as colour
        (:func:`esc50.core.results.plots.timeline_figure`)."""
        models = f"an ensemble of {self.models} models" if self.models > 1 else "one model"
        return timeline_figure(self.probabilities, self.class_names,
                               [(w.start, w.end) for w in self.windows], self.duration,
                               f"{self.source} ({models}; windows of {self.window_seconds:g} s "
                               f"every {self.hop_seconds:g} s)", rows)


SEGMENT_FIELDS = ["file", "start", "end", "class", "mean_probability", "max_probability",
                  "windows"]  # a CSV row per segment


def csv_line(values: list[Any]) -> str:
    """One CSV line (a value that needs quotes gets them)."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow(values)
    return text.getvalue()


def segment_row(source: str, segment: dict[str, Any]) -> list[Any]:
    """A segment (as :func:`segment_json` gives it) as the values of :data:`SEGMENT_FIELDS`."""
    return [source, f"{segment['start']:.3f}", f"{segment['end']:.3f}", segment["class"],
            f"{segment['mean_probability']:.4f}", f"{segment['max_probability']:.4f}",
            segment["windows"]]


def segment_json(segment: Segment) -> dict[str, Any]:
    """A segment as JSON: its class under ``class``, as windows and the CSV columns name it."""
    return {"start": round(segment.start, 3), "end": round(segment.end, 3),
            "class": segment.label, "mean_probability": segment.mean_probability,
            "max_probability": segment.max_probability, "windows": segment.windows,
            "peak": round(segment.peak, 3)}


def build_timeline(members: list[Member], class_names: list[str], blocks: Iterable[torch.Tensor],
                   sample_rate: int, length: int, hop: int | None = None, min_prob: float = 0.0,
                   top_k: int = 3, source: str = "the audio",
                   on_window: Callable[[Window], None] | None = None,
                   share_steps: bool = False,
                   window_batch: Callable[[], int] = at_most_a_batch) -> Timeline:
    """The :class:`Timeline` of audio arriving in ``blocks`` (mono, at ``sample_rate``);
    ``on_window`` is called with each window as soon as it is scored (a live stream's output);
    ``share_steps`` and ``window_batch``: as :func:`~esc50.commands.predict.scored_windows`
    says."""
    check_settings(min_prob, top_k)
    hop = hop or default_hop(length)
    spans: list[tuple[int, int]] = []  # each window's first and end sample
    rows: list[np.ndarray] = []  # its probabilities (kept compact: hours of windows add up)
    timeline = Timeline(source, class_names, length / sample_rate, hop / sample_rate,
                        len(members), min_prob, 0.0)
    for window in scored_windows(members, blocks, length, hop, source, share_steps,
                                 window_batch):
        row = window.probabilities.float().numpy().copy()
        spans.append((window.start, window.end))
        rows.append(row)
        shown = Window(window.start / sample_rate, window.end / sample_rate,
                       top_passing(row, class_names, top_k, min_prob))
        timeline.windows.append(shown)
        if on_window is not None:
            on_window(shown)
    timeline.probabilities = np.stack(rows)
    timeline.duration = spans[-1][1] / sample_rate
    timeline.segments = segments(spans, timeline.probabilities, class_names, sample_rate,
                                 min_prob)
    return timeline


def check_settings(min_prob: float, top_k: int) -> None:
    """``min_prob`` and ``top_k`` as one-line errors (checked once, before any input is read)."""
    if not 0.0 <= min_prob <= 1.0:
        raise Esc50Error(f"--min-prob {min_prob} must be between 0 and 1")
    if top_k < 1:
        raise Esc50Error(f"--top-k {top_k} must be at least 1")


def hop_samples(hop: float | None, sample_rate: int, length: int) -> int | None:
    """A hop in seconds as samples (None: half a window), checked: at least ``HOP_FLOOR``
    seconds (a hop of a nanosecond made 459 000 windows of 10 s of audio) and at most one
    window of ``length`` samples (a longer hop would leave audio between windows unscored)."""
    if hop is None:
        return None
    window = length / sample_rate
    if not (math.isfinite(hop) and HOP_FLOOR <= hop <= window):
        raise Esc50Error(f"--hop {hop} must be between {HOP_FLOOR} s and the window, "
                         f"{window:g} s (seconds between the starts of consecutive windows)")
    return round(hop * sample_rate)


def top_passing(probabilities: np.ndarray, class_names: list[str], top_k: int,
                min_prob: float) -> list[tuple[str, float]]:
    """The ``top_k`` most probable classes whose probability reaches ``min_prob``."""
    order = np.argsort(-probabilities, kind="stable")[:top_k]
    return [(class_names[i], float(probabilities[i])) for i in order
            if probabilities[i] >= min_prob]


def segments(spans: list[tuple[int, int]], probabilities: np.ndarray, class_names: list[str],
             sample_rate: int, min_prob: float) -> list[Segment]:
    """Consecutive windows (``spans`` in samples, ``probabilities`` [windows, classes]) whose
    top class is the same (and reaches ``min_prob``), merged; each window speaks for the time
    nearer its centre than any other's."""
    centres = [(a + b) / 2 for a, b in spans]
    bounds = [0.0] + [(a + b) / 2 for a, b in zip(centres, centres[1:])] + [float(spans[-1][1])]
    tops = probabilities.argmax(axis=1)
    labels = [int(top) if probabilities[i, top] >= min_prob else None
              for i, top in enumerate(tops)]
    found: list[Segment] = []
    first = 0
    for i in range(1, len(spans) + 1):
        if i < len(spans) and labels[i] == labels[first]:
            continue
        if labels[first] is not None:  # windows first .. i - 1 share this top class
            values = probabilities[first:i, labels[first]].astype(np.float64)
            found.append(Segment(bounds[first] / sample_rate, bounds[i] / sample_rate,
                                 class_names[labels[first]], float(values.mean()),
                                 float(values.max()), i - first,
                                 spans[first + int(values.argmax())][0] / sample_rate))
        first = i
    return found
