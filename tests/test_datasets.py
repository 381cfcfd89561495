"""The dataset plugins, each on generated clips in its own layout (and ESC-10 on the real copy):
what they read, what they leave out (and say so), and runs on them end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import esc50
from esc50.cli.main import cli
from esc50.core.config import TaskConfig
from esc50.core.data.clips import find_clips, leftovers
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.registry import load_registry
from tests.conftest import FREQS, REAL_DATA, SR, STFT_FLAGS, tone, unlistable

FAST = [*STFT_FLAGS, "--batch-size", "16", "--no-progress"]


def write_class_folders(root, takes=2, recordings=4):
    """my_sounds/<class>/... : wav, flac and ogg, nested folders, takes named <rec>_<take>."""
    for i, name in enumerate(["siren", "dog", "drill", "bird"]):
        for r in range(recordings):
            folder = root / name / ("outdoor" if r % 2 else "")
            folder.mkdir(parents=True, exist_ok=True)
            for t in range(takes):
                ext = ["wav", "flac", "ogg"][(r + t) % 3]
                sf.write(folder / f"rec{r}_{t}.{ext}",
                         tone(FREQS[i] * (1 + 0.02 * t), seed=10 * r + t), SR)
    return root


def test_folder_reads_class_folders_and_reports_what_it_leaves_out(tmp_path):
    root = write_class_folders(tmp_path / "my_sounds")
    (root / "notes.txt").write_text("not a clip")
    (root / "dog" / "README.md").write_text("about the dogs")
    (root / "dog" / "._rec0_0.wav").write_bytes(b"\x00\x05\x16\x07")  # macOS AppleDouble
    (root / "empty_class").mkdir()
    config = TaskConfig().override(dataset="plugins.folder:groups=prefix")
    table = find_clips(root, config)
    assert table.class_names == ["bird", "dog", "drill", "siren"]  # folder names, sorted
    assert len(table.clips) == 32 and not table.has_folds
    assert (table.sample_rate, table.clip_seconds) == (SR, 1.0)  # from the files
    assert {c.path.suffix for c in table.clips} == {".wav", ".flac", ".ogg"}
    takes = [c for c in table.clips if c.path.name.startswith("rec1_")
             and c.path.parts[-3] == "dog"]
    assert len({c.group for c in takes}) == 1 and len(takes) == 2  # one recording, two takes
    assert table.hidden == 1
    lines = " ".join(leftovers(table))
    assert "notes.txt (not in a class folder)" in lines and "dog/README.md (not audio)" in lines
    assert "empty_class/ (0 audio files, fewer than min_clips_per_class=1" in lines
    with pytest.raises(Esc50Error, match="option groups='name' must be one of file, folder"):
        find_clips(root, TaskConfig().override(dataset="plugins.folder:groups=name"))


def test_a_class_folder_is_read_through_links_and_one_it_cannot_list_is_an_error(
        tmp_path, monkeypatch):
    """Clips kept on another disk and linked in are read; a folder the system refuses to list
    stops the reading, naming it, rather than leaving its clips out without a word."""
    root = write_class_folders(tmp_path / "my_sounds")
    moved = tmp_path / "disk2" / "outdoor"
    moved.parent.mkdir()
    (root / "dog" / "outdoor").rename(moved)
    (root / "dog" / "outdoor").symlink_to(moved)
    (root / "dog" / "outdoor-again").symlink_to(moved)  # a second name adds no clip
    config = TaskConfig().override(dataset="plugins.folder:groups=prefix")
    table = find_clips(root, config)
    assert len(table.clips) == 32
    assert sum(c.path.parent == root / "dog" / "outdoor" for c in table.clips) == 4
    unlistable({root / "dog" / "outdoor"}, monkeypatch)
    with pytest.raises(Esc50Error) as error:
        find_clips(root, config)
    assert str(error.value) == (f"{root / 'dog' / 'outdoor'}: cannot list the folder "
                                f"(Permission denied): the clips in it would be missing; make "
                                f"it readable, or move it out of {root / 'dog'}")


@pytest.mark.slow
def test_train_predict_and_cv_on_your_own_sounds(tmp_path):
    root = write_class_folders(tmp_path / "my_sounds", takes=2, recordings=6)
    base = ["--dataset", "plugins.folder:groups=prefix", "--data", str(root), "--output-dir",
            str(tmp_path / "runs"), *FAST]
    result = CliRunner().invoke(cli, ["train", *base, "--epochs", "10", "--run-name", "mine",
                                      "--lr", "3e-3", "--set", "train_ratio=0.66"])
    assert result.exit_code == 0, result.output
    assert "grouped random split" in result.output  # no folds: split auto is random
    metrics = json.loads((tmp_path / "runs" / "mine" / "metrics.json").read_text())
    assert metrics["final_val_accuracy"] >= 0.75 and metrics["val_clips"] == 16
    sf.write(tmp_path / "new.wav", tone(FREQS[2], 3.0, 22050), 22050)
    predicted = CliRunner().invoke(cli, ["predict", str(tmp_path / "runs" / "mine"),
                                         str(tmp_path / "new.wav"), "--top-k", "1"])
    assert predicted.exit_code == 0 and predicted.output.split(": ")[1].startswith("drill")

    no_k = CliRunner().invoke(cli, ["cv", *base, "--name", "x", "--epochs", "1"])
    assert no_k.exit_code == 1 and "has no folds: give it k grouped, stratified folds with --k" \
        in no_k.output
    cv = CliRunner().invoke(cli, ["cv", *base, "--name", "k3", "--epochs", "1", "--k", "3"])
    assert cv.exit_code == 0, cv.output
    summary = json.loads((tmp_path / "runs" / "k3" / "cv.json").read_text())
    assert list(summary["folds"]) == ["1", "2", "3"]
    again = CliRunner().invoke(cli, ["cv", *base, "--name", "k3", "--epochs", "1", "--k", "3"])
    assert again.exit_code == 0 and again.output.count("already trained") == 3, again.output
    splits = [json.loads((tmp_path / "runs" / "k3" / f"fold-{k}" / "split.json").read_text())
              for k in (1, 2, 3)]
    val_sets = [set(s["val"]) for s in splits]
    assert sum(len(v) for v in val_sets) == 48 and not (val_sets[0] & val_sets[1])
    for names in val_sets:  # stratified: every class in every fold, recordings kept together
        assert {n.split("/")[0] for n in names} == {"bird", "dog", "drill", "siren"}
        recordings = {n.rsplit("_", 1)[0] for n in names}
        assert len(names) == 2 * len(recordings)  # both takes of each recording


def test_csv_manifest_with_relative_paths_folds_and_groups(tmp_path):
    clips = tmp_path / "anywhere" / "clips"
    clips.mkdir(parents=True)
    rows = ["path,label,fold,group"]
    for i, label in enumerate(["horn", "engine"]):
        for k in range(4):
            sf.write(clips / f"{label}{k}.wav", tone(FREQS[i], seed=k), SR)
            rows.append(f"anywhere/clips/{label}{k}.wav,{label},{k % 2 + 1},{label}{k // 2}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    table = find_clips(tmp_path, TaskConfig().override(dataset="plugins.csv"))
    assert table.class_names == ["engine", "horn"] and table.has_folds
    assert [(c.fold, c.target, c.group) for c in table.clips[:2]] == [(1, 1, "horn0"),
                                                                      (2, 1, "horn0")]
    (tmp_path / "labels.csv").write_text("\n".join(rows + ["anywhere/clips/horn9.wav,horn,,"]))
    with pytest.raises(Esc50Error, match="1 of 9 rows|8 of 9 rows give a fold"):
        find_clips(tmp_path, TaskConfig().override(dataset="plugins.csv"))
    (tmp_path / "m.csv").write_text("file,label\nx.wav,a\n")
    with pytest.raises(Esc50Error, match="the header lacks path"):
        find_clips(tmp_path, TaskConfig().override(dataset="plugins.csv:file=m.csv"))
    (tmp_path / "m.csv").write_text("path,label\nanywhere/clips/horn0.wav,horn\nphone.M4A,dog\n")
    with pytest.raises(Esc50Error, match=r"m.csv: row 3: phone.M4A is not an audio file "):
        find_clips(tmp_path, TaskConfig().override(dataset="plugins.csv:file=m.csv"))


def test_audio_is_told_by_its_extension_in_any_case():
    assert [esc50.named_as_audio(Path(name)) for name in
            ["a.wav", "B.FLAC", "c.Ogg", "d.opus", "e.mp3", "f.m4a", "g.raw", "h", "wav"]] == \
        [True, True, True, True, True, False, False, False, False]


def test_labels_that_differ_only_in_case_or_spaces_are_warned_about(tmp_path):
    rows = ["path,label"]
    for i, label in enumerate(["dog", "Dog", " dog ", "cat"]):  # the CSV reader strips spaces
        sf.write(tmp_path / f"{i}.wav", tone(FREQS[i], seed=i), SR)
        rows.append(f"{i}.wav,{label}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    lines = []
    table = find_clips(tmp_path, TaskConfig().override(dataset="plugins.csv"), warn=lines.append)
    assert table.class_names == ["Dog", "cat", "dog"]  # as given: the warning says what to fix
    assert lines == [f"warning: dataset plugins.csv in {tmp_path} has classes 'Dog' and 'dog', "
                     "which differ only in case or surrounding spaces: if they are one class, "
                     "give them one label"]


def write_urbansound8k(root, folds=3, per_class_per_fold=2):
    rows = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    names = ["air_conditioner", "car_horn", "children_playing"]
    for fold in range(1, folds + 1):
        (root / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
        for target, name in enumerate(names):
            for k in range(per_class_per_fold):
                fs_id = 1000 * fold + 10 * target + k
                slice_name = f"{fs_id}-{target}-0-{k}.wav"
                sf.write(root / "audio" / f"fold{fold}" / slice_name,
                         tone(FREQS[target], 4.0, 16000, seed=fs_id), 16000)
                rows.append(f"{slice_name},{fs_id},0.0,4.0,1,{fold},{target},{name}")
    (root / "metadata").mkdir()
    (root / "metadata" / "UrbanSound8K.csv").write_text("\n".join(rows) + "\n")
    return root


def test_urbansound8k_layout_trains_on_its_folds(tmp_path):
    root = write_urbansound8k(tmp_path / "UrbanSound8K")
    sf.write(root / "audio" / "fold1" / "stray.wav", tone(500.0), SR)
    table = find_clips(root, TaskConfig().override(dataset="plugins.urbansound8k"))
    assert table.class_names == ["air_conditioner", "car_horn", "children_playing"]
    assert sorted(set(table.folds)) == [1, 2, 3] and len(table.clips) == 18
    assert (table.sample_rate, table.clip_seconds) == (22_050, 4.0)
    assert any("stray.wav (not in the metadata)" in line for line in leftovers(table))
    result = CliRunner().invoke(cli, [
        "train", "--dataset", "plugins.urbansound8k", "--data", str(root), "--val-fold", "2",
        "--epochs", "1", "--output-dir", str(tmp_path / "runs"), "--run-name", "us8k",
        "--set", "sample_rate=8000", *FAST])
    assert result.exit_code == 0, result.output
    config = (tmp_path / "runs" / "us8k" / "config.toml").read_text()
    assert "num_classes = 3" in config and "length_wav = 32000" in config  # 4 s at 8 kHz
    metrics = json.loads((tmp_path / "runs" / "us8k" / "metrics.json").read_text())
    assert metrics["split"] == "validation fold 2" and metrics["val_clips"] == 6


def test_esc10_on_the_shared_copy():
    if not (REAL_DATA / "meta" / "esc50.csv").is_file():
        pytest.skip(f"real ESC-50 clips not found at {REAL_DATA}")
    table = find_clips(REAL_DATA, TaskConfig().override(dataset="plugins.esc10"),
                       load_registry())
    assert len(table.clips) == 400 and sorted(set(table.folds)) == [1, 2, 3, 4, 5]
    assert table.class_names == ["dog", "rooster", "rain", "sea_waves", "crackling_fire",
                                 "crying_baby", "sneezing", "clock_tick", "helicopter",
                                 "chainsaw"]
    assert np.bincount(table.labels).tolist() == [40] * 10
    dog = [c for c in table.clips if c.target == 0]
    assert all(c.path.stem.endswith("-0") for c in dog)  # ESC-50 target 0 is dog


def test_esc50_reader_refuses_one_clip_in_two_files_and_lists_strays(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    sf.write(root / "1-1-A-0.wav", tone(300.0), SR)
    sf.write(root / "1-2-A-1.wav", tone(700.0), SR)
    (root / "readme.txt").write_text("hello")
    table = find_clips(root, TaskConfig())
    assert table.class_names == ["0", "1"]
    assert "readme.txt (not audio)" in leftovers(table)[0]
    sf.write(root / "1-1-A-0.ogg", tone(300.0), SR)
    with pytest.raises(Esc50Error, match="1-1-A-0.ogg and .*1-1-A-0.wav|1-1-A-0.wav and "
                                         ".*1-1-A-0.ogg are one clip in two files"):
        find_clips(root, TaskConfig())
