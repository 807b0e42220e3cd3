"""Importance matrices: read llama-imatrix's files as llama-quantize reads them, and look one up.

An importance matrix holds, for every weight matrix ``blk.N.*`` that llama-imatrix saw in a matrix
multiplication, the mean of x² over the calibration tokens for each input column (one vector per
expert for MoE tensors). llama-quantize hands that vector to ggml's quantizers as per-column
weights. Two file layouts exist, both written by ``tools/imatrix/imatrix.cpp``:

* GGUF (the default since 2025): ``general.type = "imatrix"``, ``imatrix.datasets`` (string
  array), ``imatrix.chunk_count`` and ``imatrix.chunk_size`` (u32), and per weight two F32 tensors,
  ``<name>.in_sum2`` ``[ne0, n_mat]`` (raw Σx² per expert) and ``<name>.counts`` ``[1, n_mat]``;
* legacy ``.dat``, little-endian: ``i32 n_entries``, then per entry ``i32 len, name, i32 ncall,
  i32 nval, f32[nval]`` (values already multiplied by ncall), then an optional trailer
  ``i32 chunk_count, i32 len, dataset``.

:func:`read_imatrix` turns either into the float32 vectors llama-quantize computes
(``tools/quantize/quantize.cpp: load_imatrix``, ``common/imatrix-loader.cpp``): in_sum2 / count per
expert (1.0 where the count is 0), or value / ncall for the legacy layout, in float32 as C divides.
It validates everything before any output exists; :func:`importance_for` applies llama-quantize's
per-tensor rules (``src/llama-quant.cpp``, main loop). :func:`imatrix_kvs` gives the four
``quantize.imatrix.*`` keys llama-quantize writes.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qconv.errors import FormatError, SourceError
from qconv.gguf.constants import GGUF_MAGIC, GGMLType, GGUFValueType, Keys
from qconv.gguf.metadata import KV, kv_string, kv_uint32
from qconv.gguf.reader import GGUFFile, read_gguf, tensor_data

__all__ = ["Imatrix", "imatrix_kvs", "importance_for", "read_imatrix"]

# llama-quantize copies the file path and the first dataset into a 128-byte buffer (strncpy 127).
MAX_KV_STRING_BYTES = 127
_SUM_SUFFIX, _COUNT_SUFFIX = ".in_sum2", ".counts"
_I32 = struct.Struct("<i")


@dataclass(frozen=True, slots=True)
class Imatrix:
    """An importance matrix as llama-quantize holds it after loading."""

    path: str  # as the user gave it: llama-quantize writes it verbatim into the output
    entries: dict[str, npt.NDArray[np.float32]]  # weight name -> (n_mat * ne0,) importances
    datasets: tuple[str, ...]
    chunk_count: int
    legacy: bool


def read_imatrix(path: str | os.PathLike[str]) -> Imatrix:
    """Read a GGUF or legacy ``.dat`` imatrix and compute the per-column importances.

    Raises:
        SourceError: the file is missing or unreadable.
        FormatError: not an imatrix, truncated, inconsistent, or holding NaN/Inf (names the entry).
    """
    label = str(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
            raw = b"" if magic == GGUF_MAGIC else magic + f.read()
    except FileNotFoundError:
        raise SourceError(f"--imatrix {label}: no such file") from None
    except IsADirectoryError:
        raise SourceError(f"--imatrix {label}: is a directory, not an imatrix file") from None
    except OSError as e:
        raise SourceError(f"--imatrix {label}: cannot read ({e.strerror or e})") from e
    if magic == GGUF_MAGIC:
        imatrix = _read_gguf_imatrix(label, read_gguf(path))
    else:
        imatrix = _read_legacy(label, raw)
    for name, values in imatrix.entries.items():
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise FormatError(
                f"--imatrix {label}: entry {name!r} holds {values[bad[0]]} at index {int(bad[0])}; "
                "llama-quantize refuses non-finite importances (recompute the imatrix)"
            )
    return imatrix


def _read_gguf_imatrix(label: str, gguf: GGUFFile) -> Imatrix:
    """common_imatrix_load + load_imatrix for the GGUF layout."""
    kind = gguf.get(Keys.TYPE)
    keys = (Keys.IMATRIX_DATASETS, Keys.IMATRIX_CHUNK_COUNT, Keys.IMATRIX_CHUNK_SIZE)
    if (kind is not None and kind.value != "imatrix") or any(gguf.get(k) is None for k in keys):
        what = f"general.type {kind.value!r}" if kind is not None else "no imatrix.* keys"
        raise FormatError(
            f"--imatrix {label}: a GGUF file but not an importance matrix ({what}); "
            "give the file llama-imatrix wrote"
        )
    counts_of: dict[str, npt.NDArray[np.float32]] = {}
    sums_of: dict[str, npt.NDArray[np.float32]] = {}
    for tensor in gguf.tensors:
        for suffix, table in ((_SUM_SUFFIX, sums_of), (_COUNT_SUFFIX, counts_of)):
            if tensor.name.endswith(suffix) and len(tensor.name) > len(suffix):
                if tensor.qtype != GGMLType.F32:
                    raise FormatError(
                        f"--imatrix {label}: tensor {tensor.name!r} is {tensor.qtype.name}, not F32"
                    )
                values = np.array(tensor_data(gguf, tensor)).view(np.float32)
                table[tensor.name[: -len(suffix)]] = values
    if not sums_of and not counts_of:
        raise FormatError(f"--imatrix {label}: the imatrix holds no entries (no *.in_sum2 tensors)")
    entries = {}
    for name in sorted(sums_of.keys() | counts_of.keys()):
        if name not in sums_of or name not in counts_of:
            raise FormatError(f"--imatrix {label}: entry {name!r} has in_sum2 or counts, not both")
        entries[name] = _normalized(label, name, sums_of[name].ravel(), counts_of[name].ravel())
    datasets = gguf.get(Keys.IMATRIX_DATASETS)
    names: tuple[str, ...] = ()
    # load_imatrix uses the datasets only when they are an array of strings.
    if datasets is not None and datasets.item_type == GGUFValueType.STRING:
        names = tuple(datasets.value)
    return Imatrix(label, entries, names, _u32(label, gguf, Keys.IMATRIX_CHUNK_COUNT), False)


def _u32(label: str, gguf: GGUFFile, key: str) -> int:
    kv = gguf.get(key)
    if kv is None or kv.vtype != GGUFValueType.UINT32:
        raise FormatError(f"--imatrix {label}: key {key} must be a u32")
    # imatrix.chunk_count is read into an int32 (common_imatrix.chunk_count).
    return int(np.array(kv.value, dtype=np.uint32).view(np.int32))


def _normalized(
    label: str, name: str, sums: npt.NDArray[np.float32], counts: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """in_sum2 / count per expert, 1.0 where the count is 0, in float32 as load_imatrix does."""
    if counts.size == 0 or sums.size % counts.size or not np.isfinite(counts).all():
        raise FormatError(
            f"--imatrix {label}: entry {name!r} has {sums.size} sums for {counts.size} counts "
            "(or non-finite counts); the file is corrupt"
        )
    # The loader stores std::lround(count) as int64; load_imatrix divides by (float) of that.
    rounded = (np.sign(counts) * np.floor(np.abs(counts.astype(np.float64)) + 0.5)).astype(
        np.float32
    )
    per_expert = sums.reshape(counts.size, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = per_expert / rounded[:, None]
    return np.where(rounded[:, None] > 0, values, np.float32(1)).astype(np.float32).ravel()


class _Bytes:
    """A bounds-checked little-endian cursor over the legacy file."""

    def __init__(self, label: str, data: bytes) -> None:
        self.label, self.data, self.pos = label, data, 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or n > len(self.data) - self.pos:
            raise FormatError(
                f"--imatrix {self.label}: not an imatrix, or truncated: {what} at byte {self.pos} "
                f"needs {n} bytes, {len(self.data) - self.pos} remain"
            )
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def i32(self, what: str) -> int:
        return int(_I32.unpack(self.take(4, what))[0])

    def text(self, n: int, what: str) -> str:
        # C reads the bytes into a NUL-terminated buffer and keeps what precedes the first NUL.
        return self.take(n, what).split(b"\0", 1)[0].decode("utf-8", "replace")


def _read_legacy(label: str, data: bytes) -> Imatrix:
    """common_imatrix_load_legacy + load_imatrix for the ``.dat`` layout."""
    cur = _Bytes(label, data)
    n_entries = cur.i32("entry count")
    # An entry takes at least 16 bytes (name length, ncall, nval, one value).
    if n_entries < 1 or n_entries > len(data) // 16:
        raise FormatError(
            f"--imatrix {label}: not an imatrix, or truncated (neither GGUF nor llama-imatrix's "
            f".dat layout: it claims {n_entries} entries in {len(data)} bytes)"
        )
    entries: dict[str, npt.NDArray[np.float32]] = {}
    datasets: tuple[str, ...]
    for i in range(n_entries):
        name = cur.text(cur.i32(f"name length of entry {i}"), f"name of entry {i}")
        ncall = cur.i32(f"call count of {name!r}")
        nval = cur.i32(f"value count of {name!r}")
        if nval < 1:
            raise FormatError(f"--imatrix {label}: entry {name!r} has {nval} values")
        raw = cur.take(4 * nval, f"values of {name!r}")
        sums: npt.NDArray[np.float32] = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        # Values were stored as mean × ncall; load_imatrix divides by (float) ncall again.
        entries[name] = sums / np.float32(ncall) if ncall > 0 else sums
    chunk_count, datasets = 0, ()
    if cur.pos < len(data):  # the trailer is optional
        chunk_count = cur.i32("chunk count")
        length = cur.i32("dataset name length")
        if length > 0:
            datasets = (cur.text(length, "dataset name"),)
    return Imatrix(label, entries, datasets, chunk_count, True)


def _cut(text: str) -> str:
    # strncpy(…, 127): at most 127 bytes. A cut through a UTF-8 sequence drops that character
    # (C would keep its first bytes, which no GGUF reader could decode anyway).
    return text.encode()[:MAX_KV_STRING_BYTES].decode("utf-8", "ignore")


def imatrix_kvs(imatrix: Imatrix) -> list[KV]:
    """The ``quantize.imatrix.*`` keys in llama-quantize's order (file, dataset, entries, chunks).

    The dataset is written only when the imatrix names one, the chunk count only when positive.
    """
    kvs = [kv_string(Keys.QUANTIZE_IMATRIX_FILE, _cut(imatrix.path))]
    if imatrix.datasets:
        kvs.append(kv_string(Keys.QUANTIZE_IMATRIX_DATASET, _cut(imatrix.datasets[0])))
    kvs.append(kv_uint32(Keys.QUANTIZE_IMATRIX_N_ENTRIES, len(imatrix.entries)))
    if imatrix.chunk_count > 0:
        kvs.append(kv_uint32(Keys.QUANTIZE_IMATRIX_N_CHUNKS, imatrix.chunk_count))
    return kvs


def _is_token_embd(name: str) -> bool:
    return name in ("token_embd.weight", "per_layer_token_embd.weight")


def importance_for(
    imatrix: Imatrix, name: str, shape: tuple[int, ...]
) -> npt.NDArray[np.float32] | None:
    """The (n_expert, n_cols) importances for one quantized tensor, or None to quantize unweighted.

    As llama-quantize: the entry must hold ne[0]·ne[2] values (expert e uses row e), except that
    token_embd quietly goes without one of another size. llama-imatrix records only ``blk.*``
    weights (and output.weight with --process-output), so a tensor outside the blocks without an
    entry is quantized unweighted as llama-quantize does; a block tensor without one means the
    imatrix belongs to another model, which llama-quantize would only log and qconv refuses.

    Raises:
        SourceError: a block tensor without an entry, or an entry of the wrong length.
    """
    values = imatrix.entries.get(name)
    if values is None:
        if not name.startswith("blk."):
            return None
        raise SourceError(
            f"--imatrix {imatrix.path}: no importances for tensor {name!r}; the imatrix was "
            "made for another model (run llama-imatrix on this one)"
        )
    if len(shape) > 3:
        raise SourceError(f"--imatrix: tensor {name!r} has {len(shape)} dimensions; at most 3")
    n_mat = shape[0] if len(shape) == 3 else 1
    if values.size != n_mat * shape[-1]:
        if _is_token_embd(name):
            return None
        raise SourceError(
            f"--imatrix {imatrix.path}: tensor {name!r} needs {n_mat} × {shape[-1]} importances, "
            f"the imatrix has {values.size}; it was made for another model"
        )
    return values.reshape(n_mat, shape[-1])
