"""Decoding one audio file into a mono clip at the configured sample rate and length."""

from __future__ import annotations

import math
import os
from contextlib import ExitStack, contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import soundfile as sf
import torch

from esc50.core.data.decoder_output import SoundFile, damage_said
from esc50.core.data.wav import SamplesOf, unfinished_wav
from esc50.core.errors import Esc50Error
from esc50.core.files.read import checked_file

INT16_SCALE = 32768.0
SILENT_MIX = 1e-3  # a mono mix 60 dB below its channels: they cancel out


BLOCK_SECONDS = 30.0  # audio read, mixed and resampled at a time: memory is bounded by this
# Sample rates audio can have: below 1 kHz or above 768 kHz (the highest rate converters offer)
# a header is damaged (one saying 1 Hz made 12 hours of audio out of a 4-second clip).
MIN_RATE, MAX_RATE = 1_000, 768_000
MAX_PERIOD = 1000  # samples in a resampling period, at most (resampling_ratio)
# The sinc resampler's settings: torchaudio.functional.resample's defaults (a Hann-windowed sinc
# reaching 6 zero crossings, cut off at 99 % of the lower Nyquist frequency).
LOWPASS_ZEROS, ROLLOFF = 6, 0.99
DECODER_ERRORS = (sf.LibsndfileError, RuntimeError, OSError, TypeError)  # what decoding raises
DAMAGE_STEP = 0.1  # seconds read at a time to find where a damaged file stops decoding
# libsndfile refuses a file name of this many bytes or more ("Supplied filename too long"),
# which a deep tree of long folder names reaches
LIBSNDFILE_NAME_MAX = 1024


def load_clip(path: Path, sample_rate: int, length: int | None = None) -> tuple[torch.Tensor, int]:
    """Decode ``path`` (any format soundfile reads), mix to mono, resample to ``sample_rate``
    and pad with zeros or crop to ``length`` samples. Returns (float32 [length], valid samples)."""
    wav = torch.cat(list(read_mono(path, sample_rate)))
    valid = wav.shape[0] if length is None else min(wav.shape[0], length)
    return (wav if length is None else fit_length(wav, length)), valid


def read_mono(path: Path, sample_rate: int, block_seconds: float = BLOCK_SECONDS,
              damage: Callable[[str], None] | None = None) -> Iterator[torch.Tensor]:
    """The mono audio of ``path`` at ``sample_rate`` in consecutive float32 blocks of about
    ``block_seconds``, so a file of any length is read in bounded memory (see
    :func:`mono_blocks`); ``damage``: as :func:`_read_blocks` says."""
    return mono_blocks(_read_blocks(path, block_seconds, damage), sample_rate, str(path))


