"""CNN14 of the pre-trained audio neural networks (PANNs) of Kong, Cao, Iqbal, Wang, Wang and
Plumbley, "PANNs: Large-Scale Pretrained Audio Neural Networks for Audio Pattern Recognition"
(IEEE/ACM TASLP 2020; code: github.com/qiuqiangkong/audioset_tagging_cnn, ``Cnn14`` and
``Transfer_Cnn14``), with the option to start from its published AudioSet checkpoint.

Sources of each choice:
- Layers (repository): batch norm over the 64 mel bands (``bn0``); six blocks of two 3x3
  convolutions (no bias) with batch norm and ReLU, 64, 128, 256, 512, 1024, 2048 channels, each
  but the last followed by 2x2 average pooling and dropout 0.2; the mean over frequency, then max
  plus mean over time; dropout 0.5, ``fc1`` (2048 -> 2048) with ReLU: the embedding.
- The new head (``Transfer_Cnn14``): dropout 0.5 and a linear layer from the embedding to the
  classes, trained from scratch; the AudioSet output layer (``fc_audioset``) is not used.
- The published checkpoint (``Cnn14_mAP=0.431.pth``, Zenodo record 3987831) holds a
  dict whose ``model`` entry is the state dict, with torchlibrosa's front-end buffers: those are
  checked against ``plugins.panns_logmel`` (the mel filterbank must be the one this run
  computes, so the run's sample rate must be 32 kHz) and not loaded into the model.
- Fine-tuning (Kong et al. section V-D and common practice): the pre-trained layers learn at
  ``backbone_lr_scale`` of the learning rate, the new head at the full rate; the first
  ``freeze_blocks`` blocks can stay frozen (weights and batch-norm statistics).
- The network is the published one turned frequency-major (esc50's features are [B, C, bands,
  frames]; PANNs' are time-major): kernels are transposed on loading, which gives the same
  outputs. Padded frames are zeroed before every convolution and pooling and left out of the
  time pooling, so a clip scores the same in any padded batch.
- SpecAugment inside the network (PANNs' ``spec_augmenter``) is not built in: esc50's
  ``plugins.specaugment`` augmentation does it in the pipeline.
"""

from __future__ import annotations

import torch
from torch import nn

from esc50 import Esc50Error, TaskConfig, hookimpl
from esc50.plugins.featurizers.panns_logmel import PannsLogMel
from esc50.plugins.models.layers import masked_max, masked_mean, pad_time, zero_padding
from esc50.plugins.models.published import (Freezable, check_freeze, load_published,
                                             published_weights, read_state_dict,
                                             trainable_groups)

ESC50_PLUGIN_API = 4

WIDTHS = [64, 128, 256, 512, 1024, 2048]
POOLINGS = 5  # 2x2 average poolings after blocks 1-5
EXPECTED = ("Cnn14_mAP=0.431.pth from https://zenodo.org/record/3987831 (PANNs); "
            "pass its path, or the name cnn14 to have it fetched, as plugins.cnn14's checkpoint "
            "option")
FRONT_END = ("spectrogram_extractor.", "logmel_extractor.")


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and ReLU (PANNs' ``ConvBlock``, its names)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(zero_padding(x, lengths))))
        return torch.relu(self.bn2(self.conv2(zero_padding(x, lengths))))


class Cnn14(Freezable):
    """PANNs CNN14 with a new classification head; optionally from the AudioSet checkpoint."""

    name = "cnn14"

    def __init__(self, config: TaskConfig, input_shape: tuple[int, int, int],
                 checkpoint: str = "", freeze_blocks: int = 0,
                 backbone_lr_scale: float = 0.1) -> None:
        """Options:
        checkpoint: the published Cnn14_mAP=0.431.pth to start from: its path, or cnn14 to fetch it ("": random weights)
        freeze_blocks: convolution blocks (of 6, with the input batch norm) kept frozen
        backbone_lr_scale: learning rate of the layers before the new head, times the run's
        """
        super().__init__()
        channels, bands, _ = input_shape
        check_freeze(freeze_blocks, len(WIDTHS))
        if not 0 < backbone_lr_scale <= 1:
            raise ValueError(f"backbone_lr_scale={backbone_lr_scale} must be in (0, 1]")
        self.backbone_lr_scale = backbone_lr_scale
        self.bn0 = nn.BatchNorm2d(bands)
        for i, width in enumerate(WIDTHS, start=1):
            setattr(self, f"conv_block{i}", ConvBlock(channels, width))
            channels = width
        self.fc1 = nn.Linear(channels, channels)
        self.head = nn.Linear(channels, config.num_classes)
        if checkpoint:
            self.load_checkpoint(checkpoint, config)
        self.freeze([self.bn0, *self.blocks[:freeze_blocks]] if freeze_blocks else [])

    @property
    def blocks(self) -> list[ConvBlock]:
        return [getattr(self, f"conv_block{i}") for i in range(1, len(WIDTHS) + 1)]

    def load_checkpoint(self, path: str, config: TaskConfig) -> None:
        """The published weights, checked against this run's front end."""
        state = read_state_dict(path, EXPECTED)
        bank = state.get("logmel_extractor.melW")
        if bank is not None:
            n_fft = 2 * (bank.shape[0] - 1)
            try:  # PANNs' band edges (50-14 000 Hz) need a rate above 28 kHz
                front_end = PannsLogMel(config, n_fft=n_fft, win_length=n_fft,
                                        n_mels=bank.shape[1])
                same = torch.allclose(front_end.filterbank, bank.float(), atol=1e-6)
            except ValueError:
                same = False
            if not same:
                raise Esc50Error(f"{path}: its mel filterbank is not plugins.panns_logmel's at "
                                 f"sample_rate={config.sample_rate}: train at the checkpoint's "
                                 "rate (--set sample_rate=32000) with --featurizer "
                                 "plugins.panns_logmel")
        load_published(self, state, lambda key: None if key.startswith(
            (*FRONT_END, "fc_audioset.")) else key, new=("head.",), file=path)

    def parameter_groups(self) -> list[tuple[list[nn.Parameter], float]]:
        """The new head at the learning rate, the rest at ``backbone_lr_scale`` of it."""
        return trainable_groups(self.head, [self.bn0, *self.blocks, self.fc1],
                                self.backbone_lr_scale)

    def embed(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """[B, 1, bands, frames] -> the 2048-dimensional embedding [B, 2048] (after ``fc1``)."""
        x = self.bn0(features.transpose(1, 2)).transpose(1, 2)  # normalize each mel band
        x, lengths = pad_time(x, 2 ** POOLINGS), frame_lengths
        for i, block in enumerate(self.blocks):
            x = block(x, lengths)
            if i < POOLINGS:
                x = nn.functional.avg_pool2d(zero_padding(x, lengths), 2)
                lengths = (lengths // 2).clamp(min=1)
            x = nn.functional.dropout(x, 0.2, self.training)
        x = x.mean(dim=2)  # over frequency: [B, C, T]
        x = masked_max(x, lengths) + masked_mean(x, lengths)
        x = nn.functional.dropout(x, 0.5, self.training)
        return torch.relu(self.fc1(x))

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        embedding = self.embed(features, frame_lengths)
        return self.head(nn.functional.dropout(embedding, 0.5, self.training))


@hookimpl
def register_models(register):
    register(Cnn14)


@hookimpl
def register_weights(register):
    register(**published_weights("cnn14"))
