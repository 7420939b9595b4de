"""The offline ``local`` music provider: a stdlib synthesizer rendering WAV in-process.

It needs no network and no keys, so the gateway's embedded default configuration can serve
music. ``submit`` renders in a worker thread (``asyncio.to_thread``: the event loop keeps
serving) and returns a job that is already done, holding the WAV bytes; ``poll`` only answers for
a job that lost those bytes (its record outlived a restart), ``cancel`` has nothing to stop.

Options (``ProviderSettings.options``):
  max_duration_seconds  the longest render accepted (default 120)
  render_delay_s        an extra pause in seconds before ``submit`` returns (default 0), so tests
                        can hold a local task in "running" to exercise cancellation

A reference recording is read here and reduced to a ``ReferenceInfo`` by ``analyse_reference``:
  WAV (any PCM WAV the stdlib ``wave`` module reads), mixed to mono, its first 30 s analysed at
    4 kHz: the tempo comes from the periodicity of energy onsets (60-180 BPM); the tonic is the
    most frequent pitch class among 24 pitch estimates spread over it; minor when the minor third
    above that was heard more than the major third. "melody" adds the pitch heard in the middle
    of each beat, for up to 64 beats; "continuation" carries the first half-duration of audio
    and "remix" up to the duration, resampled to the output rate. Where no pulse or no pitch is
    found, that value alone comes from the hash below. "remix" strength: 0-1, default 0.5.
  Anything else (MP3, FLAC, OGG, M4A, a WAV too short, silent, or unreadable; a file that cannot
    be read at all hashes as empty): tempo (70-139 BPM), tonic, scale and a 32-beat contour come
    from sha256 of the file's bytes, and there is no audio to open with or mix under.
Either way the file's digest and the mode join the synthesizer's seed, so a reference always
changes the result, deterministically.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from providers.base import ProviderSettings, UpstreamError, read_options
from providers.music.base import MusicJob, MusicOutput, MusicRequest, MusicStatus, ReferenceAudio
from providers.synth.compose import ReferenceInfo, render_music
from providers.synth.render import SAMPLE_RATE
from providers.synth.wav import decode_wav_mono, estimate_pitch, estimate_tempo, resample

DEFAULT_MAX_DURATION_SECONDS = 120.0
DEFAULT_REMIX_STRENGTH = 0.5
DOWNLOAD_CHUNK_BYTES = 256 * 1024
ANALYSIS_RATE = 4000  # enough for pitches up to 1 kHz and for onsets, and cheap to scan
PITCH_WINDOW = 256  # 64 ms at ANALYSIS_RATE: about four periods of the lowest pitch sought (60 Hz)
KEY_WINDOWS = 24
MAX_CONTOUR_BEATS = 64
MIN_ANALYSED_SECONDS = 0.5
ANALYSED_SECONDS = 30  # tempo, key and contour come from the first 30 s at most
LOST_JOB_MESSAGE = "The local job was lost when the gateway restarted."


def _hash_reference(digest: bytes, mode: str, strength: float) -> ReferenceInfo:
    rng = random.Random(digest)
    step = 0
    contour: list[float | None] = []
    for _ in range(32):
        step = max(-7, min(7, step + rng.choice((-2, -1, 0, 1, 2))))
        contour.append(None if rng.random() < 0.15 else 220.0 * 2 ** (step / 12))
    return ReferenceInfo(
        mode=mode,
        digest=digest,
        source="hash",
        tonic_pc=digest[0] % 12,
        minor=bool(digest[1] & 1),
        tempo_bpm=float(70 + digest[2] % 70),
        contour_hz=tuple(contour),
        strength=strength,
    )


def _pitch_class(hz: float) -> int:
    return round(69 + 12 * math.log2(hz / 440.0)) % 12


def _key(scan: array[float]) -> tuple[int, bool | None] | None:
    """The most heard pitch class and whether its minor third beat its major third."""
    heard = [0] * 12
    spacing = max(1, (len(scan) - 2 * PITCH_WINDOW) // KEY_WINDOWS)
    for start in range(0, max(1, len(scan) - 2 * PITCH_WINDOW), spacing):
        pitch = estimate_pitch(scan, ANALYSIS_RATE, start, PITCH_WINDOW)
        if pitch is not None:
            heard[_pitch_class(pitch)] += 1
    if not any(heard):
        return None
    tonic = max(range(12), key=lambda pc: (heard[pc], -pc))
    minor_third, major_third = heard[(tonic + 3) % 12], heard[(tonic + 4) % 12]
    return tonic, None if minor_third == major_third else minor_third > major_third


def _contour(scan: array[float], tempo_bpm: float) -> tuple[float | None, ...]:
    """The pitch heard in the middle of each beat (None where nothing is), up to 64 beats."""
    beat = 60.0 * ANALYSIS_RATE / tempo_bpm
    beats = min(MAX_CONTOUR_BEATS, int(len(scan) / beat))
    middles = (round((i + 0.5) * beat) - PITCH_WINDOW // 2 for i in range(beats))
    return tuple(estimate_pitch(scan, ANALYSIS_RATE, max(0, m), PITCH_WINDOW) for m in middles)


def analyse_reference(
    data: bytes, mode: str, strength: float | None, duration_seconds: float
) -> ReferenceInfo:
    """What the synthesizer uses of a reference file's bytes (see the module docstring)."""
    digest = hashlib.sha256(data).digest()
    level = DEFAULT_REMIX_STRENGTH if strength is None else min(1.0, max(0.0, strength))
    fallback = _hash_reference(digest, mode, level)
    # Only as much audio as the mode can use is decoded: the opening or the whole remix.
    kept_seconds = {"continuation": duration_seconds / 2, "remix": duration_seconds}.get(mode, 0.0)
    try:
        rate, samples = decode_wav_mono(data, max(ANALYSED_SECONDS, kept_seconds) + 0.1)
    except Exception:  # the stdlib parser raises many kinds on odd files; all mean "not a WAV"
        return fallback
    if len(samples) < MIN_ANALYSED_SECONDS * rate or not any(samples):
        return fallback
    scan = resample(samples[: ANALYSED_SECONDS * rate], rate, ANALYSIS_RATE)
    tempo = estimate_tempo(scan, ANALYSIS_RATE) or fallback.tempo_bpm
    tonic, minor = _key(scan) or (fallback.tonic_pc, None)
    audio = array("f")
    if kept_seconds:
        audio = array("f", resample(samples[: int(kept_seconds * rate) + 2], rate, SAMPLE_RATE))
    return ReferenceInfo(
        mode=mode,
        digest=digest,
        source="wav",
        tonic_pc=tonic,
        minor=minor,
        tempo_bpm=round(tempo, 2),
        contour_hz=(_contour(scan, tempo) or fallback.contour_hz) if mode == "melody" else (),
        audio=audio,
        strength=level,
    )


