"""esc50 predict --timeline: what sounds when in a recording of any length, from a file, from
standard input (WAV or raw PCM, a live stream labelled as it arrives), through the Python API,
and with onnxruntime alone (examples/onnx_timeline.py)."""

import ast
import csv
import io
import json
import os
import select
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import esc50
from esc50.cli.main import cli
from esc50.core.data.audio import load_clip
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.trainer import Trainer
from tests.conftest import FREQS, SR, small_config, tone, write_synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]
ESC50 = str(Path(sys.executable).parent / "esc50")


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    """A CRNN trained on the tone task (4 classes, 1-s windows at 8 kHz), and a recording of
    tones of known classes in a known order: (run folder, recording, [(class, start, end)])."""
    tmp = tmp_path_factory.mktemp("timeline")
    data = write_synthetic_dataset(tmp / "data", clips_per_class_per_fold=4)
    config = small_config(data, num_epochs=12, output_dir=str(tmp / "runs"), run_name="tones")
    run_dir = Trainer(config, load_registry(), log=lambda _: None).fit()
    order, seconds = [0, 2, 1, 3, 2, 0], [2.0, 3.0, 2.0, 2.5, 2.0, 1.5]
    audio = np.concatenate([tone(FREQS[c], s, seed=50 + i)
                            for i, (c, s) in enumerate(zip(order, seconds))])
    sf.write(tmp / "tones.wav", audio, SR, subtype="PCM_16")
    ends = np.cumsum(seconds)
    return run_dir, tmp / "tones.wav", list(zip(order, ends - seconds, ends))


def csv_rows(text: str) -> list[list[str]]:
    return [line.split(",")[1:] for line in text.strip().splitlines()[1:]]  # no file column


