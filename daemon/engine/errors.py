"""Engine-side refinements of the shared typed errors (they keep the shared wire codes)."""

from __future__ import annotations

from shared_protocol import ModelUnavailable


class CheckpointError(ModelUnavailable):
    """A model directory, config or weight file is missing, unreadable or has the wrong tensors."""

    def __init__(self, path: object, problem: str, expected: str = "") -> None:
        text = f"{path}: {problem}" + (f" (expected {expected})" if expected else "")
        super().__init__(text, path=str(path))
        self.path = str(path)


class TextEncoderError(ModelUnavailable):
    """A text encoder (CLIP, Qwen3) or the system prompt cannot be loaded or verified."""

    def __init__(self, source: object, problem: str) -> None:
        super().__init__(f"{source}: {problem}", path=str(source))
        self.path = str(source)
