"""Llama 2/3, TinyLlama, SmolLM: the `llama` GGUF architecture.

llama.cpp applies RoPE to adjacent pairs of each head (GGML_ROPE_TYPE_NORM), while Hugging Face's
Llama rotates the two halves of each head. convert_hf_to_gguf.py therefore reorders the rows of
q_proj and k_proj (weights and biases): within each head, rows (0..d/2, d/2..d) are interleaved.
qconv does the same with a row permutation applied while reading, so no tensor is ever copied whole.

:func:`llama_vocab_keys` is the end of ``LlamaModel.set_vocab`` (conversion/llama.py:143-158),
which every family converted by a LlamaModel subclass shares (Mistral, SmolLM3, Granite).
"""

from __future__ import annotations

from pathlib import Path

from qconv.gguf.metadata import KV, kv_bool, kv_uint32, merge_kvs
from qconv.model.config import ModelConfig
from qconv.model.spec import ATTENTION_TENSORS, BASE_TENSORS, ArchSpec, derive_llama

# CodeLlama's 32016-token vocabulary: LlamaModel.set_vocab names its infill tokens 32007-32010;
# gguf-py's writer has a method only for "eot" among them, so only eot reaches the file.
_CODELLAMA_VOCAB, _CODELLAMA_EOT = 32016, 32010
# "granite small models" (and SmolLM / SmolLM2, which share the size): no BOS is prepended.
_NO_BOS_VOCAB = 49152


def llama_vocab_keys(config: ModelConfig, model_dir: Path, kvs: list[KV]) -> list[KV]:
    """add_bos_token = false for 49152-token vocabularies, CodeLlama's eot id for 32016 ones.

    LlamaModel.set_vocab's vocabulary-size branches; each key replaces an earlier one in place or
    is appended, as gguf-py's writer does.
    """
    del model_dir  # the branches read only config.json's vocab_size
    vocab_size = config.integer("vocab_size", 32000)
    if vocab_size == _CODELLAMA_VOCAB:
        kvs = merge_kvs(kvs, [kv_uint32("tokenizer.ggml.eot_token_id", _CODELLAMA_EOT)])
    if vocab_size == _NO_BOS_VOCAB:
        kvs = merge_kvs(kvs, [kv_bool("tokenizer.ggml.add_bos_token", False)])
    return kvs


SPEC = ArchSpec(
    name="llama",
    hf_architectures=("LlamaForCausalLM", "LLaMAForCausalLM"),
    model_types=("llama",),
    layer_tensors={**BASE_TENSORS, **ATTENTION_TENSORS},
    transforms={"attn_q": ("permute_qk",), "attn_k": ("permute_qk",)},
    # transformers.LlamaConfig defaults, which convert_hf_to_gguf.py sees through AutoConfig.
    derive=derive_llama,
    defaults={
        "vocab_size": 32000,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
    },
    trailing_keys=("vocab_size", "rope.dimension_count"),
    llama3_rope=True,
    tokenizer_hook=llama_vocab_keys,
)
