"""ReST-EM's problems: read from JSONL in the formats the verifiers check, or generated.

Each problem becomes one row: ``id``, ``kind`` (math | code), ``format``, ``prompt`` (the user
message M_t answers), ``reference`` (the problem's own worked solution, or None) and
``fields`` (what the verifier reads: ``answer`` for math; HumanEval's ``prompt``,
``entry_point``, ``test`` or MBPP's ``test_list``, ``test_setup_code``, ``test_imports``).
A record that is none of the formats, has an empty side, or repeats an earlier problem is a
reject with its reason. The held-out split is the first ``heldout`` problems by content hash.
"""

from __future__ import annotations

import json
from typing import Any

from synth_ray.io import fs
from synth_ray.io.ids import stable_hash
from synth_ray.io.lines import iter_lines, open_text_stream
from synth_ray.io.rejects import reject

MAX_LINE = 1 << 22
CODE_PROMPT = (
    "Complete the following Python function. Answer with the whole function in a ```python "
    "code block.\n\n```python\n{prompt}```"
)
MBPP_PROMPT = "{text}\nYour code should pass these tests:\n\n{tests}"


def _text(v: Any) -> str:
    return v.strip() if isinstance(v, str) else ""


def normalise(row: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(problem row, "") or (None, why) for one record."""
    if row.get("entry_point") and row.get("test") and _text(row.get("prompt")):
        prompt = row["prompt"]
        ref = row.get("canonical_solution")
        return {
            "id": str(row.get("task_id") or ""),
            "kind": "code",
            "format": "humaneval",
            "prompt": CODE_PROMPT.format(prompt=prompt),
            "reference": f"```python\n{prompt}{ref}```" if _text(ref) else None,
            "fields": {"prompt": prompt, "entry_point": row["entry_point"], "test": row["test"]},
        }, ""
    if row.get("test_list") and _text(row.get("text") or row.get("prompt")):
        text = _text(row.get("text") or row.get("prompt"))
        tests = [str(t) for t in row["test_list"]]
        return {
            "id": str(row.get("task_id") or ""),
            "kind": "code",
            "format": "mbpp",
            "prompt": MBPP_PROMPT.format(text=text, tests="\n".join(tests)),
            "reference": f"```python\n{row['code']}\n```" if _text(row.get("code")) else None,
            "fields": {
                "test_list": tests,
                "test_setup_code": row.get("test_setup_code") or "",
                "test_imports": [str(t) for t in row.get("test_imports") or []],
            },
        }, ""
    for q, a, fmt in (("question", "answer", "gsm8k"), ("problem", "solution", "math")):
        if q in row or a in row:
            if not _text(row.get(q)) or not _text(row.get(a)):
                return None, f"empty_field: {q!r} or {a!r} is empty"
            fmt = "generated" if row.get("domain") and fmt == "gsm8k" else fmt
            return {
                "id": str(row.get("id") or row.get("unique_id") or ""),
                "kind": "math",
                "format": fmt,
                "prompt": row[q].strip(),
                "reference": row[a].strip(),
                "fields": {"answer": row[a].strip()},
            }, ""
    return None, (
        "unknown_format: neither question/answer, problem/solution, HumanEval "
        "(prompt, entry_point, test) nor MBPP (text, test_list)"
    )


def read_problems(path: str) -> tuple[list[dict[str, Any]], list[dict]]:
    """(problems in file order, rejects) of a JSONL file, read in this process (no Ray)."""
    problems, rejects, seen = [], [], set()
    with fs.open_raw(path) as raw:
        stream, _ = open_text_stream(raw)
        for lineno, data, size in iter_lines(stream, MAX_LINE):
            why = None
            if data is None:
                why = ("line_too_long", f"{size} bytes")
            elif not data.strip():
                continue
            else:
                try:
                    row = json.loads(data)
                except ValueError as exc:
                    row, why = None, ("bad_json", str(exc)[:200])
                if row is not None and not isinstance(row, dict):
                    why = ("bad_json", "not an object")
                elif row is not None:
                    p, detail = normalise(row)
                    if p is None:
                        why = (detail.split(":")[0], detail)
                    else:
                        p["id"] = p["id"] or f"p-{stable_hash(p['prompt'], length=16)}"
                        if p["id"] in seen or p["prompt"] in seen:
                            why = ("duplicate_problem", f"{p['id']} seen earlier")
                        else:
                            seen.update((p["id"], p["prompt"]))
                            problems.append(p)
            if why:
                rejects.append(reject(path, why[0], stage="problems", line=lineno, detail=why[1]))
    return problems, rejects


def generated(generator: str, count: int, seed: int, difficulties: list[int] | None) -> list:
    from synth_ray.stages.problems import generate_problems

    rows = generate_problems(generator, count, seed=seed, difficulties=difficulties)
    return [normalise(r)[0] | {"id": r["id"]} for r in rows]


def split_heldout(problems: list[dict], heldout: int) -> tuple[list[dict], list[dict]]:
    """(training problems in order, held-out problems): the first ``heldout`` by content hash."""
    held_ids = {p["id"] for p in sorted(problems, key=lambda p: stable_hash(p["id"]))[:heldout]}
    return [p for p in problems if p["id"] not in held_ids], [
        p for p in problems if p["id"] in held_ids
    ]


def load_split(cfg, with_rejects: bool = False):
    """(training problems, held-out problems[, load rejects]) of a config."""
    if cfg.problems is None:
        g = cfg.generate
        problems, rejects = generated(g.generator, g.count, g.seed, g.difficulties), []
    else:
        problems, rejects = read_problems(cfg.problems)
    train, held = split_heldout(problems, cfg.heldout)
    train = train[: cfg.max_problems] if cfg.max_problems else train
    return (train, held, rejects) if with_rejects else (train, held)
