"""GGUF v3 writer: header, metadata and tensor index first, then the data streamed tensor by tensor.

Every tensor's size is known from its plan, so all offsets are fixed before the first data byte is
written; that is what lets qconv stream to a pipe (``-o -``) and never hold a tensor whole.

File layout (little-endian)::

    "GGUF" | u32 version=3 | u64 n_tensors | u64 n_kv
    n_kv × (string key | u32 value type | value)
    n_tensors × (string name | u32 n_dims | n_dims × u64 ne | u32 ggml type | u64 offset)
    zero padding to the alignment
    tensor data, each tensor followed by zero padding to the alignment

A string is ``u64 length`` + UTF-8 bytes. ``ne`` is GGUF's dimension order: the NumPy shape
reversed, so ne[0] is the row length; this module and reader.py are the only places that reverse it.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno
import functools
import os
import re
import struct
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from qconv.errors import OutputError, UsageError
from qconv.gguf.constants import (
    DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    GGUF_VERSION,
    MAX_DIMS,
    MAX_TENSOR_NAME_BYTES,
    VALUE_STRUCT,
    GGMLType,
    GGUFValueType,
    Keys,
    TensorInfo,
    padded,
    tensor_nbytes,
)
from qconv.gguf.metadata import KV, validate_kv

__all__ = ["GGUFWriter", "TensorInfo", "alignment_of", "atomic_output", "encode_header", "layout"]


def alignment_of(kvs: Sequence[KV]) -> int:
    """The data alignment a file with these KVs uses: general.alignment, else 32.

    Raises:
        UsageError: general.alignment is not a UINT32 power of two.
    """
    for kv in kvs:
        if kv.key == Keys.ALIGNMENT:
            value = kv.value
            if kv.vtype != GGUFValueType.UINT32 or value <= 0 or value & (value - 1):
                raise UsageError(f"{Keys.ALIGNMENT} must be a u32 power of two, not {value!r}")
            return int(value)
    return DEFAULT_ALIGNMENT


def layout(
    entries: Sequence[tuple[str, tuple[int, ...], GGMLType]], alignment: int
) -> list[TensorInfo]:
    """Give each (name, shape, type) its data offset: back to back, each padded to ``alignment``."""
    infos, offset = [], 0
    for name, shape, qtype in entries:
        nbytes = tensor_nbytes(qtype, shape)
        infos.append(TensorInfo(name, shape, qtype, offset, nbytes))
        offset += padded(nbytes, alignment)
    return infos


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _scalar(vtype: GGUFValueType, value: Any) -> bytes:
    if vtype == GGUFValueType.STRING:
        return _string(value)
    return VALUE_STRUCT[vtype].pack(value)


def _kv_bytes(kv: KV) -> bytes:
    validate_kv(kv)
    head = _string(kv.key) + struct.pack("<I", kv.vtype)
    if kv.vtype != GGUFValueType.ARRAY:
        return head + _scalar(kv.vtype, kv.value)
    assert kv.item_type is not None
    head += struct.pack("<IQ", kv.item_type, len(kv.value))
    if kv.item_type == GGUFValueType.STRING:
        return head + b"".join(_string(item) for item in kv.value)
    # Fixed-width arrays (token scores, types) can be long: pack them in one call.
    fmt = VALUE_STRUCT[kv.item_type].format[1:]
    return head + struct.pack(f"<{len(kv.value)}{fmt}", *kv.value)


def _tensor_info_bytes(info: TensorInfo) -> bytes:
    name = info.name.encode("utf-8")
    if len(name) > MAX_TENSOR_NAME_BYTES:
        raise UsageError(
            f"tensor name {info.name!r} is {len(name)} bytes; GGUF allows at most "
            f"{MAX_TENSOR_NAME_BYTES} (use --arch to map names, or rename the tensor)"
        )
    if not 1 <= len(info.shape) <= MAX_DIMS:
        raise UsageError(f"tensor {info.name!r} has {len(info.shape)} dims; GGUF allows 1..4")
    ne = tuple(reversed(info.shape))  # GGUF dimension order: row length first
    return (
        struct.pack("<Q", len(name))
        + name
        + struct.pack(f"<I{len(ne)}Q", len(ne), *ne)
        + struct.pack("<IQ", info.qtype, info.offset)
    )


def encode_header(kvs: Sequence[KV], tensors: Sequence[TensorInfo], alignment: int) -> bytes:
    """Everything before the data section, padded to ``alignment``.

    Raises:
        UsageError: a duplicate key or tensor name, a value its type cannot hold, or a
            general.alignment that is not a u32 power of two or is not ``alignment``: readers
            would pad by the key, so a file padded otherwise would not load.
    """
    declared = alignment_of(kvs)
    if declared != alignment:
        raise UsageError(f"{Keys.ALIGNMENT} says {declared} but the data uses {alignment}")
    keys = [kv.key for kv in kvs]
    if len(set(keys)) != len(keys):
        raise UsageError(
            f"duplicate metadata keys: {sorted({k for k in keys if keys.count(k) > 1})}"
        )
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise UsageError(f"duplicate tensor names: {duplicated}")
    parts = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(tensors), len(kvs))]
    parts += [_kv_bytes(kv) for kv in kvs]
    parts += [_tensor_info_bytes(t) for t in tensors]
    header = b"".join(parts)
    return header + bytes(padded(len(header), alignment) - len(header))


class WriterState(enum.Enum):
    EMPTY = "empty"
    DATA = "data"
    CLOSED = "closed"


class GGUFWriter:
    """Writes one GGUF file to a binary stream: begin → (write…, end_tensor)* → close."""

    def __init__(self, stream: IO[bytes], *, label: str = "output") -> None:
        self._stream = stream
        self._label = label
        self._state = WriterState.EMPTY
        self._tensors: list[TensorInfo] = []
        self._alignment = DEFAULT_ALIGNMENT
        self._index = 0
        self._written = 0
        self.bytes_written = 0

    def _expect(self, state: WriterState, action: str) -> None:
        if self._state != state:
            raise RuntimeError(f"cannot {action}: expected writer state {state}, got {self._state}")

    def _emit(self, data: bytes | memoryview) -> None:
        try:
            self._stream.write(data)
        except OSError as e:
            raise OutputError(f"{self._label}: write failed ({e.strerror or e})") from e
        self.bytes_written += len(data)

    def begin(self, kvs: Sequence[KV], tensors: Sequence[TensorInfo]) -> None:
        """Write magic, version, counts, metadata and the tensor index."""
        self._expect(WriterState.EMPTY, "begin")
        self._alignment = alignment_of(kvs)
        self._tensors = list(tensors)
        self._emit(encode_header(kvs, self._tensors, self._alignment))
        self._state = WriterState.DATA

    def write(self, data: npt.NDArray[Any] | bytes) -> None:
        """Append bytes of the current tensor (whole rows at a time, in order)."""
        self._expect(WriterState.DATA, "write tensor data")
        if self._index >= len(self._tensors):
            raise RuntimeError("all tensors are already written")
        raw = data if isinstance(data, bytes) else np.ascontiguousarray(data).view(np.uint8)
        view = memoryview(raw).cast("B")  # type: ignore[arg-type]  # ndarray is a buffer
        self._written += len(view)
        if self._written > self._tensors[self._index].nbytes:
            raise RuntimeError(f"tensor {self._tensors[self._index].name}: more bytes than planned")
        self._emit(view)

    def end_tensor(self) -> None:
        """Check the tensor is complete and pad it to the alignment."""
        self._expect(WriterState.DATA, "end a tensor")
        info = self._tensors[self._index]
        if self._written != info.nbytes:
            raise RuntimeError(f"tensor {info.name}: wrote {self._written} of {info.nbytes} bytes")
        self._emit(bytes(padded(info.nbytes, self._alignment) - info.nbytes))
        self._index += 1
        self._written = 0

    def close(self) -> None:
        """Check every tensor was written and flush."""
        self._expect(WriterState.DATA, "close")
        if self._index != len(self._tensors):
            raise RuntimeError(f"closed after {self._index} of {len(self._tensors)} tensors")
        try:
            self._stream.flush()
        except OSError as e:
            raise OutputError(f"{self._label}: write failed ({e.strerror or e})") from e
        self._state = WriterState.CLOSED


@contextlib.contextmanager
def atomic_output(path: Path, *, force: bool) -> Iterator[IO[bytes]]:
    """Open a temporary file beside ``path``; move it to ``path`` only if the block succeeds.

    Any exception, Ctrl-C and the CLI's SIGTERM/SIGHUP included, removes the temporary file, so a
    partial file never appears at ``path``. The final step never replaces a file that appeared at
    ``path`` meanwhile unless ``force`` is set. The file gets the mode a new file would get
    (0666 minus the umask), even when it replaces one with other permissions. Temporaries of this
    naming left by a process that no longer exists (killed with SIGKILL) are removed first.

    Raises:
        OutputError: ``path`` exists and ``force`` is false, the folder is not writable, or the
            disk is full or a file-size limit is hit while writing.
    """
    if path.exists() and not force:
        raise OutputError(f"{path}: already exists; pass --force to overwrite it")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name for the output")
    folder = path.parent or Path(".")
    remove_stale_temporaries(path)
    try:
        # The pid in the name lets a later run tell a dead run's leftovers from a live run's.
        fd, temp_name = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=folder
        )
    except OSError as e:
        raise OutputError(f"{path}: cannot create the output ({e.strerror or e})") from e
    temp = Path(temp_name)
    stream = os.fdopen(fd, "wb", buffering=1024 * 1024)
    try:
        yield stream
        try:
            stream.flush()
            os.fchmod(stream.fileno(), _new_file_mode())  # mkstemp made it 0600
            os.fsync(stream.fileno())
            stream.close()
        except OSError as e:
            raise OutputError(f"{path}: write failed ({e.strerror or e})") from e
        _move_into_place(temp, path, force=force)
    except BaseException:
        # close() flushes the buffer again; on a full disk that raises a second OSError that
        # would replace the real error, so it is silenced here.
        with contextlib.suppress(OSError):
            stream.close()
        temp.unlink(missing_ok=True)
        raise


def _new_file_mode() -> int:
    """0666 minus the umask: what open(path, "w") would give a new file."""
    mask = os.umask(0o022)  # the only portable way to read the umask is to set it
    os.umask(mask)
    return 0o666 & ~mask


_TEMP_NAME = re.compile(r"\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.partial")


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove ``.<name>.<pid>.<random>.partial`` files beside ``path`` whose process is gone.

    A run killed by SIGKILL (or a power cut) cannot clean up after itself; the next run to the
    same path does. A temporary whose pid is alive, or owned by another user, is left alone.
    """
    removed: list[Path] = []
    prefix = f".{path.name}"
    try:
        entries = list(os.scandir(path.parent or Path(".")))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        match = _TEMP_NAME.fullmatch(entry.name[len(prefix) :])
        if match is None or _process_exists(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or a pid we cannot judge): leave its file alone
    return True


