"""The offline music synthesizer: a prompt (and an analysed reference) in, a WAV file out.

Pure and deterministic: no I/O, no clock, no global randomness. Every choice the words below do
not make comes from ``random.Random`` seeded with sha256(prompt, lyrics, instrumental, seed,
reference digest, reference mode): the same request renders byte-identical audio, another prompt
or seed other music. Output: 32000 Hz, mono, 16-bit PCM, exactly round(duration * 32000) frames.

The prompt, as lower-case words ("no X" or "without X" removes X from every list, and an
instrument X from every choice):
  tempo   a reference's tempo wins (its audio must line up), then "NNN bpm" (40-200); otherwise
          slow/ballad/ambient/calm/chill/relaxing/peaceful/gentle/soft/dreamy/lullaby/lofi pick
          64-84 BPM, fast/dance/energetic/upbeat/edm/techno/house/party/rave/punk/driving/workout
          122-148, neither (or both) 88-116. Under 88 BPM the feel is slow, over 118 fast.
  scale   sad/dark/minor/melancholy/gloomy/moody/tragic/haunting/eerie/lonely/mysterious: natural
          minor; happy/bright/major/joyful/cheerful/uplifting/sunny/hopeful/triumphant/playful:
          major; neither (or both): the reference's guess, else the hash.
  key     a reference's tonic wins, then "in D", "in F#" (capital letter), "Bb minor", "c major";
          else the hash.
  voices  piano/keys, strings/violin/cello/orchestral, pad, synth, bell/chimes: the first named
          one that can play chords (not bell) plays the chords, the next named one the lead (one
          named voice plays both); bass and drums/drum/beat/percussion only when named. With no
          instrument word at all the hash picks chord and lead voices, bass plays, and drums play
          unless the feel is slow (then a 30% chance).
Lyrics (unless instrumental) replace the lead instrument with a vocal-like voice. The score
(chords, bass, melody, drums, vocal line) is ``providers.music_score``; the sound (voices,
formants, drum kit, mastering: the peak scaled to 90% of full scale, never clipping) is
``providers.music_render``.

A reference (``ReferenceInfo``, built by ``providers.music_local``) sets tempo and tonic, and the
scale when no scale word does; then by mode:
  melody        the lead (or the vocal) plays one note per beat on the reference's pitch contour
  continuation  the output opens with the reference audio (up to half the duration), crossfades
                over 0.5 s, and the arrangement starts on a fresh downbeat in the reference's
                tempo and key
  remix         the reference, looped to the duration, under the arrangement without its lead
                instrument (lyrics are still sung): strength * arrangement + (1 - strength) *
                reference, each normalised first (strength 0.5 unless given)
A reference without decodable audio carries a hash-derived tempo, tonic and contour and no audio,
so "continuation" and "remix" then render the full arrangement in that tempo and key.
"""

from __future__ import annotations

import hashlib
import random
import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from operator import mul

from providers.synth.render import SAMPLE_RATE, blend, master, peak, ramp, render_notes
from providers.synth.score import MusicPlan, compose, syllables
from providers.synth.wav import encode_wav

PITCH_CLASSES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}

SLOW_WORDS = frozenset(
    "slow ballad ambient calm chill relaxing peaceful gentle soft dreamy lullaby lofi".split()
)
FAST_WORDS = frozenset(
    "fast dance energetic upbeat edm techno house party rave punk driving workout".split()
)
MINOR_WORDS = frozenset(
    "sad dark minor melancholy gloomy moody tragic haunting eerie lonely mysterious".split()
)
MAJOR_WORDS = frozenset(
    "happy bright major joyful cheerful uplifting sunny hopeful triumphant playful".split()
)
INSTRUMENTS = {
    **dict.fromkeys(("piano", "keys"), "piano"),
    **dict.fromkeys(("strings", "violin", "cello", "orchestral"), "strings"),
    **dict.fromkeys(("pad", "pads"), "pad"),
    **dict.fromkeys(("synth", "synths"), "synth"),
    **dict.fromkeys(("bell", "bells", "chimes"), "bell"),
    "bass": "bass",
    **dict.fromkeys(("drums", "drum", "beat", "beats", "percussion"), "drums"),
}
CHORD_VOICES, LEAD_VOICES = (
    ("piano", "strings", "pad", "synth"),
    ("piano", "strings", "synth", "bell"),
)
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (0, 3, 5, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 5, 3, 4), (0, 3, 6, 2)),
}
MELODIC = ("piano", "strings", "pad", "synth", "bell")


@dataclass(frozen=True, slots=True)
class ReferenceInfo:
    """What the synthesizer uses of a reference recording (from WAV analysis or a hash)."""

    mode: str
    digest: bytes
    source: str  # "wav": measured from the audio; "hash": derived from the file's bytes
    tonic_pc: int
    minor: bool | None
    tempo_bpm: float
    contour_hz: tuple[float | None, ...] = ()  # one pitch per beat
    audio: Sequence[float] = field(default_factory=tuple)  # mono, SAMPLE_RATE, -1..1
    strength: float = 0.5


def _words(prompt: str) -> tuple[list[str], set[str]]:
    """The prompt's words, and the instruments it refuses ("no drums", "without piano")."""
    tokens = re.findall(r"[a-z0-9#]+", prompt.lower())
    refused = [i > 0 and tokens[i - 1] in ("no", "without") for i in range(len(tokens))]
    kept = [word for word, no in zip(tokens, refused, strict=True) if not no]
    return kept, {
        INSTRUMENTS[w] for w, no in zip(tokens, refused, strict=True) if no and w in INSTRUMENTS
    }


