"""Sound for the offline music synthesizer: timbres, notes and drums into samples, and mastering.

It owns the voices (harmonic recipes with attack/decay/sustain/release envelopes; strings, pad
and synth as two copies a few cents apart), the vocal-like voice (a buzz whose harmonics fall as
1/n, shaped by three formant resonances of the syllable's vowel), the drum kit (kick: a sine
whose pitch falls from 155 to 45 Hz; snare: a noise burst over a 185 Hz body; hi-hat and the
vocal's consonant "breath": differentiated noise), turning ``Note`` events into a float mix at
``SAMPLE_RATE`` (32000 Hz, mono), and mastering: 5 ms fade-in, a fade-out over min(1.5 s, 10%),
the peak scaled to 90% of full scale, so 16-bit samples never clip.

Speed: a tone is a one-cycle wavetable (2048 points, summed harmonics, band-limited below 45% of
the sample rate) resampled once into a bundle of whole cycles about 2048 samples long (its pitch
exact to under a cent), tiled with ``itertools.cycle``. Envelopes are slices of a cached
geometric decay from ``accumulate``, and every per-sample operation is a ``map`` inside C over
``array('d')`` blocks, so no Python code runs per sample and a long mix stays 8 bytes a sample.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate, chain, cycle, islice, repeat
from operator import add, mul, sub

from providers.synth.wav import PCM16_MAX

SAMPLE_RATE = 32000
TABLE_SIZE = 2048  # a power of two: wavetable indices wrap with a mask
BUNDLE_SAMPLES = 2048
# Long loops inside C hold the GIL: in blocks of about 2 s, a render in a worker thread lets
# the event loop run between them, and no full-length temporary copy is made.
BLOCK_SAMPLES = 1 << 16
HEADROOM = 0.9  # the master's peak, as a fraction of full scale
VOWEL_FORMANTS = {  # F1, F2, F3 in Hz of an adult voice
    "a": (800, 1200, 2500),
    "e": (500, 1800, 2500),
    "i": (300, 2300, 3000),
    "o": (500, 850, 2500),
    "u": (330, 800, 2300),
}
FORMANT_GAINS, FORMANT_WIDTHS = (1.0, 0.6, 0.3), (80.0, 100.0, 150.0)


@dataclass(frozen=True, slots=True)
class Voice:
    """A timbre: harmonic amplitudes (1st, 2nd, ...) and an envelope in seconds."""

    harmonics: tuple[float, ...]
    attack: float
    decay: float  # time constant of the fall from the attack peak to ``sustain``
    sustain: float
    release: float
    gain: float
    detune_cents: float = 0.0  # > 0: two copies this far apart, for a chorus-like width
    partial: tuple[float, float] = (0.0, 0.0)  # one inharmonic (ratio, level), for bells


VOICES = {
    "piano": Voice((1, 0.5, 0.3, 0.2, 0.1, 0.06, 0.04), 0.005, 0.6, 0.0, 0.15, 0.45),
    "strings": Voice(tuple(1 / h for h in range(1, 9)), 0.25, 2.0, 0.8, 0.3, 0.22, 7.0),
    "pad": Voice((1, 0.2, 0.3, 0.05, 0.1), 0.6, 3.0, 0.85, 0.6, 0.25, 10.0),
    "synth": Voice((1, 0.3, 0.33, 0.15, 0.2, 0.05, 0.14), 0.01, 0.3, 0.6, 0.08, 0.3, 5.0),
    "bell": Voice((1, 0.0, 0.0, 0.3), 0.002, 0.9, 0.0, 0.3, 0.4, 0.0, (2.76, 0.4)),
    "bass": Voice((1, 0.6, 0.25, 0.12, 0.05), 0.01, 0.5, 0.6, 0.06, 0.55),
    "vocal": Voice((1,), 0.04, 0.5, 0.75, 0.08, 0.6),
}
DRUM_LEVELS = {"kick": 0.9, "snare": 0.45, "hat": 0.16, "breath": 0.08}


@dataclass(frozen=True, slots=True)
class Note:
    """One event on the beat grid; drums (and the vocal's consonant "breath") ignore ``midi``."""

    beat: float
    beats: float
    midi: float
    voice: str  # a VOICES or DRUM_LEVELS key
    level: float = 1.0
    vowel: str = ""  # the vocal's vowel: a, e, i, o or u


def ramp(length: int, *, rising: bool = False) -> Iterator[float]:
    """A linear fade over ``length`` samples: 0 up to (not reaching) 1, or 1 down to 1/length."""
    steps = range(length) if rising else range(length, 0, -1)
    return map(mul, steps, repeat(1.0 / length))


@lru_cache(maxsize=1)
def _sine() -> list[float]:
    return [math.sin(2 * math.pi * i / TABLE_SIZE) for i in range(TABLE_SIZE)]


@lru_cache(maxsize=128)
def _cycle_table(harmonics: tuple[float, ...]) -> list[float]:
    """One cycle of the summed harmonics, peak-normalised."""
    sine = _sine()
    total = [0.0] * TABLE_SIZE
    for number, amplitude in enumerate(harmonics, 1):
        if amplitude:
            # (sine * n)[::n][i] == sine[n * i mod TABLE_SIZE]: harmonic n without a Python loop.
            total = list(map(add, total, map(mul, (sine * number)[::number], repeat(amplitude))))
    return list(map(mul, total, repeat(1.0 / (peak(total) or 1.0))))


def _band_limited(harmonics: tuple[float, ...], frequency: float) -> tuple[float, ...]:
    return harmonics[: max(1, int(0.45 * SAMPLE_RATE / frequency))]


@lru_cache(maxsize=512)
def _formant_harmonics(vowel: str, frequency: float) -> tuple[float, ...]:
    """Harmonic amplitudes of a buzz (falling as 1/n) through the vowel's formant resonances."""
    formants = VOWEL_FORMANTS.get(vowel, VOWEL_FORMANTS["a"])
    count = max(1, int(min(5000.0, 0.45 * SAMPLE_RATE) / frequency))
    amplitudes = [
        sum(
            gain / (1.0 + ((n * frequency - center) / width) ** 2)
            for center, gain, width in zip(formants, FORMANT_GAINS, FORMANT_WIDTHS, strict=True)
        )
        / n
        for n in range(1, count + 1)
    ]
    loudest = max(amplitudes)
    return tuple(a if a >= 0.02 * loudest else 0.0 for a in amplitudes)


@lru_cache(maxsize=256)
def _bundle(harmonics: tuple[float, ...], frequency: float, level: float) -> list[float]:
    """Whole cycles of the tone at ``level``, about BUNDLE_SAMPLES long, to tile seamlessly."""
    period = SAMPLE_RATE / frequency
    cycles = max(1, round(BUNDLE_SAMPLES / period))
    length = max(1, round(cycles * period))
    table, step, mask = _cycle_table(harmonics), cycles * TABLE_SIZE / length, TABLE_SIZE - 1
    return [level * table[int(i * step) & mask] for i in range(length)]


@lru_cache(maxsize=8)
def _shape(voice_name: str, seconds: int) -> array[float]:
    """The voice's attack and decay toward sustain, ``seconds`` long; notes slice it."""
    voice, length = VOICES[voice_name], seconds * SAMPLE_RATE
    falling = accumulate(repeat(math.exp(-1.0 / (voice.decay * SAMPLE_RATE)), length - 1), mul)
    above = 1.0 - voice.sustain
    shape = array("d", [1.0])
    shape.extend(map(add, map(mul, falling, repeat(above)), repeat(voice.sustain)))
    attack = int(voice.attack * SAMPLE_RATE)
    if attack:
        shape[:attack] = array("d", map(mul, shape[:attack], ramp(attack, rising=True)))
    return shape


@lru_cache(maxsize=16)
def _envelope(voice_name: str, length: int) -> list[float]:
    """The shape cut to ``length`` samples, fading out over the voice's release time (a list:
    iterating it creates no float object per sample, measured a third faster than an array)."""
    envelope = _shape(voice_name, math.ceil(length / SAMPLE_RATE))[:length].tolist()
    release = min(length, int(VOICES[voice_name].release * SAMPLE_RATE))
    if release:
        envelope[length - release :] = map(mul, envelope[length - release :], ramp(release))
    return envelope


@lru_cache(maxsize=1)
def _drum_sounds() -> dict[str, list[float]]:
    rng = random.Random(7)  # a fixed noise: the kit sounds the same in every render
    noise = [rng.uniform(-1.0, 1.0) for _ in range(SAMPLE_RATE // 2)]
    hiss = list(map(mul, map(sub, noise[1:], noise), repeat(0.5)))  # high-passed
    times = [i / SAMPLE_RATE for i in range(int(0.35 * SAMPLE_RATE))]
    # The kick's pitch falls from 155 to 45 Hz (time constant 40 ms); its phase is the integral.
    kick = [
        math.sin(2 * math.pi * (45 * t + 110 * 0.04 * (1 - math.exp(-t / 0.04))))
        * math.exp(-t / 0.18)
        for t in times
    ]
    snare = [
        (0.7 * noise[i] + 0.5 * math.sin(2 * math.pi * 185 * t)) * math.exp(-t / 0.055)
        for i, t in enumerate(times[: int(0.2 * SAMPLE_RATE)])
    ]
    hat = [hiss[i] * math.exp(-t / 0.012) for i, t in enumerate(times[: int(0.05 * SAMPLE_RATE)])]
    breath_length = int(0.03 * SAMPLE_RATE)
    breath = [hiss[i] * math.sin(math.pi * i / breath_length) for i in range(breath_length)]
    return {"kick": kick, "snare": snare, "hat": hat, "breath": breath}


def _add_into(mix: array[float], start: int, length: int, samples: Iterable[float]) -> None:
    """Add ``samples`` (at least ``length`` of them, or up to the mix's end) from ``start``."""
    end, source = min(len(mix), start + length), iter(samples)
    # In blocks, so adding a long sound needs no second full-length copy of the mix.
    for first in range(start, end, BLOCK_SAMPLES):
        last = min(end, first + BLOCK_SAMPLES)
        mix[first:last] = array("d", map(add, mix[first:last], islice(source, last - first)))


def _tones(note: Note, voice: Voice, chord_position: int | None) -> Iterator[list[float]]:
    """The level-scaled bundles that together make the note's timbre.

    A detuned voice plays a lone note as two copies, half the detune sharp and flat; in a chord
    each note is one copy, alternately sharp and flat, which keeps the slow beating between the
    chord's harmonics for half the work.
    """
    frequency = 440.0 * 2 ** ((note.midi - 69) / 12)
    level = round(note.level * voice.gain, 3)
    half = voice.detune_cents / 2
    if note.vowel:
        yield _bundle(_formant_harmonics(note.vowel, round(frequency, 3)), frequency, level)
    elif half:
        copies: tuple[tuple[float, float], ...] = ((half, 0.5), (-half, 0.5))
        if chord_position is not None:
            copies = ((half if chord_position % 2 else -half, 1.0),)
        for cents, share in copies:
            shifted = frequency * 2 ** (cents / 1200)
            yield _bundle(_band_limited(voice.harmonics, shifted), shifted, share * level)
    else:
        yield _bundle(_band_limited(voice.harmonics, frequency), frequency, level)
    ratio, partial_level = voice.partial
    if ratio and frequency * ratio < 0.45 * SAMPLE_RATE:
        yield _bundle((1.0,), frequency * ratio, partial_level * level)


def render_notes(
    notes: Iterable[Note], tempo_bpm: float, total: int, offset: int = 0
) -> array[float]:
    """A float mix ``total`` samples long; beat 0 falls on sample ``offset``.

    Notes struck together on one voice (a chord) are summed before their one envelope pass and
    their one addition into the mix, so a sample costs about two C-level operations per tone, and
    an event that repeats (same voice, pitches, length and level) costs only the addition.
    """
    mix = array("d", bytes(8 * total))  # zeros
    beat = 60.0 * SAMPLE_RATE / tempo_bpm
    drums = _drum_sounds()
    struck: dict[tuple[str, float, float, float], list[Note]] = {}
    for note in notes:
        if note.voice in drums:
            start, hit = offset + round(note.beat * beat), drums[note.voice]
            level = note.level * DRUM_LEVELS[note.voice]
            _add_into(mix, start, len(hit), map(mul, hit, repeat(level)))
        else:
            struck.setdefault((note.voice, note.beat, note.beats, note.level), []).append(note)
    # Progressions, riffs and motifs repeat: an identical event is rendered once per mix.
    rendered: dict[tuple[object, ...], array[float]] = {}
    for (name, first_beat, beats, level), chord in struck.items():
        start, length = offset + round(first_beat * beat), max(1, round(beats * beat))
        if start >= total:
            continue
        key = (name, beats, level, *((note.midi, note.vowel) for note in chord))
        if key not in rendered:
            positions = range(len(chord)) if len(chord) > 1 else [None]
            bundles = [
                bundle
                for note, position in zip(chord, positions, strict=True)
                for bundle in _tones(note, VOICES[name], position)
            ]
            signal: Iterator[float] = cycle(bundles[0])
            for bundle in bundles[1:]:
                signal = map(add, signal, cycle(bundle))
            rendered[key] = array("d", map(mul, signal, _envelope(name, length)))
        _add_into(mix, start, length, rendered[key])
    return mix


def peak(samples: Sequence[float]) -> float:
    """The largest absolute value."""
    extremes = [0.0]
    for first in range(0, len(samples), BLOCK_SAMPLES):
        block = samples[first : first + BLOCK_SAMPLES]
        extremes += (max(block), -min(block))
    return max(extremes)


def blend(mix: array[float], gain: float, other: Iterable[float], other_gain: float) -> None:
    """In place: ``mix * gain + other * other_gain``; ``other`` may end early (silence after)."""
    source = chain(map(mul, other, repeat(other_gain)), repeat(0.0))
    for first in range(0, len(mix), BLOCK_SAMPLES):
        last = min(len(mix), first + BLOCK_SAMPLES)
        scaled = map(mul, mix[first:last], repeat(gain))
        mix[first:last] = array("d", map(add, scaled, islice(source, last - first)))


def master(mix: array[float], fade_in: float = 0.005, fade_out: float = 1.5) -> array[int]:
    """16-bit samples: short fades at both ends, the peak at HEADROOM of full scale."""
    total = len(mix)
    head = min(total, int(fade_in * SAMPLE_RATE))
    tail = min(total - head, int(min(fade_out, 0.1 * total / SAMPLE_RATE) * SAMPLE_RATE))
    if head:
        mix[:head] = array("d", map(mul, mix[:head], ramp(head, rising=True)))
    if tail:
        mix[total - tail :] = array("d", map(mul, mix[total - tail :], ramp(tail)))
    loudest = peak(mix)
    if not loudest:
        return array("h", bytes(2 * total))
    scale = HEADROOM * PCM16_MAX / loudest
    samples = array("h")
    for first in range(0, total, BLOCK_SAMPLES):
        samples.extend(map(int, map(mul, mix[first : first + BLOCK_SAMPLES], repeat(scale))))
    return samples
