"""BERT embedding models (BertModel, as sentence-transformers ships them): the `bert` architecture.

conversion/bert.py ``BertModel``: the ``bert.`` prefix and the pooler / masked-LM / NSP heads are
dropped, ``.gamma`` / ``.beta`` read as ``.weight`` / ``.bias``; attention is not causal, and the
pooling llama-embedding applies comes from sentence-transformers' ``modules.json`` and
``1_Pooling/config.json`` (``TextModel._try_set_pooling_type``, base.py:2295-2333).
"""

from __future__ import annotations

from qconv.gguf.metadata import KV, kv_bool
from qconv.model.config import ModelConfig
from qconv.model.pooling import pooling_keys
from qconv.model.spec import ArchSpec


def bert_keys(spec: ArchSpec, config: ModelConfig) -> list[KV]:
    """``BertModel.set_gguf_parameters`` after super(): non-causal attention, then pooling."""
    return [kv_bool(f"{spec.name}.attention.causal", False), *pooling_keys(spec, config)]


SPEC = ArchSpec(
    name="bert",
    hf_architectures=("BertModel",),
    model_types=("bert",),
    layer_prefix="encoder.layer",
    name_rewrites=((r"^bert\.", ""), (r"\.gamma$", ".weight"), (r"\.beta$", ".bias")),
    dropped=(r"embeddings\.position_ids", r"pooler\.dense\..*", r"cls\..*"),
    global_tensors={
        "embeddings.word_embeddings": "token_embd",
        "embeddings.token_type_embeddings": "token_types",
        "embeddings.position_embeddings": "position_embd",
        "embeddings.LayerNorm": "token_embd_norm",
    },
    layer_tensors={
        "attention.self.query": "attn_q",
        "attention.self.key": "attn_k",
        "attention.self.value": "attn_v",
        "attention.output.dense": "attn_output",
        "attention.output.LayerNorm": "attn_output_norm",
        "intermediate.dense": "ffn_up",
        "output.dense": "ffn_down",
        "output.LayerNorm": "layer_output_norm",
    },
    # transformers.BertConfig defaults, which convert_hf_to_gguf.py sees through AutoConfig.
    defaults={
        "vocab_size": 30522,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
    },
    family_keys=bert_keys,
)
