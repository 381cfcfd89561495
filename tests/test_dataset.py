from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from esc50.core.data.audio import load_clip, to_float, to_int16
from esc50.core.data.audiocache import AudioCache, ClipDataset
from esc50.core.data.clips import find_clips
from esc50.core.data.split import make_split
from esc50.core.errors import Esc50Error
from tests.conftest import SR, small_config, tone, write_synthetic_dataset


def test_index_from_file_names(synthetic_data):
    table = find_clips(synthetic_data, small_config(synthetic_data))
    assert len(table.clips) == 3 * 4 * 2
    assert Counter(table.folds) == {1: 8, 2: 8, 3: 8}
    assert Counter(table.labels) == {0: 6, 1: 6, 2: 6, 3: 6}
    assert table.class_names == ["0", "1", "2", "3"]


def test_index_from_meta_csv_matches_files_by_stem(tmp_path):
    root = write_synthetic_dataset(tmp_path / "d", ext="flac", with_csv=True)
    csv = root / "meta" / "esc50.csv"  # the CSV names .wav files, as the official release does
    csv.write_text(csv.read_text().replace(".flac", ".wav"))
    table = find_clips(root, small_config(root))
    assert len(table.clips) == 24 and all(c.path.suffix == ".flac" for c in table.clips)
    assert table.class_names == ["class0", "class1", "class2", "class3"]


def test_meta_csv_disagreeing_with_a_file_name_is_an_error(tmp_path):
    root = write_synthetic_dataset(tmp_path / "d", with_csv=True)
    csv = root / "meta" / "esc50.csv"
    lines = csv.read_text().splitlines()
    name, _, rest = lines[1].split(",", 2)
    lines[1] = f"{name},2,{rest}"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(Esc50Error, match="row 2 says fold 2"):
        find_clips(root, small_config(root))


def test_bad_names_labels_and_folders(tmp_path, synthetic_data):
    with pytest.raises(Esc50Error, match="does not exist"):
        find_clips(tmp_path / "nowhere", small_config(synthetic_data))
    with pytest.raises(Esc50Error, match=r"label 3 is outside 0\.\.2"):
        find_clips(synthetic_data, small_config(synthetic_data, num_classes=3))
    sf.write(synthetic_data / "1-x-A-0-extra.wav", tone(300), SR)
    with pytest.raises(Esc50Error, match="1-x-A-0-extra.wav: name does not follow"):
        find_clips(synthetic_data, small_config(synthetic_data, keyword="*"))


def test_fold_split_and_missing_fold(synthetic_data):
    config = small_config(synthetic_data, val_fold=2)
    table = find_clips(synthetic_data, config)
    train, val = make_split(table, config, {}).indices(table)
    assert {table.clips[i].fold for i in val} == {2}
    assert {table.clips[i].fold for i in train} == {1, 3}
    with pytest.raises(Esc50Error, match=r"fold 5 has no clips .*folds present: 1, 2, 3"):
        make_split(table, small_config(synthetic_data, val_fold=5), {})


def test_load_clip_mixes_resamples_and_pads(tmp_path):
    left = tone(440, seconds=0.5, sr=16000, noise=0)
    right = tone(1000, seconds=0.5, sr=16000, noise=0)  # another tone: both must be in the mix
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([left, right], axis=1), 16000)
    wav, valid = load_clip(path, SR, length=SR)
    assert wav.shape == (SR,) and valid == SR // 2
    assert torch.all(wav[valid + 50:] == 0)
    spectrum = torch.fft.rfft(wav[:valid]).abs()
    peaks = sorted(int(i) * SR / valid for i in spectrum.topk(2).indices)  # now at 8 kHz
    assert abs(peaks[0] - 440) < 5 and abs(peaks[1] - 1000) < 5
    at = [round(f * valid / SR) for f in (440, 1000)]
    assert float(spectrum[at[0]]) == pytest.approx(float(spectrum[at[1]]), rel=0.05)  # half, half
    cropped, valid = load_clip(path, SR, length=1000)
    assert cropped.shape == (1000,) and valid == 1000


def test_corrupt_empty_and_nan_files_give_one_line_errors(tmp_path):
    bad = tmp_path / "1-1-A-0.wav"
    bad.write_bytes(b"RIFF0000WAVEnot really")
    with pytest.raises(Esc50Error, match="1-1-A-0.wav: cannot decode audio"):
        load_clip(bad, SR)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(Esc50Error, match="holds no samples"):
        load_clip(empty, SR)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(100, np.nan, dtype=np.float32), SR, subtype="FLOAT")
    with pytest.raises(Esc50Error, match="NaN or infinite"):
        load_clip(nan, SR)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, dtype=np.float32), SR)
    with pytest.raises(Esc50Error, match="silent.wav: the audio is all silence"):
        load_clip(silent, SR)


