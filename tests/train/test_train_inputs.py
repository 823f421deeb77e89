"""Training inputs as real data comes: a folder mixing good and bad records (malformed JSON, a
missing field, a wrong type, an empty response, a BOM, gzip, an Alpaca list, an empty file)
trains on the good rows, every bad record or file is a reject with its reason in the run's
rejects/ and counted in run.json, and only an input with no usable row stops the run, naming it.

The fast tests run the trainers' own read path (``read_training_rows`` -> ``synth_ray.io.rows``)
with Ray Data's part done in this process, then the trainers' tokenize stage on what was read;
one slow test trains a real tiny SFT on the mixed folder."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from synth_ray.io.readers import find_inputs
from synth_ray.io.rejects import read_rejects
from synth_ray.io.rows import ROW_SCHEMAS, RowReader
from synth_ray.train.api import train_model
from synth_ray.train.data import TrainingInputError, read_training_rows_local

from ..conftest import REPO

U = {"role": "user", "content": "Hi?"}
A = {"role": "assistant", "content": "Hello."}


def _lines(*records) -> bytes:
    return b"".join(
        (r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records
    )


def mixed_sft(root: Path) -> tuple[Path, int, set[tuple[str, int | None, str]]]:
    """(folder, good rows, {(file, line, reason)} of its rejects)."""
    d = root / "sft_in"
    d.mkdir()
    (d / "plain.jsonl").write_bytes(
        _lines(
            {"instruction": "Add 2 and 3.", "input": "", "output": "5"},
            b'{"instruction": "cut',
            {"instruction": "Sum.", "input": "2, 3", "output": "5"},
            {"instruction": "No output."},
            {"instruction": 3, "output": "x"},
            {"instruction": "Say it.", "output": "  "},
        )
    )
    (d / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + _lines({"messages": [U, A]}))
    shard = _lines({"instruction": "Name a colour.", "output": "blue"}, b'"a string"')
    (d / "shard.jsonl.gz").write_bytes(gzip.compress(shard))
    export = [{"instruction": "Greet.", "input": "", "output": "hi"}, {"instruction": "x"}]
    (d / "export.json").write_text(json.dumps(export, indent=1))
    (d / "empty.jsonl").write_bytes(b"")
    rejects = {
        ("plain.jsonl", 2, "malformed_json"),
        ("plain.jsonl", 4, "missing_field"),
        ("plain.jsonl", 5, "wrong_type"),
        ("plain.jsonl", 6, "empty_field"),
        ("shard.jsonl.gz", 2, "not_an_object"),
        ("export.json", 2, "missing_field"),
        ("empty.jsonl", None, "empty_file"),
    }
    return d, 5, rejects


def mixed(root: Path, kind: str) -> tuple[Path, int, set]:
    """A mixed folder for each trainer's row kind (sft above; text, pairwise, kwise here)."""
    if kind == "sft":
        return mixed_sft(root)
    d = root / f"{kind}_in"
    d.mkdir()
    good, bad = {
        "text": (
            [{"body": "Plain pretraining text."}, {"body": "More text to learn."}],
            [({"body": ""}, "empty_field"), ({"text": "wrong field"}, "missing_field")],
        ),
        "pairwise": (
            [
                {"prompt": "Q?", "chosen": "good", "rejected": "bad"},
                {"prompt": [U], "chosen": [A], "rejected": "Bye."},
            ],
            [
                ({"prompt": "Q?", "chosen": "same", "rejected": "same"}, "chosen_equals_rejected"),
                ({"prompt": "Q?", "chosen": "good"}, "missing_field"),
            ],
        ),
        "kwise": (
            [{"prompt": "Q?", "responses": ["best", "mid", "worst"]}],
            [
                ({"prompt": "Q?", "responses": ["only one"]}, "too_few_responses"),
                ({"prompt": "Q?", "responses": ["a", 2]}, "wrong_type"),
            ],
        ),
    }[kind]
    records = [good[0], *(r for r, _ in bad), *good[1:]]
    (d / "rows.jsonl.gz").write_bytes(gzip.compress(b"\xef\xbb\xbf" + _lines(*records)))
    (d / "broken.jsonl").write_bytes(b"{not json\n")
    rejects = {("rows.jsonl.gz", i, reason) for i, (_, reason) in enumerate(bad, start=2)}
    return d, len(good), rejects | {("broken.jsonl", 1, "malformed_json")}


def _where(rejects) -> set[tuple[str, int | None, str]]:
    return {(r["source"].rsplit("/", 1)[1], r["line"], r["reason"]) for r in rejects}


class Tokenized(Exception):
    """Raised where the trainer hands the read rows to Ray Train: what it would train on."""

    def __init__(self, rows: list[dict], tokens: pa.Table):
        super().__init__(f"{len(rows)} rows")
        self.rows, self.tokens = rows, tokens


class InProcessRows:
    """The few Ray Dataset calls ``run_trainer`` makes on the read rows, done in this process;
    the tokenize stage runs on them as Ray Data would run it, then stops the run."""

    def __init__(self, rows: list[dict], kind: str):
        self.rows, self.kind = rows, kind

    def materialize(self):
        return self

    def count(self) -> int:
        return len(self.rows)

    def map_batches(self, fn, batch_format, fn_kwargs):
        table = pa.Table.from_pylist(self.rows, schema=ROW_SCHEMAS[self.kind])
        raise Tokenized(self.rows, fn(table, **fn_kwargs))


