"""Self-Rewarding's seed data: IFT (instruction -> response) and EFT (evaluation instruction ->
justification ending in "Score: N"), read from files or built from what the package ships.

IFT rows are read as SFT rows (instruction/input/output or messages, JSONL or Parquet). EFT rows
have the same shape: the instruction is the evaluation prompt (the additive 5-point rubric filled
with a question and a response) and the output a justification whose last line is "Score: N";
an EFT row without a parseable score is a reject (``eft_no_score``).

Defaults (see SEEDS.md): IFT = the instances of the Self-Instruct seed tasks shipped in
``synth_ray.methods.self_instruct`` (Apache-2.0); EFT built by rule from those IFT pairs: each
pair's question with its own response (justified as 4 points), with its response cut short (2
points), or with another task's response (0 points), the justifications in this project's own
wording (``templates/eft_*.txt``). The paper used OpenAssistant first turns (highest rank) for
IFT and its ranked responses for EFT.

Held-out instructions (the evaluate stage's) are taken out of both the SFT data and the few-shot
pool: the first ``heldout`` distinct IFT instructions in the order of their content hash.
"""

from __future__ import annotations

from typing import Any

from synth_ray.io.ids import stable_hash
from synth_ray.io.rejects import reject, write_rejects
from synth_ray.stages import rubrics
from synth_ray.stages.prompt import shipped_template
from synth_ray.train.data import instruction_pairs

EFT_KINDS = (("matched", 4), ("truncated", 2), ("mismatched", 0))


def _justification(kind: str) -> str:
    return shipped_template(__name__.rsplit(".", 1)[0], f"eft_{kind}").text


def _read(path: str, rejects_dir: str | None, prefix: str) -> list[dict[str, Any]]:
    from synth_ray.train.data import read_training_rows_local

    rows, rejects = read_training_rows_local(path, "sft")
    if rejects_dir:
        write_rejects(rejects_dir, rejects, prefix)
    return rows


def shipped_ift() -> list[dict[str, str]]:
    from synth_ray.methods.self_instruct.prompts import load_seed_tasks

    rows = [
        {"instruction": t["instruction"], "input": i["input"], "output": i["output"]}
        for t in load_seed_tasks()
        for i in t["instances"]
    ]
    return instruction_pairs(rows)


def load_ift(path: str | None, rejects_dir: str | None = None) -> list[dict[str, str]]:
    """IFT pairs (instruction with its input, output) in file order."""
    return shipped_ift() if path is None else instruction_pairs(_read(path, rejects_dir, "ift"))


def split_heldout(
    ift: list[dict[str, str]], heldout: int
) -> tuple[list[dict[str, str]], list[str]]:
    """(training IFT pairs, held-out instructions): the first ``heldout`` distinct instructions
    by content hash are held out, with every pair that has them."""
    distinct = sorted({p["instruction"] for p in ift}, key=lambda s: stable_hash(s))
    held = distinct[:heldout]
    keep = set(held)
    return [p for p in ift if p["instruction"] not in keep], sorted(held)


def eft_by_rule(ift: list[dict[str, str]], limit: int | None = None) -> list[dict[str, str]]:
    """EFT rows built from IFT pairs: the kinds of ``EFT_KINDS`` in turn; a response too short
    to cut, or with no other task's response to swap in, is used as it is (matched)."""
    rubric = rubrics.get_rubric("additive5")
    out = []
    n = len(ift)
    for i, p in enumerate(ift[:limit] if limit else ift):
        kind, _ = EFT_KINDS[i % len(EFT_KINDS)]
        response = p["output"]
        if kind == "truncated":
            words = response.split()
            if len(words) >= 6:
                response = " ".join(words[: len(words) // 3])
            else:
                kind = "matched"
        elif kind == "mismatched":
            other = next(
                (
                    ift[(i + k) % n]["output"]
                    for k in range(n // 2 or 1, n)
                    if ift[(i + k) % n]["instruction"] != p["instruction"]
                ),
                None,
            )
            if other is None:
                kind = "matched"
            else:
                response = other
        out.append(
            {
                "instruction": rubric.render(p["instruction"], response),
                "output": _justification(kind),
                "kind": kind,
            }
        )
    return out


def eft_score(output: str) -> float | None:
    """The score an EFT row's justification ends with (None: no parseable 'Score: N')."""
    return rubrics.parse_judgement(output, rubrics.get_rubric("additive5")).score


def load_eft(
    path: str | None,
    ift: list[dict[str, str]],
    limit: int | None = None,
    rejects_dir: str | None = None,
) -> list[dict[str, str]]:
    """EFT rows from ``path``, or built by rule from ``ift``; rows whose output ends in no
    parseable score are rejects (written to ``rejects_dir`` when given)."""
    if path is None:
        return eft_by_rule(ift, limit)
    rows, bad = [], []
    for i, p in enumerate(instruction_pairs(_read(path, rejects_dir, "eft"))):
        if eft_score(p["output"]) is None:
            bad.append(
                reject(
                    path,
                    "eft_no_score",
                    stage="seeds",
                    id=f"eft-{i}",
                    detail=p["output"][-200:],
                )
            )
            continue
        rows.append(p)
    if rejects_dir:
        write_rejects(rejects_dir, bad, "eft")
    return rows[:limit] if limit else rows


def chat_row(user: str, assistant: str, origin: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ],
        "origin": origin,
    }
