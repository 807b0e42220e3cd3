"""GLM-4 (0414): the `glm4` GGUF architecture.

convert_hf_to_gguf.py's Glm4Model (conversion/glm.py:17-88) is a TextModel: no Q/K permutation,
the fused ``mlp.gate_up_proj`` kept whole as ``ffn_up`` (llama.cpp splits it at run time), norms
after attention (``post_self_attn_layernorm``) and after the MLP (``post_mlp_layernorm``), and
rope.dimension_count = head_dim × partial_rotary_factor (0.5 unless config.json says otherwise).

Its set_vocab names four special tokens by their text in the tokenizer's added vocabulary (eos,
unk and bos are ``<|endoftext|>``, eot is ``<|user|>``), each kept only when the tokenizer files
did not already set it. Its pre-tokenizer regex is Llama 3's, but llama.cpp must tokenize it as
"glm4" (no merges lookahead, no BOS), the name the converter's vocabulary hash gives.
"""

from __future__ import annotations

from pathlib import Path

from qconv.errors import SourceError
from qconv.gguf.metadata import KV, kv_uint32
from qconv.model.config import ModelConfig
from qconv.model.hparams import rope_dimension, rope_parameters
from qconv.model.spec import ATTENTION_TENSORS, ArchSpec, derive_kv_heads
from qconv.tokenizer.vocab import ID_KEYS, read_added_tokens

_SPECIAL_TOKENS = (
    ("eos", "<|endoftext|>"),
    ("eot", "<|user|>"),
    ("unk", "<|endoftext|>"),
    ("bos", "<|endoftext|>"),
)
_EOT_KEY = "tokenizer.ggml.eot_token_id"
# Keys before which the special token ids end (SpecialVocab.add_to_gguf writes ids first).
_VOCAB_KEYS = ("tokenizer.ggml.token_type", "tokenizer.ggml.merges")


def glm4_keys(spec: ArchSpec, config: ModelConfig) -> list[KV]:
    """rope dimension = head_dim × partial_rotary_factor."""
    factor = rope_parameters(config).get("partial_rotary_factor", 0.5)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)):
        raise SourceError(f"{config.label}: 'partial_rotary_factor' must be a number")
    return [kv_uint32(f"{spec.name}.rope.dimension_count", int(rope_dimension(config) * factor))]


def glm4_vocab_keys(config: ModelConfig, model_dir: Path, kvs: list[KV]) -> list[KV]:
    """eos, unk, bos and eot ids named by their text, as GLM-4's converter does.

    Glm4Model.set_vocab's special tokens, inserted after the ids the tokenizer files set.
    """
    del config
    added = read_added_tokens(model_dir)
    keys = {**ID_KEYS, "eot": _EOT_KEY}
    present = {kv.key for kv in kvs}
    new = []
    for typ, content in _SPECIAL_TOKENS:
        if content not in added:
            raise SourceError(
                f"{model_dir / 'tokenizer.json'} has no added token {content!r}, which GLM-4's "
                "converter names as a special token; is this a GLM-4 tokenizer?"
            )
        if keys[typ] not in present:
            present.add(keys[typ])
            new.append(kv_uint32(keys[typ], added[content]))
    ids = set(keys.values())
    last = max(i for i, kv in enumerate(kvs) if kv.key in ids or kv.key in _VOCAB_KEYS)
    return [*kvs[: last + 1], *new, *kvs[last + 1 :]]


SPEC = ArchSpec(
    name="glm4",
    hf_architectures=("Glm4ForCausalLM",),
    model_types=("glm4",),
    layer_tensors={
        **ATTENTION_TENSORS,
        "input_layernorm": "attn_norm",
        "post_self_attn_layernorm": "post_attention_norm",
        "post_attention_layernorm": "ffn_norm",
        "post_mlp_layernorm": "post_ffw_norm",
        "mlp.gate_up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    },
    derive=derive_kv_heads,
    # transformers.Glm4Config defaults.
    defaults={
        "vocab_size": 151552,
        "hidden_size": 4096,
        "intermediate_size": 13696,
        "num_hidden_layers": 40,
        "num_attention_heads": 32,
        "num_key_value_heads": 2,
        "head_dim": 128,
        "partial_rotary_factor": 0.5,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1.5625e-07,
        "rope_theta": 10000.0,
        "attention_bias": True,
        "tie_word_embeddings": False,
    },
    family_keys=glm4_keys,
    tokenizer_hook=glm4_vocab_keys,
    pre_tokenizers={"llama-bpe": "glm4"},
)
