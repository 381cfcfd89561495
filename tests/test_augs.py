"""What each augmentation does to real signals, and the policies that combine them."""

import numpy as np
import pytest
import torch

from esc50.core.training.stages import AugmentationPipeline
from esc50.core.config import TaskConfig
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.registry import load_registry
from tests.conftest import esc50_config

SR = 16000
CONFIG = TaskConfig().override(sample_rate=SR, length_wav=SR)
WAVE_AUGS = ["gaussian", "time_stretch", "pitch_shift", "volume", "noise"]


def make(spec, config=CONFIG):
    return load_registry().create("augmentation", spec, config)


def sine(freq, seconds=1.0, amplitude=0.3, sr=SR):
    t = torch.arange(int(seconds * sr)) / sr
    return amplitude * torch.sin(2 * torch.pi * freq * t)


def peak_frequency(wav, sr=SR):
    """Dominant frequency with parabolic interpolation of the log spectrum (Hann window)."""
    spectrum = torch.fft.rfft(wav * torch.hann_window(len(wav), periodic=False)).abs().log()
    k = int(spectrum[1:-1].argmax()) + 1
    a, b, c = spectrum[k - 1], spectrum[k], spectrum[k + 1]
    return (k + 0.5 * float(a - c) / float(a - 2 * b + c)) * sr / len(wav)


def rms(x):
    return x.pow(2).mean(-1).sqrt()


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_gaussian_noise_has_the_drawn_std():
    clean = torch.stack([sine(300 + 50 * i, amplitude=0.2) for i in range(4)])
    out = make("gaussian:min_std=0.02,max_std=0.02,p=1")(clean, gen())
    assert torch.allclose((out - clean).std(dim=1), torch.full((4,), 0.02), rtol=0.03)
    expected_snr = 10 * np.log10((0.2**2 / 2) / 0.02**2)
    measured_snr = 10 * torch.log10(rms(clean).pow(2) / (out - clean).pow(2).mean(1))
    assert torch.allclose(measured_snr, torch.full((4,), float(expected_snr)), atol=0.3)


@pytest.mark.parametrize("semitones", [-5.0, -1.0, 3.0, 7.0])
def test_pitch_shift_moves_a_sine_by_the_requested_semitones(semitones):
    aug = make(f"pitch_shift:min_semitones={semitones},max_semitones={semitones},p=1")
    clean = sine(440.0).repeat(2, 1)
    out = aug(clean, gen())
    assert out.shape == clean.shape
    expected = 440.0 * 2 ** (semitones / 12)
    for row in out:
        cents = 1200 * np.log2(peak_frequency(row[2000:-2000]) / expected)
        assert abs(cents) < 5, f"{semitones} semitones: off by {cents:.1f} cents"


def test_pitch_shift_at_44k_with_large_shifts_stays_cheap():
    config = esc50_config()  # 44.1 kHz, 5 s clips: the setting that sank torchaudio's PitchShift
    aug = make("pitch_shift:min_semitones=-12,max_semitones=12,p=1", config)
    out = aug(torch.randn(2, config.length_wav) * 0.1, gen())
    assert out.shape == (2, config.length_wav) and torch.isfinite(out).all()


