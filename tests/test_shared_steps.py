"""esc50 analyze's shared pass: a model that pools steps along time (``step_embeddings`` and
``pool_steps``: plugins.rescnn, the shipped esc50-rescnn) computes its steps once over a stretch
of consecutive windows and pools each window from them, about half the work of scoring each
window alone at the default half-overlapping windows, with the same labels on real audio;
any other model scores each window alone either way."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import esc50
from esc50 import Esc50Error, hookimpl
from esc50.core.data.audio import load_clip
from esc50.core.data.stream import AudioInput
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.scoring import window_probabilities
from esc50.plugins.models.rescnn import ResCNN
from esc50.testing import check_model
from tests.conftest import FREQS, SR, tone, trained_tone_run

RATE = 44_100
CLIPS = 8  # 40 s: 15 windows of 5 s every 2.5 s


@pytest.fixture(scope="module")
def shipped():
    return esc50.load("esc50-rescnn", warn=lambda _: None)


@pytest.fixture
def soundscape(real_data, tmp_path) -> tuple[Path, list[str]]:
    """Eight real ESC-50 clips of eight classes one after another (a 44.1 kHz WAV), and their
    classes."""
    with (real_data / "meta" / "esc50.csv").open() as handle:
        rows, seen = [], set()
        for row in csv.DictReader(handle):
            if row["fold"] == "2" and row["category"] not in seen and len(rows) < CLIPS:
                rows.append(row)
                seen.add(row["category"])
    audio = torch.cat([load_clip(real_data / "audio" / r["filename"], RATE, 5 * RATE)[0]
                       for r in rows])
    path = tmp_path / "soundscape" / "site" / "walk.wav"
    path.parent.mkdir(parents=True)
    sf.write(path, audio.numpy(), RATE, subtype="PCM_16")
    return path, [r["category"] for r in rows]


def frames_through(model: torch.nn.Module) -> tuple[list[int], object]:
    """A counter of the feature frames (batch rows x frames) the model's first layer sees."""
    seen: list[int] = []
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    return seen, first.register_forward_hook(
        lambda module, args, out: seen.append(args[0].shape[0] * args[0].shape[-1]))


def test_windows_pooled_from_a_shared_pass_label_real_audio_as_windows_scored_alone(
        shipped, soundscape):
    path, classes = soundscape
    inputs = AudioInput(shipped.sample_rate)
    timelines, work = {}, {}
    for share in (False, True):
        seen, hook = frames_through(shipped.classifier.model)
        timelines[share] = shipped.timeline_of(inputs, path, share_steps=share)
        hook.remove()
        work[share] = sum(seen)
    alone, shared = timelines[False], timelines[True]
    assert [(w.start, w.end) for w in shared.windows] == [(w.start, w.end) for w in alone.windows]
    assert len(alone.windows) == 2 * CLIPS - 1
    assert work[True] < 0.65 * work[False]  # about half the frames go through the network
    top_alone, top_shared = (t.probabilities.argmax(axis=1) for t in (alone, shared))
    assert (top_alone == top_shared).mean() >= 0.8
    assert np.abs(alone.probabilities - shared.probabilities).mean() < 0.05
    # the windows that cover one clip each: labelled as often right either way
    names = shipped.class_names
    right = {share: sum(names[t.probabilities[2 * k].argmax()] == c
                        for k, c in enumerate(classes))
             for share, t in timelines.items()}
    assert right[True] >= right[False] - 1 and right[False] >= CLIPS - 2


