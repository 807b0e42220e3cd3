"""Regenerate tests/golden/card/general.json: the ``general.*`` KVs llama.cpp's converter writes
for each folder of tests/card_cases.py, made by the vendored gguf-py itself.

For each case it does what convert_hf_to_gguf's ``ModelBase.prepare_metadata`` does
(conversion/base.py): ``gguf.Metadata.load(override, model_dir, None, total_params)`` (override:
the case's ``--metadata`` file, if any), the directory
name when no name was found, ``gguf.size_label(...)`` when no size label was found, then
``Metadata.set_gguf_meta_model`` into a real ``GGUFWriter``; the file is read back with
``GGUFReader`` and every KV after general.architecture is kept (key, value types, value), in order.
Runs in the converter venv (see tools/make_arch_goldens.py) with the sdist's gguf-py first on
sys.path, so PyYAML and gguf-py's own code decide every value.

Usage: .venv/bin/python tools/make_card_goldens.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT / "tools", ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from make_arch_goldens import VENV, VENV_PY, ensure_venv, llama_cpp_root  # noqa: E402

GOLDEN = ROOT / "tests" / "golden" / "card" / "general.json"


def llama_cpp_kvs(case, parent: Path) -> list[list[object]]:  # type: ignore[no-untyped-def]
    import gguf
    from card_cases import write_card_case
    from family_fixtures import _plain

    model_dir = write_card_case(case, parent)
    total = case.total_params
    shared, expert, count = case.experts or (total, 0, 0)
    override = parent / "override.json" if case.override is not None else None
    metadata = gguf.Metadata.load(override, model_dir, None, total)
    if metadata.name is None:
        metadata.name = model_dir.name
    if metadata.size_label is None and total > 0:
        metadata.size_label = gguf.size_label(total, shared, expert, count)
    out = parent / "out.gguf"
    writer = gguf.GGUFWriter(out, "llama")
    metadata.set_gguf_meta_model(writer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    reader = gguf.GGUFReader(out)
    return [
        [key, [int(t) for t in field.types], _plain(field.contents())]
        for key, field in reader.fields.items()
        if not key.startswith("GGUF.") and key != "general.architecture"
    ]


def main() -> None:
    if Path(sys.prefix).resolve() != VENV.resolve():
        ensure_venv()
        os.execv(str(VENV_PY), [str(VENV_PY), __file__, *sys.argv[1:]])
    sys.path.insert(0, str(llama_cpp_root() / "gguf-py"))
    import gguf

    assert Path(gguf.__file__).is_relative_to(llama_cpp_root()), gguf.__file__
    from card_cases import CASES

    table: dict[str, list[list[object]]] = {}
    for case in CASES:
        assert case.id not in table, f"duplicate case {case.id}"
        with tempfile.TemporaryDirectory() as tmp:
            table[case.id] = llama_cpp_kvs(case, Path(tmp))
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    source = Path(gguf.__file__).parent.relative_to(llama_cpp_root().parent.parent).as_posix()
    document = {"gguf_py": source, "cases": table}
    GOLDEN.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(table)} cases -> {GOLDEN.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
