"""Gemma 2 / Gemma 3 (and Phi-3) cases: one per config branch the converter takes.

- gemma2: 640-wide rows (K-quant fallbacks), SentencePiece vocabulary, default softcaps.
- gemma2-f32: F32 source, vocabulary padded past tokenizer.model ([PADn] tokens), its own softcaps
  and eps, a 320-wide ffn_down (fallback again).
- gemma3: 640 wide, linear rope scaling, a local rope base, a final softcap, sliding pattern 2.
- gemma3-bpe: tokenizer.json only (byte-level BPE), so token_embd is trimmed to the tokenizer's
  300 tokens; untied lm_head; sliding_window_pattern 1 (no sliding window key).
- gemma3-vlm: Gemma3ForConditionalGeneration with a small SigLIP tower: text model only,
  explicit layer_types.
- phi3: Phi-3-mini style: fused qkv / gate_up, SentencePiece vocabulary padded to vocab_size with
  added tokens taken as written (a non-special "<|user|>" stays user-defined), sliding window.
- phi3-longrope: Phi-3.5 style LongRoPE (factor tensors, attn_factor), GQA, 384-wide rows.
- phi4-mini: GPT2Tokenizer (byte-level BPE), tied embeddings, partial rotary 0.75 (24 factors),
  no sliding window (written as 0).
"""

from __future__ import annotations

import json
from pathlib import Path

from family_fixtures import FamilyCase

SPM = "arch/llama2/tokenizer"  # 384 pieces
BPE = "arch/llama3/tokenizer"  # 296 + 4 added tokens
_GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def _special(content: str, special: bool) -> dict[str, object]:
    return {
        "content": content, "lstrip": False, "normalized": False, "rstrip": special,
        "single_word": False, "special": special,
    }  # fmt: skip


def _phi3_tokenizer_config() -> str:
    """The llama2 tokenizer_config.json plus Phi-3-like added tokens past the 384 pieces; the
    non-special <|user|> shows Phi-3's verbatim handling (user-defined, not control)."""
    config = json.loads((_GOLDEN / SPM / "tokenizer_config.json").read_text("utf-8"))
    config["added_tokens_decoder"].update(
        {
            "384": _special("<|endoftext|>", True),
            "385": _special("<|assistant|>", True),
            "386": _special("<|user|>", False),
        }
    )
    config["eos_token"] = "<|endoftext|>"
    return json.dumps(config, indent=2)


def _phi4_tokenizer_config() -> str:
    """Phi-4 names its byte-level BPE tokenizer GPT2Tokenizer: the converter's BPE path."""
    config = json.loads((_GOLDEN / BPE / "tokenizer_config.json").read_text("utf-8"))
    config["tokenizer_class"] = "GPT2Tokenizer"
    # GPT2Tokenizer's default unk token "<|endoftext|>" is not in this vocabulary (transformers
    # would append it); Phi-4's own config names its tokens, as here.
    config["unk_token"] = "<|end_of_text|>"
    return json.dumps(config, indent=2)


# make interop bounds for Gemma 3, measured with the 0.3.36 build on the sample prompt: q8_0
# 0.996-0.997, q4_k_m 0.897 (gemma3-vlm); its q/k norms and sqrt(n_embd) embedding scale make these
# tiny random models more sensitive than the other families (a misread file scores near 0).
GEMMA3_COSINE = {"q8_0": 0.995, "q4_k_m": 0.85}


def _factors(n: int, base: float) -> list[float]:
    return [round(base + 0.37 * i, 4) for i in range(n)]


