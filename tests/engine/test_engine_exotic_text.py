"""The real text encoders (tiny CLIP and Qwen3 tokenizers) take every prompt the wire accepts,
and choke on what the wire refuses: the Unicode-text rule of ``shared_protocol`` is exactly
what keeps a poison prompt out of a shared batch."""

from __future__ import annotations

import pytest

from daemon.engine.engine import HYMotionEngine
from daemon.engine_api import JobOutput, JobSpec
from shared_protocol import Generate, InvalidArgument

#: Valid Unicode that is unusual for a prompt: all of it must reach the model.
EXOTIC = (
    "walk \U000e0001 with a language tag",
    "\ue000 private use",
    "\u0378 unassigned code point",
    "a\u0301\u0302 stacked combining marks",
    "\u202e right-to-left override",
    "\U0001f642" * 200,
    "\u200b\u200d zero width",
    "日本語で歩く",
    "walk\n\tthen run",
)
#: Valid JSON, not text: the tokenizers raise, so the wire refuses these up front.
NOT_TEXT = ("walk \ud800 fast", "walk \udfff")


def _spec(index: int, prompt: str, model: str) -> JobSpec:
    return JobSpec(
        f"j{index}", prompt, frames=20, seeds=(index,), guidance=5.0, steps=4, model=model
    )


def test_exotic_valid_prompts_share_one_batch_on_the_real_encoders(
    tiny_engine: HYMotionEngine,
) -> None:
    for prompt in EXOTIC:
        Generate(prompt=prompt, duration_s=1.0).validate()  # the wire accepts each of them
    model = tiny_engine.default_model()
    specs = [_spec(i, prompt, model) for i, prompt in enumerate(EXOTIC)]
    outcomes = tiny_engine.run_batch(specs, lambda *_: None, lambda _: False)
    assert all(isinstance(o, JobOutput) for o in outcomes), outcomes


@pytest.mark.parametrize("prompt", NOT_TEXT)
def test_what_the_wire_refuses_is_what_breaks_the_encoders(
    tiny_engine: HYMotionEngine, prompt: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        Generate(prompt=prompt, duration_s=1.0).validate()
    assert refused.value.field == "prompt"
    spec = _spec(0, prompt, tiny_engine.default_model())
    with pytest.raises(Exception):  # noqa: B017 - whatever the tokenizer raises
        tiny_engine.run_batch([spec], lambda *_: None, lambda _: False)
