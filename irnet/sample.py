"""`irnet sample`: text from a trained character-level model, one character at a time."""

from __future__ import annotations

import numpy as np

from .diagnostics import IrnError
from .model import Model
from .train import load_data


def sample(model: Model, prompt: str, length: int, temperature: float, seed: int) -> str:
    """`prompt` continued by `length` characters drawn from the model's softmax at
    `temperature`; the vocabulary is the training text's. The model gives the next
    character's logits `[N, V]`, or logits at every position of its window `[N, T, V]`."""
    session = model.trainer
    dataset = load_data(session)
    vocabulary = getattr(dataset, "vocabulary", None)
    if vocabulary is None:
        raise IrnError("sample needs a model trained on text(...) data")
    (context_arg,) = session.role("input")
    context = context_arg.type.get_shape()[-1]
    unknown = sorted(set(prompt) - set(vocabulary))
    if unknown:
        raise IrnError(f"the prompt has characters the model never saw: {''.join(unknown)!r}")
    if temperature <= 0:
        raise IrnError("--temperature must be positive")
    ids = [vocabulary.index(c) for c in prompt]
    ids = [ids[0]] * max(0, context - len(ids)) + ids
    rng = np.random.default_rng(seed)
    text = list(prompt)
    for _ in range(length):
        window = np.asarray([ids[-context:]], dtype=np.int32)
        logits = model.predict(window, batch=1)[0].astype(np.float64) / temperature
        if logits.ndim == 2:  # a prediction at every position: the next character's is last
            logits = logits[-1]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        ids.append(int(rng.choice(len(probs), p=probs)))
        text.append(vocabulary[ids[-1]])
    return "".join(text)
