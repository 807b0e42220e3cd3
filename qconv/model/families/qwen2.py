"""Qwen2 / Qwen2.5: the `qwen2` GGUF architecture (q/k/v biases, NEOX RoPE, no permutation).

Qwen2Model.set_gguf_parameters (conversion/qwen.py:57-73) ends with
``TextModel._try_set_pooling_type``: a checkpoint shipped for sentence-transformers (an embedding
model such as gte-Qwen2 or Qwen3-Embedding) gets the pooling type of its ``modules.json`` and the
classifier pooling of config.json, so llama-embedding pools as the model was trained.
"""

from __future__ import annotations

from qconv.model.pooling import pooling_keys
from qconv.model.spec import ATTENTION_TENSORS, BASE_TENSORS, ArchSpec, derive_kv_heads

SPEC = ArchSpec(
    name="qwen2",
    hf_architectures=("Qwen2ForCausalLM",),
    model_types=("qwen2",),
    layer_tensors={**BASE_TENSORS, **ATTENTION_TENSORS},
    derive=derive_kv_heads,
    defaults={
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "num_key_value_heads": 32,
        "tie_word_embeddings": False,
    },
    family_keys=pooling_keys,
)
