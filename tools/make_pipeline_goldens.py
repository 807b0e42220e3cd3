"""Regenerate tests/golden/pipeline/: llama.cpp's real two-step pipeline, HF -> GGUF -> K-quant.

For every case in CASES this script writes a small Llama checkpoint (tokenizer files borrowed from a
tests/arch_fixtures case), runs llama.cpp's convert_hf_to_gguf.py --outtype bf16 (f32 for the F32
source) and then llama-quantize <that file> <out> <FTYPE> for each of the case's file types, and
keeps only the quantized files: tests/golden/pipeline/<case>/<ftype>.gguf. Then
tests/test_pipeline_goldens.py asks qconv to produce the same files in one step.

The shapes are chosen to keep every file under 200 KB while reaching the interesting decisions:
- llama3_h256_bf16: hidden 256, so q/k/v/gate/up and the tied token embedding are K-quantizable,
  while attn_output (32 inputs) and ffn_down (32 inputs) take llama-quantize's fallback types;
  all six file types.
- llama2_h64_ff96_bf16: neither hidden nor intermediate is a multiple of 256: every matrix falls
  back (the "not a multiple" path), untied output.
- llama2_h32_ff256_4l_f32: an F32 source; ffn_down has 256 inputs so it is K-quantized, and four
  layers make the layer-dependent "more bits" rule pick layers 2 and 3.

The converter runs in ~/.cache/qconv/convert-venv (see tools/make_arch_goldens.py, whose converter
wrapper and venv are reused); llama-quantize is built by tools/build_ggml.sh.
Usage: .venv/bin/python tools/make_pipeline_goldens.py [CASE ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = ROOT / "tests" / "golden" / "pipeline"
for extra in (ROOT / "tools", ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from arch_fixtures import CASES as ARCH_CASES  # noqa: E402
from arch_fixtures import ArchCase, tensor_shapes, tokenizer_dir  # noqa: E402
from synthetic import tensor_values, write_safetensors  # noqa: E402

ALL_FTYPES = ("q4_k_m", "q4_k_s", "q5_k_m", "q6_k", "q3_k_m", "q2_k")


@dataclass(frozen=True, slots=True)
class PipelineCase:
    """A checkpoint: an arch_fixtures case (tokenizer, base config) with other dimensions."""

    name: str
    base: str  # arch_fixtures case whose tokenizer and config this reuses
    overrides: dict[str, Any]
    dtype: str  # "BF16" or "F32": the safetensors dtype of every tensor
    ftypes: tuple[str, ...] = ALL_FTYPES
    seed: int = field(default=7)

    @property
    def outtype(self) -> str:
        """convert_hf_to_gguf's --outtype for the intermediate file (lossless for the source)."""
        return "f32" if self.dtype == "F32" else "bf16"

    def arch_case(self) -> ArchCase:
        base = ARCH_CASES[self.base]
        torch_dtype = "float32" if self.dtype == "F32" else "bfloat16"
        config = {**base.config, **self.overrides, "torch_dtype": torch_dtype}
        return dataclasses.replace(
            base, dir_name=f"tiny-{self.name}", config=config, seed=self.seed
        )


CASES: dict[str, PipelineCase] = {
    case.name: case
    for case in (
        PipelineCase(
            "llama3_h256_bf16",
            "llama3",
            {
                "hidden_size": 256,
                "intermediate_size": 32,
                "num_attention_heads": 2,
                "num_key_value_heads": 1,
                "head_dim": 16,
            },
            "BF16",
        ),
        PipelineCase(
            "llama2_h64_ff96_bf16",
            "llama2",
            {"hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4},
            "BF16",
            ftypes=("q4_k_m", "q2_k"),
        ),
        PipelineCase(
            "llama2_h32_ff256_4l_f32",
            "llama2",
            {"intermediate_size": 256, "num_hidden_layers": 4},
            "F32",
            ftypes=("q4_k_m", "q3_k_m", "q5_k_m"),
        ),
    )
}


def write_checkpoint(case: PipelineCase, parent: Path) -> Path:
    """Write ``case``'s checkpoint (config, safetensors, tokenizer files) under ``parent``."""
    arch = case.arch_case()
    directory = parent / arch.dir_name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(arch.config, indent=2), encoding="utf-8")
    tensors = {
        name: (case.dtype, tensor_values(name, shape, arch.seed))
        for name, shape in tensor_shapes(arch)
    }
    write_safetensors(directory / "model.safetensors", tensors)
    if arch.readme is not None:
        (directory / "README.md").write_text(arch.readme, encoding="utf-8")
    for item in sorted(tokenizer_dir(ARCH_CASES[case.base]).iterdir()):
        shutil.copy(item, directory / item.name)
    return directory


def golden_path(case: PipelineCase, ftype: str) -> Path:
    return GOLDEN_DIR / case.name / f"{ftype}.gguf"


def build_llama_quantize() -> Path:
    build = subprocess.run(
        ["bash", str(ROOT / "tools" / "build_ggml.sh"), "llama-quantize"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout.strip()
    return Path(build) / "bin" / "llama-quantize"


def quantize(tool: Path, src: Path, dst: Path, ftype: str) -> None:
    run = subprocess.run(
        [str(tool), str(src), str(dst), ftype.upper(), "1"], capture_output=True, text=True
    )
    if run.returncode != 0:
        raise SystemExit(f"llama-quantize {ftype} failed:\n{run.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"default: all of {', '.join(CASES)}")
    args = parser.parse_args()
    import make_arch_goldens as hf

    hf.ensure_venv()
    src = hf.llama_cpp_root()
    tool = build_llama_quantize()
    for name in args.cases or list(CASES):
        case = CASES[name]
        out_dir = GOLDEN_DIR / name
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        with tempfile.TemporaryDirectory() as tmp:
            model = write_checkpoint(case, Path(tmp))
            intermediate = Path(tmp) / f"{case.outtype}.gguf"
            hf.convert(case.arch_case().pre, model, case.outtype, intermediate, src)
            for ftype in case.ftypes:
                quantize(tool, intermediate, golden_path(case, ftype), ftype)
        sizes = {p.name: p.stat().st_size for p in sorted(out_dir.glob("*.gguf"))}
        print(name, sizes)


if __name__ == "__main__":
    main()
