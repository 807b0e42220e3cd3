"""BERT-family embedding models as sentence-transformers ships them (BertModel, WordPiece)."""

from __future__ import annotations

import json

from family_fixtures import FamilyCase

MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {
        "idx": 2,
        "name": "2",
        "path": "2_Normalize",
        "type": "sentence_transformers.models.Normalize",
    },
]


def _pooling(mode: str) -> dict[str, str]:
    config = {
        "word_embedding_dimension": 64,
        "pooling_mode_cls_token": mode == "cls",
        "pooling_mode_mean_tokens": mode == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    return {"modules.json": json.dumps(MODULES), "1_Pooling/config.json": json.dumps(config)}


BERT = {
    "vocab_size": 120,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
    "pad_token_id": 0,
}

CASES = [
    # all-MiniLM-style: mean pooling, hidden not a multiple of 256 (every matrix falls back).
    FamilyCase(
        name="bert_mean_h64",
        hf_class="BertModel",
        model_type="bert",
        config={**BERT, "hidden_size": 64, "intermediate_size": 96},
        tokenizer="family/tokenizers/wordpiece",
        pre="bert-bge",
        dtype="F32",
        outtypes=("f32", "f16", "bf16", "q8_0"),
        ftypes=("q4_k_m",),
        extra_files=_pooling("mean"),
    ),
    # bge-style: CLS pooling, hidden 256 so the K-quants apply.
    FamilyCase(
        name="bert_cls_h256",
        hf_class="BertModel",
        model_type="bert",
        config={**BERT, "hidden_size": 256, "intermediate_size": 512},
        tokenizer="family/tokenizers/wordpiece",
        pre="bert-bge",
        outtypes=("bf16", "q8_0"),
        ftypes=("q4_k_m", "q6_k"),
        extra_files=_pooling("cls"),
    ),
]
