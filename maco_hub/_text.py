"""Text from data made safe to show: control, bidi and zero-width characters as visible escapes,
Markdown and HTML escaped for cards and pages, untrusted values shortened for messages.

A label, id or file name read from a model or a gallery may hold terminal escapes (``\\x1b]0;...``),
bidi overrides (U+202E) or zero-width characters. Wherever maco_hub shows such text (the terminal,
a dataset card, the viewer page) these characters are written as the visible text ``\\x1b``,
``\\u202e``, ... (Unicode categories Cc, Cf, Zl and Zp). Only the standard library is used.

>>> visible("a\\x1b[2Jb\\u202ec")
'a\\\\x1b[2Jb\\\\u202ec'
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any

HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})  # controls, format (bidi, zero-width), separators
_NOT_PLAIN = re.compile(r"[^\x20-\x7e]")  # printable ASCII is the fast path


def visible(text: str, *, keep: str = "") -> str:
    """``text`` with every character of :data:`HIDDEN_CATEGORIES` (but those in ``keep``, e.g.
    ``"\\n"``) replaced by its Python escape (``\\x1b``, ``\\u202e``, ``\\U000e0041``)."""

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if char in keep or unicodedata.category(char) not in HIDDEN_CATEGORIES:
            return char
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"

    return _NOT_PLAIN.sub(escape, text)


def short_repr(value: Any) -> str:
    """``repr(value)``, cut to 60 characters (for messages about untrusted values)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]|~#])")  # inline Markdown; HTML is escaped separately


def markdown_text(value: Any) -> str:
    """``value`` as literal text inside a Markdown line or table cell: whitespace runs (newlines
    too) collapsed, control, bidi and zero-width characters as visible escapes (``\\u202e``),
    Markdown punctuation backslash-escaped, ``<``, ``>`` and ``&`` as entities."""
    text = visible(" ".join(str(value).split()))
    return html.escape(_MARKDOWN_SPECIALS.sub(r"\\\1", text), quote=False)


def html_text(value: Any, *, keep: str = "") -> str:
    """``value`` as literal text in HTML (element content or a quoted attribute): control, bidi and
    zero-width characters (but those in ``keep``) as visible escapes, then ``<``, ``>``, ``&`` and
    quotes as entities."""
    return html.escape(visible(str(value), keep=keep))
