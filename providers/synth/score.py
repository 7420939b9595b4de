"""The offline synthesizer's score: a ``MusicPlan`` turned into ``Note`` events on a 4/4 grid.

Pure and deterministic (randomness only from ``random.Random(plan.seed)``). One chord per bar from
the plan's progression: triads voiced around the tonic in a rhythm picked by feel (strings and
pads hold whole bars); the bass on chord roots and fifths two octaves down; drums by feel (slow:
kick, snare on 3, quarter hats; medium: kick 1/3, snare 2/4, eighth hats; fast: four-on-the-floor,
snare 2/4, off-beat hats); a lead melody from a 4-bar motif of rhythms and scale steps, repeated,
that lands on the nearest chord tone on every downbeat.

A reference contour (one pitch or None per beat) replaces that melody: the lead plays one note
per beat on it, snapped to the scale and moved by whole octaves so its median sits in the lead
register (a pitch still more than an octave off, e.g. a bass note, is folded in); the contour
loops when the music is longer.

Lyrics become a vocal line instead of the lead: ``syllables`` splits words at vowel groups (a
final silent "e" is dropped, accents are ignored; a non-Latin word counts one syllable per
character, up to 8); each
syllable is one eighth note (a quarter when slow) with the vowel it contains (a non-Latin one gets
a vowel from its code point), a consonant onset adds a short noise "breath", each lyric line ends
on the next bar, and the lyrics repeat after a bar's rest; singing starts on the second bar
(the first when the music is three bars or shorter). Its pitch walks the scale an octave
below the lead, landing on chord tones on downbeats, or follows the reference contour.
"""

from __future__ import annotations

import math
import random
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from providers.synth.render import Note

MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
CHORD_LEVEL = 0.5  # three chord notes together still sit under the lead (level 1)
# Rhythms in beats of a 4/4 bar, by feel: (start, length) or, for the bass, (start, length, step).
CHORD_RHYTHMS = {
    "slow": (((0, 4),), ((0, 2), (2, 2))),
    "medium": (((0, 2), (2, 2)), ((0, 1.5), (1.5, 2.5)), ((0, 1), (1, 1), (2, 1), (3, 1))),
    "fast": (((0, 1), (1, 1), (2, 1), (3, 1)), ((0.5, 0.5), (1.5, 0.5), (2.5, 0.5), (3.5, 0.5))),
}
BASS_RHYTHMS = {
    "slow": (((0, 4, 0),), ((0, 2, 0), (2, 2, 4))),
    "medium": (((0, 1.5, 0), (1.5, 0.5, 0), (2, 2, 4)), ((0, 1, 0), (1, 1, 4), (2, 2, 0))),
    "fast": (tuple((i / 2, 0.5, 0) for i in range(8)), ((0, 0.75, 0), (0.75, 1.25, 0), (2, 2, 4))),
}
MELODY_RHYTHMS = {
    "slow": (((0, 2), (2, 2)), ((0, 3), (3, 1)), ((0, 1), (1, 1), (2, 2))),
    "medium": (
        ((0, 1), (1, 1), (2, 1.5), (3.5, 0.5)),
        ((0, 0.5), (0.5, 0.5), (1, 1), (2, 2)),
        ((0, 1.5), (1.5, 0.5), (2, 1), (3, 1)),
    ),
    "fast": (
        ((0, 0.5), (0.5, 0.5), (1, 0.5), (1.5, 0.5), (2, 1), (3, 1)),
        ((0, 0.75), (0.75, 0.75), (1.5, 0.5), (2, 0.5), (2.5, 0.5), (3, 1)),
    ),
}
DRUM_PATTERNS = {
    "slow": ((0, "kick"), (2, "snare"), (2.5, "kick"), *((b, "hat") for b in range(4))),
    "medium": (
        (0, "kick"),
        (1, "snare"),
        (2, "kick"),
        (3, "snare"),
        *((b / 2, "hat") for b in range(8)),
    ),
    "fast": (
        *((b, "kick") for b in range(4)),
        (1, "snare"),
        (3, "snare"),
        *((b + 0.5, "hat") for b in range(4)),
    ),
}