def mono_blocks(blocks: Iterable[tuple[np.ndarray, int]], sample_rate: int, source: str
                ) -> Iterator[torch.Tensor]:
    """Float audio blocks ``[frames, channels]`` at their rate, checked, mixed to mono, clipped
    to [-1, 1] (as the int16 cache of training clips is, so training and prediction see the same
    audio) and resampled to ``sample_rate``; the blocks returned, joined, equal the whole signal
    treated at once. Checks, as one-line errors naming ``source``: a sample rate audio can have
    (``MIN_RATE`` to ``MAX_RATE``), not empty, finite, not all silence, channels that do not
    cancel out when mixed (the last two are known, and raised, after the last block). Leading
    blocks of digital silence are held back as a count (zeros are made again once a sound
    follows), so a recording that is silence to the end is refused once decoded, before any of
    it is scored."""
    peak_mono = peak_channels = 0.0
    resampler = None
    held: list[int] = []  # lengths of the leading all-zero blocks not yet passed on
    for data, rate in blocks:
        if resampler is None and not MIN_RATE <= rate <= MAX_RATE:
            raise Esc50Error(f"{source}: a sample rate of {rate:,} Hz is not one audio can have "
                             f"({MIN_RATE:,} to {MAX_RATE:,} Hz): the file's header is damaged")
        if data.shape[0] == 0:
            continue
        peak = float(max(data.max(), -data.min()))  # NaN when any sample is
        if not math.isfinite(peak):
            raise Esc50Error(f"{source}: the audio holds NaN or infinite samples")
        one_channel = data.shape[1] == 1
        mono = data[:, 0] if one_channel else data.mean(axis=1)
        peak_mono = max(peak_mono, peak if one_channel else float(np.abs(mono).max()))
        peak_channels = max(peak_channels, peak)
        resampler = resampler or BlockResampler(rate, sample_rate)
        if peak_channels == 0.0:
            held.append(mono.shape[0])
            continue
        for length in held:
            yield from resampler.push(torch.zeros(length))
        held.clear()
        if peak > 1.0:
            mono = np.clip(mono, -1.0, 1.0)
        yield from resampler.push(torch.from_numpy(np.ascontiguousarray(mono, np.float32)))
    if resampler is None:
        raise Esc50Error(f"{source}: the file holds no samples")
    if peak_channels == 0.0:
        raise Esc50Error(f"{source}: the audio is all silence (every sample is zero)")
    if peak_mono < SILENT_MIX * peak_channels:
        raise Esc50Error(f"{source}: the channels cancel out when mixed to mono (opposite "
                         "phase); fix the file or keep one channel")
    yield from resampler.finish()


def _read_blocks(path: Path, block_seconds: float,
                 damage: Callable[[str], None] | None = None
                 ) -> Iterator[tuple[np.ndarray, int]]:
    """float32 ``[frames, channels]`` blocks of ``path`` with its sample rate; a file soundfile
    cannot read is a one-line error naming it. A file that stops decoding part way (a copy cut
    short, a recorder that lost power) is that error too, unless ``damage`` is given: then the
    audio decoded before the damage is kept (the stream ends there) and ``damage`` gets one
    line saying where the file stops decoding and why; it also gets the line of a WAV header
    that was never finished (:func:`opened_audio`), and one of damaged parts the decoder
    skipped, as it said (:mod:`~esc50.core.data.decoder_output`)."""
    with opened_audio(path, damage) as audio:
        rate = audio.samplerate
        size, decoded = max(int(rate * block_seconds), 1), 0
        while True:
            try:
                data = audio.read(size, dtype="float32", always_2d=True)
            except DECODER_ERRORS as exc:
                if damage is None:
                    raise
                if size > DAMAGE_STEP * rate:  # the damage is in this block: find where
                    audio.seek(decoded)
                    size = max(int(DAMAGE_STEP * rate), 1)
                    continue
                if decoded == 0:
                    raise
                whole = f" of {audio.frames / rate:.1f} s" if audio.frames > decoded else ""
                said = damage_said(audio.decoder_said)
                damage(f"{path}: decodes up to {decoded / rate:.1f} s{whole}; the rest is "
                       f"damaged ({decoder_message(exc)}{'; ' + said if said else ''}), so "
                       "only that much was read")
                return
            if data.shape[0] == 0:
                if damage is not None and (said := damage_said(audio.decoder_said)):
                    read = f": {decoded / rate:.2f} s of audio read, where its header gives " \
                        f"{audio.frames / rate:.2f} s" if audio.frames > decoded else ""
                    damage(f"{path}: parts of it are damaged ({said}); the decoder skipped "
                           f"them{read}")
                return
            decoded += data.shape[0]
            yield data, rate


