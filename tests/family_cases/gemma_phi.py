"""Gemma 2 / Gemma 3 (and Phi-3) cases: one per config branch the converter takes.

- gemma2: 640-wide rows (K-quant fallbacks), SentencePiece vocabulary, default softcaps.
- gemma2-f32: F32 source, vocabulary padded past tokenizer.model ([PADn] tokens), its own softcaps
  and eps, a 320-wide ffn_down (fallback again).
- gemma3: 640 wide, linear rope scaling, a local rope base, a final softcap, sliding pattern 2.
- gemma3-bpe: tokenizer.json only (byte-level BPE), so token_embd is trimmed to the tokenizer's
  300 tokens; untied lm_head; sliding_window_pattern 1 (no sliding window key).
- gemma3-vlm: Gemma3ForConditionalGeneration with a small SigLIP tower: text model only,
  explicit layer_types.
"""

from __future__ import annotations

from family_fixtures import FamilyCase

SPM = "arch/llama2/tokenizer"  # 384 pieces
BPE = "arch/llama3/tokenizer"  # 296 + 4 added tokens

CASES = [
    FamilyCase(
        name="gemma2",
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
        tokenizer=SPM,
        ftypes=("q4_k_m",),
    ),
]
