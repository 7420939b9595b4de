"""The offline music synthesizer: a prompt (and an analysed reference) to a score, the score to
samples, samples to WAV. Standard library only, no I/O beyond bytes.

May import: nothing outside this package and the standard library.
"""
