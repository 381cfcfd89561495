"""Winograd's F(4x4, 3x3) for scoring on CPUs without AVX-512 (plugins/models/winograd.py): the
convolution's values, where it applies, when it is on, and the shipped model's scores through it."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import esc50
from esc50.plugins.models import winograd


def channels_last(*shape: int) -> torch.Tensor:
    return torch.randn(*shape).contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("n, channels, out_channels, height, width", [
    (1, 64, 64, 32, 700),  # the shipped model's second stage over 32.5 s
    (3, 64, 96, 9, 13),  # neither side a whole number of 4x4 blocks
    (2, 128, 32, 4, 4),  # one block
    (1, 64, 16, 1, 5),  # one row
    (2, 64, 32, 3, 1),  # one time step
])
@pytest.mark.parametrize("with_bias", [True, False])
def test_it_computes_the_convolution(n, channels, out_channels, height, width, with_bias):
    torch.manual_seed(0)
    x = channels_last(n, channels, height, width)
    weight = torch.randn(out_channels, channels, 3, 3) / (3 * channels ** 0.5)
    bias = torch.randn(out_channels) if with_bias else None
    out = winograd.conv3x3(x, weight, bias)
    assert out.is_contiguous(memory_format=torch.channels_last)
    # Outputs about 1 in size; F(4x4, 3x3) rounds to a few 1e-5 where the direct sum rounds
    # to about 1e-6 (its transforms add and subtract values up to 8 times larger).
    torch.testing.assert_close(out, F.conv2d(x, weight, bias, padding=1), rtol=1e-4, atol=1e-4)


def test_a_batch_too_large_for_one_chunk_is_taken_a_few_columns_at_a_time(monkeypatch):
    """Chunks of one column of blocks (the smallest) give the values of one chunk, to rounding
    (a matrix product of other sizes can round another way)."""
    torch.manual_seed(0)
    x, weight, bias = channels_last(4, 64, 8, 30), torch.randn(32, 64, 3, 3) / 24, torch.randn(32)
    whole = winograd.conv3x3(x, weight, bias)
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)
    torch.testing.assert_close(winograd.conv3x3(x, weight, bias), whole, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(whole, F.conv2d(x, weight, bias, padding=1), rtol=1e-4, atol=1e-4)


def test_it_applies_only_to_what_it_computes(monkeypatch):
    monkeypatch.setattr(winograd, "ENABLED", True)
    conv, x = torch.nn.Conv2d(64, 64, 3, padding=1), channels_last(1, 64, 8, 8)
    with torch.no_grad():
        assert winograd.applies(conv, x)
        assert not winograd.applies(conv, x.contiguous())  # channels first
        assert not winograd.applies(conv, x.to(torch.bfloat16))
        assert not winograd.applies(torch.nn.Conv2d(64, 64, 3, padding=1, stride=2), x)
        assert not winograd.applies(torch.nn.Conv2d(64, 64, 3, padding=2, dilation=2), x)
        assert not winograd.applies(torch.nn.Conv2d(64, 64, 3, padding=1, groups=2), x)
        assert not winograd.applies(torch.nn.Conv2d(64, 64, 5, padding=1), x)
        assert not winograd.applies(torch.nn.Conv2d(64, 64, 3, padding=1,
                                                    padding_mode="reflect"), x)
        small = torch.nn.Conv2d(winograd.MIN_CHANNELS - 1, 64, 3, padding=1)
        assert not winograd.applies(small, channels_last(1, winograd.MIN_CHANNELS - 1, 8, 8))
    assert not winograd.applies(conv, x)  # gradients wanted: training is left as it is
    monkeypatch.setattr(winograd, "ENABLED", False)
    with torch.no_grad():
        assert not winograd.applies(conv, x)


def in_a_process(**variables: str) -> tuple[bool, str, int]:
    """Whether Winograd is on in a new process with ``variables`` (and neither of its two
    variables otherwise), the kernels torch runs there, and the input channels it needs there."""
    env = {k: v for k, v in os.environ.items()
           if k not in (winograd.SWITCH, "ATEN_CPU_CAPABILITY")}
    code = ("import torch; from esc50.plugins.models import winograd; "
            "print(winograd.ENABLED, torch.backends.cpu.get_cpu_capability(), "
            "winograd.MIN_CHANNELS)")
    out = subprocess.run([sys.executable, "-c", code], env={**env, **variables},
                         capture_output=True, text=True, check=True).stdout
    enabled, capability, channels = out.split()
    return enabled == "True", capability, int(channels)


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_it_is_on_where_torch_runs_x86_kernels_of_avx2_at_most_unless_switched():
    """On from 64 input channels with AVX2 kernels, from 32 without AVX (torch's DEFAULT kernels
    on x86), off with AVX-512's and on other CPUs."""
    enabled, capability, channels = in_a_process()
    assert enabled == (winograd.X86 and capability in ("AVX2", "DEFAULT"))
    assert channels == (32 if capability == "DEFAULT" else 64)
    assert in_a_process(**{winograd.SWITCH: "1"})[0]
    if capability in ("AVX2", "AVX512"):  # x86 with AVX2: torch can be kept to it, or below
        assert in_a_process(ATEN_CPU_CAPABILITY="avx2") == (True, "AVX2", 64)
        assert in_a_process(ATEN_CPU_CAPABILITY="default") == (True, "DEFAULT", 32)
        assert not in_a_process(**{winograd.SWITCH: "0", "ATEN_CPU_CAPABILITY": "avx2"})[0]
        assert not in_a_process(**{winograd.SWITCH: "0", "ATEN_CPU_CAPABILITY": "default"})[0]


@pytest.mark.parametrize("min_channels, through_it", [(64, 5), (32, 6)])
def test_the_shipped_model_scores_the_same_through_it(monkeypatch, min_channels, through_it):
    """The shipped model's logits over 32.5 s of noise (one shared pass of ``esc50 analyze``),
    in float32, with its 3x3 convolutions from ``min_channels`` input channels by Winograd (all
    but the stem for 32) and all of them direct."""
    monkeypatch.setattr(winograd, "MIN_CHANNELS", min_channels)
    model = esc50.load("esc50-rescnn", warn=lambda _: None)
    classifier = model.members[0].classifier
    torch.manual_seed(0)
    audio = 0.1 * torch.randn(int(32.5 * model.sample_rate))
    calls = []

    def counted(*args):
        calls.append(args[0].shape)
        return winograd_conv3x3(*args)
    winograd_conv3x3 = winograd.conv3x3
    monkeypatch.setattr(winograd, "conv3x3", counted)

    def logits(enabled: bool) -> torch.Tensor:
        monkeypatch.setattr(winograd, "ENABLED", enabled)
        with torch.no_grad():
            features, frames = classifier.features(audio[None], torch.tensor([len(audio)]))
            return classifier.model(classifier.model_input(features), frames)
    direct = logits(False)
    assert calls == []
    fast = logits(True)
    assert len(calls) == through_it
    torch.testing.assert_close(fast, direct, rtol=1e-4, atol=1e-4)
    assert fast.argmax() == direct.argmax()
