"""``prompt_format``: the one rule (auto = the model's chat template when its tokenizer has
one, else raw), its record in run.json, and how the round-based jobs send a raw prompt in chat
form. No Ray, no engine: the round stage's generation call is replaced by an echo, since the
stage's id mapping (not the engine) is under test."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from transformers import AutoTokenizer

from synth_ray.methods.wrap.wrap import WrapConfig, build_requests
from synth_ray.runner import load_job_config
from synth_ray.stages import rounds
from synth_ray.stages.prompt import (
    apply_prompt_format,
    as_chat_request,
    resolve_prompt_format,
)

from ..conftest import REPO


@pytest.fixture(scope="module")
def base_model(tiny_model, tmp_path_factory) -> str:
    """The tiny model's tokenizer without a chat template: what a base model looks like."""
    path = tmp_path_factory.mktemp("base-tok")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.chat_template = None
    tok.save_pretrained(path)
    assert not AutoTokenizer.from_pretrained(path).chat_template
    return str(path)


def test_auto_is_chat_for_a_model_with_a_chat_template(tiny_model):
    c = resolve_prompt_format("auto", tiny_model)
    assert (c.setting, c.resolved, c.input_kind) == ("auto", "chat", "messages")
    assert "has a chat template" in c.reason


def test_auto_is_raw_for_a_base_model(base_model):
    c = resolve_prompt_format("auto", base_model)
    assert (c.resolved, c.input_kind) == ("raw", "prompt")
    assert "no chat template" in c.reason


def test_auto_is_raw_when_the_tokenizer_cannot_be_looked_at(tmp_path):
    c = resolve_prompt_format("auto", str(tmp_path / "nothing-here"))
    assert c.resolved == "raw" and "could not be loaded" in c.reason
    assert resolve_prompt_format("auto", None).resolved == "raw"


@pytest.mark.parametrize("setting", ["raw", "chat"])
def test_explicit_settings_are_kept(setting, base_model, tiny_model):
    for model in (base_model, tiny_model):
        assert resolve_prompt_format(setting, model).resolved == setting
    with pytest.raises(ValueError, match="auto, raw or chat"):
        resolve_prompt_format("vicuna", tiny_model)


def test_apply_records_the_choice(tiny_model):
    ctx = SimpleNamespace(
        model=SimpleNamespace(kind="tiny", source=tiny_model),
        record=SimpleNamespace(extra={}),
        prompt_format="raw",
    )
    apply_prompt_format(ctx, "auto")
    assert ctx.prompt_format == "chat"
    assert ctx.record.extra["prompt_format"]["setting"] == "auto"
    assert ctx.record.extra["prompt_format"]["resolved"] == "chat"
    served = SimpleNamespace(
        model=SimpleNamespace(kind="served", source="gpt-x"), record=SimpleNamespace(extra={})
    )
    assert apply_prompt_format(served, "auto").resolved == "raw"  # nothing to look at


def test_every_prompt_sending_job_defaults_to_auto():
    for job in ("wrap", "self_instruct", "alpaca", "unnatural"):
        cfg = load_job_config(str(REPO / f"jobs/{job}.yaml"))
        assert cfg.prompt_format == "auto", job
    with pytest.raises(Exception, match="prompt_format"):
        load_job_config(str(REPO / "jobs/alpaca.yaml"), ["prompt_format=vicuna"])


def test_as_chat_request_keeps_the_prompt_text_and_changes_the_id():
    row = {"id": "gen-1", "prompt": "Come up with a series of tasks:\n1.", "sampling": "{}"}
    chat = as_chat_request(row)
    assert chat["messages"] == [{"role": "user", "content": row["prompt"]}]
    assert "prompt" not in chat and chat["sampling"] == "{}"
    assert chat["id"] == "gen-1-chat" != row["id"]


@pytest.mark.parametrize("fmt", ["raw", "chat"])
def test_round_stage_sends_chat_and_maps_ids_back(fmt, monkeypatch):
    seen = {}

    def echo(engine, requests, out_dir, run_id, input_kind="prompt"):
        seen["kind"], seen["ids"] = input_kind, [r["id"] for r in requests]
        out = []
        for r in requests:
            text = r["messages"][0]["content"] if input_kind == "messages" else r["prompt"]
            out.append({"request_id": r["id"], "sample_index": 0, "completion": text.upper()})
        return out, rounds.GenerationStats(requested=len(out), generated=len(out))

    monkeypatch.setattr(rounds, "generate_rows", echo)
    rec = SimpleNamespace(counts={}, tokens={"prompt": 0, "completion": 0}, stage=_nullstage)
    io = rounds.StageIO(
        None, "/tmp", "run", rounds.GenerationCounters(rec), "/tmp/rejects", prompt_format=fmt
    )
    reqs = [{"id": f"q{i}", "prompt": f"task {i}", "sampling": "{}"} for i in range(3)]
    by_req = rounds.generate_stage(io, "gen", reqs)
    assert sorted(by_req) == ["q0", "q1", "q2"]  # the method's own ids, whatever the format
    assert all(g["request_id"] == k for k, gens in by_req.items() for g in gens)
    assert [by_req[f"q{i}"][0]["completion"] for i in range(3)] == ["TASK 0", "TASK 1", "TASK 2"]
    if fmt == "chat":
        assert seen == {"kind": "messages", "ids": ["q0-chat", "q1-chat", "q2-chat"]}
    else:
        assert seen == {"kind": "prompt", "ids": ["q0", "q1", "q2"]}


class _nullstage:
    def __init__(self, name):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_wrap_requests_follow_the_resolved_format():
    import pyarrow as pa

    cfg = WrapConfig(input="x.jsonl", output_dir="/tmp/x")
    templates = {s: (t.name, t.text) for s, t in cfg.templates().items()}
    chunk = pa.Table.from_pylist(
        [
            {
                "doc_id": "d",
                "chunk_id": "d#0",
                "source": "f",
                "chunk_text": "Cats.",
                "chunk_tokens": 2,
            }
        ]
    )
    args = (chunk, templates, "{}", "m")
    raw, chat = build_requests(*args, "raw"), build_requests(*args, "chat")
    assert "prompt" in raw.column_names and "messages" not in raw.column_names
    msgs = chat.column("messages").to_pylist()[0]
    assert [m["role"] for m in msgs] == ["system", "user"] and "Cats." in msgs[1]["content"]
    assert "USER:" not in msgs[1]["content"] and "ASSISTANT:" not in msgs[1]["content"]
    assert set(raw.column("id").to_pylist()).isdisjoint(chat.column("id").to_pylist())
