"""qconv: Hugging Face checkpoints to quantized GGUF in one streaming step."""

from __future__ import annotations

__version__ = "0.1.0"