@contextmanager
def opened_audio(path: Path, damage: Callable[[str], None] | None = None
                 ) -> Iterator[SoundFile]:
    """``path`` opened by soundfile (what its decoder prints kept: :class:`SoundFile`) once it
    is known to be a regular file (a FIFO or a device would never end); a WAV file whose header
    was never finished (its data size 0, stale or wrapped past 4 GiB) is read to its end
    (:func:`~esc50.core.data.wav.unfinished_wav`), and said so to ``damage`` when given; a file
    it cannot open, or read inside the ``with``, is a one-line error naming it as given (as the
    checks of its audio do)."""
    checked = checked_file(path, "audio file")
    try:
        with ExitStack() as stack:
            audio = stack.enter_context(sound_file(checked, stack))
            unfinished = unfinished_wav(checked) if audio.format in ("WAV", "WAVEX") else None
            if unfinished is not None:
                said = audio.frames / audio.samplerate
                samples = SamplesOf(stack.enter_context(open(checked, "rb")), unfinished.offset)
                audio = stack.enter_context(SoundFile(
                    samples, format="RAW", samplerate=unfinished.samplerate,
                    channels=unfinished.channels, subtype=unfinished.subtype, endian="LITTLE"))
                if damage is not None:
                    damage(f"{path}: its header says {said:.1f} s of the "
                           f"{audio.frames / audio.samplerate:.1f} s of samples it holds (a "
                           "header never finished, or a size past 4 GiB), so all were read")
            yield audio
    except DECODER_ERRORS as exc:
        raise Esc50Error(f"{path}: {undecodable(checked, exc)}") from exc


HEAD_BYTES = 4096  # the start of a file its decoder refused, read for a header


def undecodable(path: Path, exc: Exception) -> str:
    """Why the decoder refused ``path``, on one line: a file with nothing in it, or only zeros
    where its header should be (what a recorder that stopped before writing, or a failed copy,
    leaves), said as such; else the decoder's words (:func:`decoder_message`)."""
    try:
        with open(path, "rb") as file:
            head = file.read(HEAD_BYTES)
    except OSError:
        head = None
    if head == b"":
        return "the file is empty (0 bytes): nothing was written into it"
    if head and not head.strip(b"\0"):
        span = f"first {len(head)} bytes are" if len(head) == HEAD_BYTES else \
            f"{len(head)} bytes are all"
        return (f"cannot decode audio: its {span} zeros where an audio header should be (a "
                "recording never written, or a copy that failed)")
    return f"cannot decode audio ({decoder_message(exc)})"


def sound_file(path: Path, stack: ExitStack) -> SoundFile:
    """soundfile's view of ``path``, a checked regular file: opened by its name (in bytes: a
    name need not be UTF-8, and soundfile encodes a str strictly), which libsndfile also
    guesses some formats from (an MP3 that does not start with a frame), or, where the name is
    too long for libsndfile, by a descriptor (``stack`` closes it)."""
    name = os.fsencode(path)
    if len(name) < LIBSNDFILE_NAME_MAX:
        return SoundFile(name)
    return SoundFile(stack.enter_context(open(path, "rb")).fileno(), closefd=False)


# libsndfile says this of a regular file its MPEG decoder finds no frame in (a damaged or cut
# MP3); esc50 opens only files it has checked are regular, so the words would mislead
NOT_A_FILE = "File does not exist or is not a regular file"


def decoder_message(exc: Exception) -> str:
    """What went wrong, on one line: libsndfile's own words without soundfile's prefix (which
    names the file as the bytes it was opened by), except where they would mislead."""
    message = exc.error_string if isinstance(exc, sf.LibsndfileError) else str(exc)
    if message.startswith(NOT_A_FILE):
        return ("the decoder found no audio frame in it: a damaged or cut file, or not the "
                "format its name says")
    return " ".join(message.split())


