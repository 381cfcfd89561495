"""Look before you trust: the most confident detections of each class as short audio files, and
one HTML page to listen to them (``esc50 analyze ... --segments DIR``).

For each class, its ``per_class`` segments with the largest probability over the whole
analysis; each is cut from its recording as the window that scored it most probable (the
segment's peak: the model's clip length, at the recording's own rate and channels) and written
as a WAV file with a small spectrogram beside it. ``index.html`` lists the classes (most
detected first), each with its detections from the most probable: a player for the clip, the
recording and the time, the probability and the spectrogram. Links are relative, so the
folder can be copied or served as it is; nothing is fetched and no script runs.
"""

from __future__ import annotations

import html
import re
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import soundfile as sf

from esc50.core.data.audio import opened_audio
from esc50.core.errors import Esc50Error
from esc50.core.files.write import atomic_write, output_folder, write_text
from esc50.core.results.plots import clock, png_bytes, spectrogram_figure

PAGE = "index.html"
NOTHING_TO_REVIEW = ("No detection to review: no recording analysed has a segment of the classes "
                     "kept (the summary of the analysis and failed.csv say why).")
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1300px; }
section { border-top: 2px solid #4c78a8; margin-top: 1.5em; }
figure { display: inline-block; vertical-align: top; margin: 0 1em 1em 0; width: 320px; }
figure img { width: 320px; display: block; }
figure audio { width: 320px; }
figcaption { font-size: 0.85em; }
"""


def ranked_detections(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each class's segments over all ``records`` (with their recording), the most probable
    first, classes ordered by how many segments they have."""
    by_class: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        for segment in record["segments"]:
            by_class.setdefault(segment["class"], []).append({**segment, "file": record["file"]})
    ordered = sorted(by_class.items(), key=lambda item: (-len(item[1]), item[0]))
    return {name: sorted(found, key=lambda s: (-s["max_probability"], s["file"], s["start"]))
            for name, found in ordered}


def cuts(detections: list[dict[str, Any]], sources: dict[str, Path], seconds: float,
         skipped: dict[str, str]) -> Iterator[tuple[dict[str, Any], np.ndarray, int]]:
    """Each detection whose window can be cut from its recording, with that audio and its rate.
    A recording gone from the analysed folder, or that can no longer be read, goes into
    ``skipped`` (its path in the results -> why) and its detections are passed over."""
    for detection in detections:
        file = detection["file"]
        if file in skipped:
            continue
        if file not in sources:
            skipped[file] = f"{file} is no longer in the analysed folder"
            continue
        try:
            audio, rate = cut(sources[file], detection["peak"], seconds)
        except Esc50Error as exc:
            skipped[file] = str(exc)
            continue
        yield detection, audio, rate


def write_review(folder: Path, records: list[dict[str, Any]], sources: dict[str, Path],
                 window_seconds: float, per_class: int, log: Callable[[str], None]) -> Path:
    """Cut the clips, draw their spectrograms and write ``index.html`` into ``folder``;
    ``sources``: each recording's file by its path in the results. A recording that is gone or
    unreadable is named through ``log`` and its detections give way to the next most probable.
    Returns the page."""
    output_folder(folder, "--segments folder")
    sections, skipped = [], {}
    for number, (name, ranked) in enumerate(ranked_detections(records).items()):
        slug = f"{number:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '_', name)}"
        figures = []
        chosen = islice(cuts(ranked, sources, window_seconds, skipped), per_class)
        for rank, (detection, audio, rate) in enumerate(chosen, start=1):
            stem = f"clips/{slug}/{rank:03d}"
            (folder / "clips" / slug).mkdir(parents=True, exist_ok=True)
            start = detection["peak"]
            atomic_write(folder / f"{stem}.wav", lambda h, a=audio, r=rate: sf.write(
                h, a, r, format="WAV", subtype="PCM_16"))
            mono = audio.mean(axis=1) if audio.ndim > 1 else audio
            picture = png_bytes(spectrogram_figure(mono, rate, ""))
            atomic_write(folder / f"{stem}.png", lambda h, p=picture: h.write(p))
            end = start + len(audio) / rate
            figures.append(
                f'<figure><audio controls preload="none" src="{stem}.wav"></audio>'
                f'<img src="{stem}.png" alt="spectrogram of {html.escape(name)} at '
                f'{clock(start)}"><figcaption><b>{detection["max_probability"]:.2f}</b> '
                f'{html.escape(detection["file"])}, {clock(start)} - {clock(end)} '
                f'(segment {clock(detection["start"])} - {clock(detection["end"])})'
                "</figcaption></figure>")
        if not figures:
            continue
        sections.append(f'<section id="{slug}"><h2>{html.escape(name)}</h2>'
                        + (f'<p>its {len(figures)} most probable detections</p>'
                           if len(figures) > 1 else "<p>its most probable detection</p>")
                        + "".join(figures) + "</section>")
    for why in skipped.values():
        log(f"review page: {why}; its detections are left out")
    page = folder / PAGE
    write_text(page, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
               "<title>esc50 analyze: detections to review</title><style>" + STYLE
               + "</style></head><body><h1>Detections to review</h1><p>For each class, the "
               "windows the model found it in most surely: listen before you trust the "
               "tables.</p>" + ("".join(sections) or f"<p>{NOTHING_TO_REVIEW}</p>")
               + "</body></html>\n")
    return page


def cut(path: Path, start: float, seconds: float) -> tuple[np.ndarray, int]:
    """``seconds`` of ``path`` from ``start`` (fewer at its end), at its own rate."""
    with opened_audio(path) as audio:
        rate = audio.samplerate
        audio.seek(min(int(round(start * rate)), audio.frames))
        return audio.read(int(round(seconds * rate)), dtype="float32"), rate
