"""Reliability round five: the timeline, standard input, exports, ensembles, cross-validation
results, tuning storage and the Python API lose nothing, never run out of memory or hang, fail
in one line and are never silently wrong (docs/reliability.md, "Round five")."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import sqlite3
import struct
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

import esc50
from esc50 import Esc50Error, TaskConfig, hookimpl
from esc50.cli.main import cli
from esc50.commands import tune
from esc50.core.data.audio import MAX_PERIOD, read_mono, resampling_ratio
from esc50.core.data.stream import HEADER_BYTES, READ_BYTES, stream_blocks
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.scoring import Scoring
from esc50.core.training.trainer import Trainer
from tests.conftest import FREQS, SR, small_config, tone, write_synthetic_dataset
from tests.test_contracts import RareNaN


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A CRNN trained on the tone task, fold 1 held out: (data, run folder)."""
    tmp = tmp_path_factory.mktemp("five")
    data = write_synthetic_dataset(tmp / "data", clips_per_class_per_fold=3)
    config = small_config(data, num_epochs=4, output_dir=str(tmp / "runs"), run_name="tones")
    return data, Trainer(config, load_registry(), log=lambda _: None).fit()


def copied_run(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / run_dir.name
    shutil.copytree(run_dir, target)
    return target


# 1. Nothing lost -----------------------------------------------------------------------------

@pytest.mark.parametrize("out", ["last.pt", "split", "metrics", "last.pt.sha256"])
def test_an_export_never_writes_over_a_file_of_its_run(run, tmp_path, out):
    run_dir = copied_run(run[1], tmp_path)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    result = CliRunner().invoke(cli, ["export", str(run_dir), "--format", "torchscript",
                                      "--out", str(run_dir / out)])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "a trained model's own files are never written over" in result.output
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    with pytest.raises(Esc50Error, match="never written over"):
        esc50.load(run_dir).export("torchscript", run_dir / out)
    assert esc50.load(run_dir).predict(tone(FREQS[1]), sample_rate=SR)  # still loads


def test_plots_of_inputs_named_alike_do_not_overwrite_and_take_the_format_named(run, tmp_path):
    _, run_dir = run
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "clip.wav", tone(FREQS[int(folder == "b")], 2.0), SR)
    inputs = [str(tmp_path / "a" / "clip.wav"), str(tmp_path / "b" / "clip.wav")]
    result = CliRunner().invoke(cli, ["predict", str(run_dir), *inputs, "--timeline", "--plot",
                                      str(tmp_path / "plot.jpg")])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.glob("plot-*"))
    assert written == ["plot-a-clip.jpg", "plot-b-clip.jpg"]
    assert all((tmp_path / name).read_bytes()[:3] == b"\xff\xd8\xff" for name in written)  # JPEG
    refused = CliRunner().invoke(cli, ["predict", str(run_dir), inputs[0], "--timeline",
                                       "--plot", str(tmp_path / "plot.bmp")])
    assert refused.exit_code == 1 and "--plot" in refused.output and ".bmp is none of" in \
        refused.output and "windows of" not in refused.output  # refused before any scoring


def test_tuning_storage_that_cannot_keep_a_study_or_belongs_to_another_program(tmp_path):
    for url in ("sqlite:///:memory:", "sqlite:///"):
        with pytest.raises(Esc50Error, match="an in-memory database ends with the process"):
            tune.check_storage(url)
    other = tmp_path / "accounts.db"
    with sqlite3.connect(other) as connection:
        connection.execute("create table invoices (id integer)")
    before = other.read_bytes()
    with pytest.raises(Esc50Error, match=r"holds tables Optuna did not make \(invoices\)"):
        tune.check_foreign_tables(f"sqlite:///{other}")
    assert other.read_bytes() == before


# 2. Never killed for memory, never hung --------------------------------------------------------

@pytest.mark.parametrize("rate,target", [(44_099, 48_000), (22_051, 48_000), (8_003, 44_100),
                                         (8_003, 48_000), (48_000, 22_050)])
