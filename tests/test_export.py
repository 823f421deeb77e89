"""`synth-ray export`: a run's dataset/ as Alpaca JSON and chat JSONL, read by `datasets` and
trained on by TRL's SFTTrainer as written (the Alpaca file through a formatting_func)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth_ray.export import export

SYSTEM = "Tu es un assistant serviable."

# (id, instruction, input, output); written out of id order, over two files
ROWS_A = [
    ("r3", "Translate into French: “good morning” ☀", "", "Bonjour ! — « bonjour »"),
    ("r2", "List two primes.", "", ""),  # empty output: skipped
    ("r0", "   ", "x", "y"),  # blank instruction: skipped
]
ROWS_B = [
    ("r1", "Résume ce texte.", "Der Bär schläft. 熊が寝ている。\u2028Fin.", "Ein Bär schläft 🐻."),
    ("r4", "Add the numbers.", None, "5"),  # null input reads as ""
]
EXPECTED_ALPACA = [
    {
        "instruction": "Résume ce texte.",
        "input": "Der Bär schläft. 熊が寝ている。\u2028Fin.",
        "output": "Ein Bär schläft 🐻.",
    },
    {
        "instruction": "Translate into French: “good morning” ☀",
        "input": "",
        "output": "Bonjour ! — « bonjour »",
    },
    {"instruction": "Add the numbers.", "input": "", "output": "5"},
]
EXPECTED_CHATS = [
    [
        {
            "role": "user",
            "content": "Résume ce texte.\n\nDer Bär schläft. 熊が寝ている。\u2028Fin.",
        },
        {"role": "assistant", "content": "Ein Bär schläft 🐻."},
    ],
    [
        {"role": "user", "content": "Translate into French: “good morning” ☀"},
        {"role": "assistant", "content": "Bonjour ! — « bonjour »"},
    ],
    [{"role": "user", "content": "Add the numbers."}, {"role": "assistant", "content": "5"}],
]
EXPECTED_COUNTS = {"rows": 5, "written": 3, "skipped": {"empty_instruction": 1, "empty_output": 1}}

# Alpaca's own prompt templates (tatsu-lab/stanford_alpaca, train.py)
ALPACA_PROMPT_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


def _table(rows: list[tuple], **extra) -> pa.Table:
    ids, instr, inp, out = zip(*rows)
    n = len(rows)
    return pa.table(
        {
            "id": list(ids),
            "instruction": list(instr),
            "input": pa.array(inp, pa.string()),
            "output": list(out),
            "method": ["self_instruct"] * n,
            "round": list(range(n)),
            "seed_ids": pa.array([["s1", "s2"]] * n, pa.list_(pa.string())),
            "model": ["tiny"] * n,
            "run_id": ["run-1"] * n,
            **extra,
        }
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "dataset" / "part").mkdir(parents=True)
    pq.write_table(_table(ROWS_A), run / "dataset" / "a.parquet")
    pq.write_table(_table(ROWS_B), run / "dataset" / "part" / "b.parquet")
    for other in ("data", "rejects"):  # not the final rows: never exported
        (run / other).mkdir()
        pq.write_table(_table([("zz", "Other folder.", "", "ignored")]), run / other / "x.parquet")
    (run / "run.json").write_text(json.dumps({"run_id": "run-1", "status": "ok"}))
    return run


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "synth_ray.cli", "export", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _load(path: Path, cache: Path):
    from datasets import load_dataset

    return load_dataset("json", data_files=str(path), split="train", cache_dir=str(cache))


def test_export_cli_and_function(run_dir, tmp_path):
    for fmt, extra in (("alpaca", []), ("messages", ["--system-prompt", SYSTEM])):
        proc = _cli(str(run_dir), "--format", fmt, *extra)
        assert proc.returncode == 0, proc.stderr
        counts = json.loads(proc.stdout.strip().splitlines()[-1])
        default = run_dir / "export" / ("alpaca.json" if fmt == "alpaca" else "messages.jsonl")
        assert counts == {"format": fmt, "out": str(default), **EXPECTED_COUNTS}
    alpaca = run_dir / "export" / "alpaca.json"
    assert json.loads(alpaca.read_text(encoding="utf-8")) == EXPECTED_ALPACA
    assert "熊が寝ている" in alpaca.read_text(encoding="utf-8")  # ensure_ascii=False
    system_chats = run_dir / "export" / "messages.jsonl"
    lines = system_chats.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == 4  # U+2028 escaped: one row per line for any reader
    assert [
        json.loads(x)["messages"] for x in system_chats.read_text(encoding="utf-8").splitlines()
    ] == [[{"role": "system", "content": SYSTEM}, *c] for c in EXPECTED_CHATS]

    out = tmp_path / "elsewhere" / "chats.jsonl"
    assert export(str(run_dir), str(out), "messages") == {
        "format": "messages",
        "out": str(out),
        **EXPECTED_COUNTS,
    }
    assert not [p for p in out.parent.iterdir() if p != out]  # no temp file left behind

    cache = tmp_path / "hf_cache"
    ds = _load(alpaca, cache)
    assert ds.column_names == ["instruction", "input", "output"] and ds.to_list() == EXPECTED_ALPACA
    ds = _load(out, cache)
    assert ds.column_names == ["messages"] and [r["messages"] for r in ds] == EXPECTED_CHATS
    ds = _load(system_chats, cache)
    assert [r["messages"] for r in ds] == [
        [{"role": "system", "content": SYSTEM}, *c] for c in EXPECTED_CHATS
    ]


def _train(tiny_model: str, dataset, out_dir: Path, **trainer_kwargs) -> tuple[float, bool]:
    """Two SFT steps on CPU: (training loss, whether a weight changed)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    before = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    args = SFTConfig(
        output_dir=str(out_dir),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        max_length=256,
        use_cpu=True,
        bf16=False,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, **trainer_kwargs
    )
    result = trainer.train()
    after = trainer.model.model.layers[0].self_attn.q_proj.weight.detach()
    return result.training_loss, not torch.equal(before, after)


