"""Writes the tone-classification set of examples/audio/tones.irn: 64 ms clips (256 samples at
4 kHz) of one of five sounds in noise, with a fixed seed, so the files it writes are the ones
committed beside it.

    python examples/audio/make_tones.py        # writes tones-train.npz and tones-test.npz

Classes: 0 a low tone (200-400 Hz), 1 a high tone (800-1600 Hz), 2 a rising chirp, 3 a falling
chirp (between 200 and 1600 Hz, linear in frequency), 4 a chord of a low and a high tone. Each
clip has a random phase and amplitude (0.3-1), sounds for a random 60-100 % of the clip, and
carries white noise with a signal-to-noise ratio between -9 and +3 dB; samples are float16.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 4000
SAMPLES = 256
CLASSES = ("low tone", "high tone", "rising chirp", "falling chirp", "chord")
SIZES = {"train": 4000, "test": 1000}
SEED = 2026


def sweep(rng: np.random.Generator, start: float, end: float, t: np.ndarray) -> np.ndarray:
    """A sinusoid whose frequency moves linearly from `start` to `end` Hz over `t`."""
    phase = 2 * np.pi * (start * t + (end - start) * t**2 / (2 * t[-1]))
    return np.sin(phase + rng.uniform(0, 2 * np.pi))


def clip(rng: np.random.Generator, label: int) -> np.ndarray:
    t = np.arange(SAMPLES) / RATE
    low, high = rng.uniform(200, 400), rng.uniform(800, 1600)
    wave = {
        0: lambda: sweep(rng, low, low, t),
        1: lambda: sweep(rng, high, high, t),
        2: lambda: sweep(rng, low, high, t),
        3: lambda: sweep(rng, high, low, t),
        4: lambda: (sweep(rng, low, low, t) + sweep(rng, high, high, t)) / 2,
    }[label]()
    length = int(SAMPLES * rng.uniform(0.6, 1.0))
    start = rng.integers(0, SAMPLES - length + 1)
    envelope = np.zeros(SAMPLES)
    envelope[start : start + length] = rng.uniform(0.3, 1.0)
    signal = wave * envelope
    power = np.mean(signal**2)
    snr = 10 ** (rng.uniform(-9, 3) / 10)
    return signal + rng.normal(0, np.sqrt(power / snr), SAMPLES)


def make(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, len(CLASSES), count).astype(np.int32)
    clips = np.stack([clip(rng, int(label)) for label in labels]).astype(np.float16)
    return clips, labels


def main() -> None:
    rng = np.random.default_rng(SEED)
    folder = Path(__file__).parent
    for part, count in SIZES.items():
        x, y = make(count, rng)
        np.savez_compressed(folder / f"tones-{part}.npz", x=x, y=y)
        print(f"wrote {folder / f'tones-{part}.npz'}: {count} clips of {SAMPLES} samples")


if __name__ == "__main__":
    main()
