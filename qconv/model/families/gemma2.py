"""Gemma 2: the `gemma2` GGUF architecture (conversion/gemma.py:73-122).

Gemma's RMS norms scale by ``1 + w``, so the converter stores every ``*norm.weight`` plus one
(llama.cpp multiplies by the stored weight). Four norms per layer (before and after attention and
the MLP), a tied output (a stored lm_head is ignored), a SentencePiece vocabulary written without
the space prefix, sliding-window attention on alternate layers, attention and final logit
softcapping. Gemma2Model.set_gguf_parameters does not call TextModel's, so its keys come in its
own order (``base_keys``).
"""

from __future__ import annotations

from qconv.gguf.metadata import KV, kv_float32, kv_uint32
from qconv.model.config import ModelConfig
from qconv.model.hparams import block_count
from qconv.model.spec import ATTENTION_TENSORS, ArchSpec
from qconv.tokenizer.vocab import VocabRules

NORMS = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
}
MLP = {"mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
PLUS_ONE = ("norm_plus_one",)
NORM_KINDS = ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm", "output_norm")


def _gemma2_base_keys(name: str, config: ModelConfig) -> list[KV]:
    """Gemma2Model.set_gguf_parameters up to general.file_type; it does not call TextModel's."""
    c = config
    n_head = c.integer("num_attention_heads", minimum=1)
    head_dim = c.integer("head_dim", minimum=1)
    return [
        kv_uint32(f"{name}.context_length", c.integer("max_position_embeddings")),
        kv_uint32(f"{name}.embedding_length", c.integer("hidden_size")),
        kv_uint32(f"{name}.block_count", block_count(c)),
        kv_uint32(f"{name}.feed_forward_length", c.integer("intermediate_size")),
        kv_uint32(f"{name}.attention.head_count", n_head),
        kv_uint32(f"{name}.attention.head_count_kv", c.integer("num_key_value_heads", n_head)),
        kv_float32(f"{name}.attention.layer_norm_rms_epsilon", c.number("rms_norm_eps")),
        kv_uint32(f"{name}.attention.key_length", head_dim),
        kv_uint32(f"{name}.attention.value_length", head_dim),
    ]


def _gemma2_keys(spec: ArchSpec, config: ModelConfig) -> list[KV]:
    name = spec.name
    return [
        kv_float32(f"{name}.attn_logit_softcapping", config.number("attn_logit_softcapping")),
        kv_float32(f"{name}.final_logit_softcapping", config.number("final_logit_softcapping")),
        kv_uint32(f"{name}.attention.sliding_window", config.integer("sliding_window")),
    ]


SPEC = ArchSpec(
    name="gemma2",
    hf_architectures=("Gemma2ForCausalLM",),
    model_types=("gemma2",),
    layer_tensors={**NORMS, **ATTENTION_TENSORS, **MLP},
    global_tensors={"model.embed_tokens": "token_embd", "model.norm": "output_norm"},
    transforms={kind: PLUS_ONE for kind in NORM_KINDS},
    # transformers.Gemma2Config defaults, which the converter sees through AutoConfig.
    defaults={
        "vocab_size": 256000,
        "hidden_size": 2304,
        "intermediate_size": 9216,
        "num_hidden_layers": 26,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "sliding_window": 4096,
        "final_logit_softcapping": 30.0,
        "attn_logit_softcapping": 50.0,
        "tie_word_embeddings": True,
    },
    base_keys=_gemma2_base_keys,
    family_keys=_gemma2_keys,
    # Gemma2Model.filter_tensors ignores lm_head: the output is tied to token_embd.
    dropped=(r"lm_head\.weight",),
    vocab=VocabRules(space_prefix=False, spm_required=True),
)
