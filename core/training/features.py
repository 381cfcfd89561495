"""The decoded audio and the features a run's batches are gathered from: every clip featurized
once (:func:`featurize_all`), the featurizer's working memory measured before decoding
(:func:`featurize_bytes_per_sample`), and the decoded clips placed on the training device
(:func:`audio_on_device`)."""

from __future__ import annotations

import torch

from esc50.core.config import TaskConfig
from esc50.core.data.audio import to_float
from esc50.core.data.audiocache import AudioCache
from esc50.core.training.memory import measure
from esc50.core.training.stages import Stages


@torch.no_grad()
def featurize_all(stages: Stages, audio: AudioCache, device: torch.device, chunk: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """:meth:`Stages.featurize` of every decoded clip (padded to the clip length), ``chunk``
    clips at a time: what a feature cache holds, and the frame lengths."""
    features, frames = [], []
    waves, lengths = audio.waves, audio.lengths
    for start in range(0, waves.shape[0], chunk):
        x, f = stages.featurize(to_float(waves[start:start + chunk].to(device)),
                                lengths[start:start + chunk].to(device))
        features.append(x)
        frames.append(f)
    return torch.cat(features), torch.cat(frames)


@torch.no_grad()
def featurize_bytes_per_sample(stages: Stages, config: TaskConfig, device: torch.device
                               ) -> float:
    """The featurizer's working memory per sample of a clip, measured on one clip of at most a
    second (it grows with the clip's length)."""
    samples = min(config.length_wav, config.sample_rate)
    noise = torch.Generator().manual_seed(0)  # torch's global random state is the run's
    wav = 0.1 * torch.randn(1, samples, generator=noise).to(device)
    lengths = torch.tensor([samples], device=device)
    return measure(lambda: stages.finish(*stages.featurize(wav, lengths)), device) / samples


def audio_on_device(audio: AudioCache, device: torch.device
                    ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The decoded clips (int16) and their lengths on the training device: on a GPU copied once,
    when they take at most a quarter of its free memory, else None (batches are then copied from
    the host)."""
    if device.type != "cuda":
        return audio.waves, audio.lengths
    free, _ = torch.cuda.mem_get_info(device)
    if audio.nbytes() > free // 4:
        return None
    return audio.waves.to(device), audio.lengths.to(device)
