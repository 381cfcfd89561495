"""evaluate and predict on a trained run: metrics, odd input files, a copied run directory."""

import csv
import io
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from esc50 import load
from esc50.cli.main import cli
from esc50.core.training.classifier import load_classifier
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.trainer import Trainer
from tests.conftest import (FREQS, SR, small_config, tone, unlistable,
                            write_synthetic_dataset)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A CRNN trained on the synthetic tone task (4 classes, one tone each)."""
    tmp = tmp_path_factory.mktemp("run")
    data = write_synthetic_dataset(tmp / "data", clips_per_class_per_fold=4)
    config = small_config(data, num_epochs=12, output_dir=str(tmp / "runs"), run_name="tones")
    run_dir = Trainer(config, load_registry(), log=lambda _: None).fit()
    return data, run_dir


def test_evaluate_reports_metrics_of_the_validation_split(trained):
    data, run_dir = trained
    result = CliRunner().invoke(cli, ["evaluate", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["selection"] == "the run's validation split (validation fold 1)"
    assert report["clips"] == 16 and report["checkpoint"].endswith("last.pt")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert report["epoch"] == 12  # the final epoch, not one chosen on these clips
    assert report["accuracy"] == metrics["final_val_accuracy"]  # one scoring path
    best = json.loads(CliRunner().invoke(cli, ["evaluate", str(run_dir), "--json",
                                               "--checkpoint", "best"]).output)
    selected = metrics["selected_on_validation"]
    assert best["epoch"] == selected["epoch"] and best["checkpoint"].endswith("best.pt")
    assert best["accuracy"] == pytest.approx(selected["val_accuracy"])
    matrix = np.array(report["confusion_matrix"])
    assert matrix.sum() == 16 and np.trace(matrix) == round(report["accuracy"] * 16)
    assert [row["support"] for row in report["per_class"]] == [4, 4, 4, 4]


def test_evaluate_other_fold_and_missing_fold(trained):
    data, run_dir = trained
    refused = CliRunner().invoke(cli, ["evaluate", str(run_dir / "best.pt"), "--fold", "2"])
    assert refused.exit_code == 1 and refused.output.count("\n") == 1
    assert "clips (2-" in refused.output and "a model is scored only on clips it never trained " \
        "on" in refused.output  # fold 2 trained it: its figure would be training accuracy
    result = CliRunner().invoke(cli, ["evaluate", str(run_dir / "best.pt"), "--fold", "2",
                                      "--training-clips"])
    assert result.exit_code == 0 and "fold 2 (clips the model trained on: training accuracy" \
        in result.output and "training accuracy " in result.output \
        and "training macro F1" in result.output
    result = CliRunner().invoke(cli, ["evaluate", str(run_dir), "--fold", "9"])
    assert result.exit_code == 1 and "fold 9 has no clips" in result.output


def test_predict_any_rate_length_and_channel_count(trained, tmp_path):
    _, run_dir = trained
    files = {
        "short_44k_stereo.wav": (np.stack([tone(FREQS[2], 0.4, 44100)] * 2, axis=1), 44100),
        "long_16k.flac": (tone(FREQS[0], 3.7, 16000), 16000),
        "exact_8k.ogg": (tone(FREQS[3], 1.0, SR), SR),
    }
    for name, (audio, rate) in files.items():
        sf.write(tmp_path / name, audio, rate)
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVE")
    result = CliRunner().invoke(cli, ["predict", str(run_dir), str(tmp_path), "--json",
                                      "--top-k", "2"])
    assert result.exit_code == 1  # one file could not be read; the others are still scored
    rows = {row["file"].split("/")[-1]: row for row in json.loads(result.stdout)}
    assert "cannot decode audio" in rows["broken.wav"]["error"]
    assert rows["short_44k_stereo.wav"]["top"][0]["class"] == "2"
    assert rows["long_16k.flac"]["top"][0]["class"] == "0"
    assert rows["exact_8k.ogg"]["top"][0]["class"] == "3"
    for name in files:
        probabilities = [t["probability"] for t in rows[name]["top"]]
        assert len(probabilities) == 2 and probabilities[0] >= probabilities[1]


def test_predict_on_a_folder_counts_the_files_it_leaves_out_for_their_names(trained, tmp_path):
    """A folder of phone recordings (.m4a, which libsndfile does not decode) beside WAVs: the
    WAVs were scored and the rest left out without a word. One note counts them, as analyze
    does, and names the audio esc50 cannot decode."""
    _, run_dir = trained
    sf.write(tmp_path / "tone.wav", tone(FREQS[2], 1.0, SR), SR)
    for name in ("call.m4a", "notes.txt"):
        (tmp_path / name).write_bytes(b"not audio esc50 reads")
    result = CliRunner().invoke(cli, ["predict", str(run_dir), str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert [row["file"] for row in json.loads(result.stdout)] == [str(tmp_path / "tone.wav")]
    assert (f"note: 2 files under {tmp_path} not scored, their names not those of audio esc50 "
            "decodes: .m4a 1, .txt 1 (call.m4a, notes.txt); .m4a is audio esc50 cannot decode: "
            "convert such files first (ffmpeg -i rec.m4a rec.flac)\n") in result.stderr
    said: list[str] = []
    [only] = load(run_dir, warn=said.append).predict(tmp_path)
    assert only.path == tmp_path / "tone.wav" and said == [
        line for line in result.stderr.splitlines() if line.startswith("note: ")]


def test_a_name_with_a_line_break_is_one_line_of_text_and_kept_in_csv(trained, tmp_path):
    _, run_dir = trained
    odd = tmp_path / "two\nlines.wav"
    sf.write(odd, tone(FREQS[1], 1.0, SR), SR)
    text = CliRunner().invoke(cli, ["predict", str(run_dir), str(odd)])
    assert text.exit_code == 0
    lines = text.stdout.splitlines()  # the name escaped, the tone's class first
    assert len(lines) == 1 and lines[0].startswith(f"{tmp_path}/two\\nlines.wav: 1 ")
    timeline = CliRunner().invoke(cli, ["predict", str(run_dir), str(odd), "--timeline"])
    assert timeline.exit_code == 0
    assert timeline.stdout.startswith(f"{tmp_path}/two\\nlines.wav: windows of ")
    table = CliRunner().invoke(cli, ["predict", str(run_dir), str(odd), "--csv"])
    assert [row["file"] for row in csv.DictReader(io.StringIO(table.stdout))] == [str(odd)] * 3


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without MPEG")
def test_an_mp3_without_audio_is_said_to_be_damaged_not_missing(trained, tmp_path):
    """libsndfile says "File does not exist or is not a regular file" of an MP3 it finds no
    frame in (cut short, or not MP3 at all): esc50 has checked the file, so it says that."""
    _, run_dir = trained
    sf.write(tmp_path / "whole.mp3", tone(FREQS[1], 1.0, SR), SR)
    (tmp_path / "head.mp3").write_bytes((tmp_path / "whole.mp3").read_bytes()[:200])
    (tmp_path / "text.mp3").write_text("not audio\n" * 50)
    result = CliRunner().invoke(cli, ["predict", str(run_dir), str(tmp_path), "--json"])
    rows = {row["file"].split("/")[-1]: row for row in json.loads(result.stdout)}
    assert result.exit_code == 1 and rows["whole.mp3"]["top"][0]["class"] == "1"
    for name in ("head.mp3", "text.mp3"):
        assert rows[name]["error"] == (f"{tmp_path / name}: cannot decode audio (the decoder "
                                       "found no audio frame in it: a damaged or cut file, or "
                                       "not the format its name says)")


def test_an_empty_file_and_one_of_zeros_are_said_to_be_so(trained, tmp_path):
    """A recorder that stopped before writing, or a failed copy, leaves a file of no bytes or
    of zeros: its error says that, where the decoder's words ("Format not recognised.") do not;
    the other files are scored."""
    _, run_dir = trained
    sf.write(tmp_path / "whole.wav", tone(FREQS[1], 1.0, SR), SR)
    (tmp_path / "empty.flac").write_bytes(b"")
    (tmp_path / "zeros.wav").write_bytes(bytes(10_000))
    (tmp_path / "few.ogg").write_bytes(bytes(100))
    result = CliRunner().invoke(cli, ["predict", str(run_dir), str(tmp_path), "--json"])
    rows = {row["file"].split("/")[-1]: row.get("error") for row in json.loads(result.stdout)}
    assert result.exit_code == 1 and rows.pop("whole.wav") is None
    header = "zeros where an audio header should be (a recording never written, or a copy " \
        "that failed)"
    assert rows == {
        "empty.flac": f"{tmp_path}/empty.flac: the file is empty (0 bytes): nothing was written "
                      "into it",
        "zeros.wav": f"{tmp_path}/zeros.wav: cannot decode audio: its first 4096 bytes are "
                     f"{header}",
        "few.ogg": f"{tmp_path}/few.ogg: cannot decode audio: its 100 bytes are all {header}"}


def test_a_name_no_file_system_holds_costs_only_itself(trained, tmp_path):
    _, run_dir = trained
    sf.write(tmp_path / "good.wav", tone(FREQS[2], 1.0, SR), SR)
    too_long = tmp_path / ("q" * 300 + ".wav")
    result = CliRunner().invoke(cli, ["predict", str(run_dir), str(tmp_path / "good.wav"),
                                      str(too_long), "--json"])
    rows = {row["file"]: row for row in json.loads(result.stdout)}
    assert result.exit_code == 1 and rows[str(tmp_path / "good.wav")]["top"][0]["class"] == "2"
    assert rows[str(too_long)]["error"] == f"audio file {too_long} cannot be read (File name " \
                                           "too long)"


def test_a_folder_is_walked_through_links_and_one_it_cannot_list_is_its_own_error(
        trained, tmp_path, monkeypatch):
    _, run_dir = trained
    folder, elsewhere = tmp_path / "recordings", tmp_path / "disk2"
    for path, freq in ((folder / "here.wav", FREQS[0]), (elsewhere / "there.wav", FREQS[3]),
                       (folder / "locked" / "inside.wav", FREQS[1])):
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(freq, 1.0, SR), SR)
    (folder / "linked").symlink_to(elsewhere)
    (folder / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    unlistable({folder / "locked"}, monkeypatch)
    result = CliRunner().invoke(cli, ["predict", str(run_dir), str(folder), "--json"])
    rows = {row["file"]: row for row in json.loads(result.stdout)}
    assert result.exit_code == 1 and list(rows) == [
        str(folder / n) for n in ("gone.wav", "here.wav", "linked/there.wav", "locked")]
    assert "is a broken link" in rows[str(folder / "gone.wav")]["error"]
    assert rows[str(folder / "here.wav")]["top"][0]["class"] == "0"
    assert rows[str(folder / "linked" / "there.wav")]["top"][0]["class"] == "3"
    assert rows[str(folder / "locked")]["error"] == f"{folder / 'locked'}: cannot list the " \
        "folder (Permission denied)"


def test_a_copied_run_directory_predicts_the_same(trained, tmp_path):
    _, run_dir = trained
    clip = tmp_path / "clip, take 2.wav"  # a comma in the name: the CSV quotes it
    sf.write(clip, tone(FREQS[1], 1.0, SR), SR)
    copy = shutil.copytree(run_dir, tmp_path / "elsewhere")
    outputs = [CliRunner().invoke(cli, ["predict", str(d), str(clip), "--csv"])
               for d in (run_dir, copy)]
    assert outputs[0].exit_code == 0 and outputs[0].output == outputs[1].output
    header, first, *_ = csv.reader(io.StringIO(outputs[0].output))
    assert header == ["file", "rank", "class", "probability"]
    assert first[:3] == [str(clip), "1", "1"]
    classifier, state = load_classifier(copy, load_registry())
    assert classifier.normalizer is not None and state["plugins"]["plugins.crnn"]["package"] == "esc50"


def test_a_run_whose_plugin_is_gone_names_the_package_to_install(trained, monkeypatch, tmp_path):
    from esc50.core.results.checkpoint import load_checkpoint, save_checkpoint

    _, run_dir = trained
    state = load_checkpoint(run_dir / "last.pt")
    state["plugins"]["plugins.crnn"] = {**state["plugins"]["plugins.crnn"], "version": "0.0.1"}
    save_checkpoint(state, tmp_path / "older.pt")
    warned = CliRunner().invoke(cli, ["predict", str(tmp_path / "older.pt"), str(tmp_path)])
    assert "warning: model plugins.crnn is esc50" in warned.output
    assert "the run was trained with 0.0.1" in warned.output
    state["plugins"]["plugins.crnn"] = {"kind": "model", "id": "mypkg.mymodel",
                                        "package": "mypkg", "version": "1.2"}
    save_checkpoint(state, tmp_path / "gone.pt")
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "gone.pt")])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "needs model mypkg.mymodel from mypkg 1.2, which is not installed here: pip install " \
        "'mypkg==1.2'" in result.output


@pytest.mark.parametrize("rate, target, seconds", [
    (44100, 16000, 7.3), (44100, 22050, 4.2), (48000, 44100, 5.01), (22050, 44100, 3.3),
    (16000, 48000, 2.7), (96000, 22050, 3.1), (8000, 8000, 2.0)])
def test_a_file_read_in_blocks_equals_the_file_read_whole(tmp_path, rate, target, seconds):
    """Streaming keeps memory bounded without changing the audio: every block boundary falls
    mid-file (0.37 s blocks), and the joined blocks match mixing and resampling at once."""
    import torch
    import torchaudio.functional as AF

    from esc50.core.data.audio import read_mono

    stereo = np.random.default_rng(0).uniform(-0.6, 0.6, (int(rate * seconds), 2))
    stereo[:, 1] *= 0.3  # unequal channels: a bug reading one channel would show
    sf.write(tmp_path / "a.wav", stereo.astype(np.float32), rate, subtype="FLOAT")
    whole = torch.from_numpy(stereo.astype(np.float32).mean(axis=1))
    whole = AF.resample(whole, rate, target) if rate != target else whole
    blocks = list(read_mono(tmp_path / "a.wav", target, block_seconds=0.37))
    assert len(blocks) > 5
    joined = torch.cat(blocks)
    assert joined.shape == whole.shape
    assert torch.allclose(joined, whole, atol=1e-6)


def test_every_common_pair_of_rates_resampled_block_by_block_equals_torchaudio():
    """The block resampler (short periods taken together) against torchaudio's resampling of
    the whole signal, for every pair of common rates, in blocks of 0.13 s and of 7 samples."""
    import itertools

    import torch
    import torchaudio.functional as AF

    from esc50.core.data.audio import BlockResampler, resampling_ratio

    rates = [1000, 8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 192000]
    for rate, target in itertools.product(rates, [8000, 16000, 22050, 32000, 44100, 48000]):
        wav = torch.rand(int(rate * 1.7), generator=torch.Generator().manual_seed(rate)) - 0.5
        # the periods the resampler works in (11 025 to 32 000 Hz is taken as 318:923, 7 ppm off)
        whole = AF.resample(wav, *resampling_ratio(rate, target)) if rate != target else wav
        for block in (max(1, int(rate * 0.13)), 7):
            if block == 7 and rate > 11025:
                continue  # a block of 7 samples: a few slow rates suffice
            resampler = BlockResampler(rate, target)
            pieces = [out for part in torch.split(wav, block) for out in resampler.push(part)]
            joined = torch.cat(pieces + resampler.finish())
            assert joined.shape == whole.shape, (rate, target, block)
            assert float((joined - whole).abs().max()) < 1e-6, (rate, target, block)


@pytest.mark.parametrize("total", [1, 99, 100, 101, 150, 250, 377])
def test_windows_of_a_stream_are_the_windows_of_the_whole_clip(total):
    import torch

    from esc50.commands.predict import windows

    clip = torch.arange(1, total + 1, dtype=torch.float32)
    expected_starts = list(range(0, max(total - 100, 0) + 1, 50))
    if total > 100 and expected_starts[-1] != total - 100:
        expected_starts.append(total - 100)
    for block in (1, 7, 64, 1000):
        got = list(windows(clip.split(block), 100))
        assert [int(w[0]) - 1 for _, w, _ in got] == [start for start, _, _ in got] == \
            expected_starts
        assert all(w.shape == (100,) for _, w, _ in got)
        assert [valid for _, _, valid in got] == [min(total, 100)] * len(expected_starts)
        if total < 100:  # one window, zero-padded
            assert got[0][1][total:].abs().sum() == 0


def test_a_long_file_scores_as_the_mean_over_all_its_windows(trained, tmp_path):
    """Scored in batches of windows as it streams, a long file gets the probabilities of
    scoring every window at once (the tool before streaming)."""
    import torch

    from esc50.commands.predict import WINDOW_BATCH, predict_files, probabilities
    from esc50.core.data.audio import load_clip
    from esc50.core.data.stream import AudioInput
    from esc50.core.training.scoring import Member, Scoring

    _, run_dir = trained
    classifier, state = load_classifier(run_dir, load_registry())
    members = [Member(classifier, Scoring())]
    length = state["config"]["length_wav"]
    rng = np.random.default_rng(1)
    audio = np.concatenate([tone(f, 2.0, 16000) for f in rng.choice(FREQS, 20)])  # 40 s
    sf.write(tmp_path / "long.wav", audio, 16000)
    wav, _ = load_clip(tmp_path / "long.wav", SR)
    starts = list(range(0, wav.shape[0] - length + 1, length // 2))
    starts += [wav.shape[0] - length] if starts[-1] != wav.shape[0] - length else []
    assert len(starts) > WINDOW_BATCH  # more than one batch of windows
    every = torch.stack([wav[s:s + length] for s in starts])
    with torch.no_grad():
        expected = torch.softmax(classifier(every, torch.full((len(starts),), length)), 1)
    streamed = probabilities(members, wav.split(3000), length)
    assert torch.allclose(streamed, expected.mean(0), atol=1e-5)
    [result] = predict_files(members, [str(c) for c in range(4)], AudioInput(SR), length,
                             [tmp_path / "long.wav"], top_k=4)
    assert [p for _, p in result.top] == pytest.approx(
        sorted(expected.mean(0).tolist(), reverse=True), abs=1e-4)