def test_analyze_pools_by_default_and_each_window_scores_as_predict_does(shipped, soundscape,
                                                                         tmp_path):
    path, _ = soundscape
    alone = shipped.timeline(path)
    for each_window in (False, True):
        out = tmp_path / f"out-{each_window}"
        summary = esc50.analyze("esc50-rescnn", path.parent, out, formats=["json"],
                                each_window=each_window, embeddings=True, log=lambda _: None,
                                progress=False)
        assert summary["done"] == 1
        windows = json.loads((out / "walk.wav.json").read_text())["windows"]
        assert len(windows) == len(alone.windows)
        embeddings = np.load(out / "walk.wav.embeddings.npy")
        assert embeddings.shape[0] == len(windows)  # one embedding a window either way
        same = [w["top"][0]["probability"] == pytest.approx(a.top[0][1], abs=1e-6)
                and w["top"][0]["class"] == a.top[0][0]
                for w, a in zip(windows, alone.windows)]
        assert all(same) if each_window else not all(same)
    settings = json.loads((tmp_path / "out-True" / ".esc50-analyze" / "settings.json")
                          .read_text())
    assert settings["each_window"] is True  # a tree never mixes the two


def test_a_model_without_steps_scores_each_window_alone_either_way(tmp_path):
    run_dir = trained_tone_run(tmp_path, num_epochs=1)  # a CRNN: no step_embeddings
    model = esc50.load(run_dir, warn=lambda _: None)
    path = tmp_path / "tones.wav"
    sf.write(path, np.concatenate([tone(f, 1.0, seed=k) for k, f in enumerate(FREQS)]), SR)
    inputs = AudioInput(SR)
    alone = model.timeline_of(inputs, path, share_steps=False).probabilities
    shared = model.timeline_of(inputs, path, share_steps=True).probabilities
    assert np.array_equal(alone, shared)


def test_steps_of_the_wrong_shape_are_one_line_naming_the_model(shipped, monkeypatch):
    model = shipped.classifier.model
    monkeypatch.setattr(model, "step_embeddings",
                        lambda features, lengths: (features, lengths))  # still 4-D
    span = torch.zeros(3 * shipped.config.length_wav)
    with pytest.raises(Esc50Error, match=r"^model ResCNN: step_embeddings\(\) gave \(1, 1, 64, "
                                         r"\d+\) .*expected \[1, dimensions, steps\]"):
        window_probabilities(shipped.members, span, [0, 1000], shipped.config.length_wav)


class MaxOnly(ResCNN):
    """Pools its steps by their max alone, while its forward adds the mean."""

    name = "maxonly"

    def pool_steps(self, steps, lengths):
        return self.classifier(steps.amax(dim=-1))

    def forward(self, features, frame_lengths):
        return super().pool_steps(*self.step_embeddings(features, frame_lengths))


@hookimpl
def register_models(register):
    register(MaxOnly)


def test_check_model_holds_a_model_to_pooling_its_steps_as_its_forward_does():
    registry = load_registry()
    registry.register_plugin(__import__(__name__, fromlist=["MaxOnly"]), "split",
                             package="tests", version="1.0")
    check_model("plugins.rescnn", registry, **{"plugins.rescnn.widths": [8, 16]})
    with pytest.raises(Esc50Error, match=r"^model split.maxonly: pool_steps\(step_embeddings"
                                         r"\(...\)\) differs from the model's forward by"):
        check_model("split.maxonly", registry, **{"split.maxonly.widths": [8, 16]})


def test_a_tree_from_before_the_setting_continues_as_it_was_made(soundscape, tmp_path):
    path, _ = soundscape
    out = tmp_path / "out"
    esc50.analyze("esc50-rescnn", path.parent, out, each_window=True, log=lambda _: None,
                  progress=False)
    settings = out / ".esc50-analyze" / "settings.json"
    recorded = json.loads(settings.read_text())
    del recorded["each_window"]  # as a tree made before the setting was recorded
    settings.write_text(json.dumps(recorded))
    with pytest.raises(Esc50Error, match=r"other settings \(each_window\)"):
        esc50.analyze("esc50-rescnn", path.parent, out, log=lambda _: None, progress=False)
    lines = []
    summary = esc50.analyze("esc50-rescnn", path.parent, out, each_window=True,
                            log=lines.append, progress=False)
    assert summary["done"] == 1 and any("1 already done; analysing 0" in line for line in lines)
