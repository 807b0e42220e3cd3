"""qconv's dependency-free front matter reader agrees with PyYAML, the parser gguf-py uses.

Each card is read by qconv.model.front_matter and by ``yaml.safe_load`` after the same steps
gguf-py's ``Metadata.load_model_card`` takes (lines up to the closing ``---``, ``- no`` quoted,
tabs as two spaces). PyYAML comes with huggingface_hub; qconv itself never imports it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qconv.model.front_matter import parse_front_matter

yaml = pytest.importorskip("yaml")

_EXPLICIT_KEY = (
    "By clicking Submit below I accept the terms of the license and acknowledge that the "
    "information I provide will be collected stored processed and shared in accordance with the "
    "Meta Privacy Policy"
)

CARDS = [
    """---
# a comment line
license: "apache-2.0" # trailing comment
'quoted key': 'value with # hash'
"double key": "tab\\tand \\u00e9 and \\"q\\""
keep: |+
  kept

strip: |-
  stripped
folded: >
  one
  two

  three
    indented
  four
nested:
- - a
  - b
- -
  - c
multi_quoted: "first
  second"
numbers: [1, 0x1F, 017, 1_000, -2, 3.5, .5, 1e3, 1.0e+3, .inf, -.Inf, 1:30]
dates: [2024-07-23, 2024-7-1]
bools: [yes, No, on, OFF, true, y, n]
nulls: [~, null, ]
flow_map: {a: 1, 'b': [x,
  y], c: }
url_item:
- https://example.com/a:b
- key with spaces: value
  second: 2
empty_list: []
empty_map: {}
C# note: plain # then comment
---
""",
    "---\nlicense: mit\n",
    "---\ntags: [a, # comment\n  'b c', \"d\" # x\n  ]\n"
    + 'k: "one \\xE9\\\n  \\ two\\n\\\n  three"\n---\n',
    "---\n---\n",
    "no front matter\n---\nlicense: mit\n---\n",
    "---\r\nlicense: mit\r\ntags:\r\n- a\r\n---\r\n",
    """---
license: apache-2.0
license_name: qwen  # comment
license_link: https://huggingface.co/Qwen/Qwen3-30B-A3B-Instruct-2507/blob/main/LICENSE
pipeline_tag: text-generation
library_name: transformers
base_model:
- Qwen/Qwen3-30B-A3B
language:
- en
- fr
- no
tags: [chat, 'qwen3', "moe"]
extra_gated_prompt: >-
  ### LLAMA 3.1 COMMUNITY LICENSE AGREEMENT

  Llama 3.1 Version Release Date: July 23, 2024
  "Agreement" means the terms.
extra_gated_fields:
  First Name: text
  Country: country
  geo: ip_location
  ? EXPLICIT_KEY
  : checkbox
widget:
  - example_title: Hello
    messages:
      - role: user
        content: Hey my name is Julien! How are you?
  - text: |
      multi
      line

      literal
model-index:
- name: SmolLM2
  results:
  - task:
      type: text-generation
    metrics:
    - type: acc
      value: 45.5
      verified: false
inference:
  parameters:
    temperature: 0.2
    max_new_tokens: 0x10
version: 3.1
date: 2024-07-23
empty:
nothing: ~
yes_key: yes
description: "A \\"quoted\\" description\\nwith escape"
desc2: 'it''s single'
folded_plain: this is
  a multi line
  plain scalar
---
# body
""",
    """---
license: other
license_name: llama3.1
base_model: meta-llama/Llama-3.1-8B
datasets:
  - HuggingFaceTB/smoltalk
  - https://huggingface.co/datasets/foo/bar
model_creator: TheBloke
model_type: mistral
---""",
    """---
tags:
\t- a
\t- b
---""",
    """---
base_model:
  - name: Foo
    repo_url: https://x
  - org/model-v2
language: [en, "de"]
inline: {a: 1, b: [x, y]}
---""",
]

CARDS = [card.replace("EXPLICIT_KEY", _EXPLICIT_KEY) for card in CARDS]


def _gguf_py_card(text: str) -> Any:
    lines = text.splitlines()
    if not lines or lines[0] != "---":
        return {}
    body = []
    for line in lines[1:]:
        if line == "---":
            break
        body.append(line)
    content = ("\n".join(body) + "\n").replace("- no\n", '- "no"\n').replace("\t", "  ")
    data = yaml.safe_load(content)
    return data if isinstance(data, dict) else {}


@pytest.mark.parametrize("text", CARDS, ids=range(len(CARDS)))
def test_front_matter_equals_pyyaml(text: str) -> None:
    theirs = _gguf_py_card(text)
    ours = parse_front_matter(text)
    # "? key" explicit keys are not read (a Llama 3 licence-gate field); nothing uses them.
    theirs.get("extra_gated_fields", {}).pop(_EXPLICIT_KEY, None)
    assert ours == theirs


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, width=32)
    | st.text(st.sampled_from("aZ09 -_:#'\"./\\é,[]{}?!&*|>%@`\n\t"), max_size=30)
    | st.sampled_from(["yes", "no", "on", "null", "~", "2024-07-23", "0x1F", "1_000", "1:30"])
)
_keys = st.text(st.sampled_from("abcXYZ019 _-."), min_size=1, max_size=12).filter(
    lambda k: k.strip() == k
)
_documents = st.dictionaries(
    _keys,
    st.recursive(
        _scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
        max_leaves=12,
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(
    document=_documents,
    width=st.sampled_from([20, 80]),
    flow=st.sampled_from([False, None]),
    indent=st.sampled_from([2, 4]),
    unicode=st.booleans(),
)
def test_front_matter_equals_pyyaml_on_what_pyyaml_writes(
    document: dict[str, Any], width: int, flow: bool | None, indent: int, unicode: bool
) -> None:
    """Whatever PyYAML's dumper writes (block or mixed flow style, long lines folded, single or
    double quotes with escapes and escaped line breaks) reads back the same as gguf-py reads it."""
    body = yaml.safe_dump(
        document, default_flow_style=flow, width=width, indent=indent, allow_unicode=unicode
    )
    text = f"---\n{body}---\n# model\n"
    assert parse_front_matter(text) == _gguf_py_card(text)


_texts = st.text(st.sampled_from("aZ09 -_:#'\"./\\é,[]{}?!&*|>%@`\n\t"), max_size=40)
_text_documents = st.dictionaries(
    _keys,
    st.recursive(
        _texts,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
        max_leaves=8,
    ),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(
    document=_text_documents,
    width=st.sampled_from([20, 80]),
    style=st.sampled_from(["|", ">", '"', "'"]),
    indent=st.sampled_from([2, 4]),
)
def test_block_and_quoted_styles_equal_pyyaml(
    document: dict[str, Any], width: int, style: str, indent: int
) -> None:
    """Text written as literal (``|2-``, ``|+``), folded or quoted scalars, as descriptions and
    licence texts in cards are, reads back the same as gguf-py reads it."""
    body = yaml.safe_dump(
        document,
        default_flow_style=False,
        width=width,
        default_style=style,
        indent=indent,
        allow_unicode=True,
    )
    text = f"---\n{body}---\n"
    assert parse_front_matter(text) == _gguf_py_card(text)
