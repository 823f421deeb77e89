"""Stable row ids.

An id is a hash of everything that determines a row's content, so the same input through the
same template, model and sampling always gets the same id, on any machine and in any run. The
resume logic relies on this: a rerun skips ids already present in the output.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stable_hash(*parts: Any, length: int = 24) -> str:
    """Hex digest (blake2b) of the canonical JSON of ``parts``."""
    h = hashlib.blake2b(canonical_json(list(parts)).encode("utf-8"), digest_size=16)
    return h.hexdigest()[:length]


def text_hash(text: str, length: int = 12) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()[:length]
