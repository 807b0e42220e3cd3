"""Regenerate tests/golden/arch/: tokenizers, llama.cpp-converted GGUFs and recorded token ids.

For every case in tests/arch_fixtures.py this script
1. trains a tiny tokenizer of the case's flavour (byte-level BPE with the real Llama 3 / Qwen2 /
   SmolLM pre-tokenizer settings via `tokenizers`, or a Llama-2-style SentencePiece BPE model with
   byte fallback via `sentencepiece`) and writes it to tests/golden/arch/<case>/tokenizer/;
2. writes the checkpoint with tests/arch_fixtures.write_case;
3. runs llama.cpp's own convert_hf_to_gguf.py (vendored in the llama-cpp-python sdist, located with
   tools/fetch_llama_cpp.sh) with --outtype f32/bf16/f16/q8_0 into tests/golden/arch/<case>/;
4. records the HF tokenizer's ids for arch_fixtures.SAMPLE_TEXTS in tokens.json.

It needs torch, transformers, sentencepiece and tokenizers, so it runs in its own venv,
~/.cache/qconv/convert-venv, which it creates on first use (torch from the CPU wheel on disk). The
normal test run never needs that venv.

One deliberate patch: convert_hf_to_gguf.py names a BPE pre-tokenizer by hashing the token ids of a
fixed text, and only knows the hashes of real published vocabularies, so it refuses any tiny trained
vocabulary. We give it the name the real model family uses (ArchCase.pre) when its hash lookup
fails; everything else in the golden files is llama.cpp's own output.

Usage: python tools/make_arch_goldens.py [--keep-tokenizers] [CASE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("QCONV_CACHE", Path.home() / ".cache" / "qconv"))
VENV = CACHE / "convert-venv"
VENV_PY = VENV / "bin" / "python"
TORCH_WHEEL_GLOB = "torch-2.13.0+cpu-*.whl"
REQUIREMENTS = [
    "transformers==4.57.6",
    "sentencepiece>=0.1.98,<0.3.0",
    "tokenizers",
    "protobuf>=4.21.0,<5.0.0",
    "numpy~=2.2.6",
]

sys.path.insert(0, str(ROOT / "tests"))

CORPUS = """\
The quick brown fox jumps over the lazy dog. A tiny model learns to read and write words.
Hello world! This is a small corpus used to train tiny tokenizers for qconv's golden tests.
Numbers like 1, 22, 333, 4444 and 12345 appear too, with dates such as 2024-05-17 and 3.14159.
We're testing contractions: I'm, you're, they've, she'll, he'd, it's, don't, can't, won't.
Punctuation matters (parentheses), [brackets], {braces}, "quotes", 'single', and -- dashes...
Models convert weights into GGUF files that llama.cpp can run on a laptop without a GPU.
Tokenizers split text into pieces; byte-level BPE merges frequent pairs of bytes into tokens.
SentencePiece treats the input as a raw stream and marks word starts with a special symbol.
naïve café — ünïcödé text, emoji 🚀 and 🦙, CJK 我想在apple工作 and Cyrillic нещо на Български.
    indented code: def main(): return 0  # with tabs\tand\tnewlines
The rain in Spain stays mainly in the plain. She sells sea shells by the sea shore.
Peter Piper picked a peck of pickled peppers; how many pickled peppers did Peter Piper pick?
"""

LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
LLAMA2_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + "
    "message['content'] + ' [/INST]' }}{% else %}{{ ' ' + message['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
)


def ensure_venv() -> None:
    """Create the converter venv once; pip takes torch from the CPU wheel on disk, never CUDA."""
    if VENV_PY.exists():
        return
    wheels = sorted(Path("/opt/wheels").glob(TORCH_WHEEL_GLOB))
    torch_req = str(wheels[0]) if wheels else "torch==2.13.0"
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV_PY), "-m", "pip", "install", "--quiet"]
    if not wheels:
        pip += [
            "--index-url",
            "https://download.pytorch.org/whl/cpu",
            "--extra-index-url",
            "https://pypi.org/simple",
        ]
    subprocess.run([*pip, torch_req, *REQUIREMENTS], check=True)
    subprocess.run(
        [str(VENV_PY), "-m", "pip", "install", "--quiet", str(llama_cpp_root() / "gguf-py")],
        check=True,
    )


def llama_cpp_root() -> Path:
    out = subprocess.run(
        ["bash", str(ROOT / "tools" / "fetch_llama_cpp.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def added(content: str, special: bool = True) -> dict[str, object]:
    return {
        "content": content,
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
        "special": special,
    }


def train_bpe(flavour: str, out: Path, vocab_size: int) -> None:
    """A byte-level BPE tokenizer.json + tokenizer_config.json in the style of the real family."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if flavour == "bpe-llama3":
        specials_front: list[str] = []
        specials_end = [
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
        ]
        pre = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
                byte_level,
            ]
        )
        normalizer = None
    elif flavour == "bpe-qwen2":
        specials_front = []
        specials_end = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_prefix|>"]
        pre = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
                byte_level,
            ]
        )
        normalizer = normalizers.NFC()
    else:  # bpe-smollm: digits split one by one, then GPT-2 byte-level with its own regex
        specials_front = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>"]
        specials_end = []
        pre = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
        normalizer = None
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(specials_end),
        special_tokens=specials_front,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS.splitlines(keepends=True) * 4, trainer)
    assert tok.get_vocab_size() == vocab_size - len(specials_end), tok.get_vocab_size()
    tok.add_special_tokens(specials_end)
    if flavour == "bpe-llama3":
        bos = "<|begin_of_text|>"
        tok.post_processor = processors.Sequence(
            [
                processors.ByteLevel(trim_offsets=False),
                processors.TemplateProcessing(
                    single=f"{bos} $A",
                    pair=f"{bos} $A {bos} $B",
                    special_tokens=[(bos, tok.token_to_id(bos))],
                ),
            ]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    specials = specials_front + specials_end
    config: dict[str, object] = {
        "added_tokens_decoder": {str(tok.token_to_id(s)): added(s) for s in specials},
        "clean_up_tokenization_spaces": False,
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    if flavour == "bpe-llama3":
        config |= {
            "bos_token": "<|begin_of_text|>",
            "eos_token": "<|end_of_text|>",
            "chat_template": LLAMA3_TEMPLATE,
        }
    elif flavour == "bpe-qwen2":
        config |= {
            "bos_token": None,
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "chat_template": CHATML_TEMPLATE,
            "errors": "replace",
            "split_special_tokens": False,
        }
    else:
        config |= {
            "bos_token": "<|endoftext|>",
            "eos_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>",
            "chat_template": CHATML_TEMPLATE,
        }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))