def test_any_two_rates_resample_in_a_bounded_kernel_and_keep_the_pitch(tmp_path, rate, target):
    orig, new = resampling_ratio(rate, target)
    assert max(orig, new) <= MAX_PERIOD  # the sinc kernel holds about orig * new values
    assert abs(orig / new - rate / target) / (rate / target) < 1e-3
    path = tmp_path / "odd.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * np.arange(3 * rate) / rate), rate)
    out = torch.cat(list(read_mono(path, target, block_seconds=1.0))).numpy()
    assert abs(len(out) - 3 * target) <= 3 * target * 1e-3 + 2  # the same 3 seconds
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    assert abs(np.argmax(spectrum) * target / len(out) - 440) < 1.0


def test_hops_below_the_floor_or_beyond_a_window_are_refused(run, tmp_path):
    _, run_dir = run
    path = tmp_path / "ten.wav"
    sf.write(path, tone(FREQS[0], 10.0), SR)
    model = esc50.load(run_dir)
    for hop in (1e-9, 0.0, float("inf"), float("nan"), 1.5):
        with pytest.raises(Esc50Error, match="must be between 0.01 s and the window, 1 s"):
            model.timeline(path, hop=hop)
        result = CliRunner().invoke(cli, ["predict", str(run_dir), str(path), "--timeline",
                                          "--hop", str(hop)])
        assert result.exit_code == 1 and result.output.count("\n") == 1
        exported = CliRunner().invoke(cli, ["export", str(run_dir), "--format", "torchscript",
                                            "--out", str(tmp_path / "m.pt"), "--hop", str(hop)])
        assert exported.exit_code == 1 and "--hop" in exported.output
    assert len(model.timeline(path, hop=0.01).windows) == 901


def wav_header(rate: int = SR, chunks: bytes = b"") -> bytes:
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16)
    return b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + fmt + chunks


class Served(io.RawIOBase):
    """A stream of ``first`` and then ``then`` over and over, which counts the bytes it serves
    and fails the test past ``limit`` of them (a reader that would read without end)."""

    def __init__(self, first: bytes, then: bytes, limit: int = 4 * HEADER_BYTES) -> None:
        self.pending, self.then, self.limit, self.served = first, then, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        assert self.served < self.limit, f"{self.served:,} bytes read, no end in sight"
        while len(self.pending) < len(buffer):
            self.pending += self.then
        count = len(buffer)
        buffer[:count], self.pending = self.pending[:count], self.pending[count:]
        self.served += count
        return count


def test_a_wav_stream_whose_header_claims_gigabytes_is_refused_at_once():
    stream = Served(wav_header(chunks=struct.pack("<4sI", b"LIST", 4_000_000_000)), b"\0" * 4096)
    with pytest.raises(Esc50Error, match="'LIST' chunk claims 4,000,000,000 bytes before its "
                                         "audio"):
        next(stream_blocks(stream))
    assert stream.served <= READ_BYTES  # refused within the first read, nothing of the chunk

    junk = struct.pack("<4sI", b"JUNK", 1 << 16) + b"\0" * (1 << 16)
    endless = Served(wav_header(), junk)  # metadata chunks for ever, never the audio
    with pytest.raises(Esc50Error, match=f"at most {HEADER_BYTES:,} before the audio"):
        next(stream_blocks(endless))
    assert endless.served <= HEADER_BYTES + READ_BYTES  # its header budget, then one read ahead


def test_a_large_legal_header_chunk_is_read_in_linear_time():
    samples = (tone(FREQS[0], 1.0) * 32767).astype("<i2").tobytes()
    chunk = struct.pack("<4sI", b"iXML", 8 << 20) + b" " * (8 << 20)
    stream = wav_header(chunks=chunk + struct.pack("<4sI", b"data", len(samples)) + samples)
    blocks = list(stream_blocks(io.BytesIO(stream)))
    assert sum(len(b) for b, _ in blocks) == SR and blocks[0][1] == SR


# 3. One line, not a traceback -----------------------------------------------------------------

