"""Offer filtered candidates to the run's novelty pool, up to a target: shared by the jobs
that grow an instruction pool (Self-Instruct, Alpaca)."""

from __future__ import annotations

from synth_ray.filters.novelty_pool import NoveltyPool
from synth_ray.io.rejects import reject


def offer(
    pool: NoveltyPool, candidates: list[dict], room: int, source: str, text_key: str = "instruction"
) -> tuple[list[dict], list[dict]]:
    """Offer ``candidates`` (dicts with ``id`` and ``text_key``) in order.

    Returns (kept candidates, each with ``max_rouge_l`` set; reject rows). Candidates beyond
    ``room`` are not offered (the run stops at its target) and are recorded as
    ``target_reached``; candidates too close to a pool text as ``rouge_l_too_similar``, with
    the nearest text and the score.
    """
    room = max(room, 0)
    rejects = [
        reject(source, "target_reached", stage="novelty", id=c["id"], detail=c[text_key])
        for c in candidates[room:]
    ]
    offered = candidates[:room]
    kept = []
    for c, d in zip(offered, pool.add_detailed([c[text_key] for c in offered])):
        if d["kept"]:
            kept.append({**c, "max_rouge_l": d["score"]})
        else:
            detail = f"{d['score']:.4f} vs {d['nearest_text']!r}: {c[text_key]}"
            rejects.append(
                reject(source, "rouge_l_too_similar", stage="novelty", id=c["id"], detail=detail)
            )
    return kept, rejects
