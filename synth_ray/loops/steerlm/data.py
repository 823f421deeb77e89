"""SteerLM's training data (survey, "SteerLM"): annotated rows -> attribute-conditioned SFT rows
(ACSFT), and the attribute combinations the bootstrapping step asks the model for.

An annotated row is a prompt, a response and its attribute values (predicted by the attribute
model, or human labels). ACSFT trains on the response conditioned on the prompt and those values
(``conditioning.conditioned_messages``). The bootstrapping step (the paper's ACSFT_2) takes "all
possible attribute combinations from the annotated datasets, filtering for the highest quality
data only": the distinct value combinations (rounded as written into prompts) of the rows whose
quality is the top of the scale, which the model is then asked to write responses for.
"""

from __future__ import annotations

from typing import Any, Literal

from synth_ray.io.rejects import reject
from synth_ray.loops.steerlm.conditioning import SCALE, conditioned_messages, round_value


def acsft_rows(
    rows: list[dict[str, Any]],
    names: list[str],
    placement: Literal["system", "assistant"] = "system",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(SFT rows with ``messages``, rejects): a row without text or without a value for any of
    ``names`` is a reject with its reason."""
    out, bad = [], []
    for i, r in enumerate(rows):
        key = str(r.get("id", i))
        prompt, response = r.get("prompt"), r.get("response")
        values = r.get("attributes") or {}
        if not (isinstance(prompt, str) and prompt.strip()):
            bad.append(reject("acsft", "empty_prompt", stage="acsft", id=key))
        elif not (isinstance(response, str) and response.strip()):
            bad.append(reject("acsft", "empty_response", stage="acsft", id=key))
        elif not any(n in values for n in names):
            bad.append(
                reject("acsft", "unannotated", stage="acsft", id=key, detail=f"none of {names}")
            )
        else:
            msgs = conditioned_messages(prompt, values, names, response, placement)
            out.append({"messages": msgs, "origin": r.get("origin", "annotated")})
    return out, bad


def requested_combinations(
    annotated: list[dict[str, float]], names: list[str], quality: str = "quality"
) -> list[dict[str, int]]:
    """The distinct rounded value combinations of the annotated rows whose ``quality`` rounds to
    the top of the scale, in order of frequency (then of the combination); none when no row
    reaches it."""
    top = SCALE[1]
    counts: dict[tuple, int] = {}
    for v in annotated:
        if quality in v and round_value(v[quality]) == top:
            combo = tuple((n, round_value(v[n])) for n in names if n in v)
            counts[combo] = counts.get(combo, 0) + 1
    ranked = sorted(counts, key=lambda c: (-counts[c], c))
    return [dict(c) for c in ranked]