@dataclass(frozen=True, slots=True)
class MusicPlan:
    """Every musical decision made before rendering; ``seed`` drives the remaining randomness."""

    seed: int
    tempo_bpm: float
    tonic: int  # MIDI note of the key's tonic, 55-66
    scale: str  # "major" or "minor"
    feel: str  # "slow", "medium" or "fast", from the tempo
    progression: tuple[int, ...]  # scale degrees (0 = tonic), one chord per bar
    chord_voice: str
    lead_voice: str | None  # None when a vocal line sings the lead
    bass: bool
    drums: bool
    syllables: tuple[str, ...] = ()  # sung syllables; "" ends a lyric line

    def note(self, index: int) -> int:
        """The MIDI note of scale step ``index`` (0 = tonic; 7 = an octave up)."""
        steps = MINOR if self.scale == "minor" else MAJOR
        return self.tonic + 12 * (index // 7) + steps[index % 7]


def syllables(lyrics: str, limit: int = 400) -> tuple[str, ...]:
    """Sung syllables of the lyrics, each line closed by ""; words without vowels count once."""
    result: list[str] = []
    for line in lyrics.lower().splitlines():
        for written in re.findall(r"[^\W\d_]+", line):
            # Accents off ("café" -> "cafe"), so accented Latin words syllabify like English.
            decomposed = unicodedata.normalize("NFKD", written)
            word = "".join(c for c in decomposed if not unicodedata.combining(c))
            if not word.isascii():
                result.extend(word[:8])  # one syllable per character, e.g. kana or hanzi
                continue
            silent_e = len(word) > 2 and word.endswith("e") and re.search("[aeiouy]", word[:-1])
            spoken = word[:-1] if silent_e else word
            result.extend(re.findall(r"[^aeiouy]*[aeiouy]+(?:[^aeiouy]*$)?", spoken) or [spoken])
        if result and result[-1]:
            result.append("")
    return tuple(result[:limit])


def _snap(plan: MusicPlan, midi: float) -> int:
    """The scale note nearest to ``midi``."""
    return min((plan.note(i) for i in range(-21, 35)), key=lambda note: abs(note - midi))


def _contour_pitches(plan: MusicPlan, contour: Sequence[float | None]) -> list[int | None]:
    """The reference's per-beat pitches on the scale, in the lead register.

    The contour moves by whole octaves so its median sits at the register's centre; a pitch still
    more than an octave away (a bass note or an octave error of the pitch tracker) is folded in.
    """
    midis = [None if hz is None else 69 + 12 * math.log2(hz / 440.0) for hz in contour]
    voiced = sorted(m for m in midis if m is not None)
    if not voiced:
        return []
    centre = plan.tonic + 16
    shift = 12 * round((centre - voiced[len(voiced) // 2]) / 12)
    folded = [None if m is None else m + shift for m in midis]
    return [
        None
        if m is None
        else _snap(plan, m + 12 * round((centre - m) / 12) if abs(m - centre) > 12 else m)
        for m in folded
    ]


def _nearest_chord_tone(index: int, degree: int) -> int:
    tones = [degree + step + 7 * octave for octave in range(-2, 4) for step in (0, 2, 4)]
    return min(tones, key=lambda tone: (abs(tone - index), tone))


def _vocal(
    plan: MusicPlan, total_beats: float, rng: random.Random, pitch: Callable[[float], int | None]
) -> list[Note]:
    """One note per syllable; a line ends on the next bar; the lyrics repeat after a bar's rest."""
    notes: list[Note] = []
    slot = 1.0 if plan.feel == "slow" else 0.5
    beat, walk = (4.0 if total_beats > 12 else 0.0), 4
    while beat < total_beats:
        for syllable in plan.syllables:
            if beat >= total_beats:
                break
            if not syllable:
                beat = 4.0 * (math.floor(beat / 4) + 1)
                continue
            degree = plan.progression[int(beat // 4) % len(plan.progression)]
            walk = min(9, max(0, walk + rng.choice((-2, -1, 0, 1, 1, 2))))
            if beat % 4 == 0:
                walk = _nearest_chord_tone(walk, degree)
            letters = [c for c in syllable if c in "aeiouy"]
            vowel = ("aeiou"[ord(syllable[0]) % 5] if not letters else letters[0]).replace("y", "i")
            followed = pitch(beat)  # the contour sits in the lead register: an octave lower
            midi = plan.note(walk) if followed is None else followed - 12
            notes.append(Note(beat, slot * 0.9, midi, "vocal", 0.9, vowel))
            if syllable.isascii() and syllable[0] not in "aeiouy":
                notes.append(Note(beat, 0.0, 0.0, "breath"))
            beat += slot
        beat = 4.0 * (math.floor(beat / 4) + 2)
    return notes


def compose(
    plan: MusicPlan,
    total_beats: float,
    *,
    contour: Sequence[float | None] = (),
    lead: bool = True,
) -> list[Note]:
    """The notes of the arrangement (see the module docstring); beats from 0 to ``total_beats``."""
    rng = random.Random(plan.seed)
    chord_rhythm = rng.choice(CHORD_RHYTHMS[plan.feel])
    if plan.chord_voice in ("strings", "pad"):
        chord_rhythm = ((0, 4),)  # slow attacks want held chords
    bass_rhythm = rng.choice(BASS_RHYTHMS[plan.feel])
    steps = (-2, -1, -1, 0, 1, 1, 2, 3, -3)
    motif = [
        [
            (start, length, rng.choice(steps))
            for start, length in rng.choice(MELODY_RHYTHMS[plan.feel])
        ]
        for _ in range(4)
    ]
    followed = _contour_pitches(plan, contour)
    notes: list[Note] = []
    walk = 9
    for bar in range(math.ceil(total_beats / 4)):
        first = 4.0 * bar
        degree = plan.progression[bar % len(plan.progression)]
        for start, length in chord_rhythm:
            for step in (degree, degree + 2, degree + 4):
                midi = plan.note(step)
                midi -= 12 if midi > plan.tonic + 9 else 0
                notes.append(Note(first + start, length, midi, plan.chord_voice, CHORD_LEVEL))
        if plan.bass:
            for start, length, step in bass_rhythm:
                notes.append(Note(first + start, length, plan.note(degree + step) - 24, "bass"))
        if plan.drums:
            for start, kind in DRUM_PATTERNS[plan.feel]:
                accent = 1.0 if kind != "hat" or start % 1 == 0 else 0.7
                notes.append(Note(first + start, 0.0, 0.0, kind, accent))
        if lead and plan.lead_voice and not followed:
            for start, length, step in motif[bar % 4]:
                walk = min(16, max(5, walk + step))
                if start == 0:
                    walk = _nearest_chord_tone(walk, degree)
                notes.append(Note(first + start, length * 0.95, plan.note(walk), plan.lead_voice))
    if lead and plan.lead_voice and followed:
        for beat in range(math.ceil(total_beats)):
            target = followed[beat % len(followed)]
            if target is not None:
                notes.append(Note(float(beat), 0.95, target, plan.lead_voice))
    if plan.syllables:

        def pitch(beat: float) -> int | None:
            return followed[int(beat) % len(followed)] if followed else None

        notes.extend(_vocal(plan, total_beats, rng, pitch))
    return [note for note in notes if note.beat < total_beats]