@pytest.fixture
def in_process_reads(monkeypatch):
    """``read_rows`` (one Ray Data task per file) run file by file in this process, with the
    same reader and options: rejects are written to the run's rejects/ as the tasks write them."""

    def read_rows(inputs, kind, opts):
        rows = [
            r
            for f in find_inputs(inputs)
            for t in RowReader(f, opts, kind).batches()
            for r in t.to_pylist()
        ]
        return InProcessRows(rows, kind)

    monkeypatch.setattr("synth_ray.train.data.read_rows", read_rows)


def test_a_mixed_folder_read_in_process(tmp_path):
    d, n_good, rejects = mixed_sft(tmp_path)
    rows, got = read_training_rows_local(str(d), "sft")
    assert len(rows) == n_good and all(r["messages"][-1]["role"] == "assistant" for r in rows)
    assert _where(got) == rejects


# (trainer, settings, the row kind its reader reads)
TRAINERS = [
    ("sft", {}, "sft"),
    ("pretrain", {"text_field": "body"}, "text"),
    ("dpo", {}, "pairwise"),
    ("reward", {}, "pairwise"),
    ("reward", {"loss": "kwise"}, "kwise"),
]


@pytest.mark.parametrize(("method", "settings", "kind"), TRAINERS)
def test_each_trainer_trains_on_the_good_rows_and_rejects_the_bad(
    method, settings, kind, tmp_path, tiny_model, in_process_reads
):
    d, n_good, rejects = mixed(tmp_path, kind)
    out = tmp_path / "out"
    with pytest.raises(Tokenized) as stop:
        train_model(method, str(d), tiny_model, str(out), {"max_length": 64, **settings})
    rows, tokens = stop.value.rows, stop.value.tokens
    assert len(rows) == n_good and set(rows[0]) == set(ROW_SCHEMAS[kind].names)
    assert tokens.num_rows == n_good  # the trainer's tokenize stage takes the canonical rows
    assert _where(read_rejects(str(out / "rejects")).to_pylist()) == rejects


def test_no_usable_row_stops_the_run_naming_the_input(tmp_path, tiny_model, in_process_reads):
    d = tmp_path / "all_bad"
    d.mkdir()
    (d / "a.jsonl").write_bytes(_lines(b"{oops", {"instruction": "no output"}))
    (d / "b.jsonl.gz").write_bytes(gzip.compress(_lines({"instruction": "x", "output": ""})))
    out = tmp_path / "out"
    with pytest.raises(TrainingInputError) as err:
        train_model("sft", str(d), tiny_model, str(out))
    msg = str(err.value)
    assert f"no usable training rows in {d}" in msg and "3 reject(s) from 2 file(s)" in msg
    assert "malformed_json 1" in msg and "empty_field 1" in msg and str(out / "rejects") in msg
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "failed" and "no usable training rows" in rec["error"]
    counts = rec["counts"]
    assert counts["rejected"] == 3
    assert counts["rejects_by_reason"] == {
        "malformed_json": 1,
        "missing_field": 1,
        "empty_field": 1,
    }
    assert counts["rejects_by_source"] == {str(d / "a.jsonl"): 2, str(d / "b.jsonl.gz"): 1}


def test_an_input_with_no_file_is_named(tmp_path, tiny_model):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(TrainingInputError, match="field 'input': no training data at .*nothing"):
        train_model("sft", str(tmp_path / "nothing"), tiny_model, str(tmp_path / "out"))


def test_loop_seed_pairs_skip_bad_records_and_write_them_as_rejects(tmp_path):
    from synth_ray.loops.backtranslation.backtranslation import BacktranslationConfig, seed_pairs

    d, n_good, rejects = mixed_sft(tmp_path)
    cfg = BacktranslationConfig(output_dir=str(tmp_path / "loop"), seeds=str(d))
    pairs = seed_pairs(cfg, str(tmp_path / "rej"))
    assert len(pairs) == n_good
    assert {"instruction": "Sum.\n\n2, 3", "output": "5"} in pairs
    assert _where(read_rejects(str(tmp_path / "rej")).to_pylist()) == rejects


@pytest.mark.slow
@pytest.mark.train
def test_tiny_sft_on_a_mixed_folder(ray_local, tmp_path):
    """A real SFT job (1 worker, 2 steps) on the mixed folder through Ray Data and Ray Train."""
    from synth_ray.runner import load_job_config, run_job

    d, n_good, rejects = mixed_sft(tmp_path)
    overrides = [
        f"input={d}",
        f"output_dir={tmp_path / 'out'}",
        "scaling.num_workers=1",
        "max_steps=2",
        "per_device_batch_size=2",
        "max_length=64",
        "logging_steps=1",
        "checkpoint.save_steps=2",
    ]
    rec = run_job(load_job_config(str(REPO / "jobs/sft.yaml"), overrides))
    t = rec["counts"]["training"]
    assert rec["status"] == "succeeded" and t["global_step"] == 2
    assert t["rows_read"] == t["rows_trained"] == n_good
    assert rec["counts"]["rejects_by_reason"] == Counter(r for _, _, r in rejects)
    by_source = Counter(str(d / f) for f, _, _ in rejects)
    assert rec["counts"]["rejects_by_source"] == by_source
    assert _where(read_rejects(str(tmp_path / "out" / "rejects")).to_pylist()) == rejects
    assert (tmp_path / "out" / "model" / "model.safetensors").exists()
