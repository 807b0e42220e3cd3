"""Regenerate tests/golden/family/: checkpoints made by transformers' own classes, converted by
llama.cpp's convert_hf_to_gguf.py (and quantized by llama-quantize), stored as digests.

See tests/family_fixtures.py for what each case keeps and why. Runs in the converter venv of
tools/make_arch_goldens.py (torch CPU, transformers 4.57.6 as llama.cpp pins, the sdist gguf-py);
llama-quantize comes from tools/build_ggml.sh. The BPE pre-tokenizer hash patch of
make_arch_goldens.py applies (tiny trained vocabularies have no registered hash).

Usage: .venv/bin/python tools/make_family_goldens.py [CASE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT / "tools", ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from make_arch_goldens import VENV, VENV_PY, convert, ensure_venv, llama_cpp_root  # noqa: E402


def llama_quantize() -> Path:
    build = subprocess.run(
        ["bash", str(ROOT / "tools" / "build_ggml.sh"), "llama-quantize"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Path(build) / "bin" / "llama-quantize"


def save_skeleton(case, out_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """Instantiate the case's transformers class and keep its saved config.json and tensor list."""
    import torch
    import transformers
    from safetensors import safe_open

    torch.manual_seed(case.seed)
    config = transformers.AutoConfig.for_model(case.model_type, **case.config)
    config.architectures = [case.hf_class]
    model = getattr(transformers, case.hf_class)(config)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        saved = json.loads((Path(tmp) / "config.json").read_text("utf-8"))
        tensors = []
        for shard in sorted(Path(tmp).glob("*.safetensors")):
            with safe_open(str(shard), "pt") as f:
                # safe_open lists names sorted, as the file's header keys are.
                tensors += [(name, list(f.get_slice(name).get_shape())) for name in f.keys()]  # noqa: SIM118
    saved.pop("transformers_version", None)
    saved["torch_dtype"] = "bfloat16" if case.dtype == "BF16" else "float32"
    if case.name_or_path:
        saved["_name_or_path"] = case.name_or_path
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    (out_dir / "skeleton.json").write_text(
        json.dumps({"hf_class": case.hf_class, "tensors": tensors}) + "\n", encoding="utf-8"
    )


def record_name_map(case, out_dir: Path, gguf_arch: str) -> None:  # type: ignore[no-untyped-def]
    """Add gguf-py's TensorNameMap answer for every checkpoint tensor to skeleton.json, so a test
    can check qconv's name tables against llama.cpp's own (gguf-py is not a qconv dependency)."""
    import gguf

    skeleton = json.loads((out_dir / "skeleton.json").read_text("utf-8"))
    config = json.loads((out_dir / "config.json").read_text("utf-8"))
    config = {**config, **(config.get("text_config") or {})}
    n_blocks = next(
        config[k] for k in ("n_layers", "num_hidden_layers", "n_layer", "num_layers") if k in config
    )
    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == gguf_arch)
    tmap = gguf.get_tensor_name_map(arch, n_blocks)
    skeleton["gguf_arch"] = gguf_arch
    skeleton["name_map"] = {
        name: tmap.get_name(name.replace("language_model.", ""), try_suffixes=(".weight", ".bias"))
        for name, _ in skeleton["tensors"]
    }
    (out_dir / "skeleton.json").write_text(json.dumps(skeleton) + "\n", encoding="utf-8")


def hf_token_ids(model: Path) -> list[int] | None:
    """transformers' ids for SAMPLE_TEXT with special tokens, or None when it cannot load the
    tokenizer (its slow SentencePiece class needs a newer protobuf than the converter allows)."""
    from family_fixtures import SAMPLE_TEXT
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model))
    except Exception as e:
        print(f"  no token ids recorded ({type(e).__name__})")
        return None
    return [int(i) for i in tokenizer.encode(SAMPLE_TEXT, add_special_tokens=True)]


def run_quantize(tool: Path, src: Path, dst: Path, ftype: str) -> None:
    run = subprocess.run([str(tool), str(src), str(dst), ftype.upper()], capture_output=True)
    if run.returncode != 0:
        raise SystemExit(f"llama-quantize {ftype} failed:\n{run.stderr.decode()[-2000:]}")


def check_v5_experts(case, parent: Path, src: Path, goldens: dict) -> None:  # type: ignore[no-untyped-def]
    """The converter must write the same files from transformers v5's fused expert layout."""
    from family_fixtures import digest, write_checkpoint

    model = write_checkpoint(case, parent, v5_experts=True)
    for outtype in case.outtypes:
        out = parent / f"{outtype}.gguf"
        convert(case.pre, model, outtype, out, src)
        if digest(out) != goldens[outtype]:
            raise SystemExit(
                f"{case.name}: the converter's {outtype} file from the fused layout "
                "differs from the per-expert one"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*")
    args = parser.parse_args()
    if Path(sys.prefix).resolve() != VENV.resolve():
        ensure_venv()
        os.execv(str(VENV_PY), [str(VENV_PY), __file__, *sys.argv[1:]])
    from family_fixtures import CASES, SAMPLE_TEXT, case_dir, digest, write_checkpoint

    src = llama_cpp_root()
    quantize_tool = None
    for name in args.cases or list(CASES):
        case = CASES[name]
        save_skeleton(case, case_dir(case))
        goldens = {}
        with tempfile.TemporaryDirectory() as tmp:
            model = write_checkpoint(case, Path(tmp))
            if (ids := hf_token_ids(model)) is not None:
                goldens["tokens"] = {"text": SAMPLE_TEXT, "ids": ids}
            for outtype in case.outtypes:
                out = Path(tmp) / f"{outtype}.gguf"
                convert(case.pre, model, outtype, out, src)
                goldens[outtype] = digest(out)
            if case.v5_experts:
                check_v5_experts(case, Path(tmp) / "v5", src, goldens)
            if case.ftypes:
                quantize_tool = quantize_tool or llama_quantize()
                step = Path(tmp) / "intermediate.gguf"
                convert(case.pre, model, "bf16" if case.dtype == "BF16" else "f32", step, src)
                for ftype in case.ftypes:
                    out = Path(tmp) / f"{ftype}.gguf"
                    run_quantize(quantize_tool, step, out, ftype)
                    goldens[ftype] = digest(out)
            first = Path(tmp) / f"{(case.outtypes or ('bf16',))[0]}.gguf"
            if not first.is_file():
                first = Path(tmp) / "intermediate.gguf"
            from gguf import GGUFReader

            arch_field = GGUFReader(first).fields["general.architecture"]
            record_name_map(case, case_dir(case), str(arch_field.contents()))
        (case_dir(case) / "golden.json").write_text(
            json.dumps(goldens, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(name, sorted(goldens))


if __name__ == "__main__":
    main()
