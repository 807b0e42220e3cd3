"""Family goldens: small checkpoints made by transformers' own model classes, and digests of what
llama.cpp's converter (and llama-quantize) wrote for them.

tools/make_family_goldens.py (run by `make golden-convert`, in the torch venv) does, per case:
1. instantiates the case's Hugging Face class from its config with transformers and calls
   ``save_pretrained``, so config.json and the tensor names, shapes and order are transformers' own;
   it keeps that config.json and the tensor list (``skeleton.json``) in tests/golden/family/<case>;
2. writes the checkpoint again with deterministic values (tools/synthetic.tensor_values) in place of
   torch's random init, so a test can rebuild the identical checkpoint without torch;
3. runs the vendored ``convert_hf_to_gguf.py`` for each ``outtypes`` entry and, for each ``ftypes``
   entry, ``convert_hf_to_gguf.py --outtype bf16`` (f32 for F32 sources) then ``llama-quantize``;
4. stores a digest of every output file (every KV with its types and value, every tensor's name,
   type, shape and SHA-256 of its bytes) in ``golden.json``, read with gguf-py's GGUFReader.
A digest instead of the whole file keeps the goldens small while still proving byte equality.

Case modules live in tests/family_cases/ (one per group of families); each exports ``CASES``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))

from synthetic import tensor_values, write_safetensors  # noqa: E402

GOLDEN_DIR = ROOT / "tests" / "golden" / "family"
LONG_ARRAY = 16  # arrays longer than this are stored as a hash in the digest
# Text whose Hugging Face token ids the golden script records, for the llama.cpp interop test.
SAMPLE_TEXT = "the quick brown fox jumps over the lazy dog"


@dataclass(frozen=True, slots=True)
class FamilyCase:
    """One tiny checkpoint of a family and the llama.cpp outputs kept for it."""

    name: str  # folder under tests/golden/family/
    hf_class: str  # transformers class instantiated by the golden script
    model_type: str  # transformers model_type (AutoConfig.for_model)
    config: dict[str, Any]  # config kwargs; transformers fills the rest with its defaults
    tokenizer: (
        str  # folder of tokenizer files, relative to tests/golden/ (e.g. arch/llama3/tokenizer)
    )
    pre: str = "llama-bpe"  # tokenizer.ggml.pre to give the converter for tiny trained vocabularies
    dtype: str = "BF16"  # safetensors dtype of every floating tensor
    outtypes: tuple[str, ...] = ("bf16", "q8_0")  # convert_hf_to_gguf.py --outtype
    ftypes: tuple[str, ...] = ("q4_k_m",)  # llama-quantize file types after the bf16 step
    seed: int = 0
    dir_name: str = ""  # checkpoint folder name (general.name derives from it); default: name
    # config.json "_name_or_path", which hub configs saved by older transformers still carry
    # (llama.cpp reads the model's name from it before the folder name); "" leaves it out.
    name_or_path: str = ""
    # Extra files written beside config.json: {relative path: text} (e.g. sentence-transformers'
    # modules.json and 1_Pooling/config.json).
    extra_files: dict[str, str] = field(default_factory=dict)
    # make interop: False when llama.cpp refuses the converter's own file for this case (the case
    # says why); min_cosine overrides tests/interop's bounds per output where a family's tiny
    # random model is measurably more sensitive to quantization.
    llama_cpp_runs: bool = True
    min_cosine: dict[str, float] = field(default_factory=dict)
    # Also check transformers v5's fused expert layout (mlp.experts.gate_up_proj / down_proj, 3-D)
    # of the same values: the golden script requires the converter's files from it to equal the
    # per-expert ones, and the tests convert it with qconv against the same goldens.
    v5_experts: bool = False

    @property
    def folder(self) -> str:
        return self.dir_name or f"tiny-{self.name}"

    @property
    def outputs(self) -> tuple[str, ...]:
        return (*self.outtypes, *self.ftypes)


def _load_cases() -> dict[str, FamilyCase]:
    package = importlib.import_module("family_cases")
    cases: dict[str, FamilyCase] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"family_cases.{info.name}")
        for case in module.CASES:
            assert case.name not in cases, f"duplicate family case {case.name}"
            cases[case.name] = case
    return cases


if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))
_cases: dict[str, FamilyCase] | None = None


def __getattr__(name: str) -> Any:
    """``CASES`` (name → FamilyCase) is built on first use, not at import: the case modules import
    FamilyCase from here, so building it at import made ``import family_cases.llama`` circular."""
    global _cases
    if name != "CASES":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _cases is None:
        _cases = _load_cases()
    return _cases


def case_dir(case: FamilyCase) -> Path:
    return GOLDEN_DIR / case.name


def read_skeleton(case: FamilyCase) -> tuple[dict[str, Any], list[tuple[str, tuple[int, ...]]]]:
    """(config.json as transformers saved it, [(tensor name, shape)] in saved order)."""
    config = json.loads((case_dir(case) / "config.json").read_text("utf-8"))
    skeleton = json.loads((case_dir(case) / "skeleton.json").read_text("utf-8"))
    return config, [(name, tuple(shape)) for name, shape in skeleton["tensors"]]


_EXPERT = re.compile(r"(model\.layers\.\d+\.mlp\.experts)\.(\d+)\.(gate|up|down)_proj\.weight")


def fuse_experts(values: dict[str, tuple[str, np.ndarray]]) -> dict[str, tuple[str, np.ndarray]]:
    """transformers v5's layout of the same weights: per layer ``mlp.experts.gate_up_proj``
    (n_expert, 2·n_ff, n_embd; gate rows first) and ``mlp.experts.down_proj``, names sorted."""
    fused: dict[str, tuple[str, np.ndarray]] = {}
    experts: dict[str, dict[str, dict[int, np.ndarray]]] = {}
    dtype = "F32"
    for name, (dtype_, array) in values.items():
        match = _EXPERT.fullmatch(name)
        if match is None:
            fused[name] = (dtype_, array)
            continue
        prefix, expert, projection = match.group(1), int(match.group(2)), match.group(3)
        experts.setdefault(prefix, {}).setdefault(projection, {})[expert] = array
        dtype = dtype_
    for prefix, projections in experts.items():
        stacked = {p: np.stack([a for _, a in sorted(e.items())]) for p, e in projections.items()}
        gate_up = np.concatenate([stacked["gate"], stacked["up"]], axis=1)
        fused[f"{prefix}.gate_up_proj"] = (dtype, gate_up)
        fused[f"{prefix}.down_proj"] = (dtype, stacked["down"])
    return dict(sorted(fused.items()))


def write_checkpoint(
    case: FamilyCase,
    parent: Path,
    config: dict[str, Any] | None = None,
    tensors: list[tuple[str, tuple[int, ...]]] | None = None,
    *,
    v5_experts: bool = False,
) -> Path:
    """Write ``case``'s checkpoint (deterministic weights) under ``parent``; return its folder.

    ``v5_experts`` writes the experts in transformers v5's fused layout (:func:`fuse_experts`).
    """
    if config is None or tensors is None:
        config, tensors = read_skeleton(case)
    directory = parent / case.folder
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    values = {name: (case.dtype, tensor_values(name, shape, case.seed)) for name, shape in tensors}
    if v5_experts:
        values = fuse_experts(values)
    write_safetensors(directory / "model.safetensors", values)
    tokenizer = ROOT / "tests" / "golden" / case.tokenizer
    for item in sorted(tokenizer.iterdir()) if tokenizer.is_dir() else []:
        if item.is_file():
            shutil.copy(item, directory / item.name)
    for relative, text in case.extra_files.items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_text(text, encoding="utf-8")
    return directory


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        if len(items) > LONG_ARRAY:
            blob = json.dumps(items, ensure_ascii=False, sort_keys=True).encode()
            return {"count": len(items), "sha256": hashlib.sha256(blob).hexdigest()}
        return items
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    return value


def digest(path: Path) -> dict[str, Any]:
    """Every KV (key, value types, value) and every tensor (name, type, shape, SHA-256), in file
    order, as gguf-py reads them (gguf is a test-only dependency)."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    kvs = []
    for key, field_ in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        kvs.append([key, [int(t) for t in field_.types], _plain(field_.contents())])
    tensors = [
        [
            t.name,
            int(t.tensor_type),
            [int(d) for d in reversed(t.shape.tolist())],
            hashlib.sha256(np.ascontiguousarray(t.data).view(np.uint8).tobytes()).hexdigest(),
        ]
        for t in reader.tensors
    ]
    # JSON round trip so a fresh digest compares equal to one loaded from golden.json.
    loaded: dict[str, Any] = json.loads(json.dumps({"kvs": kvs, "tensors": tensors}))
    return loaded


def recorded_ids(case: FamilyCase) -> list[int] | None:
    """The HF tokenizer's ids for SAMPLE_TEXT (special tokens added), when the script could
    load the tokenizer with transformers."""
    document = json.loads((case_dir(case) / "golden.json").read_text("utf-8"))
    ids = document.get("tokens", {}).get("ids")
    return None if ids is None else [int(i) for i in ids]


def golden_digest(case: FamilyCase, output: str) -> dict[str, Any]:
    document = json.loads((case_dir(case) / "golden.json").read_text("utf-8"))
    found: dict[str, Any] = document[output]
    return found
