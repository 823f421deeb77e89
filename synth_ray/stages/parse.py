"""Parsing helpers shared by the methods' completion parsers."""

from __future__ import annotations

import json
import re

_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)\n?```", flags=re.DOTALL)


def json_object(text: str) -> dict | None:
    """The JSON object in ``text`` (a surrounding Markdown code fence is tolerated), else None.

    ``strict=False``: raw control characters inside strings are accepted. Constrained decoding
    (xgrammar) lets a model put them there, and the record is still what the model meant.
    """
    s = (text or "").strip()
    fence = _FENCE.fullmatch(s)
    if fence:
        s = fence.group(1).strip()
    try:
        obj = json.loads(s, strict=False)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None
