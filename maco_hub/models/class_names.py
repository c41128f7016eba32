"""Class labels: a class index from an index or a name, and the closest labels to a word.

Matching folds case, spacing and punctuation ("Tabby-Cat" matches "tabby, tabby cat"). A name
matches a whole label first, then one of its comma-separated synonyms. Suggestions for an unknown
name list labels containing it as a word or substring before :mod:`difflib`'s close spellings, so
``cat`` suggests the "... cat" classes.

>>> names = {0: "tabby, tabby cat", 1: "tiger cat", 2: "catamount", 3: "crate"}
>>> class_index(names, "Tabby-Cat", model_id="m")
0
>>> [index for index, _ in search(names, "cat")]
[0, 1, 2]
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from ..errors import ClassNotFoundError

Labels = Mapping[int, str]
_INTEGER = re.compile(r"[+-]?\d+")


def class_index(labels: Labels | None, cls: object, *, model_id: str, num_classes: int | None = None) -> int:
    """The index ``cls`` names: an int (numpy/torch ints too), a digit string or a label."""
    if isinstance(cls, str):
        found = _by_name(labels, cls, model_id)
        if found is not None:
            return found
        if not _INTEGER.fullmatch(cls.strip()):
            raise ClassNotFoundError(_unknown_name_message(labels, cls, model_id))
        cls = int(cls.strip())
    if isinstance(cls, bool) or not isinstance(cls, int):
        try:
            cls = int(cls.__index__())  # numpy and torch integers
        except AttributeError:
            raise ClassNotFoundError(f"Class {cls!r} must be an integer index or a class name.") from None
    if cls < 0 or (num_classes is not None and cls >= num_classes):
        limit = f"0..{num_classes - 1}" if num_classes else "non-negative"
        raise ClassNotFoundError(
            f"Class index {cls} is out of range for {model_id!r}: valid indices are {limit}."
        )
    return cls


def search(labels: Labels | None, word: str) -> list[tuple[int, str]]:
    """(index, label) of labels holding ``word`` (folded) as a word or a substring, words first."""
    key = _key(word)
    if not key or not labels:
        return []
    whole = [i for i, label in labels.items() if key in _words(label)]
    partial = [i for i, label in labels.items() if i not in whole and _contains(label, word)]
    return [(i, labels[i]) for i in sorted(whole) + sorted(partial)]


def suggestions(labels: Labels, name: str, *, count: int = 5) -> list[int]:
    """Indices of the labels closest to ``name``: containing it first, then close spellings."""
    found = [index for index, _ in search(labels, name)][:count]
    synonyms: dict[str, int] = {}
    for index, label in labels.items():
        for part in [label, *label.split(",")]:
            synonyms.setdefault(part.strip().lower(), index)
    for close in difflib.get_close_matches(name.strip().lower(), list(synonyms), n=count, cutoff=0.5):
        if len(found) < count and synonyms[close] not in found:
            found.append(synonyms[close])
    return found


def _by_name(labels: Labels | None, name: str, model_id: str) -> int | None:
    key = _key(name)
    if not key or not labels:
        return None
    for whole_label_only in (True, False):
        hits = sorted(index for index, label in labels.items() if key in _label_keys(label, whole_label_only))
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            names = ", ".join(f"{i} {labels[i]!r}" for i in hits)
            raise ClassNotFoundError(
                f"Class name {name!r} is ambiguous for {model_id!r}: it matches "
                f"{names}. Pass the class index instead."
            )
    return None


def _unknown_name_message(labels: Labels | None, name: str, model_id: str) -> str:
    if not labels:
        return (
            f"Class name {name!r} cannot be looked up: {model_id!r} has no class names. "
            "Pass the class index instead."
        )
    hint = ", ".join(f"{i} {labels[i]!r}" for i in suggestions(labels, name))
    return (
        f"Class name {name!r} is not a label of {model_id!r}"
        + (f"; closest: {hint}." if hint else ".")
        + " Pass a class index or an exact label (list them with `maco-hub labels MODEL --grep WORD`)."
    )


def _key(text: str) -> str:
    """Case, spacing and punctuation folded away: "Tabby-Cat" -> "tabbycat"."""
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def _contains(label: str, text: str) -> bool:
    """``text`` inside one word of ``label`` or, for several words, inside one comma part."""
    if len(_words(text)) > 1:
        return any(_key(text) in _key(part) for part in label.split(","))
    return any(_key(text) in word for word in _words(label))


def _words(label: str) -> set[str]:
    return set(re.findall(r"[0-9a-z]+", label.lower()))


def _label_keys(label: str, whole_only: bool) -> set[str]:
    keys = {_key(label)}
    if not whole_only:
        keys |= {_key(part) for part in label.split(",")}
    return keys - {""}
