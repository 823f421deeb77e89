"""SFT throughput through Ray Train with 1 and 2 CPU workers, against a bare single process.

    .venv/bin/python benchmarks/training_throughput.py [--steps 40] [--rows 512] [--seq 128]

All three sides train the same model (a random Llama larger than the tiny test model: hidden
256, 4 layers, so a step is compute-bound) on the same fixed-length token rows, with TRL's
SFTTrainer, one torch thread per process, per-device batch 8:

- bare: one process, ``SFTTrainer`` on a ``datasets.Dataset`` of the rows, no Ray;
- ray1 / ray2: ``synth-ray run`` of ``method: sft`` (the job path: Ray Data tokenization, Ray
  Train workers fed by their Ray Data shards, checkpoints), 1 and 2 workers, 1 CPU each.

Throughput is steady state: the median step time from the 3rd step on (start-up, data loading
and checkpoint saves at the end are not counted), tokens/s = workers x batch x seq / step time.
Prints the scaling ratio (2 workers over 1, target >= 1.5) and the Ray overhead (bare over 1
worker). Last line: ``ratio=<2 workers / 1 worker>``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_model(path: Path) -> str:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from synth_ray.models.tiny import tiny_model_path

    tok = AutoTokenizer.from_pretrained(str(tiny_model_path()))
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def write_rows(path: Path, n: int, seq: int) -> None:
    """Plain texts long enough to fill ``seq`` tokens (pretrain-style rows, cut to seq)."""
    docs = [json.loads(line)["text"] for line in (REPO / "examples/c4_sample.jsonl").open()]
    text = " ".join(docs)
    words = text.split()
    rows = []
    for i in range(n):
        start = (i * 97) % max(1, len(words) - seq * 2)
        rows.append({"id": str(i), "text": " ".join(words[start : start + seq * 2])})
    import pyarrow as pa
    import pyarrow.parquet as pq

    (path / "mix").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path / "mix" / "part-0.parquet")


def bare(model: str, data: Path, steps: int, seq: int, batch: int) -> float:
    """Seconds per step of the same trainer in one process (steady state)."""
    import pyarrow.parquet as pq
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model)
    texts = pq.read_table(data / "mix" / "part-0.parquet").column("text").to_pylist()
    ids = [tok(t)["input_ids"][:seq] for t in texts]
    ds = Dataset.from_dict({"input_ids": ids, "labels": ids})
    ends: list[float] = []

    class Timer(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(
            output_dir=out,
            max_steps=steps,
            per_device_train_batch_size=batch,
            learning_rate=1e-4,
            report_to=[],
            use_cpu=True,
            save_strategy="no",
            disable_tqdm=True,
            logging_steps=10,
            remove_unused_columns=False,
            dataset_kwargs={"skip_prepare_dataset": True},
        )
        model_ = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
        SFTTrainer(
            model=model_, args=args, train_dataset=ds, processing_class=tok, callbacks=[Timer()]
        ).train()
    d = sorted(b - a for a, b in zip(ends[2:], ends[3:]))
    return d[len(d) // 2]


def ray_run(
    model: str, data: Path, workers: int, steps: int, seq: int, batch: int, out: Path
) -> float:
    cmd = [
        sys.executable,
        "-m",
        "synth_ray.cli",
        "run",
        str(REPO / "jobs/pretrain_wrap.yaml"),
        "--set",
        f"model={model}",
        "--set",
        f"input={data}",
        "--set",
        f"output_dir={out}",
        "--set",
        f"scaling.num_workers={workers}",
        "--set",
        "scaling.torch_threads=1",
        "--set",
        f"max_steps={steps}",
        "--set",
        f"max_length={seq}",
        "--set",
        f"per_device_batch_size={batch}",
        "--set",
        f"checkpoint.save_steps={steps}",
        "--set",
        "logging_steps=10",
    ]
    subprocess.run(
        cmd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, RAY_DEDUP_LOGS="1"),
    )
    rec = json.loads((out / "run.json").read_text())
    return float(rec["counts"]["training"]["steady_s_per_step"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_model(tmp / "model")
        write_rows(tmp / "data", a.rows, a.seq)
        tok_per_step = a.batch * a.seq
        s_bare = bare(model, tmp / "data", a.steps, a.seq, a.batch)
        print(
            f"bare (1 process, 1 thread): {s_bare * 1000:.1f} ms/step, "
            f"{tok_per_step / s_bare:,.0f} tokens/s",
            flush=True,
        )
        s1 = ray_run(model, tmp / "data", 1, a.steps, a.seq, a.batch, tmp / "r1")
        t1 = tok_per_step / s1
        print(f"Ray Train, 1 worker: {s1 * 1000:.1f} ms/step, {t1:,.0f} tokens/s", flush=True)
        s2 = ray_run(model, tmp / "data", 2, a.steps, a.seq, a.batch, tmp / "r2")
        t2 = 2 * tok_per_step / s2
        print(f"Ray Train, 2 workers: {s2 * 1000:.1f} ms/step, {t2:,.0f} tokens/s", flush=True)
        print(f"Ray overhead (bare / 1 worker tokens/s): {(tok_per_step / s_bare) / t1:.3f}")
        print(f"scaling (2 workers / 1 worker, target >= 1.5): {t2 / t1:.3f}")
        print(f"ratio={t2 / t1}")


if __name__ == "__main__":
    main()