_RENAME_NOREPLACE = 1  # linux/fs.h


def _move_into_place(temp: Path, path: Path, *, force: bool) -> None:
    """Rename ``temp`` to ``path``; without ``force``, fail rather than replace a file there."""
    if force:
        os.replace(temp, path)
        return
    try:
        if not _rename_noreplace(temp, path):
            # No renameat2 (not Linux, or a filesystem without it): link() also refuses an
            # existing target, atomically; then drop the temporary name.
            os.link(temp, path)
            temp.unlink()
    except FileExistsError:
        raise OutputError(
            f"{path}: a file appeared there during the conversion; it was left alone and the "
            "new output discarded (pass --force to overwrite)"
        ) from None
    except OSError as e:
        raise OutputError(f"{path}: cannot move the output into place ({e.strerror or e})") from e


def _rename_noreplace(temp: Path, path: Path) -> bool:
    """renameat2(RENAME_NOREPLACE) through libc; False when the call is not available here."""
    renameat2 = _libc_renameat2()
    if renameat2 is None:
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(temp), at_fdcwd, os.fsencode(path), _RENAME_NOREPLACE)
    if result == 0:
        return True
    errno_value = ctypes.get_errno()
    if errno_value in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False  # kernel or filesystem without the flag: use the link() fallback
    raise OSError(errno_value, os.strerror(errno_value), str(path))


@functools.cache
def _libc_renameat2() -> Any:
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None  # glibc before 2.28, or a libc without the wrapper
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function