def train_spm(out: Path, vocab_size: int) -> None:
    """A Llama-2-style SentencePiece BPE model (byte fallback, split digits): tokenizer.model."""
    import sentencepiece as spm

    out.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS.splitlines() * 4),
        model_prefix=str(out / "tokenizer"),
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        split_digits=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    (out / "tokenizer.vocab").unlink()
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
        "legacy": False,
        "tokenizer_class": "LlamaTokenizer",
        "chat_template": LLAMA2_TEMPLATE,
        "added_tokens_decoder": {"0": added("<unk>"), "1": added("<s>"), "2": added("</s>")},
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (out / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, indent=2)
    )


CONVERT_WRAPPER = """
import sys
src, pre = sys.argv[1], sys.argv[2]
sys.path.insert(0, src)
from conversion import base
original = base.TextModel.get_vocab_base_pre
def get_vocab_base_pre(self, tokenizer):
    try:
        return original(self, tokenizer)
    except NotImplementedError:
        return pre  # tiny trained vocabularies have no registered hash; see make_arch_goldens.py
base.TextModel.get_vocab_base_pre = get_vocab_base_pre
sys.argv = ["convert_hf_to_gguf.py", *sys.argv[3:]]
import runpy
runpy.run_path(src + "/convert_hf_to_gguf.py", run_name="__main__")
"""


def convert(case_pre: str, model_dir: Path, outtype: str, out: Path, src: Path) -> None:
    convert_with(case_pre, model_dir, outtype, out, src, [])


def convert_with(
    case_pre: str, model_dir: Path, outtype: str, out: Path, src: Path, extra: list[str]
) -> None:
    """Run convert_hf_to_gguf.py with ``extra`` arguments (e.g. --split-max-tensors 7)."""
    cmd = [
        str(VENV_PY),
        "-c",
        CONVERT_WRAPPER,
        str(src),
        case_pre,
        str(model_dir),
        "--outtype",
        outtype,
        "--outfile",
        str(out),
        *extra,
    ]
    subprocess.run(
        cmd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "NO_LOCAL_GGUF": "1"},
    )


def record_tokens(model_dir: Path, out: Path) -> None:
    from arch_fixtures import SAMPLE_TEXTS

    if (model_dir / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(model_dir))
        ids = [tok.encode(t, add_special_tokens=False) for t in SAMPLE_TEXTS]
        with_special = [tok.encode(t, add_special_tokens=True) for t in SAMPLE_TEXTS]
    else:
        # transformers' slow LlamaTokenizer needs protobuf>=5, which convert_hf_to_gguf.py's
        # requirements exclude; sentencepiece itself is the reference for tokenizer.model anyway.
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(model_dir / "tokenizer.model"))
        ids = [sp.encode(t) for t in SAMPLE_TEXTS]
        with_special = [[sp.bos_id(), *row] for row in ids]  # tokenizer_config: add_bos_token
    doc = {"texts": list(SAMPLE_TEXTS), "ids": ids, "ids_with_special": with_special}
    out.write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*")
    parser.add_argument(
        "--keep-tokenizers",
        action="store_true",
        help="reuse the committed tokenizer files instead of training new ones",
    )
    args = parser.parse_args()
    if Path(sys.prefix).resolve() != VENV.resolve():
        ensure_venv()
        os.execv(str(VENV_PY), [str(VENV_PY), __file__, *sys.argv[1:]])
    from arch_fixtures import CASES, GOLDEN_DIR, tokenizer_dir, write_case

    src = llama_cpp_root()
    for name in args.cases or list(CASES):
        case = CASES[name]
        if not args.keep_tokenizers:
            shutil.rmtree(tokenizer_dir(case), ignore_errors=True)
            n_vocab = int(case.config["vocab_size"])
            if case.tokenizer == "spm":
                train_spm(tokenizer_dir(case), n_vocab)
            else:
                train_bpe(case.tokenizer, tokenizer_dir(case), n_vocab)
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = write_case(case, Path(tmp))
            for outtype in case.outtypes:
                convert(case.pre, model_dir, outtype, GOLDEN_DIR / name / f"{outtype}.gguf", src)
            record_tokens(model_dir, GOLDEN_DIR / name / "tokens.json")
        sizes = {p.name: p.stat().st_size for p in sorted((GOLDEN_DIR / name).glob("*.gguf"))}
        print(name, sizes)


if __name__ == "__main__":
    main()
