"""The offline ``local`` music provider: WAV helpers, synthesizer decisions, references, adapter."""

from __future__ import annotations

import asyncio
import functools
import io
import math
import operator
import time
import wave
from array import array
from pathlib import Path

import pytest

from providers.base import ProviderSettings, UpstreamError
from providers.music.base import (
    MusicAdapter,
    MusicJob,
    MusicOutput,
    MusicRequest,
    ReferenceAudio,
)
from providers.music.local import (
    DOWNLOAD_CHUNK_BYTES,
    LOST_JOB_MESSAGE,
    LocalMusicAdapter,
    analyse_reference,
    render_request,
)
from providers.synth.compose import plan_music, prompt_key, render_music
from providers.synth.render import SAMPLE_RATE
from providers.synth.score import compose, syllables
from providers.synth.wav import (
    decode_wav_mono,
    describe_wav,
    encode_wav,
    estimate_pitch,
    estimate_tempo,
    resample,
)

ADAPTER = LocalMusicAdapter(ProviderSettings(name="local", kind="local"))
REFERENCE_RATE = 16000


@functools.lru_cache
def pulses(hz: float = 220.0, bpm: float = 100.0, seconds: float = 3.0) -> bytes:
    """A test reference: a 220 Hz tone struck on every beat and decaying, as a 16 kHz WAV."""
    beat = 60.0 / bpm
    samples = [
        int(12000 * math.sin(2 * math.pi * hz * t) * math.exp(-(t % beat) / 0.15))
        for t in (i / REFERENCE_RATE for i in range(int(seconds * REFERENCE_RATE)))
    ]
    return encode_wav(samples, REFERENCE_RATE)


def correlation(a: array[float], b: array[float]) -> float:
    a, b = a[: len(b)], b[: len(a)]
    energy = math.sqrt(sum(map(operator.mul, a, a)) * sum(map(operator.mul, b, b)))
    return float(sum(map(operator.mul, a, b))) / energy if energy else 0.0


def request(prompt: str = "calm piano", duration: float = 1.0, **fields: object) -> MusicRequest:
    return MusicRequest(
        upstream_model="local-music-1",
        request_id="req_1",
        task_id="task_1",
        prompt=prompt,
        duration_seconds=duration,
        format="wav",
        **fields,  # type: ignore[arg-type]
    )


def reference_file(tmp_path: Path, data: bytes, mode: str, name: str = "ref.wav") -> ReferenceAudio:
    path = tmp_path / name
    path.write_bytes(data)
    return ReferenceAudio(path, "audio/wav", name, len(data), mode)


