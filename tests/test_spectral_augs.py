"""The power-stage augmentations: what each does to real spectrograms, checked against the
waveform augmentation it stands for, featurized by the real log-mel featurizer."""

import json
import math

import pytest
import soundfile as sf
import torch

from esc50.core.config import TaskConfig
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.trainer import Trainer
from esc50.plugins.augs.spectral import band_centres
from tests.conftest import small_config, write_synthetic_dataset

SR = 16000
CONFIG = TaskConfig().override(sample_rate=SR, length_wav=2 * SR, options={
    "plugins.logmel": {"n_fft": 512, "win_length": 512, "hop_length": 128, "n_mels": 64}})
SPEC_AUGS = ["spec_gaussian", "spec_time_stretch", "spec_pitch_shift", "spec_volume",
             "spec_noise"]
REGISTRY = load_registry()
FEATURIZER = REGISTRY.create("featurizer", "plugins.logmel", CONFIG)


def make(spec, featurizer=FEATURIZER):
    aug = REGISTRY.create("augmentation", spec, CONFIG)
    aug.attach(featurizer)
    return aug


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def sine(freq, seconds=2.0, amplitude=0.3, start=0.0, stop=None):
    t = torch.arange(int(seconds * SR)) / SR
    wav = amplitude * torch.sin(2 * torch.pi * freq * t)
    stop = seconds if stop is None else stop
    return wav * ((t >= start) & (t < stop))


def power(wav):
    return FEATURIZER.power(wav)


def active_frames(p, threshold_db=-30.0):
    """Frames of ``p`` [C, F, T] whose power is within threshold_db of the loudest frame."""
    energy = p.sum(dim=(0, 1))
    return int((10 * torch.log10(energy / energy.max() + 1e-30) > threshold_db).sum())


def peak_band_frequency(p):
    """Power-weighted centre frequency (Hz) of the three strongest bands around the peak, over
    the whole clip."""
    bands = p.sum(dim=(0, 2))
    k = int(bands.argmax())
    window = slice(max(k - 1, 0), k + 2)
    centres = band_centres(FEATURIZER)
    return float((centres[window] * bands[window]).sum() / bands[window].sum())


def test_spec_volume_is_exactly_the_gained_waveform():
    wav = torch.stack([sine(440), sine(1000, amplitude=0.1)])
    out = make("spec_volume:min_gain_db=-12,max_gain_db=-12,p=1")(power(wav), gen())
    expected = power(wav * 10 ** (-12 / 20))
    assert torch.allclose(out, expected, rtol=1e-4, atol=1e-6 * float(expected.max()))


@pytest.mark.parametrize("rate", [0.8, 2.0])
def test_spec_time_stretch_changes_a_burst_like_the_waveform_version(rate):
    burst = sine(1000, start=0.2, stop=0.8)[None]  # 0.6 s of tone
    spec = make(f"spec_time_stretch:min_rate={rate},max_rate={rate},p=1")(power(burst), gen())
    wave = power(REGISTRY.create("augmentation",
                                 f"time_stretch:min_rate={rate},max_rate={rate},p=1",
                                 CONFIG)(burst, gen()))
    before, after = active_frames(power(burst)[0]), active_frames(spec[0])
    assert after == pytest.approx(before / rate, rel=0.08)
    assert after == pytest.approx(active_frames(wave[0]), abs=3)
    assert spec.shape == power(burst).shape


@pytest.mark.parametrize("semitones", [-5.0, 5.0])
def test_spec_pitch_shift_moves_a_tone_like_the_waveform_version(semitones):
    tone = sine(1000)[None]
    spec = make(f"spec_pitch_shift:min_semitones={semitones},max_semitones={semitones},p=1")(
        power(tone), gen())
    wave = power(REGISTRY.create(
        "augmentation", f"pitch_shift:min_semitones={semitones},max_semitones={semitones},p=1",
        CONFIG)(tone, gen()))
    expected = 1000 * 2 ** (semitones / 12)
    assert peak_band_frequency(spec[0]) == pytest.approx(expected, rel=0.03)
    assert peak_band_frequency(spec[0]) == pytest.approx(peak_band_frequency(wave[0]), rel=0.03)


