"""`irnet sample`: text from character models, the next character's logits `[N, V]` (an MLP
over the window) or logits at every position `[N, T, V]` (causal attention), trained on a
text whose continuation is certain."""

from __future__ import annotations

import subprocess

import pytest
from conftest import console_script, subprocess_env

import irnet

TEXT = "abcd" * 300

PER_POSITION = """
from nn import embedding, dense, self_attention, cross_entropy

model lm(context: i32[N, 4]) -> f32[N, 4, 4] {
    param position: f32[4, 8] = normal(std=0.1)
    h = embedding(context, 4, 8) + position
    return dense(h + self_attention(h, 2, causal=true), 4)
}

def following(context: i32[N, T], next: i32[N]) -> i32[N, T] {
    return concat([context[:, 1:], reshape(next, [N, 1])], axis=1)
}

train lm(next: i32[N]) {
    data      = text("t.txt", context=4, stride=3)
    loss      = cross_entropy(reshape(lm(context), [N * 4, 4]),
                              reshape(following(context, next), [N * 4]))
    optimizer = adam(lr=0.05)
    batch     = 32
    epochs    = 8
    val_split = 0
}
"""

NEXT_ONLY = """
from nn import embedding, dense, cross_entropy

model lm(context: i32[N, 4]) -> f32[N, 4] {
    return dense(reshape(embedding(context, 4, 8), [N, 32]), 4)
}

train lm(next: i32[N]) {
    data      = text("t.txt", context=4)
    loss      = cross_entropy(lm(context), next)
    optimizer = adam(lr=0.05)
    batch     = 32
    epochs    = 3
    val_split = 0
}
"""


@pytest.mark.parametrize("program", [PER_POSITION, NEXT_ONLY], ids=["per-position", "next"])
def test_sample_continues_the_prompt(program, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text(TEXT)
    (tmp_path / "lm.irn").write_text(program)
    model = irnet.load(tmp_path / "lm.irn", target="reference")
    history = model.fit(verbose=False)
    assert history["train_loss"][-1] < 0.05
    model.save(tmp_path / "lm.npz")
    result = subprocess.run(
        [console_script("irnet"), "sample", "lm.irn", "--checkpoint", "lm.npz", "--prompt", "bc",
         "--length", "10", "--temperature", "0.2", "--target", "reference"],
        capture_output=True, text=True, timeout=300, env=subprocess_env(), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "bcdabcdabcda"