def prompt_key(prompt: str) -> int | None:
    """The pitch class (0 = C) of a key the prompt names, if it names one."""
    # "in D" needs the capital (so "in a dream" names no key); "a minor" and "Bb major" do not.
    found = re.search(r"\bin ([A-G])([#b])?(?![\w#])", prompt) or re.search(
        r"\b([a-g])([#b])? (?:major|minor)\b", prompt.lower()
    )
    if not found:
        return None
    shift = {"#": 1, "b": -1}.get(found.group(2) or "", 0)
    return (PITCH_CLASSES[found.group(1).lower()] + shift) % 12


def plan_music(
    prompt: str,
    seed: int | None,
    *,
    lyrics: str | None = None,
    instrumental: bool = False,
    reference: ReferenceInfo | None = None,
) -> MusicPlan:
    """Decide tempo, key, scale, progression and voices (see the module docstring)."""
    material = f"{prompt}\0{lyrics}\0{instrumental}\0{seed}".encode()
    if reference is not None:
        material += b"\0" + reference.digest + reference.mode.encode()
    rng = random.Random(hashlib.sha256(material).digest())
    words, refused = _words(prompt)
    slow, fast = bool(SLOW_WORDS.intersection(words)), bool(FAST_WORDS.intersection(words))
    minor, major = bool(MINOR_WORDS.intersection(words)), bool(MAJOR_WORDS.intersection(words))
    bpm = re.search(r"\b(\d{2,3}) ?bpm\b", prompt.lower())
    tempo = rng.uniform(64, 84) if slow and not fast else rng.uniform(122, 148)
    if slow == fast:
        tempo = rng.uniform(88, 116)
    if bpm:
        tempo = min(200.0, max(40.0, float(bpm.group(1))))
    if reference is not None:
        tempo = reference.tempo_bpm
    feel = "slow" if tempo < 88 else "fast" if tempo > 118 else "medium"
    is_minor = rng.random() < 0.5
    if minor != major:
        is_minor = minor
    elif reference is not None and reference.minor is not None:
        is_minor = reference.minor
    pitch_class = rng.randrange(12)
    explicit = prompt_key(prompt)
    pitch_class = explicit if explicit is not None else pitch_class
    pitch_class = reference.tonic_pc if reference is not None else pitch_class
    scale = "minor" if is_minor else "major"
    named = list(dict.fromkeys(INSTRUMENTS[w] for w in words if w in INSTRUMENTS))
    melodic = [v for v in named if v in MELODIC]
    chord = next((v for v in melodic if v in CHORD_VOICES), None)
    if chord is None:
        choices = ("pad", "strings", "piano") if feel == "slow" else CHORD_VOICES
        chord = rng.choice([v for v in choices if v not in refused] or choices)
    others = [v for v in melodic if v != chord and v in LEAD_VOICES]
    lead = others[0] if others else chord if melodic else None
    lead = lead or rng.choice([v for v in LEAD_VOICES if v not in refused] or LEAD_VOICES)
    sung = syllables(lyrics) if lyrics and lyrics.strip() and not instrumental else ()
    return MusicPlan(
        seed=rng.getrandbits(64),
        tempo_bpm=round(tempo, 2),
        tonic=55 + (pitch_class - 7) % 12,
        scale=scale,
        feel=feel,
        progression=rng.choice(PROGRESSIONS[scale]),
        chord_voice=chord,
        lead_voice=None if sung else lead,
        bass="bass" not in refused and ("bass" in named or not named),
        drums="drums" not in refused
        and ("drums" in named or (not named and (feel != "slow" or rng.random() < 0.3))),
        syllables=sung,
    )


def render_music(
    prompt: str,
    duration_seconds: float,
    *,
    seed: int | None = None,
    lyrics: str | None = None,
    instrumental: bool = False,
    reference: ReferenceInfo | None = None,
) -> bytes:
    """The WAV file (32000 Hz, mono, 16-bit) for one request."""
    plan = plan_music(prompt, seed, lyrics=lyrics, instrumental=instrumental, reference=reference)
    total = max(1, round(duration_seconds * SAMPLE_RATE))
    audio = reference.audio if reference is not None else ()
    mode = reference.mode if reference is not None and len(audio) else ""
    opening = min(len(audio), total // 2) if mode == "continuation" else 0
    crossfade = min(SAMPLE_RATE // 2, opening // 2)
    offset = opening - crossfade
    beats = (total - offset) * plan.tempo_bpm / (60.0 * SAMPLE_RATE)
    contour = reference.contour_hz if reference is not None and reference.mode == "melody" else ()
    notes = compose(plan, beats, contour=contour, lead=mode != "remix")
    mix = render_notes(notes, plan.tempo_bpm, total, offset)
    if mode == "continuation" and opening:
        head = array("d", islice(audio, opening))
        head[offset:] = array("d", map(mul, head[offset:], ramp(crossfade)))
        blend(mix, 1.0 / (peak(mix) or 1.0), head, 1.0 / (peak(head) or 1.0))
    elif mode == "remix" and reference is not None:
        strength = min(1.0, max(0.0, reference.strength))
        gain = strength / (peak(mix) or 1.0)
        # chain over repeats, not cycle(): cycle would keep a second copy of the whole reference
        looped = chain.from_iterable(repeat(audio, total // len(audio) + 1))
        blend(mix, gain, looped, (1.0 - strength) / (peak(audio) or 1.0))
    return encode_wav(master(mix), SAMPLE_RATE)
