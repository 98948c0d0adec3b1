"""Text encoders (spec §3): CLIP ViT-L/14 pooled sentence vector and Qwen3 token features.

Each wrapper owns its tokenizer and ``transformers`` model, frozen; no ``transformers`` type
leaves this module. Prompts are encoded once per job and shared by all its candidates.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from .errors import TextEncoderError

CLIP_MAX_TOKENS = 77
TEXT_SLOTS = 128  # max_length_llm: Qwen token slots after the crop
CROP_MARKER = "<BOC>"
PLACEMENTS = ("resident", "offload", "cpu")
QUANTIZATIONS = ("none", "8bit", "4bit")


@dataclass(frozen=True)
class TextFeatures:
    """Encoded prompts, one row each; rows past ``lengths`` are zero and masked downstream."""

    vtxt: Tensor  # (P, 1, 768) float32 CLIP pooled output
    ctxt: Tensor  # (P, 128, 4096) Qwen3 final-norm hidden states of the user tokens
    lengths: Tensor  # (P,) int64, valid ctxt slots (user tokens + <|im_end|> + "\n", ≤ 128)
    truncated: tuple[bool, ...]  # the prompt did not fit CLIP's 77 tokens or the 128 slots

    def take(self, rows: Sequence[int]) -> TextFeatures:
        index = torch.as_tensor(list(rows), dtype=torch.long)
        return TextFeatures(
            self.vtxt[index],
            self.ctxt[index],
            self.lengths[index],
            tuple(self.truncated[i] for i in rows),
        )


def language_warnings(prompt: str) -> tuple[str, ...]:
    """A warning when the prompt has letters outside ASCII: the model is English-only."""
    # Each letter once, in the order typed, so the artist recognises their own words.
    foreign = list(dict.fromkeys(c for c in prompt if c.isalpha() and not c.isascii()))
    if not foreign:
        return ()
    return (
        f"the prompt contains non-English letters ({''.join(foreign[:12])}); HY-Motion 1.0 was "
        "trained on English prompts only, so the motion may ignore them",
    )


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or "\\" in source or source.count("/") != 1


def check_encoder_source(source: str, what: str) -> str:
    """Local directories must exist; ``owner/name`` hub ids are passed on (online boxes only)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return str(path)
    if _looks_like_path(source) or path.exists():
        raise TextEncoderError(
            source,
            f"{what} directory not found (expected a local "
            "transformers directory with config.json, weights and tokenizer "
            "files, or a hub id such as owner/name)",
        )
    return source


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """No progress bars or load reports in the daemon log (the base Qwen3 model always
    reports the causal-LM head it skips)."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def _load_failure(source: str, what: str, exc: Exception) -> TextEncoderError:
    return TextEncoderError(
        source,
        f"cannot load the {what}: {type(exc).__name__}: {exc} (expected a transformers "
        "directory with config.json, weights and tokenizer files; hub ids need a connection)",
    )


class ClipEncoder:
    """CLIP text tower: prompts -> pooled output (P, 1, 768) float32 (no projection)."""

    def __init__(self, source: str, device: torch.device) -> None:
        from transformers import CLIPTextModel, CLIPTokenizer

        self.source = check_encoder_source(source, "CLIP")
        try:
            with _quiet_loading():
                self.tokenizer = CLIPTokenizer.from_pretrained(self.source)
                model = CLIPTextModel.from_pretrained(self.source, dtype=torch.float32)
        except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
            raise _load_failure(source, "CLIP text model", exc) from exc
        self.model = model.eval().requires_grad_(False).to(device)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device) -> None:
        self.model.to(device)

    def encode(self, prompts: Sequence[str]) -> tuple[Tensor, list[bool]]:
        """-> (P, 1, V) float32 and, per prompt, whether it was cut to 77 tokens."""
        full = self.tokenizer(list(prompts), truncation=False)["input_ids"]
        batch = self.tokenizer(
            list(prompts),
            max_length=CLIP_MAX_TOKENS,
            truncation=True,
            padding=True,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            pooled = self.model(**batch).pooler_output  # (P, V), final LN at the EOS token
        return pooled.float().unsqueeze(1), [len(ids) > CLIP_MAX_TOKENS for ids in full]


class QwenEncoder:
    """Qwen3 final hidden states of the chat-formatted prompt, cropped to the user tokens."""

    def __init__(
        self,
        source: str,
        device: torch.device,
        system_prompt: str,
        quantization: str = "none",
        dtype: torch.dtype = torch.bfloat16,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.source = check_encoder_source(source, "Qwen3")
        self.system_prompt = system_prompt
        extra: dict[str, object] = {}
        if quantization != "none":
            extra = _quantization_args(source, quantization, device)
        try:
            with _quiet_loading():
                self.tokenizer = AutoTokenizer.from_pretrained(self.source, padding_side="right")
                # the base model: its last_hidden_state is the final-RMSNorm output (§3.2) and
                # the unused lm_head is never loaded
                model = AutoModel.from_pretrained(self.source, dtype=dtype, **extra)
        except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
            raise _load_failure(source, "Qwen3 model", exc) from exc
        self.model = model.eval().requires_grad_(False)
        self.quantized = quantization != "none"
        if not self.quantized:
            self.model.to(device)
        self.crop_start = find_crop_start(self.tokenizer, system_prompt)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device) -> None:
        if not self.quantized:  # bitsandbytes weights stay where they were loaded
            self.model.to(device)

    def chat(self, prompt: str) -> str:
        return chat_text(self.tokenizer, self.system_prompt, prompt)

    def encode(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor, list[bool]]:
        """-> ctxt (P, 128, C) in the model dtype, lengths (P,), truncated flags."""
        texts = [self.chat(p) for p in prompts]
        limit = self.crop_start + TEXT_SLOTS
        full = self.tokenizer(texts, truncation=False)["input_ids"]
        # right padding to the longest prompt instead of to 229: Qwen3 is causal, so the valid
        # tokens never see the padding (exact), and short prompts cost far less
        batch = self.tokenizer(
            texts, max_length=limit, truncation=True, padding="longest", return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state  # (P, N, C)
        lengths = (batch["attention_mask"].sum(1) - self.crop_start).clamp(0, TEXT_SLOTS).cpu()
        cropped = hidden[:, self.crop_start : limit]
        ctxt = hidden.new_zeros(len(texts), TEXT_SLOTS, hidden.shape[-1])
        ctxt[:, : cropped.shape[1]] = cropped
        valid = (
            torch.arange(TEXT_SLOTS, device=ctxt.device)[None] < lengths.to(ctxt.device)[:, None]
        )
        ctxt = ctxt * valid[..., None]  # pad-token states are masked downstream; zero them
        return ctxt, lengths, [len(ids) > limit for ids in full]


def chat_text(tokenizer: Any, system_prompt: str, prompt: str) -> str:
    """§3.2 [system, user] through the Qwen3 chat template, no generation prompt, no thinking."""
    messages = [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": prompt},
    ]
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=False, enable_thinking=False
    )


def find_crop_start(tokenizer: Any, system_prompt: str) -> int:
    """Index of the first user token: where the marker's tokens start in the templated text
    (fallback: length − 1), computed from the real tokenizer as upstream does at start-up."""
    whole = tokenizer(chat_text(tokenizer, system_prompt, CROP_MARKER), add_special_tokens=True)
    marker = tokenizer(CROP_MARKER, add_special_tokens=False)["input_ids"]
    ids = whole["input_ids"]
    for start in range(len(ids) - len(marker) + 1):
        if ids[start : start + len(marker)] == marker:
            return start
    return len(ids) - 1


def _quantization_args(source: str, quantization: str, device: torch.device) -> dict[str, object]:
    if quantization not in QUANTIZATIONS:
        raise TextEncoderError(
            source, f"qwen_quantization {quantization!r} is not one of {', '.join(QUANTIZATIONS)}"
        )
    if importlib.util.find_spec("bitsandbytes") is None or device.type != "cuda":
        raise TextEncoderError(
            source,
            f"qwen_quantization={quantization} needs the bitsandbytes package "
            '(pip install bitsandbytes) and a CUDA device; use qwen_quantization = "none"',
        )
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        config = BitsAndBytesConfig(load_in_8bit=True)
    else:
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    return {"quantization_config": config, "device_map": {"": device.index or 0}}


class PromptEncoder(Protocol):
    """What a pipeline needs of its text encoders: ``TextEncoders`` in the same process, or a
    shared encoder deployment on a Ray cluster (daemon/cluster/text_replica.py)."""

    def encode(self, prompts: Sequence[str]) -> TextFeatures: ...


class TextEncoders:
    """Both encoders and where they live: resident on the device, offloaded to host memory
    between encodings, or always on the CPU."""

    def __init__(
        self, clip: ClipEncoder, qwen: QwenEncoder, device: torch.device, placement: str
    ) -> None:
        if placement not in PLACEMENTS:
            raise TextEncoderError(
                "engine.text_encoders", f"{placement!r} is not one of {', '.join(PLACEMENTS)}"
            )
        self.clip, self.qwen = clip, qwen
        self.placement = placement
        self.device = torch.device("cpu") if placement == "cpu" else device
        if placement == "offload":
            self._move(torch.device("cpu"))

    def _move(self, device: torch.device) -> None:
        self.clip.to(device)
        self.qwen.to(device)

    def encode(self, prompts: Sequence[str]) -> TextFeatures:
        """Prompts -> TextFeatures on the CPU (the pipeline moves them to its device)."""
        if self.placement == "offload":
            self._move(self.device)
        try:
            vtxt, clip_cut = self.clip.encode(prompts)
            ctxt, lengths, qwen_cut = self.qwen.encode(prompts)
        finally:
            if self.placement == "offload":
                self._move(torch.device("cpu"))
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
        truncated = tuple(a or b for a, b in zip(clip_cut, qwen_cut, strict=True))
        return TextFeatures(vtxt.cpu(), ctxt.cpu(), lengths.cpu(), truncated)
