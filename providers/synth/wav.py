"""WAV bytes in and out, and simple measurements of the PCM audio inside them (stdlib only).

It owns: encoding 16-bit PCM WAV from samples, decoding any PCM WAV the stdlib ``wave`` module
reads (8/16/24/32-bit integer, any channel count) to mono floats, linear resampling, and three
measurements: ``describe_wav`` (format, length, loudness, peak), ``estimate_pitch`` (normalised
autocorrelation on one window) and ``estimate_tempo`` (autocorrelation of an onset envelope).

Loops over samples run inside C (``map``, ``accumulate``, slicing) wherever the operation allows;
resampling, which needs a position per sample, is one plain loop.
"""

from __future__ import annotations

import io
import math
import sys
import wave
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise, repeat
from operator import add, mul

PCM16_MAX = 32767
_BLOCK = 1 << 16


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What a WAV file holds; ``rms`` is a fraction of full scale, ``peak`` in sample units."""

    sample_rate: int
    channels: int
    sample_width: int  # bytes per sample
    frames: int
    duration_seconds: float
    rms: float
    peak: int


def encode_wav(samples: Iterable[int], sample_rate: int, channels: int = 1) -> bytes:
    """16-bit little-endian PCM WAV bytes; ``samples`` are interleaved integers in int16 range."""
    pcm = samples if isinstance(samples, array) and samples.typecode == "h" else array("h", samples)
    if sys.byteorder == "big":
        pcm = array("h", pcm)  # byteswap a copy, never the caller's samples
        pcm.byteswap()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm.tobytes())
    return buffer.getvalue()


def _pcm_integers(raw: bytes, sample_width: int) -> array[int]:
    """Interleaved samples as signed integers of the file's own scale."""
    if sample_width == 1:  # 8-bit WAV is unsigned
        return array("h", map(add, raw, repeat(-128)))
    if sample_width == 3:
        # Widen each 3-byte sample to 4 bytes with a zero low byte: int32 scaled by 256.
        count = len(raw) // 3
        widened = bytearray(4 * count)
        widened[1::4] = raw[0 : 3 * count : 3]
        widened[2::4] = raw[1 : 3 * count : 3]
        widened[3::4] = raw[2 : 3 * count : 3]
        raw = bytes(widened)
        sample_width = 4
    values = array("h" if sample_width == 2 else "i")
    if values.itemsize != sample_width:
        raise ValueError(f"unsupported sample width {sample_width}")
    values.frombytes(raw[: len(raw) - len(raw) % sample_width])
    if sys.byteorder == "big":
        values.byteswap()
    return values


def _read(data: bytes, max_seconds: float | None) -> tuple[int, int, int, array[int]]:
    with wave.open(io.BytesIO(data), "rb") as reader:
        rate, channels, width = reader.getframerate(), reader.getnchannels(), reader.getsampwidth()
        frames = reader.getnframes()
        if max_seconds is not None:
            frames = min(frames, int(max_seconds * rate))
        raw = reader.readframes(frames)
    if rate <= 0 or channels <= 0:
        raise ValueError("a WAV file without a sample rate or channels")
    return rate, channels, width, _pcm_integers(raw, width)


def describe_wav(data: bytes) -> WavInfo:
    """Format, length, RMS and peak of a WAV file; raises ``wave.Error``/``EOFError`` if invalid."""
    rate, channels, width, values = _read(data, None)
    frames = len(values) // channels
    full_scale = float(1 << (8 * min(width, 4) - 1))
    peak = max(max(values, default=0), -min(values, default=0))
    if width == 3:  # undo the widening to 32 bits
        peak >>= 8
        full_scale /= 256.0
        energy = sum(map(mul, values, values)) / 65536.0
    else:
        energy = float(sum(map(mul, values, values)))
    rms = math.sqrt(energy / len(values)) / full_scale if values else 0.0
    return WavInfo(rate, channels, width, frames, frames / rate, rms, peak)


def decode_wav_mono(data: bytes, max_seconds: float | None = None) -> tuple[int, array[float]]:
    """The sample rate and the channels' average as floats in -1..1 (raises on an invalid WAV)."""
    rate, channels, width, values = _read(data, max_seconds)
    scale = 1.0 / (float(1 << (8 * (4 if width == 3 else width) - 1)) * channels)
    mono = array("f")  # single precision: ample for analysis and mixing, half the memory
    step = _BLOCK * channels
    for first in range(0, len(values) - len(values) % channels, step):
        block = values[first : first + step]
        mixed: Iterable[int] = block[0::channels]
        for channel in range(1, channels):
            mixed = map(add, mixed, block[channel::channels])
        mono.extend(map(mul, mixed, repeat(scale)))
    return rate, mono