def _alpaca_text(example: dict) -> str:
    """SFTTrainer's formatting_func for Alpaca rows (trainer configuration; the file is as exported)."""
    template = ALPACA_PROMPT_INPUT if example["input"] else ALPACA_PROMPT_NO_INPUT
    return template.format(**example) + example["output"]


@pytest.mark.slow
@pytest.mark.train
def test_sft_trainer_trains_on_exports(run_dir, tmp_path, tiny_model):
    alpaca, chats = tmp_path / "alpaca.json", tmp_path / "messages.jsonl"
    export(str(run_dir), str(alpaca), "alpaca")
    export(str(run_dir), str(chats), "messages", system_prompt=SYSTEM)
    cache = tmp_path / "hf_cache"

    # chat JSONL: TRL's conversational language-modeling type, the tokenizer's chat template applied
    loss, changed = _train(tiny_model, _load(chats, cache), tmp_path / "sft-messages")
    assert math.isfinite(loss) and loss > 0 and changed

    # Alpaca JSON: none of TRL's dataset types (text / messages / prompt+completion), so a formatting_func
    loss, changed = _train(
        tiny_model, _load(alpaca, cache), tmp_path / "sft-alpaca", formatting_func=_alpaca_text
    )
    assert math.isfinite(loss) and loss > 0 and changed


def test_missing_dataset_dir(tmp_path):
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    pq.write_table(_table(ROWS_B), run / "data" / "x.parquet")
    with pytest.raises(FileNotFoundError, match="no dataset folder") as exc:
        export(str(run), str(tmp_path / "out.json"), "alpaca")
    assert str(run / "dataset") in str(exc.value)
    proc = _cli(str(run), "--format", "messages")
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"synth-ray: export error: no dataset folder: {run / 'dataset'}" in proc.stderr
    assert not (run / "export").exists()

    (run / "dataset").mkdir()
    with pytest.raises(FileNotFoundError, match="no Parquet files in"):
        export(str(run), str(tmp_path / "out.json"), "alpaca")


def test_missing_columns_is_an_error_and_leaves_files_alone(tmp_path):
    run = tmp_path / "run"
    (run / "dataset").mkdir(parents=True)
    pq.write_table(_table(ROWS_A), run / "dataset" / "a.parquet")
    bad = run / "dataset" / "b.parquet"
    pq.write_table(pa.table({"id": ["r9"], "instruction": ["Hi."], "text": ["x"]}), bad)
    out = tmp_path / "alpaca.json"
    out.write_text("previous export")
    with pytest.raises(ValueError, match=r"lacks the required column\(s\) input, output") as exc:
        export(str(run), str(out), "alpaca")
    assert str(bad) in str(exc.value)
    proc = _cli(str(run), "--format", "alpaca", "--out", str(out))
    assert proc.returncode == 2 and proc.stdout == ""
    assert (
        "synth-ray: export error:" in proc.stderr
        and "input, output" in proc.stderr
        and str(bad) in proc.stderr
    )
    # neither moved aside as unreadable (as a job's resume would) nor the old export replaced
    assert sorted(p.name for p in (run / "dataset").iterdir()) == ["a.parquet", "b.parquet"]
    assert out.read_text() == "previous export"


def test_bad_arguments(run_dir, tmp_path):
    with pytest.raises(ValueError, match="messages format only"):
        export(str(run_dir), str(tmp_path / "a.json"), "alpaca", system_prompt=SYSTEM)
    with pytest.raises(ValueError, match="unknown export format 'sharegpt'"):
        export(str(run_dir), str(tmp_path / "a.json"), "sharegpt")  # type: ignore[arg-type]
    proc = _cli(str(run_dir), "--format", "alpaca", "--system-prompt", SYSTEM)
    assert proc.returncode == 2 and "messages format only" in proc.stderr
    assert _cli(str(run_dir), "--format", "sharegpt").returncode == 2  # argparse choices
    assert not (tmp_path / "a.json").exists()
