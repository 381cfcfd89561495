"""Pitch shift keeping the duration (the report's ``librosa.effects.pitch_shift``, -5 semitones),
batched: a phase-vocoder stretch by 2^(s/12), then resampling back to the clip's length, as
librosa does. What would alias when shifting up (above the new Nyquist) is left out of the
vocoder's resynthesis. Memory and time do not depend on the shift (no resampling kernel is
built)."""

from __future__ import annotations

import torch

from esc50 import Augmentation, check_min_max, hookimpl, uniform
from esc50.plugins.augs.vocoder import resample_linear, stretch

ESC50_PLUGIN_API = 4


class PitchShift(Augmentation):
    """Shift pitch by semitones drawn from [min_semitones, max_semitones], same duration."""

    name = "pitch_shift"
    stage = "wave"

    def __init__(self, min_semitones: float = -5.0,
                 max_semitones: float = 5.0, p: float = 0.5) -> None:
        super().__init__(p)
        check_min_max("semitones", min_semitones, max_semitones, (-24.0, 24.0))
        self.min_semitones, self.max_semitones = min_semitones, max_semitones

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"semitones": uniform(self.min_semitones, self.max_semitones, batch_size,
                                     generator)}

    def apply(self, wav: torch.Tensor, chosen: torch.Tensor, params: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        semitones = params["semitones"][chosen]
        return self.on_chosen(wav, chosen, lambda x: shift(x, semitones))


def shift(wav: torch.Tensor, semitones: torch.Tensor) -> torch.Tensor:
    """Each clip of ``wav`` [B, T] shifted by ``semitones[b]`` (on any device), same length."""
    ratio = torch.pow(2.0, semitones / 12)  # frequency ratio
    length = wav.shape[1]
    # Slow down by `ratio` (same pitch, ratio times longer), then read it `ratio` times faster;
    # what would land above Nyquist when shifting up is left out of the slowed clip.
    slowed = stretch(wav, 1 / ratio, int(length * ratio.max()) + 1,
                     cutoff=(1 / ratio).clamp(max=1.0))
    return resample_linear(slowed, ratio, length).clamp(-1.0, 1.0)


@hookimpl
def register_augmentations(register):
    register(PitchShift)