def resampling_ratio(rate: int, sample_rate: int) -> tuple[int, int]:
    """The periods (``orig`` input samples to ``new`` output samples) a resampler from ``rate``
    to ``sample_rate`` works in: the rates divided by their gcd, or, where that leaves a period
    longer than ``MAX_PERIOD`` samples (rates that share no factor: 44 099 Hz against 48 kHz),
    the nearest ratio of periods within it. The sinc kernel holds about ``new * orig`` values,
    so this bounds its memory (a few MiB) whatever the rates: exact periods of 44 099 and 48 000
    samples took gigabytes. The best ratio within ``MAX_PERIOD`` (continued fractions) moves
    durations and pitches by parts per million to a few hundred: 44 099 Hz to 48 kHz by 1.4
    ppm, 8 003 Hz to 48 kHz (taken as 1:6) by 375 ppm, 0.65 cent of pitch and 1.9 ms in a
    5 s clip: far below what a sound's class depends on."""
    ratio = Fraction(rate, sample_rate)
    if max(ratio.numerator, ratio.denominator) > MAX_PERIOD:
        ratio = ratio.limit_denominator(MAX_PERIOD) if ratio < 1 else \
            1 / (1 / ratio).limit_denominator(MAX_PERIOD)
    return ratio.numerator, ratio.denominator


def sinc_kernel(orig: int, new: int) -> tuple[torch.Tensor, int]:
    """The windowed-sinc resampling filter from periods of ``orig`` input samples to ``new``
    output samples, as torchaudio.functional.resample builds it for its defaults (in float32, as
    it does for float32 audio): [new, taps] (row ``p``: output ``p`` of a period, from the input
    ``width`` samples before the period to ``width`` after it) and ``width``."""
    base = min(orig, new) * ROLLOFF
    width = math.ceil(LOWPASS_ZEROS * orig / base)
    offsets = torch.arange(-width, width + orig, dtype=torch.float32) / orig
    t = (torch.arange(0, -new, -1, dtype=torch.float32)[:, None] / new + offsets) * base
    t = t.clamp(-LOWPASS_ZEROS, LOWPASS_ZEROS)
    window = torch.cos(t * math.pi / LOWPASS_ZEROS / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / torch.where(t == 0, 1.0, t))
    return sinc * (window * (base / orig)), width


def grouped_kernel(kernel: torch.Tensor, orig: int, group: int) -> torch.Tensor:
    """The filter ``kernel`` [new, taps] of periods of ``orig`` input samples, for ``group``
    periods taken as one: [group * new, taps + (group - 1) * orig], period ``g``'s rows its
    taps shifted by ``g * orig`` input samples (the same taps, exactly)."""
    new, taps = kernel.shape
    grouped = kernel.new_zeros(group, new, taps + (group - 1) * orig)
    for g in range(group):
        grouped[g, :, g * orig:g * orig + taps] = kernel
    return grouped.view(group * new, -1)


