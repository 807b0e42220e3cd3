"""Mistral 3 (Mistral Small 3.x) and Ministral 3 in Hugging Face format: the `mistral3` GGUF
architecture.

convert_hf_to_gguf.py's Mistral3Model (conversion/mistral3.py:14-70) converts the text model with
Ministral3Model, a LlamaModel (Q/K permutation, vocab_size and rope.dimension_count,
LlamaModel.set_vocab's quirks). The checkpoint is Mistral3ForConditionalGeneration: its
``language_model.`` prefix is stripped and the vision tower and projector are left out (the
mapping layer does both, as the converter's filter_tensors does for every text model).

A Ministral 3 text_config (model_type ``ministral3``) must use yarn rope scaling; the converter
then adds the yarn log multiplier (``mscale_all_dim``) and the attention temperature scale
(``llama_4_scaling_beta``). transformers 4.57.6 has no Ministral3 config class, so AutoConfig fails
and the converter reads config.json as written: no transformers defaults apply to it. A
``mistral`` text_config goes through MistralConfig and gets its defaults.
"""

from __future__ import annotations

from typing import Any

from qconv.errors import SourceError
from qconv.gguf.metadata import KV, kv_float32
from qconv.model.config import ModelConfig
from qconv.model.families import mistral
from qconv.model.families.llama import llama_vocab_keys
from qconv.model.hparams import rope_parameters
from qconv.model.spec import ATTENTION_TENSORS, BASE_TENSORS, ArchSpec, derive_kv_heads

_MINISTRAL3 = "ministral3"


def derive_mistral3(values: dict[str, Any]) -> None:
    if values.get("model_type") == _MINISTRAL3:
        return  # config.json read raw by the converter: nothing filled in
    for key, value in mistral.SPEC.defaults.items():
        values.setdefault(key, value)
    derive_kv_heads(values)


def ministral3_keys(spec: ArchSpec, config: ModelConfig) -> list[KV]:
    """ministral3: yarn log multiplier and attention temperature scale; vision tower left out."""
    if config.model_type != _MINISTRAL3:
        return []
    params = rope_parameters(config)
    if params.get("rope_type") != "yarn":
        raise SourceError(
            f"{config.label}: a ministral3 text_config needs 'rope_parameters' with rope_type "
            "'yarn', which llama.cpp's converter requires"
        )
    kvs = []
    for key, suffix in (
        ("mscale_all_dim", "rope.scaling.yarn_log_multiplier"),
        ("llama_4_scaling_beta", "attention.temperature_scale"),
    ):
        value = params.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SourceError(f"{config.label}: rope_parameters needs a number {key!r}")
        kvs.append(kv_float32(f"{spec.name}.{suffix}", float(value)))
    return kvs


SPEC = ArchSpec(
    name="mistral3",
    hf_architectures=("Mistral3ForConditionalGeneration", "Ministral3ForCausalLM"),
    model_types=("mistral3", _MINISTRAL3),
    layer_tensors={**BASE_TENSORS, **ATTENTION_TENSORS},
    transforms={"attn_q": ("permute_qk",), "attn_k": ("permute_qk",)},
    derive=derive_mistral3,
    family_keys=ministral3_keys,
    trailing_keys=("vocab_size", "rope.dimension_count"),
    llama3_rope=True,
    tokenizer_hook=llama_vocab_keys,
)