def test_closed_standard_input_is_one_line(run, monkeypatch):
    _, run_dir = run
    monkeypatch.setattr("sys.stdin", None)
    model = esc50.load(run_dir)
    with pytest.raises(Esc50Error, match="standard input is closed"):
        model.timeline("-")


@pytest.mark.parametrize("content,message", [
    ("[1, 2]", "holds a JSON list"), ('{"epochs": 4}', "lacks final_val_accuracy"),
    ('{"final_val_accuracy": "high"}', "holds the accuracy 'high'"),
    ('{"final_val_accuracy": NaN}', "holds the accuracy nan"), ("", "is damaged"),
    ('{"final_val_accuracy": 7.5}', "holds the accuracy 7.5, not a number between 0 and 1")])
def test_a_damaged_fold_metrics_file_is_one_line_naming_it(tmp_path, content, message):
    data = write_synthetic_dataset(tmp_path / "data", clips_per_class_per_fold=1, folds=(1, 2))
    flags = ["--data", str(data), "--output-dir", str(tmp_path / "runs"), "--epochs", "1",
             "--set", "sample_rate=8000", "--set", "plugins.logmel.n_fft=256", "--set",
             "plugins.logmel.win_length=256", "--set", "plugins.logmel.hop_length=128",
             "--no-progress", "--name", "cv"]
    assert CliRunner().invoke(cli, ["cv", *flags]).exit_code == 0
    damaged = tmp_path / "runs" / "cv" / "fold-2" / "metrics.json"
    damaged.write_text(content)
    result = CliRunner().invoke(cli, ["cv", *flags])
    assert result.exit_code == 1 and str(damaged) in result.output and message in result.output
    assert "Traceback" not in result.output


def test_tuning_storage_errors_are_one_line(tmp_path):
    import optuna

    newer = tmp_path / "newer.db"
    optuna.create_study(study_name="s", storage=f"sqlite:///{newer}")
    with sqlite3.connect(newer) as connection:
        connection.execute("update alembic_version set version_num = 'v99.0.0.a'")
    for url in (f"sqlite:///{newer}", "redis://localhost:6379/0",
                f"sqlite:///{tmp_path / 'x.db'}?timeout=abc"):
        search = types.SimpleNamespace(storage=url, name="s", base=TaskConfig(), outer=1,
                                       inner=[2])
        with pytest.raises(Esc50Error, match=f"^--storage {url.replace('?', '.')}: "):
            tune.open_study(search)


def test_the_api_refuses_meta_tensors_and_unknown_checkpoints_in_one_line(run):
    _, run_dir = run
    model = esc50.load(run_dir)
    with pytest.raises(Esc50Error, match="a tensor on the meta device holds no values"):
        model.predict(torch.zeros(SR, device="meta"), sample_rate=SR)
    with pytest.raises(Esc50Error, match="--checkpoint 'middle' must be one of last, best"):
        esc50.load(run_dir, checkpoint="middle")


# 4. Not silently wrong ------------------------------------------------------------------------

def test_integer_samples_are_scaled_by_their_type(run):
    _, run_dir = run
    model = esc50.load(run_dir)
    wave = tone(FREQS[2])
    as_float = model.predict(wave, sample_rate=SR)
    as_int16 = model.predict((wave * 32767).astype(np.int16), sample_rate=SR)
    assert [c for c, _ in as_int16] == [c for c, _ in as_float]
    np.testing.assert_allclose([p for _, p in as_int16], [p for _, p in as_float], atol=1e-3)
    with pytest.raises(Esc50Error, match="samples of type bool are not audio"):
        model.predict(wave > 0, sample_rate=SR)


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_int8_calibration_uses_only_clips_with_the_recorded_content(run, tmp_path):
    pytest.importorskip("onnxruntime")
    data, run_dir = run
    other = tmp_path / "other"
    shutil.copytree(data, other)
    for path in sorted(other.glob("[23]-*.wav"))[:6]:  # same names, other audio
        sf.write(path, tone(5000.0, seed=7), SR)
    noted: list[str] = []
    esc50.load(run_dir).export("onnx", tmp_path / "m.onnx", quantize="int8", data=other,
                               log=noted.append)
    assert any("int8 calibration on 18 of the 24 training clips" in n and "6 with other "
               "content" in n for n in noted), noted
    side = json.loads((tmp_path / "m.onnx.json").read_text())
    assert side["calibration"].startswith("18 clips the model(s) trained on")


