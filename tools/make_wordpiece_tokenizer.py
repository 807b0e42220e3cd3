"""Write the tiny WordPiece tokenizer of the BERT family goldens (tests/golden/family/tokenizers).

A BERT-style uncased tokenizer built with the `tokenizers` library (the converter venv of
tools/make_arch_goldens.py has it): 5 special tokens, letters, digits, punctuation, their ``##``
continuations and a few words; BertNormalizer, BertPreTokenizer, [CLS] $A [SEP] template.

Usage: ~/.cache/qconv/convert-venv/bin/python tools/make_wordpiece_tokenizer.py [OUT_DIR]
"""

import json
import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

ROOT = Path(__file__).resolve().parent.parent
out = (
    Path(sys.argv[1])
    if len(sys.argv) > 1
    else ROOT / "tests" / "golden" / "family" / "tokenizers" / "wordpiece"
)
out.mkdir(parents=True, exist_ok=True)
specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
words = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "hello",
    "world",
    "a",
    "tiny",
    "model",
    "learns",
    "to",
    "read",
    "and",
    "write",
    "words",
    "this",
    "is",
    "small",
    "corpus",
    "test",
]
letters = (
    [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)] + list(".,!?'-()")
)
vocab = (
    specials
    + letters
    + ["##" + piece for piece in letters]
    + sorted(set(words))
    + ["##s", "##ing", "##ed", "##er", "##ly"]
)
vocab = list(dict.fromkeys(vocab))
(out / "vocab.txt").write_text("\n".join(vocab) + "\n")
tok = Tokenizer(
    models.WordPiece(
        {t: i for i, t in enumerate(vocab)}, unk_token="[UNK]", max_input_chars_per_word=100
    )
)
tok.normalizer = normalizers.BertNormalizer(
    clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
)
tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
tok.post_processor = processors.TemplateProcessing(
    single="[CLS] $A [SEP]",
    pair="[CLS] $A [SEP] $B:1 [SEP]:1",
    special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
)
tok.decoder = decoders.WordPiece(prefix="##")
tok.add_special_tokens(specials)
tok.save(str(out / "tokenizer.json"))
config = {
    "do_lower_case": True,
    "model_max_length": 512,
    "tokenizer_class": "BertTokenizer",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "mask_token": "[MASK]",
    "clean_up_tokenization_spaces": True,
    "strip_accents": None,
    "tokenize_chinese_chars": True,
}
(out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
(out / "special_tokens_map.json").write_text(
    json.dumps(
        {
            "cls_token": "[CLS]",
            "mask_token": "[MASK]",
            "pad_token": "[PAD]",
            "sep_token": "[SEP]",
            "unk_token": "[UNK]",
        },
        indent=2,
    )
    + "\n"
)
print(len(vocab))
