"""Text encoders on the tiny CLIP / Qwen3 models, and the system-prompt check (spec §3)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from daemon.engine import prompt as prompt_module
from daemon.engine.errors import TextEncoderError
from daemon.engine.pipeline import MotionPipeline
from daemon.engine.prompt import (
    OFFICIAL_SYSTEM_PROMPT_SHA256,
    check_system_prompt,
    resolve_system_prompt,
)
from daemon.engine.text import TEXT_SLOTS, ClipEncoder, TextEncoders, language_warnings

LONG = " ".join(["walk forward then turn left"] * 40)  # 200 words


@pytest.fixture(scope="module")
def encoders(tiny_pipeline: MotionPipeline) -> TextEncoders:
    assert tiny_pipeline.text is not None
    return tiny_pipeline.text


def test_crop_start_is_the_first_user_token(encoders: TextEncoders) -> None:
    qwen = encoders.qwen
    ids = qwen.tokenizer(qwen.chat("hello"))["input_ids"]
    prefix = qwen.tokenizer.decode(ids[: qwen.crop_start])
    assert prefix.endswith("<|im_start|>user\n")
    assert prefix.startswith("<|im_start|>system\n" + qwen.system_prompt)


def test_text_length_counts_user_tokens_plus_the_two_tail_tokens(encoders: TextEncoders) -> None:
    qwen = encoders.qwen
    prompt = "A person walks forward."
    user_tokens = len(qwen.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    features = encoders.encode([prompt, "jump"])
    assert int(features.lengths[0]) == user_tokens + 2  # + <|im_end|> and "\n"
    assert features.ctxt.shape == (2, TEXT_SLOTS, 64) and features.vtxt.shape == (2, 1, 32)
    length = int(features.lengths[1])
    assert features.ctxt[1, length:].abs().max() == 0  # pad states zeroed, masked downstream
    assert features.ctxt[1, :length].abs().min() > 0
    assert features.truncated == (False, False)


def test_a_prompt_is_encoded_the_same_whatever_its_batch(encoders: TextEncoders) -> None:
    alone = encoders.encode(["a man waves"])
    batch = encoders.encode(["someone jumps twice and kicks with the left leg", "a man waves"])
    assert torch.allclose(alone.vtxt[0], batch.vtxt[1], atol=1e-5)
    assert torch.allclose(alone.ctxt[0].float(), batch.ctxt[1].float(), atol=2e-2)  # bf16 Qwen
    assert int(alone.lengths[0]) == int(batch.lengths[1])


def test_long_prompts_are_truncated_and_reported(encoders: TextEncoders) -> None:
    features = encoders.encode([LONG, "walk"])
    assert features.truncated == (True, False)
    assert int(features.lengths[0]) == TEXT_SLOTS


def test_non_english_prompts_get_a_warning() -> None:
    assert language_warnings("A person walks forward, then jumps!") == ()
    (warning,) = language_warnings("一个人向前走")
    # The letters as the artist typed them (was sorted by code point: 一个人前向走).
    assert "English" in warning and "(一个人向前走)" in warning
    (warning,) = language_warnings("café, déjà vu")
    assert "(éà)" in warning  # each letter once


def test_missing_encoder_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TextEncoderError, match="CLIP directory not found"):
        ClipEncoder(str(tmp_path / "no-such-clip"), torch.device("cpu"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TextEncoderError, match="cannot load the CLIP text model"):
        ClipEncoder(str(empty), torch.device("cpu"))


def test_system_prompt_is_checked_by_sha256(tmp_path: Path) -> None:
    text = "\n    Describe the motion.\n"
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert check_system_prompt(text, "file", digest) == text
    with pytest.raises(TextEncoderError, match=f"expected the official.*{digest}"):
        check_system_prompt(text.strip(), "file", digest)  # stripped whitespace changes it
    wrong = tmp_path / "prompt.txt"
    wrong.write_text(text)
    with pytest.raises(TextEncoderError, match=OFFICIAL_SYSTEM_PROMPT_SHA256):
        resolve_system_prompt(wrong, official=True)
    assert "PLACEHOLDER" in resolve_system_prompt(None, official=False)


def test_official_prompt_constant_is_the_official_string() -> None:
    assert OFFICIAL_SYSTEM_PROMPT_SHA256 == (
        "b9c55290b778c01739a337a36315c2065ef6ccfbfa0a1898b727377ed4965283"
    )
    official = prompt_module.OFFICIAL_SYSTEM_PROMPT
    assert len(official) == 449 and official.startswith("\n    ") and official.endswith("\n")
    assert resolve_system_prompt(None, official=True) == official
