"""The YAML front matter of a model card (README.md), read as gguf-py reads it, without PyYAML.

llama.cpp's converter takes the lines between a first line ``---`` and the next ``---``, quotes
``- no`` list items (the Norway problem), turns tabs into two spaces and hands the rest to
``yaml.safe_load``. This module parses the block YAML that Hugging Face cards are written in:
nested mappings and sequences (nested values are read so they can be skipped), plain, quoted
and block (``|``, ``>-``) scalars, ``[a, b]`` / ``{k: v}`` flow collections and comments, with
YAML 1.1's scalar types as PyYAML resolves them (``yes`` is True, ``3.0`` a float,
``2024-01-01`` a date; qconv.model.yaml_scalar). Anchors, aliases, tags, ``?`` keys and
multi-document streams are not read: a line it cannot place is skipped rather than failing a
conversion over a README.
"""

from __future__ import annotations

import re
from typing import Any

from qconv.model.yaml_scalar import closing_quote, resolve, unescape

__all__ = ["parse_front_matter"]

# A mapping key: quoted, or plain up to ": " (a "#" after a space starts a comment instead).
_KEY = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^#'"\s\[{](?:(?!\s#).)*?)\s*:(?:\s+|$)""")


def parse_front_matter(text: str) -> dict[str, Any]:
    """The front matter of model card ``text`` as a dict; {} when there is none."""
    lines = text.splitlines()
    if not lines or lines[0] != "---":
        return {}
    body: list[str] = []
    for line in lines[1:]:
        if line == "---":
            break
        body.append(line)
    content = ("\n".join(body) + "\n").replace("- no\n", '- "no"\n').replace("\t", "  ")
    data = _Parser(content.split("\n")).block(-1)
    return data if isinstance(data, dict) else {}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _strip_comment(text: str) -> str:
    return re.split(r"(?:^|\s)#", text, maxsplit=1)[0].rstrip() if "#" in text else text.rstrip()


def _fold(lines: list[str]) -> str:
    """Join continuation lines: a line break is a space, each empty line a newline."""
    out = ""
    pending_breaks = 0
    for line in lines:
        if not line:
            pending_breaks += 1
            continue
        if out:
            out += "\n" * pending_breaks if pending_breaks else " "
        out += line
        pending_breaks = 0
    return out


def _fold_block(lines: list[str]) -> str:
    """A ``>`` scalar's text: breaks between plain lines fold to spaces, an empty line is a
    newline, and more-indented lines keep their breaks."""
    out, breaks, prev_more, first = "", 0, False, True
    for line in lines:
        if not line:
            breaks += 1
            continue
        more = line[0].isspace()
        if first:
            out += "\n" * breaks
        elif more or prev_more:
            out += "\n" * (breaks + 1)
        else:
            out += "\n" * breaks if breaks else " "
        out += line
        breaks, prev_more, first = 0, more, False
    return out


