"""Reading untrusted metadata: a checker whose every accessor checks what it returns.

A bundle's JSON metadata comes from whoever sent the file. :class:`Checker` reads it one field at a
time, each accessor checking the type and range of what it returns and failing with one line that names
the file and the field's path (``bundle.nf: bundle metadata model.config.dim must be ...``). The schema
(:mod:`neofield.schema`) and every latent layout's own entry (:mod:`neofield.fields.layouts`) are written
with it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .errors import NeofieldError

MAX_TEXT = 4096  # characters in any string the metadata holds (a file name, a hash)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class Checker:
    """Reads one bundle's metadata; each accessor checks what it returns."""

    def __init__(self, name: str, limits: Any):
        self.name, self.limits = name, limits

    def fail(self, path: str, what: str, value=None, show: bool = True) -> NeofieldError:
        shown = f", not {short_repr(value)}" if show else ""
        return NeofieldError(f"{self.name}: bundle metadata {path} {what}{shown}")

    def obj(self, parent: dict, key: str, path: str, required: bool = True) -> dict | None:
        if key not in parent:
            if required:
                raise self.fail(f"{path}", "is missing", show=False)
            return None
        value = parent[key]
        if not isinstance(value, dict):
            raise self.fail(path, "must be an object", value)
        return value

    def integer(self, parent: dict, key: str, path: str, lo: int, hi: int, required: bool = True) -> int | None:
        if key not in parent and not required:
            return None
        value = parent.get(key)
        if key not in parent:
            raise self.fail(path, "is missing", show=False)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, "must be a whole number", value)
        if not lo <= value <= hi:
            raise self.fail(path, f"must be between {lo:,} and {hi:,}", value)
        return value

    def number(self, parent: dict, key: str, path: str, lo: float = -math.inf, hi: float = math.inf,
               positive: bool = False, required: bool = True) -> float | None:
        if key not in parent:
            if required:
                raise self.fail(path, "is missing", show=False)
            return None
        value = parent[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(path, "must be a finite number", value)
        if positive and not (value > 0 and value <= hi):
            raise self.fail(path, "must be > 0" + (f" and at most {hi:g}" if math.isfinite(hi) else ""), value)
        if not lo <= value <= hi:
            raise self.fail(path, f"must be between {lo:g} and {hi:g}", value)
        return float(value)

    def choice(self, parent: dict, key: str, path: str, options, required: bool = True, default=None):
        if key not in parent:
            if required:
                raise self.fail(path, "is missing", show=False)
            return default
        value = parent[key]
        if not isinstance(value, (str, int)) or isinstance(value, bool) or value not in options:
            raise self.fail(path, f"must be one of {', '.join(map(str, options))}", value)
        return value

    def text(self, parent: dict, key: str, path: str, required: bool = True) -> str | None:
        if key not in parent:
            if required:
                raise self.fail(path, "is missing", show=False)
            return None
        return self.text_value(parent[key], path)

    def text_value(self, value, path: str) -> str:
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise self.fail(path, f"must be text of at most {MAX_TEXT:,} characters", value)
        if CONTROL.search(value):  # a terminal escape, a NUL, a lone surrogate: nothing a name or hash holds
            raise self.fail(path, "must not hold control characters or lone surrogates", value)
        return value

    def flag(self, parent: dict, key: str, path: str) -> bool:
        value = parent.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(path, "must be true or false", value)
        return value

    def known(self, parent: dict, keys, path: str) -> None:
        """Fail on the first key of ``parent`` (sorted) that is not one of ``keys``."""
        unknown = sorted(set(parent) - set(keys))
        if unknown:
            raise self.fail(f"{path}.{key_name(unknown[0])}", "is not a setting this neofield knows", show=False)


def key_name(name: str) -> str:
    """A metadata key as shown in a message: plain if it is a plain name, else quoted and escaped."""
    return name if re.fullmatch(r"[A-Za-z0-9_]{1,40}", name) else short_repr(name)


def short_repr(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
