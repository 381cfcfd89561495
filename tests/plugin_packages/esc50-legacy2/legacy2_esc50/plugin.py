"""Plugins as a package written for plugin API 2 had them: a template augmentation, a
featurizer reading its STFT settings from the config, and a dataset reader."""

from pathlib import Path

import torch
import torchaudio

from esc50.core.config import TaskConfig
from esc50.core.contracts import Augmentation, Featurizer, uniform
from esc50.core.dataset import Clip, ClipTable, DatasetReader, list_files
from esc50.core.hookspecs import hookimpl

ESC50_PLUGIN_API = 2


class Gain(Augmentation):
    """Scale waveforms by a gain drawn from [0.5, 1]."""

    name = "gain"
    stage = "wave"

    def __init__(self, config: TaskConfig, p: float = 0.5) -> None:
        super().__init__(p)

    def sample(self, batch_size, generator):
        return {"gain": uniform(0.5, 1.0, batch_size, generator)}

    def apply(self, wav, chosen, params, generator):
        gain = torch.where(chosen, params["gain"], torch.ones_like(params["gain"]))
        return wav * gain.to(wav.device)[:, None]


class LogMel(Featurizer):
    """A log mel spectrogram with the config's n_fft, hop_length and n_mels."""

    name = "logmel"

    def __init__(self, config: TaskConfig) -> None:
        super().__init__()
        self.hop, self.bands = config.hop_length, config.n_mels
        self.mel = torchaudio.transforms.MelSpectrogram(
            config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
            n_mels=config.n_mels)

    def forward(self, wav):
        return torch.log(self.mel(wav) + 1e-6).unsqueeze(1)

    def frame_lengths(self, lengths):
        return lengths // self.hop + 1

    def output_shape(self, num_samples):
        return (1, self.bands, num_samples // self.hop + 1)


class Named(DatasetReader):
    """Clips named <class>_<anything>.wav in one folder; a random split makes the folds."""

    name = "named"

    def __init__(self, config: TaskConfig) -> None:
        pass

    def read(self, root: Path) -> ClipTable:
        audio, _, hidden = list_files(root)
        names = sorted({p.stem.split("_")[0] for p in audio})
        clips = [Clip(p, 0, names.index(p.stem.split("_")[0]), p.stem) for p in audio]
        return ClipTable(root, clips, names, sample_rate=8000, clip_seconds=1.0, hidden=hidden)


@hookimpl
def register_augmentations(register):
    register(Gain)


@hookimpl
def register_featurizers(register):
    register(LogMel)


@hookimpl
def register_datasets(register):
    register(Named)
