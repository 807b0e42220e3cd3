"""YAML 1.1 scalars as PyYAML's SafeLoader reads them, for qconv.model.front_matter.

Plain scalars resolve to None, bool, int (decimal, 0x, 0o-style 0, 0b, sexagesimal), float or a
date by PyYAML's own implicit resolver patterns; double-quoted ones take YAML's escapes.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

__all__ = ["closing_quote", "resolve", "unescape"]

_NULL = re.compile(r"~|null|Null|NULL|")
_TRUE = re.compile(r"yes|Yes|YES|true|True|TRUE|on|On|ON")
_FALSE = re.compile(r"no|No|NO|false|False|FALSE|off|Off|OFF")
_INT = re.compile(
    r"[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"
    r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+"
)
_FLOAT = re.compile(
    r"[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
    r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v", "f": "\f"}
_ESCAPES |= {"r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85"}
_HEX_LENGTH = {"x": 2, "u": 4, "U": 8}


def resolve(text: str) -> Any:
    """A plain scalar's value, by the YAML 1.1 rules PyYAML's SafeLoader applies."""
    if _NULL.fullmatch(text):
        return None
    if _TRUE.fullmatch(text) or _FALSE.fullmatch(text):
        return bool(_TRUE.fullmatch(text))
    if _INT.fullmatch(text):
        return _to_int(text.replace("_", ""))
    if _FLOAT.fullmatch(text):
        return _to_float(text.replace("_", "").lower())
    if _DATE.fullmatch(text):
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            return text
    return text


def _to_int(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if ":" in digits:
        value = 0
        for part in digits.split(":"):
            value = value * 60 + int(part)
        return sign * value
    if digits.startswith("0b"):
        return sign * int(digits[2:], 2)
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    if digits != "0" and digits.startswith("0"):
        return sign * int(digits, 8)
    return sign * int(digits)


def _to_float(text: str) -> float:
    sign = -1.0 if text.startswith("-") else 1.0
    digits = text.lstrip("+-")
    if digits == ".inf":
        return sign * float("inf")
    if digits == ".nan":
        return float("nan")
    if ":" in digits:
        value = 0.0
        for part in digits.split(":"):
            value = value * 60 + float(part)
        return sign * value
    return sign * float(digits)


def closing_quote(body: str, quote: str) -> int:
    """Index of the quote that closes ``body`` (the text after an opening quote), or -1."""
    k = 0
    while k < len(body):
        if quote == '"' and body[k] == "\\":
            k += 2
            continue
        if body[k] == quote:
            if quote == "'" and body[k + 1 : k + 2] == "'":
                k += 2
                continue
            return k
        k += 1
    return -1


def unescape(text: str) -> str:
    """A double-quoted scalar's escapes (``\\n``, ``\\"``, ``\\u00e9`` ...) decoded."""
    out: list[str] = []
    k = 0
    while k < len(text):
        c = text[k]
        if c == "\\" and k + 1 < len(text):
            code = text[k + 1]
            if code in _HEX_LENGTH:
                n = _HEX_LENGTH[code]
                out.append(chr(int(text[k + 2 : k + 2 + n], 16)))
                k += 2 + n
                continue
            out.append(_ESCAPES.get(code, code))
            k += 2
            continue
        out.append(c)
        k += 1
    return "".join(out)