class _Parser:
    """Recursive descent over lines; ``block(parent)`` reads the node indented past ``parent``."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.i = 0

    def _next_content(self) -> int | None:
        """Index of the next line that is neither blank nor a comment, or None."""
        j = self.i
        while j < len(self.lines):
            stripped = self.lines[j].strip()
            if stripped and not stripped.startswith("#"):
                return j
            j += 1
        return None

    def block(self, parent: int, *, sequence_at_parent: bool = False) -> Any:
        j = self._next_content()
        if j is None:
            return None
        line = self.lines[j]
        indent, content = _indent(line), line.strip()
        is_item = content == "-" or content.startswith("- ")
        if indent <= parent and not (sequence_at_parent and indent == parent and is_item):
            return None
        self.i = j
        if is_item:
            return self._sequence(indent)
        if _KEY.match(content):
            return self._mapping(indent)
        self.i = j + 1
        return self._scalar(content, indent - 1)

    def _mapping(self, indent: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        while (j := self._next_content()) is not None:
            line = self.lines[j]
            content = line.strip()
            if _indent(line) != indent or content == "-" or content.startswith("- "):
                break
            match = _KEY.match(content)
            self.i = j + 1
            if match is None:
                continue  # not a key: skipped (see the module docstring)
            key = match.group(1)
            key_value: Any = self._quoted(key) if key[:1] in "\"'" else resolve(key)
            rest = content[match.end() :]
            if _strip_comment(rest):
                value = self._scalar(rest, indent)
            else:
                value = self.block(indent, sequence_at_parent=True)
            if isinstance(key_value, (str, int, float, bool)) or key_value is None:
                result[key_value] = value
        return result

    def _sequence(self, indent: int) -> list[Any]:
        result: list[Any] = []
        while (j := self._next_content()) is not None:
            line = self.lines[j]
            content = line.strip()
            if _indent(line) != indent or not (content == "-" or content.startswith("- ")):
                break
            item = content[1:].lstrip(" ")
            if not _strip_comment(item):
                self.i = j + 1
                result.append(self.block(indent))
                continue
            column = indent + len(content) - len(item)
            if item == "-" or item.startswith("- "):
                self.lines[j] = " " * column + item  # "- - x": a sequence inside the item
                self.i = j
                result.append(self._sequence(column))
            elif _KEY.match(item) and item[:1] not in "[{":
                self.lines[j] = " " * column + item  # "- key: value": a mapping item
                self.i = j
                result.append(self._mapping(column))
            else:
                self.i = j + 1
                result.append(self._scalar(item, indent))
        return result

    def _continuation(self, parent: int) -> list[str]:
        """Following lines indented past ``parent`` up to the last non-blank one, consumed."""
        taken: list[str] = []
        j = self.i
        while j < len(self.lines):
            line = self.lines[j]
            if line.strip() and _indent(line) <= parent:
                break
            j += 1
            if line.strip():
                taken = self.lines[self.i : j]
        self.i += len(taken)
        return taken

    def _scalar(self, text: str, parent: int) -> Any:
        """A value starting with ``text`` (the rest of its line); ``self.i`` is the next line."""
        text = text.strip()
        if text[:1] in ("|", ">"):
            return self._block_scalar(text, parent)
        if text[:1] in "\"'":
            quote = text[0]
            while not _closed(text, quote) and self.i < len(self.lines):
                text += "\n" + self.lines[self.i]
                self.i += 1
            return self._quoted(text)
        if text[:1] in "[{":
            while not _balanced(text) and self.i < len(self.lines):
                text += "\n" + self.lines[self.i]
                self.i += 1
            return _Flow(text).value()
        lines = [_strip_comment(text)]
        lines += [_strip_comment(line.strip()) for line in self._continuation(parent)]
        return resolve(lines[0]) if len(lines) == 1 else _fold(lines)

    def _block_scalar(self, header: str, parent: int) -> str:
        header = _strip_comment(header)
        chomp = "-" if "-" in header else "+" if "+" in header else ""
        raw = self._continuation(parent)
        kept_blank = 0
        # Trailing blank lines matter only for "+" chomping; the last line is the empty one the
        # final newline of the front matter leaves, not part of any scalar.
        while self.i < len(self.lines) - 1 and not self.lines[self.i].strip():
            kept_blank += 1
            self.i += 1
        digits = [c for c in header[1:] if c.isdigit()]
        if digits:  # an indentation indicator: content sits that far past the parent node
            width = max(parent, 0) + int(digits[0])
        else:
            width = min((_indent(line) for line in raw if line.strip()), default=0)
        lines = [line[width:] if line.strip() else "" for line in raw]
        text = "\n".join(lines) if header[0] == "|" else _fold_block(lines)
        if not text:
            return "\n" * kept_blank if chomp == "+" else ""
        if chomp == "-":
            return text
        return text + "\n" * (1 + (kept_blank if chomp == "+" else 0))

    @staticmethod
    def _quoted(text: str) -> str:
        quote, body = text[0], text[1:]
        end = closing_quote(body, quote)
        body = body[:end] if end >= 0 else body
        folded = _fold_quoted(body.split("\n"), quote)
        if quote == "'":
            return folded.replace("''", "'")
        return unescape(folded)


def _fold_quoted(lines: list[str], quote: str) -> str:
    """A quoted scalar's lines joined: a break is a space, n empty lines are n newlines, and the
    spaces around each break go (those next to the quotes stay); in double quotes a ``\\`` at
    a line's end joins it to the next with nothing between."""
    if len(lines) == 1:
        return lines[0]
    parts = [lines[0].rstrip(), *(line.strip() for line in lines[1:-1]), lines[-1].lstrip()]
    out, empties = parts[0], 0
    for k, part in enumerate(parts[1:], start=1):
        if not part and k < len(parts) - 1:
            empties += 1
            continue
        escaped = quote == '"' and (len(out) - len(out.rstrip("\\"))) % 2 == 1
        if escaped:
            out = out[:-1] + "\n" * empties
        else:
            out += "\n" * empties if empties else " "
        out += part
        empties = 0
    return out