def test_cache_stops_at_a_bad_clip_or_skips_it_with_a_warning(synthetic_data):
    config = small_config(synthetic_data)
    table = find_clips(synthetic_data, config)
    table.clips[3].path.write_bytes(b"not audio at all")
    sf.write(table.clips[7].path, np.zeros(SR, dtype=np.float32), SR)
    with pytest.raises(Esc50Error) as caught:
        AudioCache(table.clips, config)
    message = str(caught.value)
    assert message.startswith(f"{table.clips[3].path}: cannot decode audio")
    assert "(and 1 more bad files); --skip-bad-files" in message and "\n" not in message
    warnings = []
    cache = AudioCache(table.clips, config, skip_bad=True, warn=warnings.append)
    assert cache.bad == {3, 7} and len(warnings) == 2
    assert "all silence" in warnings[1] and str(table.clips[7].path) in warnings[1]
    assert cache.lengths[4] == SR and cache.waves[4].abs().max() > 0


def test_cache_decodes_once_into_int16(synthetic_data):
    config = small_config(synthetic_data)
    table = find_clips(synthetic_data, config)
    cache = AudioCache(table.clips, config)
    assert cache.waves.dtype == torch.int16 and cache.waves.shape == (24, SR)
    assert cache.nbytes() == 24 * SR * 2
    expected, _ = load_clip(table.clips[5].path, SR, SR)
    assert torch.allclose(to_float(cache.waves[5]), expected, atol=1 / 32768)
    dataset = ClipDataset(cache, table.labels, [5, 7])
    item = dataset[1]
    assert item["label"] == table.labels[7] and item["length"] == SR
    assert torch.equal(item["wav"], cache.waves[7])


def mapped_file(address: int) -> str | None:
    """The file mapped at ``address`` in this process (Linux), if any."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, *fields = line.split(maxsplit=5)
        low, high = (int(end, 16) for end in span.split("-"))
        if low <= address < high:
            return fields[4] if len(fields) == 5 else None
    return None


def test_disk_cache_is_reused_until_a_file_or_the_rate_changes(synthetic_data, tmp_path,
                                                                monkeypatch):
    store = tmp_path / "audio-cache"
    config = small_config(synthetic_data, audio_cache=str(store))
    table = find_clips(synthetic_data, config)
    sf.write(table.clips[7].path, np.zeros(SR, dtype=np.float32), SR)  # a silent clip
    first = AudioCache(table.clips, config, skip_bad=True, warn=lambda _: None)
    in_memory = AudioCache(table.clips, small_config(synthetic_data), skip_bad=True,
                           warn=lambda _: None)
    assert torch.equal(first.waves, in_memory.waves)
    assert first.location.parent == store and len(list(store.glob("*.npy"))) == 1
    assert not first.reused and in_memory.location is None

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the disk cache holds the clips")

    monkeypatch.setattr("esc50.core.data.audiocache.load_clip", no_decoding)
    warnings = []
    second = AudioCache(table.clips, config, skip_bad=True, warn=warnings.append)
    assert second.reused and mapped_file(second.waves.data_ptr()) == str(second.location)
    assert torch.equal(second.waves, in_memory.waves)
    assert torch.equal(second.lengths, in_memory.lengths)
    assert second.bad == {7} and "all silence" in warnings[0]  # the same report, kept
    with pytest.raises(Esc50Error, match="all silence"):
        AudioCache(table.clips, config)  # without --skip-bad-files the stored error stops it

    monkeypatch.undo()
    sf.write(table.clips[7].path, tone(440.0), SR)  # the file's content changes
    third = AudioCache(table.clips, config)
    assert not third.reused and third.bad == set() and third.waves[7].abs().max() > 0
    AudioCache(table.clips, small_config(synthetic_data, audio_cache=str(store),
                                         sample_rate=4000, length_wav=4000))
    assert len(list(store.glob("*.npy"))) == 3 and not list(store.glob(".*partial"))



@pytest.mark.parametrize("damage", ["truncated", "zeroed", "unreadable record"])
def test_a_damaged_disk_cache_is_reported_and_decoded_again(synthetic_data, tmp_path, damage):
    """A store cut short by a full disk, zeroed or with a broken record is never trained on:
    it is named in a warning, decoded again and its clips are the real ones."""
    store = tmp_path / "audio-cache"
    config = small_config(synthetic_data, audio_cache=str(store))
    table = find_clips(synthetic_data, config)
    first = AudioCache(table.clips, config)
    expected = first.waves.clone()
    del first
    [npy] = store.glob("*.npy")
    if damage == "truncated":
        npy.write_bytes(npy.read_bytes()[:-1000])
    elif damage == "zeroed":
        content = npy.read_bytes()
        header = 128  # the .npy header; the clips follow
        npy.write_bytes(content[:header] + bytes(len(content) - header))
    else:
        npy.with_suffix(".json").write_text("{")
    warnings = []
    again = AudioCache(table.clips, config, warn=warnings.append)
    assert not again.reused and torch.equal(again.waves, expected)
    assert len(warnings) == 1 and f"audio cache {npy} is damaged" in warnings[0]
    assert {"truncated": "bytes where", "zeroed": "content changed",
            "unreadable record": "is unreadable"}[damage] in warnings[0]
    assert AudioCache(table.clips, config, warn=warnings.append).reused  # repaired
    assert len(warnings) == 1

def test_int16_round_trip_clips_out_of_range_values():
    wav = torch.tensor([0.0, 0.5, -1.0, 1.5])
    assert torch.allclose(to_float(to_int16(wav)), torch.tensor([0.0, 0.5, -1.0, 32767 / 32768]))
