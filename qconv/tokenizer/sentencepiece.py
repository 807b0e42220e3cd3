"""SentencePiece ``tokenizer.model`` -> (piece, score, token type) for every piece.

qconv parses the protobuf itself: the sentencepiece and protobuf packages are heavy, compiled
dependencies, and a vocabulary needs only three fields of one message. The file is a
``ModelProto`` (sentencepiece_model.proto) whose field 1 repeats ``SentencePiece`` messages::

    SentencePiece { 1: piece (string), 2: score (float, fixed32), 3: type (enum, varint) }

Other ModelProto fields (trainer/normalizer specs) are skipped. Only the wire types protobuf
uses here are read (varint, fixed64, length-delimited, fixed32); anything else is a malformed
file, reported as SourceError.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from pathlib import Path

from qconv.errors import SourceError

__all__ = ["TokenType", "read_sentencepiece"]


class TokenType(IntEnum):
    """llama.cpp token types (llama.h enum llama_token_type); SentencePiece uses the same ids.

    Defined here, not in qconv.tokenizer.vocab, so this module needs nothing from vocab (which
    imports it);
    vocab re-exports it for the BPE vocabularies too.
    """

    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


def read_sentencepiece(path: Path) -> list[tuple[str, float, TokenType]]:
    """(piece, score, token type) of every piece in a SentencePiece ``tokenizer.model``.

    The file is a protobuf ModelProto whose field 1 repeats SentencePiece{1: piece, 2: score,
    3: type}. User-defined pieces count as NORMAL, as llama.cpp's converter treats them.

    Raises:
        SourceError: unreadable or malformed file.
    """
    try:
        data = path.read_bytes()
        pieces = []
        for field, value in _protobuf_fields(data):
            if field == 1 and isinstance(value, bytes):
                pieces.append(_piece(value))
    except OSError as e:
        raise SourceError(f"{path}: cannot read ({e})") from e
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as e:
        raise SourceError(f"{path}: not a SentencePiece model ({e})") from e
    if not pieces:
        raise SourceError(f"{path}: no pieces; not a SentencePiece model")
    return pieces


def _piece(message: bytes) -> tuple[str, float, TokenType]:
    text, score, kind = "", 0.0, 1
    for field, value in _protobuf_fields(message):
        if field == 1 and isinstance(value, bytes):
            text = value.decode("utf-8")
        elif field == 2 and isinstance(value, bytes):
            score = struct.unpack("<f", value)[0]
        elif field == 3 and isinstance(value, int):
            kind = value
    token_type = TokenType(kind) if kind in (2, 3, 5, 6) else TokenType.NORMAL
    return text, score, token_type


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _protobuf_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """Top-level (field number, value) pairs; fixed32 as 4 raw bytes, fixed64 as 8."""
    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        wire = key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            fields.append((key >> 3, value))
            continue
        if wire == 2:
            length, pos = _varint(data, pos)
        elif wire in (1, 5):
            length = 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos + length > len(data):
            raise ValueError("truncated field")
        fields.append((key >> 3, data[pos : pos + length]))
        pos += length
    return fields