def test_wav_helpers_round_trip_and_measure() -> None:
    tone = [round(16000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(8000)]
    data = encode_wav(tone, 8000)
    info = describe_wav(data)
    assert (info.sample_rate, info.channels, info.sample_width, info.frames) == (8000, 1, 2, 8000)
    assert info.duration_seconds == 1.0 and info.peak == 16000
    assert abs(info.rms - 16000 / 32768 / math.sqrt(2)) < 0.01
    rate, mono = decode_wav_mono(data)
    assert rate == 8000 and abs(mono[2] - tone[2] / 32768) < 1e-9
    pitch = estimate_pitch(mono, rate, 1000, 512)
    assert pitch is not None and abs(pitch - 440) < 2
    assert estimate_pitch([0.0] * 4000, rate, 0, 512) is None
    assert len(resample(mono, 8000, 32000)) == pytest.approx(32000, abs=4)
    assert len(resample(mono, 8000, 2000)) == pytest.approx(2000, abs=4)


def test_decodes_stereo_8_and_24_bit_wav() -> None:
    for width, full_scale in ((1, 128), (3, 1 << 23)):
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as writer:
            writer.setnchannels(2)
            writer.setsampwidth(width)
            writer.setframerate(1000)
            half = full_scale // 2
            if width == 1:  # unsigned: left +half, right -half/2
                frame = bytes([128 + half, 128 - half // 2])
            else:
                frame = half.to_bytes(3, "little", signed=True) + (-half // 2).to_bytes(
                    3, "little", signed=True
                )
            writer.writeframes(frame * 100)
        rate, mono = decode_wav_mono(buffer.getvalue())
        assert rate == 1000 and len(mono) == 100
        assert mono[0] == pytest.approx((0.5 - 0.25) / 2, abs=0.01)
        assert describe_wav(buffer.getvalue()).peak == half


def test_render_is_valid_non_silent_unclipped_wav() -> None:
    data = render_music("upbeat dance track with drums, bass and synth", 3.0, seed=5)
    info = describe_wav(data)
    assert (info.sample_rate, info.channels, info.sample_width) == (SAMPLE_RATE, 1, 2)
    assert info.frames == 3 * SAMPLE_RATE
    assert info.rms > 0.1
    assert 20000 < info.peak <= 32767
    odd = describe_wav(render_music("calm pad", 1.23456, seed=5))
    assert odd.frames == round(1.23456 * SAMPLE_RATE)


def test_render_is_deterministic_and_varies_with_prompt_and_seed() -> None:
    first = render_music("happy piano", 1.5, seed=1)
    assert render_music("happy piano", 1.5, seed=1) == first
    for other in (
        render_music("happy piano", 1.5, seed=2),
        render_music("dark strings", 1.5, seed=1),
    ):
        assert other != first
        # not just a few bytes: the audio itself is different music
        assert correlation(decode_wav_mono(first)[1], decode_wav_mono(other)[1]) < 0.5


def test_prompt_words_choose_tempo_scale_key_and_voices() -> None:
    slow = plan_music("a slow sad piano ballad", 3)
    assert 64 <= slow.tempo_bpm <= 84 and slow.feel == "slow" and slow.scale == "minor"
    assert (slow.chord_voice, slow.lead_voice, slow.bass, slow.drums) == ("piano", "piano", 0, 0)
    fast = plan_music("fast happy dance with drums and bass, synth and bells", 3)
    assert 122 <= fast.tempo_bpm <= 148 and fast.feel == "fast" and fast.scale == "major"
    assert (fast.chord_voice, fast.lead_voice, fast.bass, fast.drums) == ("synth", "bell", 1, 1)
    exact = plan_music("moody groove at 97 bpm in F# minor, no drums", 3)
    assert exact.tempo_bpm == 97 and exact.tonic % 12 == 6 and exact.scale == "minor"
    assert not exact.drums
    assert prompt_key("music in a dreamy mood") is None and prompt_key("Bb major") == 10
    assert plan_music("anything", 3) == plan_music("anything", 3) != plan_music("anything", 4)


def test_lyrics_become_a_vocal_line_one_note_per_syllable() -> None:
    assert syllables("Hello world\nLove me") == ("he", "llo", "world", "", "lov", "me", "")
    plan = plan_music("pop song", 1, lyrics="Hello world\nLove me")
    assert plan.lead_voice is None and plan.syllables
    assert plan_music("pop song", 1, lyrics="Hello world", instrumental=True).syllables == ()
    notes = compose(plan, 16)
    sung = [n for n in notes if n.voice == "vocal"]
    assert [n.vowel for n in sung[:5]] == ["e", "o", "o", "o", "e"]
    assert sung[0].beat == 4.0  # the first bar is an intro
    assert any(n.voice == "breath" for n in notes)  # consonant onsets
    plain = render_music("pop song", 1.0, seed=1)
    assert render_music("pop song", 1.0, seed=1, lyrics="Hello world") != plain


def test_wav_reference_is_analysed_for_key_tempo_and_contour() -> None:
    info = analyse_reference(pulses(seconds=5.0), "melody", None, 4.0)
    assert info.source == "wav" and info.tonic_pc == 9  # A
    assert info.tempo_bpm == pytest.approx(100, abs=3)
    voiced = [hz for hz in info.contour_hz if hz is not None]
    assert len(voiced) >= 6 and all(abs(hz - 220) < 3 for hz in voiced)
    plan = plan_music("strings and bells", 1, reference=info)
    assert plan.lead_voice == "bell" and plan.tempo_bpm == info.tempo_bpm
    lead = [n for n in compose(plan, 8, contour=info.contour_hz) if n.voice == "bell"]
    assert lead and all(n.midi % 12 == 9 for n in lead)  # the lead follows the hummed A
    assert estimate_tempo([0.0] * 80000, 8000) is None


def test_each_reference_mode_changes_the_result(tmp_path: Path) -> None:
    plain = render_request(request())
    results = set()
    for mode in ("melody", "continuation", "remix"):
        reference = reference_file(tmp_path, pulses(), mode)
        result = render_request(request(reference=reference))
        assert describe_wav(result).frames == SAMPLE_RATE
        results.add(result)
    assert plain not in results and len(results) == 3
    assert render_request(request(reference=reference)) == result  # deterministic


def test_continuation_opens_with_the_reference_and_remix_keeps_it(tmp_path: Path) -> None:
    source = resample(decode_wav_mono(pulses())[1], REFERENCE_RATE, SAMPLE_RATE)
    reference = reference_file(tmp_path, pulses(), "continuation")
    _, opened = decode_wav_mono(render_request(request(duration=4.0, reference=reference)))
    opening = int(1.5 * SAMPLE_RATE)  # 2 s (half of 4) of reference, the last 0.5 s fading out
    assert correlation(opened[1000:opening], source[1000:opening]) > 0.95
    later = slice(2 * SAMPLE_RATE, 3 * SAMPLE_RATE)  # the arrangement, no longer the reference
    assert correlation(opened[later], source[later]) < 0.5
    remix = reference_file(tmp_path, pulses(), "remix")
    _, mixed = decode_wav_mono(render_request(request(duration=3.0, reference=remix)))
    assert correlation(mixed[1000:], source[1000:]) > 0.3


def test_non_wav_or_unreadable_reference_takes_the_hash_path(tmp_path: Path) -> None:
    mp3ish = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 20
    info = analyse_reference(mp3ish, "remix", 0.2, 3.0)
    assert info.source == "hash" and not info.audio and info.strength == 0.2
    assert 70 <= info.tempo_bpm < 140 and len(info.contour_hz) == 32
    plain = render_request(request())
    for mode in ("melody", "continuation", "remix"):
        reference = reference_file(tmp_path, mp3ish, mode, "song.mp3")
        data = render_request(request(reference=reference))
        assert data != plain and describe_wav(data).rms > 0.05
    assert render_request(request(reference=reference)) == data  # deterministic
    missing = ReferenceAudio(tmp_path / "gone.wav", "audio/wav", "gone.wav", 10, "melody")
    assert describe_wav(render_request(request(reference=missing))).frames == SAMPLE_RATE


def test_ten_seconds_render_fast() -> None:
    started = time.process_time()
    data = render_music("energetic synth pop with drums and bass", 10.0, seed=11)
    spent = time.process_time() - started
    print(f"10 s of music rendered in {spent:.3f} s of CPU")
    assert describe_wav(data).frames == 10 * SAMPLE_RATE
    assert spent < 5.0  # typically 0.2-0.4 s; generous so a busy machine cannot flake


def test_adapter_submit_poll_download_cancel() -> None:
    adapter: MusicAdapter = ADAPTER
    assert adapter.kind == "local" and adapter.formats == frozenset({"wav"})
    assert adapter.reference_modes == frozenset({"melody", "continuation", "remix"})
    assert adapter.max_duration_seconds == 120

    async def run() -> tuple[MusicJob, list[bytes]]:
        await adapter.start()
        job = await adapter.submit(request("calm piano", 5.0, seed=4))
        assert await adapter.poll(job) is job.done
        await adapter.cancel(job)
        assert job.done is not None
        chunks = [chunk async for chunk in adapter.download(job.done.outputs[0])]
        await adapter.close()
        return job, chunks

    job, chunks = asyncio.run(run())
    assert job.job_id == "local-task_1" and job.data == {}
    assert job.done is not None and job.done.state == "succeeded" and job.done.progress == 1.0
    output = job.done.outputs[0]
    assert output.content_type == "audio/wav" and output.duration_seconds == 5.0
    assert output.data is not None and describe_wav(output.data).frames == 5 * SAMPLE_RATE
    assert b"".join(chunks) == output.data
    assert [len(c) for c in chunks] == [
        DOWNLOAD_CHUNK_BYTES,
        len(output.data) - DOWNLOAD_CHUNK_BYTES,
    ]


def test_adapter_lost_job_missing_bytes_and_options() -> None:
    lost = asyncio.run(ADAPTER.poll(MusicJob("local-x")))
    assert lost.state == "failed" and lost.error is not None
    assert (lost.error.kind, lost.error.message) == ("server", LOST_JOB_MESSAGE)

    async def drain() -> None:
        async for _ in ADAPTER.download(MusicOutput("audio/wav", url="http://x/y")):
            pass

    with pytest.raises(UpstreamError) as raised:
        asyncio.run(drain())
    assert raised.value.kind == "server"
    options = {"max_duration_seconds": 30, "render_delay_s": 0.05}
    slow = LocalMusicAdapter(ProviderSettings(name="local", kind="local", options=options))
    assert slow.max_duration_seconds == 30

    async def held() -> bool:
        task = asyncio.create_task(slow.submit(request(duration=0.5)))
        await asyncio.sleep(0.01)
        running = not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return running

    assert asyncio.run(held())
