"""Plugins as a package written for plugin API 1 had them: augmentations with their own
forward(x, generator), a "spec" stage, a featurizer and a model reading settings from the
config, and the import paths of that time."""

import torch
import torchaudio
from torch import nn

from esc50.core.contracts import Augmentation, BatchAugmentation, Featurizer
from esc50.core.hookspecs import hookimpl

ESC50_PLUGIN_API = 1


class Flip(Augmentation):
    """Flip the polarity of the chosen clips."""

    name = "flip"
    stage = "wave"

    def __init__(self, config, p: float = 0.5):
        super().__init__(p)

    def forward(self, x, generator):
        chosen = torch.rand(x.shape[0], generator=generator, device=generator.device) < self.p
        return torch.where(chosen[:, None], -x, x)


class BandMask(Augmentation):
    """Zero one band of the features of the chosen examples."""

    name = "bandmask"
    stage = "spec"

    def __init__(self, config, p: float = 0.5):
        super().__init__(p)

    def forward(self, x, generator):
        chosen = torch.rand(x.shape[0], generator=generator, device=generator.device) < self.p
        band = int(torch.randint(x.shape[2], (1,), generator=generator, device=generator.device))
        out = x.clone()
        out[chosen, :, band] = 0.0
        return out


class Swap(BatchAugmentation):
    """Mix each example half and half with the next one, labels alike."""

    name = "swap"

    def __init__(self, config, p: float = 1.0):
        super().__init__(p)

    def forward(self, x, targets, generator):
        return 0.5 * (x + x.roll(1, 0)), 0.5 * (targets + targets.roll(1, 0))


class LogMel(Featurizer):
    """A log mel spectrogram with the config's STFT settings (n_fft, hop_length, n_mels)."""

    name = "logmel"

    def __init__(self, config):
        super().__init__()
        self.hop, self.bands = config.hop_length, config.n_mels
        self.mel = torchaudio.transforms.MelSpectrogram(
            config.sample_rate, n_fft=config.n_fft, win_length=config.win_length,
            hop_length=config.hop_length, n_mels=config.n_mels)

    def forward(self, wav):
        return torch.log(self.mel(wav) + 1e-6).unsqueeze(1)

    def frame_lengths(self, lengths):
        return lengths // self.hop + 1

    def output_shape(self, num_samples):
        return (1, self.bands, num_samples // self.hop + 1)


class MeanMLP(nn.Module):
    """The mean of each band, then an MLP of the config's hidden_size."""

    name = "meanmlp"

    def __init__(self, config, input_shape):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(input_shape[1], config.hidden_size), nn.ReLU(),
                                 nn.Linear(config.hidden_size, config.num_classes))

    def forward(self, features, frame_lengths):
        return self.mlp(features.mean(dim=(1, 3)))


@hookimpl
def register_augmentations(register):
    register(Flip)
    register(BandMask)
    register(Swap)


@hookimpl
def register_featurizers(register):
    register(LogMel)


@hookimpl
def register_models(register):
    register(MeanMLP)