def resample(samples: Sequence[float], from_rate: int, to_rate: int) -> array[float]:
    """Linear interpolation; reducing the rate 2x or more averages each output step instead.

    A plain loop: measured about twice as fast as a comprehension that has to unpack each
    position, and it builds the result in blocks so a long recording needs no large list.
    """
    if from_rate == to_rate or len(samples) < 2:
        return array("d", samples)
    step = from_rate / to_rate
    count = int((len(samples) - 1) / step)  # keeps the last index + 1 inside the source
    width = int(step)
    # Averaging over the samples an output stands for is a box filter against aliasing; prefix
    # sums make every average cost two lookups.
    sums = array("d", accumulate(samples, initial=0.0)) if width >= 2 else array("d")
    result, block = array("d"), []
    for k in range(count):
        position = k * step
        i = int(position)
        if width >= 2:
            block.append((sums[i + width] - sums[i]) / width)
        else:
            left = samples[i]
            block.append(left + (samples[i + 1] - left) * (position - i))
        if len(block) == _BLOCK:
            result.extend(block)
            block.clear()
    result.extend(block)
    return result


def estimate_pitch(
    samples: Sequence[float],
    rate: int,
    start: int,
    window: int,
    *,
    low_hz: float = 60.0,
    high_hz: float = 1000.0,
) -> float | None:
    """The fundamental in Hz of ``samples[start:start+window]``, or None when unvoiced/silent.

    Normalised autocorrelation; the first local maximum within 90% of the best one is taken, so a
    multiple of the true period (an octave too low) does not win.
    """
    min_lag, max_lag = max(2, int(rate / high_hz)), int(rate / low_hz) + 1
    segment = samples[start : start + window + max_lag + 1]
    if len(segment) < window + max_lag + 1:
        return None
    head = segment[:window]
    head_energy = sum(map(mul, head, head))
    if head_energy < window * 1e-6:  # quieter than -60 dBFS RMS
        return None
    squares = list(accumulate(map(mul, segment, segment), initial=0.0))
    scores: list[float] = []
    for lag in range(min_lag - 1, max_lag + 2):
        energy = squares[lag + window] - squares[lag]
        product = sum(map(mul, head, segment[lag : lag + window]))
        scores.append(product / math.sqrt(head_energy * energy) if energy > 0 else 0.0)
    best = max(scores)
    if best < 0.6:
        return None
    for index in range(1, len(scores) - 1):
        before, here, after = scores[index - 1], scores[index], scores[index + 1]
        if here >= 0.9 * best and here >= before and here >= after:
            curvature = before - 2 * here + after
            shift = 0.5 * (before - after) / curvature if curvature < 0 else 0.0
            return rate / (min_lag - 1 + index + shift)
    return None


def estimate_tempo(
    samples: Sequence[float], rate: int, *, low_bpm: float = 60.0, high_bpm: float = 180.0
) -> float | None:
    """Beats per minute from the periodicity of energy onsets, or None when there is no pulse.

    Onsets are the rises of the 10 ms RMS envelope (mean removed). A lag's score is its
    autocorrelation plus half that of twice the lag (a beat repeats at two beats too), weighted
    by a broad preference for about 110 BPM, which settles most double/half-tempo ambiguity.
    """
    hop = max(1, rate // 100)
    squares = array("d", accumulate(map(mul, samples, samples), initial=0.0))
    frames = len(samples) // hop
    # max(): prefix sums may differ by a rounding error below zero on silence
    levels = [math.sqrt(max(0.0, squares[(i + 1) * hop] - squares[i * hop])) for i in range(frames)]
    rises = [max(0.0, b - a) for a, b in pairwise(levels)]
    frames_per_minute = 60.0 * rate / hop
    shortest, longest = int(frames_per_minute / high_bpm), int(frames_per_minute / low_bpm) + 1
    if len(rises) < 3 * longest or not any(rises):
        return None
    mean = sum(rises) / len(rises)
    onsets = [rise - mean for rise in rises]
    correlation: dict[int, float] = {
        lag: sum(map(mul, onsets, onsets[lag:])) / (len(onsets) - lag)
        for lag in range(shortest - 1, 2 * longest + 3)
    }

    def score(lag: int) -> float:
        octaves = math.log2(frames_per_minute / lag / 110.0)
        preference = math.exp(-0.5 * octaves * octaves)
        return (correlation[lag] + 0.5 * correlation[2 * lag]) * preference

    lag = max(range(shortest, longest + 1), key=score)
    if correlation[lag] <= 0:
        return None
    before, here, after = correlation[lag - 1], correlation[lag], correlation[lag + 1]
    curvature = before - 2 * here + after
    shift = 0.5 * (before - after) / curvature if curvature < 0 else 0.0
    return frames_per_minute / (lag + max(-0.5, min(0.5, shift)))