def _closed(text: str, quote: str) -> bool:
    return closing_quote(text[1:], quote) >= 0


def _balanced(text: str) -> bool:
    """Whether a flow collection's brackets close (quotes count only where a scalar starts)."""
    depth, quote, prev = 0, "", "["
    k = 0
    while k < len(text):
        c = text[k]
        if quote:
            if (c == "\\" and quote == '"') or (c == quote == "'" and text[k + 1 : k + 2] == "'"):
                k += 1  # an escaped character or a doubled '' inside single quotes
            elif c == quote:
                quote = ""
        elif c in "\"'" and prev in "[{,:":
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        if not c.isspace():
            prev = c
        k += 1
    return depth <= 0


class _Flow:
    """``[a, "b", {k: v}]`` and ``{k: v}`` on one (joined) line."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.k = 0

    def _skip(self) -> None:
        """Past spaces, line breaks and comments."""
        while self.k < len(self.text) and self.text[self.k] in " \n#":
            if self.text[self.k] == "#":
                end = self.text.find("\n", self.k)
                self.k = len(self.text) if end < 0 else end
            self.k += 1

    def value(self) -> Any:
        self._skip()
        c = self.text[self.k : self.k + 1]
        if c == "[":
            return self._collection("]")
        if c == "{":
            return self._collection("}")
        if c in ("'", '"'):
            end = closing_quote(self.text[self.k + 1 :], c)
            end = len(self.text) - self.k - 1 if end < 0 else end
            quoted = self.text[self.k : self.k + end + 2]
            self.k += end + 2
            return _Parser._quoted(quoted)
        start = self.k
        while self.k < len(self.text) and self.text[self.k] not in ",]}":
            if self.text[self.k] == ":" and self.text[self.k + 1 : self.k + 2] in (" ", ",", ""):
                break
            if self.text[self.k] == "#" and self.text[self.k - 1] in " \n":
                break  # a comment ends the scalar
            self.k += 1
        lines = [line.strip() for line in self.text[start : self.k].split("\n")]
        return resolve(lines[0]) if len(lines) == 1 else _fold(lines)

    def _collection(self, close: str) -> Any:
        self.k += 1
        items: list[Any] = []
        pairs: dict[Any, Any] = {}
        while True:
            self._skip()
            start = self.k
            if self.k >= len(self.text) or self.text[self.k] == close:
                self.k += 1
                return pairs if close == "}" else items
            key = self.value()
            self._skip()
            hashable = not isinstance(key, (dict, list))  # a collection as a key: not read
            if self.text[self.k : self.k + 1] == ":":
                self.k += 1
                item: Any = self.value()
                if close == "}" and hashable:
                    pairs[key] = item
                elif hashable:
                    items.append({key: item})
            elif close == "}" and hashable:
                pairs[key] = None
            elif close == "]":
                items.append(key)
            self._skip()
            if self.text[self.k : self.k + 1] == ",":
                self.k += 1
            elif self.k == start:
                self.k += 1  # a stray character: skip it rather than loop
