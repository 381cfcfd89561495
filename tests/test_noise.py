import numpy as np
import pytest
import soundfile as sf
import torch

from esc50.core.config import TaskConfig
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.registry import load_registry
from tests.conftest import SR, tone

CONFIG = TaskConfig().override(sample_rate=SR, length_wav=SR)


def noise_aug(spec):
    return load_registry().create("augmentation", spec, CONFIG)


def signals(batch=8):
    return torch.stack([torch.from_numpy(tone(300 + 100 * i, amplitude=0.1, noise=0))
                        for i in range(batch)])


def measured_snr(clean, mixed):
    added = mixed - clean
    return 10 * torch.log10(clean.pow(2).mean(1) / added.pow(2).mean(1))


@pytest.mark.parametrize("snr", [0.0, 10.0, 25.0])
def test_generated_noise_is_mixed_at_the_requested_snr(snr):
    aug = noise_aug(f"noise:min_snr_db={snr},max_snr_db={snr},p=1")
    clean = signals()
    mixed = aug(clean, torch.Generator().manual_seed(0))
    assert torch.allclose(measured_snr(clean, mixed), torch.full((8,), snr), atol=0.05)


def test_snr_draws_spread_over_the_range_and_follow_the_seed():
    aug = noise_aug("noise:min_snr_db=5,max_snr_db=30,p=1")
    clean = signals(64)
    snrs = measured_snr(clean, aug(clean, torch.Generator().manual_seed(1)))
    assert snrs.min() >= 5 - 0.05 and snrs.max() <= 30 + 0.05 and snrs.std() > 4
    again = measured_snr(clean, aug(clean, torch.Generator().manual_seed(1)))
    assert torch.equal(snrs, again)


def test_noise_colour_follows_f_decay():
    from esc50.plugins.augs.noise import coloured_noise

    white = torch.randn(2, 2**15, generator=torch.Generator().manual_seed(0))
    noise = coloured_noise(white, torch.tensor([0.0, -6.02]))
    power = torch.fft.rfft(noise, dim=1).abs().pow(2)
    def octave_ratio_db(p):  # power in [2k, 4k) bins over [1k, 2k)
        return 10 * torch.log10(p[2048:4096].mean() / p[1024:2048].mean())
    assert abs(octave_ratio_db(power[0])) < 0.5  # white: flat
    assert abs(octave_ratio_db(power[1]) + 6.02) < 0.7  # brown: -6 dB per octave


def test_noise_from_a_folder_of_recordings(tmp_path):
    folder = tmp_path / "noises"
    folder.mkdir()
    rng = np.random.default_rng(0)
    sf.write(folder / "hum.ogg", 0.3 * rng.standard_normal(SR // 3).astype(np.float32), SR)
    sf.write(folder / "hiss.wav", 0.2 * rng.standard_normal(2 * SR).astype(np.float32), SR)
    aug = noise_aug(f"noise:path={folder},min_snr_db=12,max_snr_db=12,p=1")
    assert len(aug.noises) == 2
    clean = signals()
    mixed = aug(clean, torch.Generator().manual_seed(0))
    assert mixed.shape == clean.shape  # the short recording is looped to the clip length
    assert torch.allclose(measured_snr(clean, mixed), torch.full((8,), 12.0), atol=0.05)


def test_p_zero_is_the_identity_and_silence_stays_silent():
    clean = signals()
    assert torch.equal(noise_aug("noise:p=0")(clean, torch.Generator()), clean)
    silent = torch.zeros(2, SR)
    assert torch.equal(noise_aug("noise:p=1")(silent, torch.Generator()), silent)


def test_bad_noise_folders(tmp_path):
    with pytest.raises(Esc50Error, match="noise folder .* does not exist"):
        noise_aug(f"noise:path={tmp_path / 'nope'}")
    with pytest.raises(Esc50Error, match="holds no audio files"):
        noise_aug(f"noise:path={tmp_path}")
    sf.write(tmp_path / "quiet.wav", np.zeros(100, dtype=np.float32), SR)
    with pytest.raises(Esc50Error, match="quiet.wav: the audio is all silence"):
        noise_aug(f"noise:path={tmp_path}")
    with pytest.raises(Esc50Error, match="p=1.5 is out of range"):
        noise_aug("noise:p=1.5")
