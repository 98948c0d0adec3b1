"""The built-in ``tiny`` model: the real architecture at toy size with seeded random weights.

Written to disk in the official layout (``HY-Motion-tiny/config.yml`` + ``latest.ckpt``, a CLIP
text-model directory and a Qwen3 directory with tokenizers built offline) and then loaded by the
same code as real weights. UNTRAINED: its motion is seeded noise around the rest pose.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from .checkpoint import CONFIG_FILE, NETWORK, save_checkpoint
from .mmdit import CONFIGS, HYMotionWeights
from .skeleton import BODY_JOINTS

TINY_VERSION = "1"
SEED = 20260101
MODEL_DIR, CLIP_DIR, QWEN_DIR = "HY-Motion-tiny", "clip", "qwen3"
STAMP = "TINY_VERSION"
LABEL = "tiny (UNTRAINED random weights, for tests and demos)"
CLIP_WIDTH, QWEN_WIDTH = 32, 64
#: The official network at toy width and depth, reading the tiny text encoders' features.
TINY_NETWORK = replace(
    CONFIGS["lite"],
    feat_dim=64,
    num_layers=3,
    num_heads=4,
    ctxt_input_dim=QWEN_WIDTH,
    vtxt_input_dim=CLIP_WIDTH,
)
CHAT_TEMPLATE = (  # the Qwen3 layout of a system + user conversation, without thinking blocks
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = (
    "a person walks forward slowly then turns left and waves the right hand",
    "the man jumps up and down twice, runs in a circle, sits down on a chair",
    "someone kicks with the left leg, punches, dances happily, bows and stands still",
    "summarise the human motion in the user text system user assistant placeholder",
)


def tiny_paths(root: Path) -> tuple[Path, Path, Path]:
    return root / MODEL_DIR, root / CLIP_DIR, root / QWEN_DIR


def ensure_tiny(root: Path) -> Path:
    """Create the tiny model under ``root`` unless a complete copy of this version is there."""
    stamp = root / STAMP
    if stamp.is_file() and stamp.read_text().strip() == TINY_VERSION:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tiny-", dir=root.parent))
    work.chmod(0o755)
    try:
        _quiet_transformers()
        _write_model(work / MODEL_DIR)
        _write_clip(work / CLIP_DIR)
        _write_qwen(work / QWEN_DIR)
        (work / STAMP).write_text(TINY_VERSION + "\n")
        if root.exists():  # an older or incomplete copy
            shutil.rmtree(root)
        os.replace(work, root)  # atomic: readers see a complete model or none
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return root


def tiny_config_yaml() -> dict[str, object]:
    net = TINY_NETWORK
    return {
        "untrained": True,  # our marker: labelled untrained wherever it shows
        "network_module": NETWORK,
        "network_module_args": {
            "input_dim": net.input_dim,
            "feat_dim": net.feat_dim,
            "num_layers": net.num_layers,
            "num_heads": net.num_heads,
            "mlp_ratio": net.mlp_ratio,
            "ctxt_input_dim": net.ctxt_input_dim,
            "vtxt_input_dim": net.vtxt_input_dim,
            "mask_mode": net.mask_mode,
            "apply_rope_to_single_branch": False,
            "time_factor": net.time_factor,
            "dropout": 0.0,
        },
        "train_pipeline": "hymotion/pipeline/motion_diffusion.MotionFlowMatching",
        "train_pipeline_args": {
            "enable_ctxt_null_feat": True,
            "enable_special_game_feat": True,
            "infer_noise_scheduler_cfg": {"validation_steps": 50},
            "noise_scheduler_cfg": {"method": "euler"},
            "output_mesh_fps": 30,
            "random_generator_on_gpu": False,
            "train_frames": 360,
            "test_cfg": {"mean_std_dir": "./stats/", "text_guidance_scale": 5.0},
            "text_encoder_cfg": {"llm_type": "qwen3", "max_length_llm": 128},
        },
    }


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.disable_progress_bar()  # no "Writing model shards" bars in the daemon log


def plausible_stats() -> tuple[torch.Tensor, torch.Tensor]:
    """Mean/std (201,) that keep untrained output near a standing rest pose: identity rot6d
    means, 1 m root height, small spreads, and the exactly-zero pelvis position dims."""
    mean = torch.zeros(201)
    mean[1] = 1.0
    mean[3 : 3 + 6 * BODY_JOINTS] = torch.tensor([1.0, 0, 0, 1.0, 0, 0]).repeat(BODY_JOINTS)
    std = torch.full((201,), 0.1)
    std[0:3] = 0.05
    std[135:138] = 0.0
    return mean, std


def _write_model(model_dir: Path) -> None:
    model_dir.mkdir(parents=True)
    (model_dir / CONFIG_FILE).write_text(yaml.safe_dump(tiny_config_yaml(), sort_keys=False))
    gen = torch.Generator().manual_seed(SEED)
    module = HYMotionWeights(TINY_NETWORK)
    with torch.no_grad():
        for name, param in module.named_parameters():
            fan_in = param.shape[-1] if param.ndim > 1 else 1
            scale = 1.0 if name.startswith("null") or param.ndim == 1 else fan_in**-0.5
            param.copy_(torch.randn(param.shape, generator=gen) * scale * 0.5)
        mean, std = plausible_stats()
        module.mean.copy_(mean)
        module.std.copy_(std)
    save_checkpoint(module, model_dir)


def _write_clip(directory: Path) -> None:
    from tokenizers import pre_tokenizers
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    # byte-level symbols with and without CLIP's end-of-word suffix; no merges needed
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(directory)
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=CLIP_WIDTH,
        intermediate_size=2 * CLIP_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    torch.manual_seed(SEED + 1)
    CLIPTextModel(config).save_pretrained(directory)


def _write_qwen(directory: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
    )
    fast.save_pretrained(directory)
    config = Qwen3Config(
        vocab_size=len(fast),
        hidden_size=QWEN_WIDTH,
        intermediate_size=2 * QWEN_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    )
    torch.manual_seed(SEED + 2)
    Qwen3ForCausalLM(config).save_pretrained(directory)