def test_segments_of_real_clips_start_and_end_at_the_clip_boundaries(esc10_cv, tmp_path):
    """16 real ESC-10 clips of fold 1 (which the model never trained on), one after another,
    neighbours of different classes: each clip's centre lies in a segment of its class at least
    as often as the model labels the clip alone correctly, and where two neighbours are both
    labelled right a segment boundary lies within one hop of theirs."""
    root, _ = esc10_cv
    model = esc50.load(root / "fold-1")
    rate, window, names = model.sample_rate, model.config.length_wav, model.class_names
    clips = [(k % len(names), fold1_clips(names[k % len(names)])[k // len(names)])
             for k in range(16)]  # the classes in turn, so that neighbours differ
    audio = np.concatenate([load_clip(path, rate, window)[0].numpy() for _, path in clips])
    sf.write(tmp_path / "clips.wav", audio, rate, subtype="FLOAT")
    alone = [names.index(model.predict(str(path), top_k=1)[0][0]) for _, path in clips]
    right = [a == target for a, (target, _) in zip(alone, clips)]
    assert 0 < sum(right) < len(clips)  # a model that gets some clips wrong tests more
    timeline = model.timeline(tmp_path / "clips.wav")
    seconds, hop = window / rate, timeline.hop_seconds
    assert hop == seconds / 2 and len(timeline.windows) == 2 * len(clips) - 1
    covered = 0
    for k, (target, _) in enumerate(clips):
        centre = (k + 0.5) * seconds
        [segment] = [s for s in timeline.segments if s.start <= centre < s.end]
        covered += segment.label == names[target]
    assert covered >= sum(right)
    bounds = [s.start for s in timeline.segments]
    for k in range(len(clips) - 1):
        if right[k] and right[k + 1]:
            assert min(abs(b - (k + 1) * seconds) for b in bounds) <= hop
    assert bounds[0] == 0 and timeline.segments[-1].end == pytest.approx(len(clips) * seconds)
    assert all(a.end == b.start for a, b in zip(timeline.segments, timeline.segments[1:]))


def fold1_clips(name: str) -> list[Path]:
    """The fold-1 clips of an ESC-50 class, by the official metadata."""
    data = ROOT.parent / "shared" / "datasets" / "esc50"
    rows = [line.split(",") for line in (data / "meta" / "esc50.csv").read_text().splitlines()[1:]]
    return sorted(next((data / "audio").glob(f"{Path(r[0]).stem}.*"))  # any audio format
                  for r in rows if r[3] == name and r[1] == "1")


def test_timeline_of_tones_in_every_output_form(tones, tmp_path):
    run_dir, recording, truth = tones
    text = CliRunner().invoke(cli, ["predict", str(run_dir), str(recording), "--timeline"])
    assert text.exit_code == 0, text.output
    windows = [line for line in text.output.splitlines() if line.startswith("  ") and " - " in
               line][:25]
    assert len(text.output.splitlines()) > 25 and "segments of" in text.output
    segments = csv_rows(CliRunner().invoke(cli, ["predict", str(run_dir), str(recording),
                                                 "--timeline", "--csv"]).output)
    assert [int(s[2]) for s in segments] == [c for c, _, _ in truth]  # the tones, in order
    for (start, end, *_), (_, true_start, true_end) in zip(segments, truth):
        assert abs(float(start) - true_start) <= 0.25 and abs(float(end) - true_end) <= 0.25
    shown = json.loads(CliRunner().invoke(cli, ["predict", str(run_dir), str(recording),
                                                "--timeline", "--json", "--hop", "0.25",
                                                "--top-k", "2"]).output)[0]
    assert shown["hop_seconds"] == 0.25 and shown["window_seconds"] == 1.0
    assert [w["start"] for w in shown["windows"][:3]] == [0.0, 0.25, 0.5]
    assert all(len(w["top"]) == 2 for w in shown["windows"])
    assert len(windows) == 25  # printed as each was scored, in the table form
    strict = json.loads(CliRunner().invoke(cli, ["predict", str(run_dir), str(recording),
                                                 "--timeline", "--json", "--min-prob",
                                                 "0.999"]).output)[0]
    kept = [w for w in strict["windows"] if w["top"]]
    assert all(t["probability"] >= 0.999 for w in kept for t in w["top"])
    assert sum(s["windows"] for s in strict["segments"]) == len(kept) < len(strict["windows"])
    plot = CliRunner().invoke(cli, ["predict", str(run_dir), str(recording), "--timeline",
                                    "--plot", str(tmp_path / "t.png")])
    assert plot.exit_code == 0 and (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    model = esc50.load(run_dir)
    timeline = model.timeline(recording)
    assert [s.label for s in timeline.segments] == [str(c) for c, _, _ in truth]
    frame = timeline.dataframe("windows")
    assert list(frame.columns) == ["start", "end", "0", "1", "2", "3"]
    np.testing.assert_allclose(frame[["0", "1", "2", "3"]].sum(axis=1), 1, atol=1e-5)
    assert list(timeline.dataframe()["label"]) == [s.label for s in timeline.segments]
    samples, rate = sf.read(recording, dtype="float32")
    assert [s.label for s in model.timeline(samples, sample_rate=rate).segments] == \
        [s.label for s in timeline.segments]
    for bad, message in ((["--hop", "0"], "--hop 0.0 must be between 0.01 s and the window"),
                         (["--min-prob", "2"], "--min-prob 2.0 must be between 0 and 1")):
        refused = CliRunner().invoke(cli, ["predict", str(run_dir), str(recording),
                                           "--timeline", *bad])
        assert refused.exit_code == 1 and message in refused.output


def wav_stream(recording: Path, data_size: int | None = None) -> bytes:
    """The recording as a 16-bit WAV stream; ``data_size`` overwrites the header's data size
    (a recorder writing to a pipe cannot know it: arecord writes 0x7fffffff)."""
    data, rate = sf.read(recording, dtype="int16")
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format="WAV", subtype="PCM_16")
    stream = bytearray(buffer.getvalue())
    if data_size is not None:
        at = stream.index(b"data") + 4
        stream[at:at + 4] = struct.pack("<I", data_size)
    return bytes(stream)


def test_standard_input_as_wav_or_raw_pcm_gives_the_files_timeline(tones):
    run_dir, recording, _ = tones
    args = ["predict", str(run_dir), "--timeline", "--csv", "--windows"]
    from_file = CliRunner().invoke(cli, [*args, str(recording)])
    wav = CliRunner().invoke(cli, [*args, "-"], input=wav_stream(recording, 0x7FFFFFFF))
    data, rate = sf.read(recording, dtype="int16")
    raw = CliRunner().invoke(cli, [*args, "-", "--rate", str(rate)], input=data.tobytes())
    assert from_file.exit_code == wav.exit_code == raw.exit_code == 0, raw.output
    assert csv_rows(wav.output) == csv_rows(raw.output) == csv_rows(from_file.output)
    assert wav.output.splitlines()[1].startswith("standard input,0.000,1.000,1,")
    flac = io.BytesIO()
    sf.write(flac, sf.read(recording)[0], rate, format="FLAC")
    refused = CliRunner().invoke(cli, [*args, "-"], input=flac.getvalue())
    assert refused.exit_code == 1 and "error: standard input: a FLAC stream, but standard " \
        "input takes a WAV stream or raw PCM (--rate): give the file by its path instead" \
        in refused.output
    empty = CliRunner().invoke(cli, [*args, "-"], input=b"")
    assert empty.exit_code == 1 and "error: standard input is empty: pipe a WAV stream, or " \
        "raw PCM with --rate, into esc50 (`... | esc50 predict MODEL -`)" in empty.output
    unknown = CliRunner().invoke(cli, [*args, "-"], input=b"\x01\x02" * 100)
    assert unknown.exit_code == 1 and "standard input: not a WAV stream (it starts with " \
        "b'\\x01\\x02\\x01\\x02'); for raw PCM give --rate" in unknown.output


def test_a_live_stream_is_labelled_as_it_arrives(tones):
    """The first windows are printed while the stream is still open: a recorder piping into
    esc50 sees its labels as it records."""
    run_dir, recording, _ = tones
    stream = wav_stream(recording, 0x7FFFFFFF)
    header = stream.index(b"data") + 8
    process = subprocess.Popen([ESC50, "predict", str(run_dir), "-", "--timeline"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdin.write(stream[:header + 2 * SR * 2])  # the header and 2 s of audio
    process.stdin.flush()
    lines = []
    while not any(" - " in line for line in lines):  # a window line, the stream still open
        ready, _, _ = select.select([process.stdout], [], [], 600)
        assert ready, "no window was printed within 10 minutes of its audio arriving"
        lines.append(process.stdout.readline().decode())
        assert lines[-1], process.stderr.read().decode()
    assert "0:00.0 - 0:01.0" in lines[-1]
    process.stdin.write(stream[header + 2 * SR * 2:])
    process.stdin.close()
    rest = process.stdout.read().decode()
    assert process.wait() == 0 and "segments of standard input" in rest


FIRST_FILE_PRINTED = {  # form: whether the output so far holds the first file's whole result
    "text": lambda out, first: out.startswith(f"{first}: ") and out.endswith("\n"),
    "csv": lambda out, first: out.count(f"\n{first},") == 3,
    "json": lambda out, first: out.endswith("]\n  }"),
}


@pytest.mark.parametrize("form", sorted(FIRST_FILE_PRINTED))
def test_predict_prints_each_file_as_soon_as_it_is_scored(tones, tmp_path, form):
    """predict on a folder of thousands of files printed nothing until the last one was scored
    (and an interruption lost every line): each file is printed once scored, in every form. The
    second input is standard input, fed only once the first file's result is printed."""
    run_dir, _, _ = tones
    first = tmp_path / "first.wav"
    sf.write(first, tone(FREQS[2], 1.0, seed=7), SR, subtype="PCM_16")
    flags = {"text": [], "csv": ["--csv"], "json": ["--json"]}[form]
    process = subprocess.Popen([ESC50, "predict", str(run_dir), str(first), "-", *flags],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    printed = ""
    while not FIRST_FILE_PRINTED[form](printed, first):
        ready, _, _ = select.select([process.stdout], [], [], 600)
        assert ready, f"nothing more printed within 10 minutes; so far: {printed!r}"
        more = os.read(process.stdout.fileno(), 1 << 16).decode()
        assert more, process.stderr.read().decode()
        printed += more
    second = io.BytesIO()
    sf.write(second, tone(FREQS[1], 1.0, seed=8), SR, format="WAV", subtype="PCM_16")
    process.stdin.write(second.getvalue())
    process.stdin.close()
    printed += process.stdout.read().decode()
    assert process.wait() == 0, process.stderr.read().decode()
    if form == "json":
        tops = [item["top"][0]["class"] for item in json.loads(printed)]
    elif form == "csv":
        tops = [row[2] for row in csv.reader(io.StringIO(printed)) if row[1] == "1"]
    else:
        tops = [line.split(": ")[1].split()[0] for line in printed.splitlines()]
    assert tops == ["2", "1"]


@pytest.mark.parametrize("rate", [1, 2_000_000_000])
def test_a_header_with_a_rate_no_audio_has_is_refused_naming_the_file(tones, tmp_path, rate):
    run_dir, _, _ = tones
    path = tmp_path / "lying.wav"
    sf.write(path, tone(700.0, 0.5), SR, subtype="PCM_16")
    header = bytearray(path.read_bytes())
    header[24:28] = struct.pack("<I", rate)  # the fmt chunk's sample rate
    path.write_bytes(bytes(header))
    for args in (["predict", str(run_dir), str(path)],
                 ["predict", str(run_dir), str(path), "--timeline"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1
        assert f"{path}: a sample rate of {rate:,} Hz is not one audio can have (1,000 to " \
               "768,000 Hz): the file's header is damaged" in result.output


def test_an_empty_folder_and_a_clip_shorter_than_an_analysis_window_are_refused(tones, tmp_path):
    run_dir, _, _ = tones
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["predict", str(run_dir), str(tmp_path / "empty")])
    assert result.exit_code == 1
    assert f"{tmp_path / 'empty'}: the folder holds no audio files" in result.output
    sf.write(tmp_path / "blip.wav", tone(700.0, 0.01), SR)  # 80 samples; the window is 256
    result = CliRunner().invoke(cli, ["predict", str(run_dir), str(tmp_path / "blip.wav")])
    assert result.exit_code == 1
    assert f"{tmp_path / 'blip.wav'}: 80 samples, shorter than one analysis window of the " \
           "featurizer (256 samples)" in result.output


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_the_onnx_example_labels_a_file_as_esc50_does_with_onnxruntime_alone(tones, tmp_path):
    """examples/onnx_timeline.py imports onnxruntime, numpy and soundfile only, resamples a
    44.1 kHz stereo file itself and scores it a chunk of windows at a time; its CSV is esc50
    predict --timeline's."""
    pytest.importorskip("onnxruntime")
    example = ROOT / "examples" / "onnx_timeline.py"
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(example.read_text()))
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(example.read_text()))
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported - set(sys.stdlib_module_names) == {"numpy", "onnxruntime", "soundfile"}
    run_dir, _, _ = tones
    exported = CliRunner().invoke(cli, ["export", str(run_dir), "--format", "onnx", "--out",
                                        str(tmp_path / "model.onnx")])
    assert exported.exit_code == 0, exported.output
    rng = np.random.default_rng(5)
    audio = np.concatenate([tone(FREQS[c], float(rng.uniform(0.6, 2.5)), 44_100, seed=k)
                            for k, c in enumerate(rng.integers(0, 4, 20))])  # about 30 s
    sf.write(tmp_path / "long.wav", np.stack([audio, 0.4 * audio], axis=1), 44_100)
    for extra in ([], ["--windows"]):
        ours = subprocess.run([sys.executable, str(example), str(tmp_path / "model.onnx"),
                               str(tmp_path / "long.wav"), *extra], capture_output=True,
                              text=True, check=True).stdout
        theirs = CliRunner().invoke(cli, ["predict", str(run_dir), str(tmp_path / "long.wav"),
                                          "--timeline", "--csv", *extra]).output
        assert len(ours.splitlines()) > (100 if extra else 10)
        for mine, expected in zip(csv_rows(ours), csv_rows(theirs), strict=True):
            assert mine[:-3] == expected[:-3] if not extra else mine[:4] == expected[:4]
            numbers = mine[-3:] if not extra else mine[-1:]
            wanted = expected[-3:] if not extra else expected[-1:]
            assert [float(x) for x in numbers] == pytest.approx([float(x) for x in wanted],
                                                                abs=2e-4)


def test_the_plot_shows_every_class_that_leads_a_window_unless_told_how_many():
    from esc50.core.results.plots import timeline_figure

    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(50) * 0.1, size=79).astype(np.float32)
    leading = len(set(probabilities.argmax(axis=1)))
    assert leading > 10  # more than the ten rows the plot used to keep
    spans = [(k * 2.5, k * 2.5 + 5.0) for k in range(79)]
    names = [f"class {i}" for i in range(50)]
    rows = [t.get_text() for t in timeline_figure(probabilities, names, spans, 200.0, "t")
            .axes[0].get_yticklabels()]
    assert sorted(rows) == sorted(names[i] for i in set(probabilities.argmax(axis=1)))
    assert len(timeline_figure(probabilities, names, spans, 200.0, "t", rows=5)
               .axes[0].get_yticklabels()) == 5
