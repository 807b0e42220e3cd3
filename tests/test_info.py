"""qconv.gguf.info: per-type totals, bits per weight, the text report and the JSON document."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qconv.gguf.constants import GGMLType, GGUFValueType
from qconv.gguf.info import TypeTotal, describe, render_text, to_json
from qconv.gguf.reader import read_gguf

V = GGUFValueType
Q4_K, Q6_K, Q8_0, F32 = 12, 14, 8, 0


@pytest.fixture
def model(tmp_path, gguf_bytes):
    """A tiny Q4_K_M-like file: 2 Q4_K, 1 Q6_K, 1 Q8_0 and 2 F32 tensors."""
    raw = gguf_bytes(
        [
            ("general.architecture", V.STRING, "llama"),
            ("general.file_type", V.UINT32, 15),
            ("llama.attention.layer_norm_rms_epsilon", V.FLOAT32, 1e-5),
            ("tokenizer.ggml.tokens", V.ARRAY, (V.STRING, [f"tok{i}" for i in range(1000)])),
            ("tokenizer.ggml.scores", V.ARRAY, (V.FLOAT32, [0.1 * i for i in range(20)])),
            ("general.description", V.STRING, "x" * 500),
        ],
        [
            ("blk.0.attn_q.weight", (2, 256), Q4_K),
            ("blk.0.attn_k.weight", (1, 512), Q4_K),
            ("output.weight", (4, 256), Q6_K),
            ("token_embd.weight", (4, 64), Q8_0),
            ("blk.0.attn_norm.weight", (256,), F32),
            ("output_norm.weight", (256,), F32),
        ],
    )
    path = tmp_path / "tiny.gguf"
    path.write_bytes(raw)
    return read_gguf(path)


def test_describe_totals_tensors_bytes_and_parameters_per_type(model):
    info = describe(model)
    assert info.types == {
        GGMLType.F32: TypeTotal(tensors=2, bytes=2048, parameters=512),
        GGMLType.Q6_K: TypeTotal(tensors=1, bytes=840, parameters=1024),
        GGMLType.Q4_K: TypeTotal(tensors=2, bytes=576, parameters=1024),
        GGMLType.Q8_0: TypeTotal(tensors=1, bytes=272, parameters=256),
    }
    assert list(info.types) == [GGMLType.F32, GGMLType.Q6_K, GGMLType.Q4_K, GGMLType.Q8_0]
    assert info.parameters == 2816 and info.tensor_bytes == 3736


def test_bits_per_weight_is_tensor_bits_over_parameters(model):
    assert describe(model).bits_per_weight == pytest.approx(8 * 3736 / 2816)


def test_mix_lists_real_types_largest_first(model):
    assert describe(model).mix == "F32: 2, Q6_K: 1, Q4_K: 2, Q8_0: 1"


def test_file_type_is_named_from_llama_ftype(model):
    assert describe(model).file_type == "MOSTLY_Q4_K_M"


def test_a_file_without_tensors_has_no_bits_per_weight(tmp_path, gguf_bytes):
    path = tmp_path / "vocab.gguf"
    path.write_bytes(gguf_bytes([("general.file_type", V.UINT32, 999)]))
    info = describe(read_gguf(path))
    assert (info.parameters, info.bits_per_weight, info.mix, info.file_type) == (0, None, "", None)
    assert "bits per weight: n/a" in render_text(info)


def test_text_summarizes_long_arrays_with_count_and_first_items(model):
    text = render_text(describe(model))
    line = next(line for line in text.splitlines() if "tokenizer.ggml.tokens" in line)
    assert "[string × 1000] 'tok0', 'tok1', 'tok2'" in line
    assert line.endswith(", …") and len(line) < 120


def test_text_truncates_long_strings(model):
    line = next(s for s in render_text(describe(model)).splitlines() if "general.description" in s)
    assert "x" * 60 in line and "x" * 100 not in line and line.endswith("…")


def test_text_shows_float32_values_in_shortest_form(model):
    text = render_text(describe(model))
    assert "1e-05" in text and "[float32 × 20] 0.0, 0.1, 0.2" in text


def test_text_has_tensor_table_type_totals_and_summary(model):
    lines = render_text(describe(model)).splitlines()
    assert lines[0].startswith(f"{model.path}: GGUF v3, ")
    assert any(
        line.split() == ["output.weight", "4", "×", "256", "Q6_K", "840", "576"] for line in lines
    )
    assert any(line.split() == ["Q4_K", "2", "576", "1,024"] for line in lines)
    assert any(line.split() == ["general.file_type", "15", "(MOSTLY_Q4_K_M)"] for line in lines)
    assert "mix: F32: 2, Q6_K: 1, Q4_K: 2, Q8_0: 1" in lines
    assert f"bits per weight: {8 * 3736 / 2816:.2f}" in lines[-1]


def test_text_escapes_control_characters_in_keys_and_values(tmp_path, gguf_bytes):
    path = tmp_path / "evil.gguf"
    path.write_bytes(gguf_bytes([("a\x1b[2Jb", V.STRING, "c\x1b[31md\n")]))
    text = render_text(describe(read_gguf(path)))
    assert "\x1b" not in text and "a\\x1b[2Jb" in text and "'c\\x1b[31md\\n'" in text


def test_json_document_has_the_documented_shape(model):
    document = to_json(describe(model))
    assert document["metadata"]["general.file_type"] == {
        "type": "uint32",
        "value": 15,
        "name": "MOSTLY_Q4_K_M",
    }
    assert document["metadata"]["llama.attention.layer_norm_rms_epsilon"] == {
        "type": "float32",
        "value": 1e-05,
    }
    assert document["metadata"]["tokenizer.ggml.tokens"] == {
        "type": "array",
        "item_type": "string",
        "count": 1000,
        "head": [f"tok{i}" for i in range(8)],
    }
    assert document["tensors"][2] == {
        "name": "output.weight",
        "shape": [4, 256],
        "type": "Q6_K",
        "offset": 576,
        "nbytes": 840,
    }
    assert document["types"] == {
        "F32": {"tensors": 2, "bytes": 2048},
        "Q6_K": {"tensors": 1, "bytes": 840},
        "Q4_K": {"tensors": 2, "bytes": 576},
        "Q8_0": {"tensors": 1, "bytes": 272},
    }
    header = {k: document[k] for k in ("path", "version", "alignment", "data_offset", "parameters")}
    assert header == {
        "path": str(model.path),
        "version": 3,
        "alignment": 32,
        "data_offset": model.data_offset,
        "parameters": 2816,
    }
    assert document["file_size"] == model.file_size
    assert document["bits_per_weight"] == pytest.approx(8 * 3736 / 2816)


def test_json_document_round_trips_through_strict_json(model):
    document = to_json(describe(model))
    assert json.loads(json.dumps(document, allow_nan=False)) == document


def test_json_turns_non_finite_floats_into_strings(tmp_path, gguf_bytes):
    path = tmp_path / "nan.gguf"
    values = [float("nan"), float("inf"), float("-inf")]
    path.write_bytes(
        gguf_bytes([("f", V.FLOAT64, float("nan")), ("a", V.ARRAY, (V.FLOAT32, values))])
    )
    metadata = to_json(describe(read_gguf(path)))["metadata"]
    assert metadata["f"]["value"] == "nan"
    assert metadata["a"]["head"] == ["nan", "inf", "-inf"]
    json.dumps(metadata, allow_nan=False)


def test_totals_agree_with_gguf_py_on_a_gguf_py_file(tmp_path):
    gguf_py = pytest.importorskip("gguf")
    path = tmp_path / "oracle.gguf"
    writer = gguf_py.GGUFWriter(str(path), "llama")
    writer.add_tensor("a", np.zeros((3, 5), dtype=np.float32))
    writer.add_tensor(
        "b", np.zeros((2, 34), dtype=np.uint8), raw_dtype=gguf_py.GGMLQuantizationType.Q8_0
    )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    oracle = gguf_py.GGUFReader(str(path))
    info = describe(read_gguf(path))
    assert info.parameters == sum(int(t.n_elements) for t in oracle.tensors) == 79
    assert info.tensor_bytes == sum(int(t.n_bytes) for t in oracle.tensors) == 128
    assert info.mix == "Q8_0: 1, F32: 1"  # 68 bytes before 60


def test_info_on_a_huge_metadata_array_stays_within_a_memory_limit(tmp_path: Path) -> None:
    """A 48 MB u8 array must stay a view of the mapped file, not 48 million Python ints."""
    import struct
    import subprocess
    import sys

    count = 48 * 1024 * 1024
    path = tmp_path / "array.gguf"
    key = b"big.array"
    with path.open("wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, 1))
        f.write(struct.pack("<Q", len(key)) + key + struct.pack("<IIQ", 9, 0, count))
        f.truncate(f.tell() + count)  # zeros, without writing them
    # The limit is what the interpreter already maps, plus the file mapped once, plus 32 MiB:
    # the old list conversion needs about 10 × the array and dies with MemoryError.
    script = f"""
import resource, sys
import numpy, typer, qconv.cli, qconv.gguf.info, qconv.gguf.reader
vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
limit = vm + {count} + 32 * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.argv = ["qconv", "info", {str(path)!r}]
qconv.cli.app()
"""
    env = {"OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent.parent)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"[uint8 × {count}] 0, 0, 0" in done.stdout