def _read_reference(reference: ReferenceAudio) -> bytes:
    try:
        return Path(reference.path).read_bytes()
    except OSError:
        return b""  # never fail on a reference: an unreadable file takes the hash path


def render_request(request: MusicRequest) -> bytes:
    """The WAV for one request, reference included (blocking: run it in a worker thread)."""
    reference = None
    if request.reference is not None:
        data = _read_reference(request.reference)
        reference = analyse_reference(
            data, request.reference.mode, request.reference.strength, request.duration_seconds
        )
    return render_music(
        request.prompt,
        request.duration_seconds,
        seed=request.seed,
        lyrics=request.lyrics,
        instrumental=request.instrumental,
        reference=reference,
    )


@dataclass(frozen=True, slots=True)
class LocalMusicOptions:
    """The music options of the ``local`` kind."""

    max_duration_seconds: float = DEFAULT_MAX_DURATION_SECONDS
    render_delay_s: float = 0.0


class LocalMusicAdapter:
    """Offline music: deterministic WAV from the prompt, lyrics, seed and reference."""

    kind = "local"
    formats = frozenset({"wav"})
    reference_modes = frozenset({"melody", "continuation", "remix"})
    supports_lyrics = True  # the synthesizer sings them as a melodic line
    needs_base_url: ClassVar[bool] = False  # offline: nothing to connect to
    Options: ClassVar[type[LocalMusicOptions]] = LocalMusicOptions

    def __init__(self, settings: ProviderSettings) -> None:
        options = read_options(self.Options, settings.options)
        self.max_duration_seconds = float(options.max_duration_seconds)
        self._render_delay = options.render_delay_s

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def submit(self, request: MusicRequest) -> MusicJob:
        if self._render_delay > 0:
            # Before rendering, so a task canceled while it waits costs no CPU.
            await asyncio.sleep(self._render_delay)
        try:
            wav = await asyncio.to_thread(render_request, request)
        except Exception as exc:  # a synthesizer bug must still reach the runner as UpstreamError
            raise UpstreamError("server", "The local synthesizer failed.") from exc
        frames = max(1, round(request.duration_seconds * SAMPLE_RATE))
        output = MusicOutput("audio/wav", data=wav, duration_seconds=frames / SAMPLE_RATE)
        done = MusicStatus("succeeded", progress=1.0, outputs=(output,))
        return MusicJob(job_id=f"local-{request.task_id}", data={}, done=done)

    async def poll(self, job: MusicJob) -> MusicStatus:
        if job.done is not None:
            return job.done
        return MusicStatus("failed", error=UpstreamError("server", LOST_JOB_MESSAGE))

    async def cancel(self, job: MusicJob) -> None:
        return None

    async def download(self, output: MusicOutput) -> AsyncIterator[bytes]:
        if output.data is None:
            raise UpstreamError("server", "The local output has no audio bytes.")
        for start in range(0, len(output.data), DOWNLOAD_CHUNK_BYTES):
            yield output.data[start : start + DOWNLOAD_CHUNK_BYTES]