def cv_folder(tmp_path: Path) -> tuple[Path, Path]:
    data = write_synthetic_dataset(tmp_path / "data", clips_per_class_per_fold=2)
    result = CliRunner().invoke(cli, [
        "cv", "--data", str(data), "--output-dir", str(tmp_path / "runs"), "--name", "cv",
        "--epochs", "1", "--set", "sample_rate=8000", "--set", "plugins.logmel.n_fft=256",
        "--set", "plugins.logmel.win_length=256", "--set", "plugins.logmel.hop_length=128",
        "--no-progress"])
    assert result.exit_code == 0, result.output
    return data, tmp_path / "runs" / "cv"


def test_an_ensemble_checks_its_members_against_its_cross_validation(tmp_path, run):
    _, root = cv_folder(tmp_path)
    assert len(esc50.load(root).runs) == 3
    shutil.copytree(run[1], root / "fold-9")  # a foreign run copied in
    with pytest.raises(Esc50Error, match=r"fold-9 is not one of the folds .*cv.json lists "
                                         r"\(1, 2, 3\)"):
        esc50.load(root)
    shutil.rmtree(root / "fold-9")
    shutil.move(root / "fold-2", tmp_path / "fold-2")
    (root / "fold-2").symlink_to(root / "fold-3")  # a fold that is another one
    with pytest.raises(Esc50Error, match="fold-3 holds the same model as .*fold-2"):
        esc50.load(root)
    (root / "fold-2").unlink()
    with pytest.raises(Esc50Error, match=r"fold-2 is missing, but .*cv.json lists fold 2"):
        esc50.load(root)
    shutil.move(tmp_path / "fold-2", root / "fold-2")
    (root / "fold-1" / "last.pt").unlink()
    with pytest.raises(Esc50Error, match="fold-1 has no last.pt"):
        esc50.load(root)


def test_a_nan_step_never_reaches_the_weights(synthetic_data, tmp_path):
    """The augmentation of tests/test_contracts.py that turns a clip of a batch to NaN now and
    then: the step it spoils is skipped, so the weights stay finite while the stage is named."""
    @hookimpl(specname="register_augmentations")
    def hook(register):
        register(RareNaN)

    registry = load_registry()
    registry.register_plugin(types.SimpleNamespace(__name__="n5", register_augmentations=hook),
                             "odd")
    config = small_config(synthetic_data, output_dir=str(tmp_path), run_name="r", batch_size=4,
                          augs=["odd.rarenan"], num_epochs=2)
    trainer = Trainer(config, registry, log=lambda _: None)
    with pytest.raises(Esc50Error, match=r"the loss became nan .*; augmentation odd.rarenan"):
        trainer.fit()
    assert all(torch.isfinite(p).all() for p in trainer.state.model.parameters())
    assert all(torch.isfinite(t).all() for t in trainer.state.scored_model.state_dict().values()
               if t.is_floating_point())


def test_an_export_of_a_bf16_run_says_it_computes_in_float32(run, tmp_path, monkeypatch):
    _, run_dir = run
    model = esc50.load(run_dir)
    member = model.runs[0].member
    monkeypatch.setattr(model.runs[0], "member", dataclasses.replace(member, scoring=Scoring(
        member.scoring.batch, bf16=True)))
    _, side = model.export("torchscript", tmp_path / "m.pt")
    assert "this file computes in float32" in json.loads(side.read_text())["numerics"]


# 5. Smaller -----------------------------------------------------------------------------------

@pytest.mark.parametrize("flags,message", [
    (["--timeline", "--hop", "0"], "--hop 0.0 must be between"),
    (["--timeline", "--min-prob", "1.5"], "--min-prob 1.5 must be between 0 and 1"),
    (["--channels", "0"], "--channels 0 must be at least 1"),
    (["--rate", "5"], "--rate 5 must be a sample rate audio can have")])
