"""The report's collator: pads a batch of waveforms and keeps their lengths."""

from __future__ import annotations

from typing import Sequence

import torch
from torch.nn.utils.rnn import pad_sequence


def collate(items: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Pad waveforms to the longest in the batch: ``{'wav': [B, T], 'label': [B],
    'length': [B]}`` with lengths in samples (and ``'index': [B]`` when items carry one; items
    without waveforms give labels and indices only)."""
    batch = {"label": torch.tensor([item["label"] for item in items], dtype=torch.long)}
    if "wav" in items[0]:
        wavs = [item["wav"] for item in items]
        batch["wav"] = pad_sequence(wavs, batch_first=True)
        batch["length"] = torch.tensor([len(w) for w in wavs], dtype=torch.long)
    if "index" in items[0]:
        batch["index"] = torch.tensor([item["index"] for item in items], dtype=torch.long)
    return batch
