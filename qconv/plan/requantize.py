"""Plans for a GGUF source: what ``llama-quantize IN OUT TYPE`` would write, tensor for tensor.

llama-quantize (``src/llama-quant.cpp: llama_model_quantize_impl``) copies the input's metadata in
its order, re-sets ``general.quantization_version`` and then ``general.file_type`` (which moves
both to the end), drops the ``split.*`` keys, and writes every tensor of every part in its loader's
sorted order (``weight_name_comparer``). Each tensor gets the type its mixture rules choose, with
the model's facts (``<arch>.block_count``, ``expert_count``, head counts) read from the file's own
metadata; a tensor whose chosen type equals its stored type is copied as it is. A tensor already
quantized to another type is refused ("requantizing from type … is disabled") unless
``--allow-requantize``: it is then decoded to float32 and quantized again, which loses quality.
With ``--imatrix``, every tensor whose type changes carries its importance vector, and the
``quantize.imatrix.*`` keys follow ``general.file_type`` (llama-quantize sets them as KV overrides
after it; a key the input already has moves there too).
"""

from __future__ import annotations

from collections.abc import Sequence

from qconv import quant
from qconv.errors import QuantizationError, UsageError
from qconv.gguf.constants import GGML_QNT_VERSION, GGUFValueType, Keys
from qconv.gguf.metadata import KV, kv_uint32
from qconv.imatrix import Imatrix, importance_for
from qconv.plan.mixture import MixtureTensor, llama_quantize_order
from qconv.plan.plan import ModelFacts, Target, TensorPlan, refuse_fallbacks
from qconv.source.gguf import GGUFSource, GGUFTensor

__all__ = ["gguf_model_facts", "plan_requantization", "requantized_kvs"]


def _first_int(source: GGUFSource, key: str) -> int | None:
    """An integer key; for a per-layer array (head counts of some models) its first item."""
    kv = source.get(key)
    if kv is None:
        return None
    value = kv.value[0] if kv.vtype == GGUFValueType.ARRAY and kv.value else kv.value
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def gguf_model_facts(source: GGUFSource) -> ModelFacts:
    """The facts llama-quantize's rules use, from the file's own ``<arch>.*`` keys."""
    kv = source.get(Keys.ARCHITECTURE)
    arch = kv.value if kv is not None and isinstance(kv.value, str) else ""
    n_head = _first_int(source, f"{arch}.attention.head_count") or 1
    n_head_kv = _first_int(source, f"{arch}.attention.head_count_kv") or n_head
    return ModelFacts(
        arch=arch,
        n_layer=_first_int(source, f"{arch}.block_count"),
        n_expert=_first_int(source, f"{arch}.expert_count") or 0,
        n_gqa=max(1, n_head // max(1, n_head_kv)),
    )


def requantized_kvs(source: GGUFSource, target: Target, extra: Sequence[KV] = ()) -> list[KV]:
    """The input's metadata as llama-quantize writes it (split keys are already dropped).

    ``extra`` (the imatrix keys) is set last; an input key of the same name moves there.
    """
    reset = {Keys.QUANTIZATION_VERSION, Keys.FILE_TYPE, *(kv.key for kv in extra)}
    kept = [kv for kv in source.kvs if kv.key not in reset]
    version = kv_uint32(Keys.QUANTIZATION_VERSION, GGML_QNT_VERSION)
    return [*kept, version, kv_uint32(Keys.FILE_TYPE, target.ftype), *extra]


def plan_requantization(
    source: GGUFSource,
    target: Target,
    *,
    strict: bool = False,
    allow_requantize: bool = False,
    imatrix: Imatrix | None = None,
) -> tuple[list[TensorPlan], list[str]]:
    """Every tensor's plan in llama-quantize's order, and the warnings to show.

    Raises:
        UsageError: a quantized tensor would be requantized without ``allow_requantize``, or an
            importance matrix with a float target.
        QuantizationError: with ``strict``, a tensor needed a fallback type; a type has no kernel.
        SourceError: the importance matrix does not fit the model.
    """
    if imatrix is not None and not target.quantized:
        raise UsageError(f"--imatrix applies to quantized types, not {target.name}")
    facts = gguf_model_facts(source)
    tensors = source.tensors
    choices = facts.choose_types(
        [MixtureTensor(t.name, t.shape) for t in tensors],
        target,
        [t.qtype for t in tensors],
        has_imatrix=imatrix is not None,
    )
    plans = []
    for tensor, choice in zip(tensors, choices, strict=True):
        importance, reason = None, choice.reason
        if choice.qtype != tensor.qtype:
            if not quant.can_quantize(choice.qtype):
                raise QuantizationError(
                    f"tensor {tensor.name!r}: qconv has no {choice.qtype.name} kernel yet "
                    f"({choice.reason})"
                )
            if imatrix is not None:  # looked up only for tensors whose type changes
                importance = importance_for(imatrix, tensor.name, tensor.shape)
                reason += "; imatrix" if importance is not None else "; no imatrix entry"
        # ggml_dims: gguf.cpp writes ggml_n_dims, so a stored (1, n) tensor comes out 1-D.
        plans.append(
            TensorPlan(tensor.name, tensor, choice.qtype, reason, choice.fallback, importance, True)
        )
    plans = [plans[i] for i in llama_quantize_order([plan.name for plan in plans])]
    if strict:
        refuse_fallbacks(plans)
    return plans, _requantize_warnings(plans, allow_requantize)


def _requantize_warnings(plans: Sequence[TensorPlan], allow: bool) -> list[str]:
    redone = [p for p in plans if p.data.dtype != p.qtype.name and _quantized(p.data.dtype)]
    if not redone:
        return []
    first = redone[0]
    for plan in redone:
        if isinstance(plan.data, GGUFTensor):
            plan.data.check_decodable()  # a kept tensor of any type is copied; this one is not
    if not allow:
        raise UsageError(
            f"tensor {first.name!r} is already {first.data.dtype} and would become "
            f"{first.qtype.name} ({len(redone)} such tensors); requantizing loses quality: "
            "start from an F32/F16/BF16 file, or pass --allow-requantize"
        )
    return [
        f"requantizing {len(redone)} already-quantized tensors (e.g. {first.name} "
        f"{first.data.dtype} -> {first.qtype.name}): quality is lower than quantizing from "
        "F32/F16/BF16"
    ]


def _quantized(dtype: str) -> bool:
    return dtype not in ("F32", "F16", "BF16")
