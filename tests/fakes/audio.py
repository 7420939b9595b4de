"""Small real audio files for the fake music providers to return."""

from __future__ import annotations

import math

from providers.synth.wav import encode_wav


def tone_wav(seconds: float = 0.05, rate: int = 8000, frequency: float = 440.0) -> bytes:
    """A valid mono 16-bit WAV holding a sine tone."""
    return encode_wav(
        (
            int(8000 * math.sin(2 * math.pi * frequency * i / rate))
            for i in range(int(seconds * rate))
        ),
        rate,
    )