def test_options_are_checked_once_before_any_input_as_errors(run, tmp_path, flags, message):
    _, run_dir = run
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"{k}.wav")
        sf.write(paths[-1], tone(FREQS[k]), SR)
    result = CliRunner().invoke(cli, ["predict", str(run_dir), *map(str, paths), *flags])
    assert result.exit_code == 1 and result.output == f"Error: {message}" + \
        result.output.split(message, 1)[1]
    assert result.output.count("\n") == 1


def test_raw_pcm_without_a_rate_is_an_error(run):
    _, run_dir = run
    result = CliRunner().invoke(cli, ["predict", str(run_dir), "-"], input=b"\x01\x02" * 8000)
    assert result.exit_code == 1 and "error: standard input: not a WAV stream" in result.output
    assert "warning" not in result.output


def test_int8_without_onnxruntime_fails_before_exporting(run, tmp_path, monkeypatch):
    _, run_dir = run
    import importlib.util

    from esc50.commands import export

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))

    def exported_too_soon(*args, **kwargs):
        raise AssertionError("the model was exported before onnxruntime was looked for")
    monkeypatch.setattr(export, "exported_bytes", exported_too_soon)
    with pytest.raises(Esc50Error, match="--quantize int8 needs onnxruntime"):
        esc50.load(run_dir).export("onnx", tmp_path / "m.onnx", quantize="int8")
    assert not (tmp_path / "m.onnx").exists()


def test_a_folder_given_to_timeline_is_named_as_a_folder(run, tmp_path):
    _, run_dir = run
    sf.write(tmp_path / "a.wav", tone(FREQS[0]), SR)
    with pytest.raises(Esc50Error, match="is a folder: a timeline is of one recording"):
        esc50.load(run_dir).timeline(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(Esc50Error, match="the folder holds no audio files"):
        esc50.load(run_dir).timeline(tmp_path / "empty")


def test_hours_of_silence_are_refused_before_any_window_is_scored(run, tmp_path, monkeypatch):
    _, run_dir = run
    path = tmp_path / "silence.wav"
    with sf.SoundFile(path, "w", SR, 1, "PCM_16") as out:
        for _ in range(60):  # an hour at 8 kHz, written a minute at a time
            out.write(np.zeros(60 * SR, np.int16))
    model = esc50.load(run_dir)
    scored = []
    monkeypatch.setattr("esc50.commands.predict.mean_probabilities",
                        lambda *args: scored.append(1))
    with pytest.raises(Esc50Error, match="the audio is all silence"):
        model.timeline(path)
    assert scored == []


def test_timeline_json_names_the_class_one_way(run, tmp_path):
    _, run_dir = run
    path = tmp_path / "two.wav"
    sf.write(path, np.concatenate([tone(FREQS[0], 2.0), tone(FREQS[3], 2.0)]), SR)
    [result] = json.loads(CliRunner().invoke(cli, ["predict", str(run_dir), str(path),
                                                   "--timeline", "--json"]).output)
    assert {"class", "probability"} == set(result["windows"][0]["top"][0])
    assert "class" in result["segments"][0] and "label" not in result["segments"][0]


def test_showing_a_study_that_never_ran_or_is_not_esc50s_says_so(tmp_path):
    import optuna

    result = CliRunner().invoke(cli, ["tune", "--name", "never", "--output-dir",
                                      str(tmp_path), "--show"])
    assert result.exit_code == 1 and "no study 'never' in" in result.output \
        and "start it with esc50 tune --name never" in result.output
    (tmp_path / "other").mkdir()
    optuna.create_study(study_name="other", storage=f"sqlite:///{tmp_path / 'other' / 'study.db'}")
    result = CliRunner().invoke(cli, ["tune", "--name", "other", "--output-dir",
                                      str(tmp_path), "--final"])
    assert result.exit_code == 1 and "records no esc50 settings" in result.output
