"""Driver side of a training job: data through Ray Data, a ``TorchTrainer`` fit, the model out.

    read_training_rows (Parquet / JSON(L) of a generation job; bad records -> rejects/)
      -> tokenize (a Ray Data stage, CPU tasks) -> materialized in the object store
      -> TorchTrainer(num_workers, each streaming its shard) -> checkpoints under storage_path
      -> OUTPUT_DIR/model/ (Hugging Face folder) ; run.json (rows, tokens, steps, losses, tok/s)

A rerun of a finished job finds ``OUTPUT_DIR/model/`` complete and trains nothing; a rerun of an
interrupted one resumes from the latest checkpoint in ``storage_path``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from synth_ray.io import fs
from synth_ray.job import JobContext
from synth_ray.train.base import copy_model, run_config, scaling_config, steps_for
from synth_ray.train.data import no_usable_rows, read_training_rows, tokenize_sft
from synth_ray.train.hf_worker import FINAL_MARKER


def run_trainer(
    ctx: JobContext,
    loop: Callable[[dict], None],
    kind: str,
    tokenize: Callable = tokenize_sft,
    columns: tuple[str, ...] = ("input_ids", "labels"),
    extra_loop_config: dict[str, Any] | None = None,
    rows_kind: str = "sft",
) -> None:
    """Read ``cfg.input`` as ``rows_kind`` rows (``synth_ray.io.rows``: every bad record or file
    a reject in OUTPUT_DIR/rejects/; an input with no usable row stops here, naming it),
    tokenize them with ``tokenize`` (a Ray Data batch function taking ``tokenizer_source`` and
    ``max_length``; it may add ``n_tokens``/``n_target`` columns for the record), train with
    ``loop`` on ``columns``, write OUTPUT_DIR/model/."""
    import pyarrow.compute as pc
    from ray.train.torch import TorchTrainer

    cfg = ctx.config
    rec = ctx.record
    model_dir = fs.join(ctx.layout.root, "model")
    if fs.exists(fs.join(model_dir, FINAL_MARKER)):
        rec.counts["training"] = {"skipped": "OUTPUT_DIR/model/ is complete (delete it to retrain)"}
        return
    with rec.stage("read"):
        text_field = getattr(cfg, "text_field", "text")
        rows = read_training_rows(cfg.input, rows_kind, ctx.layout.rejects, text_field)
        rows = rows.materialize()  # read once: the count and the tokenizer share it
        n_in = rows.count()
    if n_in == 0:
        rec.count_rejects()  # the failed run's run.json says why
        raise no_usable_rows(cfg.input, ctx.layout.rejects)
    with rec.stage("tokenize"):
        data = rows.map_batches(
            tokenize,
            batch_format="pyarrow",
            fn_kwargs={"tokenizer_source": ctx.model.source, "max_length": cfg.max_length},
        )
        data = data.materialize()
        n_rows = data.count()
        stats = data.to_arrow_refs()
        tokens = target = 0
        import ray

        for t in ray.get(stats):
            if "n_tokens" in t.column_names:
                tokens += int(pc.sum(t.column("n_tokens")).as_py() or 0)
            if "n_target" in t.column_names:
                target += int(pc.sum(t.column("n_target")).as_py() or 0)
    if n_rows == 0:
        raise ValueError(f"field 'input': no trainable rows in {cfg.input} ({n_in} read)")
    steps = steps_for(n_rows, cfg)
    loop_config: dict[str, Any] = {
        **cfg.model_dump(mode="json", exclude={"scaling", "checkpoint"}),
        "model": ctx.model.source,
        "use_gpu": cfg.scaling.use_gpu,
        "torch_threads": cfg.scaling.torch_threads,
        "save_steps": cfg.checkpoint.save_steps,
        "max_steps": steps,
        "fail_marker": fs.join(ctx.layout.root, "train", ".failed_once"),
        "deepspeed_dict": _deepspeed_dict(cfg),
        **(extra_loop_config or {}),
    }
    trainer = TorchTrainer(
        loop,
        train_loop_config=loop_config,
        scaling_config=scaling_config(cfg),
        run_config=run_config(cfg, ctx.layout.root, kind),
        datasets={"train": data.select_columns(list(columns))},
    )
    t0 = time.perf_counter()
    with rec.stage("train"):
        result = trainer.fit()
    train_s = time.perf_counter() - t0
    if result.error:
        raise result.error
    with result.checkpoint.as_directory() as d:
        if not fs.exists(fs.join(d, FINAL_MARKER)):
            raise RuntimeError(
                f"the last checkpoint ({result.checkpoint.path}) is not a final model"
            )
        copy_model(d, ctx.layout.root)
    m = result.metrics or {}
    rec.counts["training"] = {
        "rows_read": n_in,
        "rows_trained": n_rows,
        "rows_dropped": n_in - n_rows,
        "tokens": tokens,
        "target_tokens": target,
        "steps": steps,
        "workers": cfg.scaling.num_workers,
        "global_step": m.get("global_step"),
        "deepspeed": m.get("deepspeed"),
        "steady_s_per_step": m.get("steady_s_per_step"),
        "resumed_from_step": m.get("resumed_from_step"),
        "train_loss": m.get("train_loss"),
        "first_logged_loss": m.get("first_logged_loss"),
        "last_logged_loss": m.get("last_logged_loss"),
        # Tokens the workers went through (rows are reused when steps span several epochs),
        # per second of fit() including worker start-up: benchmarks/ measures steady state.
        "tokens_per_s_incl_startup": round(tokens * _rows_seen(cfg, steps) / n_rows / train_s, 1),
        "checkpoint": result.checkpoint.path,
    }
    rec.extra["model_dir"] = fs.join(ctx.layout.root, "model")


def _rows_seen(cfg, steps: int) -> int:
    return (
        steps
        * cfg.scaling.num_workers
        * cfg.per_device_batch_size
        * cfg.gradient_accumulation_steps
    )


def _deepspeed_dict(cfg) -> dict | None:
    """The DeepSpeed JSON config (batch sizes "auto": filled in by the trainer), or None."""
    if not cfg.deepspeed.enabled:
        return None
    return cfg.deepspeed.to_dict()
