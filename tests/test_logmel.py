import pytest
import librosa
import numpy as np
import torch

from esc50.core.config import TaskConfig
from esc50.core.plugin_api.registry import load_registry
from tests.conftest import esc50_config, tone

CONFIG_16K = TaskConfig().override(sample_rate=16000, length_wav=16000)
MFCC_STFT = "n_fft=512,win_length=512,hop_length=160,n_mels=40"


def make(config=None, **options):
    config = config or esc50_config()
    spec = "plugins.logmel" + (":" + ",".join(f"{k}={v}" for k, v in options.items())
                               if options else "")
    return load_registry().create("featurizer", spec, config)


def test_shape_and_frame_lengths_match_the_report():
    featurizer = make()
    assert featurizer.output_shape(220_500) == (1, 64, 862)
    features = featurizer(torch.zeros(2, 220_500))
    assert features.shape == (2, 1, 64, 862)
    assert featurizer.frame_lengths(torch.tensor([220_500, 256, 1000])).tolist() == [862, 2, 4]
    assert torch.all(features == np.log(1e-9))  # silence hits the log floor, never -inf


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_matches_librosa_htk_mel_spectrogram():
    wav = tone(1000, seconds=1.0, sr=16000) + tone(3000, seconds=1.0, sr=16000, seed=1)
    ours = make(CONFIG_16K, n_fft=512, win_length=400, hop_length=160, n_mels=40)(
        torch.from_numpy(wav)[None])[0, 0].numpy()
    ref = librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=512, win_length=400,
                                         hop_length=160, n_mels=40, htk=True, norm=None,
                                         pad_mode="reflect", power=2.0)
    ref = np.log(np.maximum(ref, 1e-9))
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) < 1e-3 * np.max(np.abs(ref)) + 1e-3


def test_without_centering_frames_start_at_zero():
    featurizer = make(center="false")
    assert featurizer.output_shape(1024 + 256 * 9) == (1, 64, 10)
    assert featurizer(torch.zeros(1, 1024 + 256 * 9)).shape[-1] == 10


def test_mfcc_matches_librosa():
    wav = tone(440, seconds=1.0, sr=16000) + tone(2500, seconds=1.0, sr=16000, seed=2)
    ours = load_registry().create("featurizer", f"plugins.mfcc:n_mfcc=20,{MFCC_STFT}",
                                        CONFIG_16K)(
        torch.from_numpy(wav)[None])[0, 0].numpy()
    mel = librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=512, hop_length=160, n_mels=40,
                                         htk=True, norm=None, pad_mode="reflect")
    ref = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=80.0), n_mfcc=20, norm="ortho")
    assert ours.shape == ref.shape == (20, 101)
    assert np.max(np.abs(ours - ref)) < 1e-2 * np.max(np.abs(ref))



def test_mfcc_of_a_clip_does_not_depend_on_its_batch_mates():
    """top_db is measured from each clip's own peak, not from the loudest clip of the batch."""
    mfcc = load_registry().create("featurizer", f"plugins.mfcc:{MFCC_STFT}", CONFIG_16K)
    quiet = torch.from_numpy(tone(440, seconds=0.5, sr=16000, amplitude=1e-3, noise=1e-5))[None]
    loud = torch.from_numpy(tone(440, seconds=0.5, sr=16000, amplitude=0.9, noise=0.0))[None]
    alone = mfcc(quiet)
    beside_a_loud_clip = mfcc(torch.cat([quiet, loud]))[:1]
    assert torch.allclose(alone, beside_a_loud_clip, atol=1e-4)


def test_waveform_featurizer_passes_samples_through():
    featurizer = load_registry().create("featurizer", "plugins.waveform", esc50_config())
    wav = torch.randn(2, 1000)
    assert torch.equal(featurizer(wav)[:, 0, 0], wav)
    assert featurizer.output_shape(1000) == (1, 1, 1000)
    assert featurizer.frame_lengths(torch.tensor([1000, 10])).tolist() == [1000, 10]


def test_built_in_featurizers_give_a_clip_the_same_features_in_any_batch():
    """What lets a run's validation (features from its cache, computed for every clip at once)
    and `esc50 evaluate` (features computed batch by batch) give the same accuracy to the clip:
    a clip's features do not depend on the other clips of its batch, up to float rounding (a
    matrix product of BLAS, MKL kept to AVX2 for one, may round a row differently in a batch of
    another size, by about 1e-7 of the largest value)."""
    registry = load_registry()
    wav = torch.from_numpy(np.stack([tone(300.0 * (i + 1), seconds=1.0, sr=16000, seed=i)
                                     for i in range(7)]))
    for spec in ("plugins.logmel", "plugins.panns_logmel:f_max=8000",
                 "plugins.kumar_logmel:f_max=8000", "plugins.waveform",
                 f"plugins.mfcc:{MFCC_STFT}"):
        featurizer = registry.create("featurizer", spec, CONFIG_16K)
        with torch.no_grad():
            together = featurizer(wav)
            apart = torch.cat([featurizer(wav[i:i + 1]) for i in range(len(wav))])
            pairs = torch.cat([featurizer(wav[i:i + 3]) for i in range(0, len(wav), 3)])
        rounding = 1e-6 * together.abs().max().item()
        for batched in (apart, pairs):
            torch.testing.assert_close(batched, together, rtol=0, atol=rounding, msg=spec)