class BlockResampler:
    """Sinc resampling (``torchaudio.functional.resample``'s, to float rounding) over a signal
    that arrives in blocks, with the same output as resampling it whole. Each period of ``orig``
    input samples becomes ``new`` output samples (:func:`resampling_ratio`) from the input within
    ``width`` samples of that period; each block is resampled from a period boundary with at
    least that much input kept on either side, and only its outputs that saw no artificial edge
    are kept.

    The filter is applied in polyphase form: the input seen as rows of one period each, every
    output period is the sum over the rows it reads of row @ that row's share of the filter, with
    short periods taken together until that is at most two rows: two matrix products over the
    whole block (about 20x faster than torchaudio's strided convolution from 44.1 to 22.05 kHz on
    2 CPU cores, 1.1-8x at other rates: benchmarks/resample.py)."""

    def __init__(self, rate: int, sample_rate: int) -> None:
        self.rate, self.sample_rate = rate, sample_rate
        orig, new = resampling_ratio(rate, sample_rate)
        kernel, self.width = sinc_kernel(orig, new)
        # Periods taken together, so that every output period reads at most two rows of input:
        # from 44.1 to 22.05 kHz, 13 periods of 2:1 as one of 26:13, 2 matrix products over a
        # block instead of 14 that each read a row of two samples (12x faster).
        group = max(1, math.ceil(2 * self.width / orig))
        kernel = grouped_kernel(kernel, orig, group)
        self.orig, self.new = orig * group, new * group
        rows = -(-kernel.shape[1] // self.orig)  # input periods each output period reads
        # [rows, orig, new]: the filter's share for each input row an output period reads
        self.weights = torch.nn.functional.pad(kernel, (0, rows * self.orig - kernel.shape[1])
                                               ).view(self.new, rows, self.orig).permute(1, 2, 0)
        self.context = self.orig * math.ceil((self.width + self.orig) / self.orig)
        self.pending = torch.zeros(0)  # input from ``start`` on
        self.start = 0
        self.done = 0  # input samples whose output has been returned (a multiple of orig)

    def push(self, block: torch.Tensor) -> list[torch.Tensor]:
        """The output samples ``block`` completes (none while they need more input)."""
        if self.orig == self.new:
            return [block]
        self.pending = torch.cat([self.pending, block])
        end = self.start + self.pending.shape[0]
        ready = (end - self.context - self.done) // self.orig * self.orig
        if ready <= 0:
            return []
        out = self._resample(self.done + ready + self.context)[:ready * self.new // self.orig]
        self.done += ready
        keep = max(self.done - self.context, 0)
        self.pending, self.start = self.pending[keep - self.start:], keep
        return [out]

    def finish(self) -> list[torch.Tensor]:
        """The output samples left once the input has ended."""
        if self.orig == self.new or self.start + self.pending.shape[0] == self.done:
            return []
        return [self._resample(self.start + self.pending.shape[0])]

    def _resample(self, stop: int) -> torch.Tensor:
        """Output samples from input ``done`` on, resampling the input up to ``stop``."""
        segment = self.pending[:stop - self.start]
        first = (self.done - self.start) * self.new // self.orig
        return self.resample(segment)[first:]

    def resample(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav`` [T] resampled whole (zeros beyond both ends), ``ceil(T * new / orig)``
        samples."""
        rows = self.weights.shape[0]
        length = math.ceil(wav.shape[0] * self.new / self.orig)
        periods = -(-length // self.new)
        padded = torch.nn.functional.pad(
            wav, (self.width, (periods + rows - 1) * self.orig - wav.shape[0] - self.width))
        by_period = padded.view(-1, self.orig)
        out = by_period[:periods] @ self.weights[0]
        for row in range(1, rows):
            out.addmm_(by_period[row:row + periods], self.weights[row])
        return out.reshape(-1)[:length]


def float_samples(samples: np.ndarray, source: str) -> np.ndarray:
    """Samples as float32 in [-1, 1]: floats as they are; integer PCM scaled by its type
    (int16 by 2**15, uint8 around 128, ...), as a WAV reader scales it; anything else (bool,
    complex, text) a one-line error naming ``source``."""
    kind = samples.dtype.kind
    if kind == "f":
        return samples.astype(np.float32, copy=False)
    if kind in "iu":
        half = float(1 << (8 * samples.dtype.itemsize - 1))
        offset = half if kind == "u" else 0.0
        return ((samples.astype(np.float64) - offset) / half).astype(np.float32)
    raise Esc50Error(f"{source}: samples of type {samples.dtype} are not audio (give float "
                     "samples in [-1, 1] or integer PCM)")


def fit_length(wav: torch.Tensor, length: int) -> torch.Tensor:
    """The first ``length`` samples of ``wav`` [T], zero-padded at the end when shorter."""
    return wav[:length] if wav.shape[0] >= length else torch.nn.functional.pad(
        wav, (0, length - wav.shape[0]))


def to_int16(wav: torch.Tensor) -> torch.Tensor:
    """Float audio in [-1, 1] to int16 (half the memory of float32; lossless for 16-bit sources)."""
    return (wav * INT16_SCALE).round().clamp(-INT16_SCALE, INT16_SCALE - 1).to(torch.int16)


def to_float(wav: torch.Tensor) -> torch.Tensor:
    """int16 audio back to float32 in [-1, 1)."""
    return wav.to(torch.float32) / INT16_SCALE