def test_spec_gaussian_adds_the_band_power_of_real_white_noise():
    std = 0.05
    silence = torch.zeros(1, 16 * SR)
    ours = make(f"spec_gaussian:min_std={std},max_std={std},p=1")(power(silence), gen())[0, 0]
    real = power(std * torch.randn(1, 16 * SR, generator=gen(1)))[0, 0]
    inner = slice(2, -2)  # the edge frames of a centred STFT see reflected padding
    mean_ours, mean_real = ours[:, inner].mean(1), real[:, inner].mean(1)
    assert torch.allclose(mean_ours, mean_real, rtol=0.1)
    spread_ours = ours[:, inner].log().std(1)  # fluctuation per band, in log power
    spread_real = real[:, inner].log().std(1)
    assert torch.allclose(spread_ours, spread_real, rtol=0.25)


def test_spec_noise_mixes_at_the_drawn_snr():
    clean = power(torch.stack([sine(440), sine(2000, amplitude=0.05)]))
    for snr in (0.0, 10.0, 30.0):
        out = make(f"spec_noise:min_snr_db={snr},max_snr_db={snr},p=1")(clean, gen())
        measured = 10 * torch.log10(clean.sum(dim=(1, 2, 3)) / (out - clean).sum(dim=(1, 2, 3)))
        assert torch.allclose(measured, torch.full((2,), snr), atol=1e-3)


def test_spec_noise_colour_follows_f_decay():
    silence_plus = torch.full((1, 1, 64, 100), 1e-6)

    def band_db(decay):
        out = make(f"spec_noise:min_f_decay={decay},max_f_decay={decay},min_snr_db=-60,"
                   "max_snr_db=-60,p=1")(silence_plus, gen())  # the noise dominates
        return 10 * torch.log10(out[0, 0].mean(1))

    tilt = band_db(-6.0) - band_db(0.0)  # the filterbank's own shape cancels out
    centres = band_centres(FEATURIZER)
    low, high = 20, 60
    octaves = math.log2(float(centres[high] / centres[low]))
    measured = float(tilt[high] - tilt[low]) / octaves
    assert measured == pytest.approx(-6.0, abs=0.5)


def test_spec_noise_from_a_folder_of_recordings(tmp_path):
    noise = 0.1 * torch.randn(3 * SR, generator=gen(2))
    sf.write(tmp_path / "hum.wav", noise.numpy(), SR)
    aug = make(f"spec_noise:path={tmp_path},min_snr_db=5,max_snr_db=5,p=1")
    clean = power(sine(440)[None])
    out = aug(clean, gen())
    added = (out - clean)[0, 0]
    recording = power(noise[None])[0, 0]
    # the added power has the recording's spectral shape (a window of its frames, rescaled)
    shape_added = added.mean(1) / added.mean()
    shape_recording = recording.mean(1) / recording.mean()
    assert torch.allclose(shape_added[4:], shape_recording[4:], rtol=0.25)


@pytest.mark.parametrize("name", SPEC_AUGS)
def test_p_zero_is_the_identity_and_draws_follow_the_generator(name):
    clean = power(torch.stack([sine(440), sine(1500, amplitude=0.1)]))
    assert torch.equal(make(f"{name}:p=0")(clean, gen()), clean)
    first, again = make(f"{name}:p=1")(clean, gen(5)), make(f"{name}:p=1")(clean, gen(5))
    assert torch.equal(first, again) and not torch.equal(first, clean)


def test_a_featurizer_without_a_power_stage_is_refused():
    waveform = REGISTRY.create("featurizer", "plugins.waveform", CONFIG)
    with pytest.raises(Esc50Error, match="augmentation spec_noise works on a power spectrogram, "
                                         "which featurizer waveform does not have"):
        make("spec_noise", featurizer=waveform)


@pytest.mark.slow
def test_training_with_the_report_policy_in_the_power_domain(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", clips_per_class_per_fold=4)
    augs = ["spec_gaussian:p=1", "spec_time_stretch:p=1",
            "spec_pitch_shift:min_semitones=-2,max_semitones=2,p=1", "spec_volume:p=1",
            "spec_noise:min_snr_db=10,max_snr_db=30,p=1"]
    config = small_config(data, num_epochs=12, augs=augs, aug_policy="one-of",
                          output_dir=str(tmp_path / "runs"), run_name="spec")
    trainer = Trainer(config, REGISTRY, log=lambda _: None)
    assert trainer.data.cache is not None  # featurized once, augmented every epoch
    metrics = json.loads((trainer.fit() / "metrics.json").read_text())
    assert metrics["final_val_accuracy"] >= 0.85  # chance is 0.25
