"""Seed files: small JSONL files of hand-written examples that a method ships beside its code
(and a user may replace), loaded whole and checked line by line."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any


def load_jsonl_records(
    path: str | None, package: str, default_name: str, problem: Callable[[Any], str | None]
) -> list[dict]:
    """Records of ``path`` (default: ``default_name`` shipped in ``package``).

    Blank lines are skipped; a line that is not JSON, or for which ``problem(record)`` returns
    a reason, raises ``ValueError`` naming the file and the line number.
    """
    if path is None:
        text = resources.files(package).joinpath(default_name).read_text(encoding="utf-8")
        where = default_name
    else:
        text, where = Path(path).expanduser().read_text(encoding="utf-8"), str(path)
    records: list[dict] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: line {lineno}: invalid JSON ({e.msg})") from None
        why = problem(record)
        if why:
            raise ValueError(f"{where}: line {lineno}: {why}")
        records.append(record)
    return records