CASES = [
    FamilyCase(
        name="gemma2",
        outtypes=("f32", "f16", "bf16", "q8_0"),
        hf_class="Gemma2ForCausalLM",
        model_type="gemma2",
        config={
            "vocab_size": 384,
            "hidden_size": 640,
            "intermediate_size": 512,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 64,
            "query_pre_attn_scalar": 64,
            "sliding_window": 128,
            "max_position_embeddings": 1024,
        },
        tokenizer=SPM,
        ftypes=("q4_k_m", "q6_k"),
    ),
    FamilyCase(
        name="gemma2-f32",
        hf_class="Gemma2ForCausalLM",
        model_type="gemma2",
        config={
            "vocab_size": 400,
            "hidden_size": 256,
            "intermediate_size": 320,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 128,
            "attn_logit_softcapping": 40.0,
            "final_logit_softcapping": 20.0,
            "rms_norm_eps": 1e-5,
            "sliding_window": 64,
            "max_position_embeddings": 512,
        },
        tokenizer=SPM,
        dtype="F32",
        outtypes=("f32", "q8_0"),
        ftypes=("q4_k_m",),
    ),
    FamilyCase(
        name="gemma3",
        outtypes=("f32", "f16", "bf16", "q8_0"),
        hf_class="Gemma3ForCausalLM",
        model_type="gemma3_text",
        config={
            "vocab_size": 384,
            "hidden_size": 640,
            "intermediate_size": 512,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 64,
            "query_pre_attn_scalar": 64,
            "sliding_window": 64,
            "sliding_window_pattern": 2,
            "rope_scaling": {"rope_type": "linear", "factor": 8.0},
            "rope_local_base_freq": 20000.0,
            "final_logit_softcapping": 25.0,
            "max_position_embeddings": 2048,
        },
        min_cosine=GEMMA3_COSINE,
        tokenizer=SPM,
        ftypes=("q4_k_m", "q6_k"),
    ),
    FamilyCase(
        name="gemma3-bpe",
        hf_class="Gemma3ForCausalLM",
        model_type="gemma3_text",
        config={
            "vocab_size": 320,
            "hidden_size": 256,
            "intermediate_size": 768,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 128,
            "sliding_window": 32,
            "sliding_window_pattern": 1,
            "tie_word_embeddings": False,
            "max_position_embeddings": 512,
        },
        tokenizer=BPE,
        ftypes=("q4_k_m",),
        # The converter trims token_embd to 300 rows while writing 320 tokens; llama.cpp then
        # refuses the file (token_embd shape check), its own converter's output included.
        llama_cpp_runs=False,
    ),
    FamilyCase(
        name="gemma3-vlm",
        hf_class="Gemma3ForConditionalGeneration",
        model_type="gemma3",
        config={
            "text_config": {
                "vocab_size": 384,
                "hidden_size": 256,
                "intermediate_size": 512,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "num_key_value_heads": 1,
                "head_dim": 128,
                "sliding_window": 32,
                "layer_types": ["sliding_attention", "full_attention"],
                "max_position_embeddings": 1024,
            },
            "vision_config": {
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "image_size": 32,
                "patch_size": 8,
            },
            "mm_tokens_per_image": 4,
        },
        min_cosine=GEMMA3_COSINE,
        tokenizer=SPM,
        ftypes=("q4_k_m",),
    ),
    FamilyCase(
        name="phi3",
        outtypes=("f32", "f16", "bf16", "q8_0"),
        hf_class="Phi3ForCausalLM",
        model_type="phi3",
        config={
            "vocab_size": 392,
            "hidden_size": 256,
            "intermediate_size": 320,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "sliding_window": 128,
            "eos_token_id": 384,
            "pad_token_id": 384,
        },
        tokenizer=SPM,
        extra_files={"tokenizer_config.json": _phi3_tokenizer_config()},
        ftypes=("q4_k_m", "q6_k"),
    ),
    FamilyCase(
        name="phi3-longrope",
        hf_class="Phi3ForCausalLM",
        model_type="phi3",
        config={
            "vocab_size": 392,
            "hidden_size": 384,
            "intermediate_size": 512,
            "num_hidden_layers": 2,
            "num_attention_heads": 6,
            "num_key_value_heads": 2,
            "max_position_embeddings": 131072,
            "original_max_position_embeddings": 4096,
            "rope_scaling": {
                "type": "longrope",
                "long_factor": _factors(32, 1.0),
                "short_factor": _factors(32, 0.5),
            },
            "sliding_window": 262144,
            "eos_token_id": 384,
            "pad_token_id": 384,
        },
        tokenizer=SPM,
        extra_files={"tokenizer_config.json": _phi3_tokenizer_config()},
        ftypes=("q4_k_m",),
    ),
    FamilyCase(
        name="phi4-mini",
        hf_class="Phi3ForCausalLM",
        model_type="phi3",
        # "tiny-phi4-mini" would make "mini" the size label, which qconv's card reading does not
        # (yet) do like gguf-py's Metadata heuristics; that is not what this case tests.
        dir_name="tiny-phi4",
        config={
            "vocab_size": 320,
            "hidden_size": 256,
            "intermediate_size": 384,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "partial_rotary_factor": 0.75,
            "max_position_embeddings": 8192,
            "original_max_position_embeddings": 4096,
            "rope_scaling": {
                "type": "longrope",
                "long_factor": _factors(24, 1.0),
                "short_factor": _factors(24, 1.0),
            },
            "tie_word_embeddings": True,
            "bos_token_id": 296,
            "eos_token_id": 297,
            "pad_token_id": 297,
        },
        tokenizer=BPE,
        extra_files={"tokenizer_config.json": _phi4_tokenizer_config()},
        ftypes=("q4_k_m",),
    ),
]