@pytest.mark.parametrize("rate", [0.8, 1.25, 2.0])
def test_time_stretch_changes_a_tone_burst_duration_by_the_rate(rate):
    clip = torch.zeros(2 * SR)
    clip[SR // 4: SR // 4 + SR // 2] = sine(1000.0, seconds=0.5)  # 0.5 s burst at 0.25 s
    aug = make(f"time_stretch:min_rate={rate},max_rate={rate},p=1")
    out = aug(clip[None], gen())[0]
    assert out.shape == clip.shape  # padded or cropped back to the clip's length
    frames = out.unfold(0, 160, 160)  # 10 ms frames
    loud = (rms(frames) > 0.5 * rms(frames).max()).nonzero().squeeze(1)
    duration = (loud[-1] - loud[0] + 1).item() / 100
    assert abs(duration - 0.5 / rate) < 0.03, duration
    assert abs(loud[0].item() / 100 - 0.25 / rate) < 0.03
    assert abs(peak_frequency(out[loud[0] * 160: (loud[-1] + 1) * 160]) - 1000) < 10


def test_volume_scales_rms_by_the_gain():
    clean = torch.stack([sine(200), sine(500)])
    out = make("volume:p=1")(clean, gen())  # the report's Vol(0.25)
    assert torch.allclose(rms(out) / rms(clean), torch.full((2,), 0.25), rtol=1e-3)
    out = make("volume:min_gain_db=-6,max_gain_db=6,p=1")(clean.repeat(20, 1), gen())
    gains_db = 20 * torch.log10(rms(out) / rms(clean.repeat(20, 1)))
    assert gains_db.min() >= -6.01 and gains_db.max() <= 6.01 and gains_db.std() > 2


def test_specaugment_masks_the_requested_widths():
    aug = make("specaugment:freq_masks=1,min_freq_width=5,max_freq_width=5,time_masks=1,"
               "min_time_width=20,max_time_width=20,p=1")
    features = torch.randn(6, 1, 64, 200) + 10
    out = aug(features, gen())
    for clean, masked in zip(features, out):
        changed = masked != clean
        rows = changed.all(dim=2).squeeze(0).nonzero().squeeze(1)
        cols = changed.all(dim=1).squeeze(0).nonzero().squeeze(1)
        assert len(rows) == 5 and rows.diff().eq(1).all()
        assert len(cols) == 20 and cols.diff().eq(1).all()
        assert torch.allclose(masked[changed], clean.mean().expand(int(changed.sum())))
        assert changed.sum() == 5 * 200 + 20 * 64 - 5 * 20  # nothing outside the two bands


def test_specaugment_draws_its_masks_in_sample_like_every_augmentation():
    """The masks are per-example draws (sample), recorded in last_params: another stream of bulk
    randomness gives the same masks."""
    from esc50.core.plugin_api.contracts import Randomness

    aug = make("specaugment:freq_masks=2,time_masks=3,p=1")
    x = torch.randn(8, 1, 32, 100)
    first = aug(x, Randomness(gen(1), gen(2)))
    assert aug.last_params["freq_width"].shape == (8, 2)
    assert aug.last_params["time_start"].shape == (8, 3)
    assert torch.equal(first, aug(x, Randomness(gen(1), gen(3))))
    assert not torch.equal(first, aug(x, Randomness(gen(4), gen(2))))


def test_mixup_mixes_features_and_labels_alike():
    aug = make("mixup:alpha=0.4,p=1")
    torch.manual_seed(0)
    features = torch.randn(8, 1, 4, 10)
    targets = torch.nn.functional.one_hot(torch.arange(8), 8).float()
    mixed, mixed_targets = aug(features, targets, gen())
    assert torch.allclose(mixed_targets.sum(1), torch.ones(8))
    # Each mixed example is the same combination of the clips its label weights name.
    recombined = torch.einsum("bk,k...->b...", mixed_targets, features)
    assert torch.allclose(recombined, mixed, atol=1e-6)
    assert (mixed_targets.max(1).values < 1).sum() >= 4


@pytest.mark.parametrize("name", WAVE_AUGS)
def test_p_zero_is_the_identity(name):
    clean = torch.stack([sine(300), sine(800)])
    assert torch.equal(make(f"{name}:p=0")(clean, gen()), clean)


@pytest.mark.parametrize("name", WAVE_AUGS)
def test_draws_follow_the_generator(name):
    clean = torch.stack([sine(300 + 100 * i) for i in range(6)])
    aug = make(f"{name}:p=0.5")
    assert torch.equal(aug(clean, gen(3)), aug(clean, gen(3)))


@pytest.mark.parametrize("spec, message", [
    ("pitch_shift:min_semitones=abc", "min_semitones='abc' is not a valid float"),
    ("pitch_shift:min_semitones=5,max_semitones=-5", "min_semitones=5.0 is larger"),
    ("time_stretch:max_rate=10", "max_rate=10.0 is out of range"),
    ("gaussian:p=-0.1", "p=-0.1 is out of range"),
    ("mixup:alpha=0", "alpha=0.0 must be positive"),
    ("specaugment:freq_masks=-1", "must not be negative"),
])
def test_invalid_parameters_are_refused(spec, message):
    with pytest.raises(Esc50Error, match=message):
        make(spec)


def test_one_of_policy_gives_each_clip_at_most_one_augmentation():
    half = make("volume:min_gain_db=-6.0206,max_gain_db=-6.0206,p=1")  # x 0.5
    tenth = make("volume:min_gain_db=-20,max_gain_db=-20,p=1")  # x 0.1
    clean = sine(440).repeat(300, 1)
    lengths = torch.full((300,), clean.shape[1])
    out, _ = AugmentationPipeline([half, tenth], "one-of").transform("wave", clean, lengths, gen())
    ratios = (rms(out) / rms(clean)).round(decimals=3)
    counts = {r: int((ratios == r).sum()) for r in (1.0, 0.5, 0.1)}
    assert sum(counts.values()) == 300  # never 0.05: no clip got both
    assert all(70 < c < 130 for c in counts.values()), counts  # identity included, as the report
    both, _ = AugmentationPipeline([half, tenth], "all").transform("wave", clean, lengths, gen())
    assert torch.allclose(rms(both) / rms(clean), torch.full((300,), 0.05), rtol=1e-3)


@pytest.mark.parametrize("stage, spec", [("wave", "time_stretch"), ("power", "spec_time_stretch")])
@pytest.mark.parametrize("policy", ["all", "one-of"])
def test_time_stretch_gives_the_stretched_clip_its_valid_length(stage, spec, policy):
    """Sped up twice, a clip of L valid steps lasts L / 2: its valid length says so, so the
    model reads the stretched clip and not the silence behind it (slowed down, it may grow up to
    the padded length); clips left alone keep theirs."""
    faster = make(f"{spec}:min_rate=2,max_rate=2,p=0.5")
    slower = make(f"{spec}:min_rate=0.5,max_rate=0.5,p=1")
    size = 4000 if stage == "wave" else 400  # samples, frames
    x = torch.rand(64, size) if stage == "wave" else torch.rand(64, 1, 8, size)
    lengths = torch.tensor([size, size * 3 // 4 + 1] * 32)
    pipeline = AugmentationPipeline([faster], policy)
    _, after = pipeline.transform(stage, x, lengths, gen())
    stretched = after != lengths
    assert 0 < int(stretched.sum()) < 64
    assert torch.equal(after[stretched], torch.ceil(lengths[stretched] / 2).long())
    _, slowed = AugmentationPipeline([slower], "all").transform(stage, x, lengths, gen())
    assert slowed.tolist() == [size] * 64  # 2 L, up to the padded size


def test_an_augmentation_of_an_unknown_stage_is_refused():
    from esc50.core.plugin_api.contracts import Augmentation

    class Later(Augmentation):
        stage = "later"

    with pytest.raises(Esc50Error, match="augmentation Later has stage 'later'; expected one of "
                                         "wave, power, features, batch"):
        AugmentationPipeline([Later(p=1.0)])


def test_time_shift_rolls_or_shifts_in_silence():
    features = torch.arange(40.0).repeat(2, 1, 3, 1)  # [2, 1, 3, 40]: value = frame index
    rolled = make("time_shift:min_shift=0.25,max_shift=0.25,p=1")(features, gen())
    assert rolled[0, 0, 0].tolist() == [(t - 10) % 40 for t in range(40)]
    shifted = make("time_shift:min_shift=-0.25,max_shift=-0.25,rollover=false,p=1")(
        features, gen())
    assert shifted[1, 0, 2].tolist() == [t + 10 for t in range(30)] + [0.0] * 10
    assert torch.equal(make("time_shift:p=0")(features, gen()), features)


def test_pitch_shift_up_leaves_out_what_would_alias():
    """+7 semitones moves 6 kHz to 9 kHz, above the 8 kHz Nyquist of a 16 kHz clip: it must go,
    not fold back to 7 kHz; a 2 kHz tone in the same batch moves to 3 kHz at its level."""
    aug = make("pitch_shift:min_semitones=7,max_semitones=7,p=1")
    clean = torch.stack([sine(6000.0), sine(2000.0)])
    out = aug(clean, gen())[:, 2000:-2000]
    assert rms(out[0]) < 0.01 * rms(clean[0])
    assert abs(1200 * np.log2(peak_frequency(out[1]) / (2000.0 * 2 ** (7 / 12)))) < 5
    assert 0.8 < float(rms(out[1]) / rms(clean[1])) < 1.2


@pytest.mark.parametrize("spec", WAVE_AUGS + ["specaugment", "time_shift:min_shift=0.2"])
def test_which_examples_and_their_parameters_come_from_the_draw_generator(spec):
    """A training batch draws its per-example decisions on one generator (the host's, on a GPU)
    and its bulk noise on another: the same draws with another bulk stream transform the same
    examples; a plain generator still serves as both."""
    from esc50.core.plugin_api.contracts import Randomness

    aug = make(f"{spec}{',' if ':' in spec else ':'}p=0.5")
    x = (torch.stack([sine(300.0 + 40 * i) for i in range(16)]) if aug.stage == "wave"
         else torch.rand(16, 1, 8, 50) + 1.0)
    first = aug(x, Randomness(gen(1), gen(2)))
    chosen = aug.last_params["chosen"]
    second = aug(x, Randomness(gen(1), gen(3)))
    assert torch.equal(aug.last_params["chosen"], chosen) and 0 < int(chosen.sum()) < 16
    changed = lambda out: (out != x).flatten(1).any(1)  # noqa: E731
    assert torch.equal(changed(first), chosen) and torch.equal(changed(second), chosen)
    shared = gen(1)
    assert torch.equal(aug(x, gen(1)), aug(x, Randomness(shared, shared)))
