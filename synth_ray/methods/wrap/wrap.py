"""The WRAP job (see the package docstring for the method and its defaults)."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from synth_ray.config import ConfigError, StrictModel
from synth_ray.engines.base import SamplingConfig
from synth_ray.io import fs
from synth_ray.io.ids import stable_hash
from synth_ray.io.readers import InputError, ReadOptions, find_inputs, read_documents
from synth_ray.job import JOBS, GenerationJobConfig, Job, JobContext
from synth_ray.models import ModelNotFoundError, resolve_model
from synth_ray.stages.chunk import chunk_documents
from synth_ray.stages.generate import generate_pending
from synth_ray.stages.prompt import (
    PROMPT_FORMAT_HELP,
    PromptFormat,
    PromptTemplate,
    apply_prompt_format,
    load_template,
)

PAPER_STYLES = ["easy", "medium", "hard", "qa"]
_TEMPLATES = __package__


class MixConfig(StrictModel):
    real_to_synthetic: float = Field(
        1.0, gt=0, description="Real rows per synthetic row in mix/ (1.0 = WRAP's 1:1)."
    )
    seed: int = Field(0, description="Seed of the (deterministic) subsampling and interleaving.")
    enabled: bool = Field(True, description="Write OUTPUT_DIR/mix/.")


def _wrap_sampling() -> SamplingConfig:
    return SamplingConfig(temperature=0.7, top_p=0.9, max_tokens=512)


class WrapConfig(GenerationJobConfig):
    method: Literal["wrap"] = Field("wrap", description="WRAP rephrasing.")
    input: str | list[str] = Field(
        description="Documents: JSONL (plain, .gz, .zst, .bz2 or .xz) or Parquet files, "
        "folders, globs or URIs, mixed freely."
    )
    text_field: str = Field("text", description="Field holding a document's text.")
    id_field: str | None = Field(
        "id", description="Field holding a document's id (else '<file name>:<line>')."
    )
    max_doc_bytes: int = Field(
        1_000_000,
        ge=1,
        description="Documents larger than this (UTF-8 bytes) are rejected; "
        "smaller long documents are chunked.",
    )
    tokenizer: str | None = Field(
        None,
        description="Tokenizer that measures chunks (tiny, folder or hub id). Default: the model; "
        "set it when the model is only a served name (engine.type=openai).",
    )
    chunk_tokens: int = Field(
        300, ge=8, description="Max tokens (model tokenizer) per rephrased chunk; WRAP: 300."
    )
    styles: list[str] = Field(
        default_factory=lambda: list(PAPER_STYLES),
        min_length=1,
        description="Rephrasing styles; built in: easy, medium, hard, qa. Others need prompts.",
    )
    prompts: dict[str, str] = Field(
        default_factory=dict,
        description="Per-style template override (a file path or inline text with {text}).",
    )
    prompt_format: PromptFormat = Field(
        "auto",
        description=PROMPT_FORMAT_HELP + " raw sends the survey's Vicuna-format text (the paper's "
        "way); chat sends it as system + user messages.",
    )
    sampling: SamplingConfig = Field(
        default_factory=_wrap_sampling, description="Sampling for the rephrasings."
    )
    mix: MixConfig = Field(default_factory=MixConfig, description="The real+synthetic mix.")

    @field_validator("styles")
    @classmethod
    def _unique_styles(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("styles must not repeat")
        return v

    @model_validator(mode="after")
    def _known_styles(self):
        for style in self.styles:
            if style not in self.prompts and style not in PAPER_STYLES:
                raise ValueError(
                    f"style {style!r} has no built-in prompt (built in: {', '.join(PAPER_STYLES)}); "
                    f"give one under prompts.{style}"
                )
        return self

    def templates(self) -> dict[str, PromptTemplate]:
        out = {}
        for style in self.styles:
            t = load_template(_TEMPLATES, style, self.prompts.get(style))
            if "{text}" not in t.text:
                raise ConfigError(f"field 'prompts.{style}': template has no {{text}} placeholder")
            out[style] = t
        return out


def build_requests(
    batch: pa.Table, templates: dict, sampling: str, model: str, prompt_format: str
) -> pa.Table:
    """One request per chunk and style; ``templates`` maps style -> (name, text)."""
    tpls = {style: PromptTemplate(name, text) for style, (name, text) in templates.items()}
    hashes = {style: t.hash for style, t in tpls.items()}
    rows = []
    for chunk in batch.to_pylist():
        for style, t in tpls.items():
            row = {
                "id": stable_hash(
                    "wrap",
                    chunk["chunk_text"],
                    t.name,
                    hashes[style],
                    model,
                    sampling,
                    prompt_format,
                ),
                "doc_id": chunk["doc_id"],
                "chunk_id": chunk["chunk_id"],
                "source": chunk["source"],
                "style": style,
                "template": t.name,
                "template_hash": hashes[style],
                "input_text": chunk["chunk_text"],
                "input_tokens": chunk["chunk_tokens"],
                "sampling": sampling,
            }
            if prompt_format == "chat":
                row["messages"] = t.render_messages(text=chunk["chunk_text"])
            else:
                row["prompt"] = t.render(text=chunk["chunk_text"])
            rows.append(row)
    return pa.Table.from_pylist(rows)


@JOBS.register("wrap")
class WRAP(Job):
    """WRAP: web documents rephrased in 4 styles, mixed 1:1 with the real text (pretraining)."""

    config_cls = WrapConfig

    def preflight(self, config: WrapConfig) -> None:
        config.templates()
        try:
            find_inputs(config.input)
        except InputError as exc:
            raise ConfigError(str(exc)) from None
        self.tokenizer_source(config)

    @staticmethod
    def tokenizer_source(config: WrapConfig) -> str:
        spec = config.tokenizer or config.model
        try:
            return resolve_model(spec).source
        except ModelNotFoundError as exc:
            field = "tokenizer" if config.tokenizer else "model"
            raise ConfigError(
                f"field '{field}' (the tokenizer that measures chunks): {exc}"
            ) from None

    def run(self, ctx: JobContext) -> None:
        cfg: WrapConfig = ctx.config  # type: ignore[assignment]
        rec, layout = ctx.record, ctx.layout
        templates = {s: (t.name, t.text) for s, t in cfg.templates().items()}
        fmt = apply_prompt_format(ctx, cfg.prompt_format, self.tokenizer_source(cfg))

        with rec.stage("read_chunk"):
            opts = ReadOptions(cfg.text_field, cfg.id_field, cfg.max_doc_bytes, layout.rejects)
            docs = read_documents(cfg.input, opts)
            chunks = docs.map_batches(
                chunk_documents,
                fn_kwargs={"tokenizer": self.tokenizer_source(cfg), "max_tokens": cfg.chunk_tokens},
                batch_format="pyarrow",
            ).materialize()
        requests = chunks.map_batches(
            build_requests,
            fn_kwargs={
                "templates": templates,
                "sampling": cfg.sampling.to_json(),
                "model": ctx.model.fingerprint,
                "prompt_format": fmt.resolved,
            },
            batch_format="pyarrow",
        )
        with rec.stage("generate"):
            stats = generate_pending(ctx.engine, requests, layout.data, ctx.run_id, fmt.input_kind)
        n_chunks = chunks.count()
        rec.counts.update(
            documents=len(chunks.unique("doc_id")) if n_chunks else 0,
            chunks=n_chunks,
            requested=stats.requested,
            skipped_done=stats.skipped_done,
            generated=stats.generated,
            generation_errors=stats.errors,
        )
        rec.tokens["prompt"] += stats.prompt_tokens
        rec.tokens["completion"] += stats.completion_tokens
        if cfg.mix.enabled:
            with rec.stage("mix"):
                rec.counts["mix"] = build_mix(
                    layout.data, layout.sub("mix"), cfg.styles[0], cfg.mix
                )


def _mix_rows(batch: pa.Table, real_ids: set, synthetic_ids: set) -> pa.Table:
    """Mix rows from data rows: a chosen rephrasing, and/or its chosen real chunk."""
    out = []
    for r in batch.to_pylist():
        if r["id"] in synthetic_ids:
            out.append(
                {
                    "id": r["id"],
                    "text": r["completion"],
                    "origin": "synthetic",
                    "style": r["style"],
                    "doc_id": r["doc_id"],
                    "chunk_id": r["chunk_id"],
                }
            )
        if r["id"] in real_ids:
            out.append(
                {
                    "id": f"{r['chunk_id']}:real",
                    "text": r["input_text"],
                    "origin": "real",
                    "style": None,
                    "doc_id": r["doc_id"],
                    "chunk_id": r["chunk_id"],
                }
            )
    return pa.Table.from_pylist(out, schema=MIX_SCHEMA)


MIX_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("origin", pa.string()),
        ("style", pa.string()),
        ("doc_id", pa.string()),
        ("chunk_id", pa.string()),
    ]
)


def _smallest_keys(ids: list[str], n: int, seed: int) -> set[str]:
    return set(sorted(ids, key=lambda i: stable_hash(seed, i, length=16))[:n])


def build_mix(data_dir: str, mix_dir: str, first_style: str, mix: MixConfig) -> dict:
    """Real chunks and their rephrasings at ``real_to_synthetic`` rows, no row repeated.

    The selection is made on the driver from the id columns alone (exact counts), taking the
    rows with the smallest ``hash(seed, id)``: deterministic, so a rerun over the same data
    writes the same mix. The texts then stream from data/ to mix/ through Ray Data. A chunk's
    real text is carried by its data row of the first style (errored or not: the input is real).
    """
    import ray.data

    from synth_ray.io.layout import read_parquet_dir

    t = read_parquet_dir(data_dir, columns=["id", "chunk_id", "style", "error", "sample_index"])
    if t is None:
        return {"real": 0, "synthetic": 0}
    ok = t.filter(pc.is_null(t.column("error")))
    synthetic = ok.column("id").to_pylist()
    first = t.filter(
        pc.and_(pc.equal(t.column("style"), first_style), pc.equal(t.column("sample_index"), 0))
    )
    real = first.column("id").to_pylist()  # one data row per chunk stands for its real text
    r = mix.real_to_synthetic
    take_syn = min(len(synthetic), int(len(real) / r))
    take_real = min(len(real), int(round(take_syn * r)))
    syn_ids = _smallest_keys(synthetic, take_syn, mix.seed)
    real_ids = _smallest_keys(real, take_real, mix.seed)
    if fs.exists(mix_dir):
        for f in fs.list_files(mix_dir):
            fs.delete_file(f)
    if take_real + take_syn:
        data = ray.data.read_parquet(
            data_dir, columns=["id", "chunk_id", "doc_id", "style", "input_text", "completion"]
        )
        data.map_batches(
            _mix_rows,
            fn_kwargs={"real_ids": real_ids, "synthetic_ids": syn_ids},
            batch_format="pyarrow",
        ).write_parquet(mix_dir)
    return {
        "real": take_real,
        "synthetic": take_syn,
        "available_real": len(real),
        "available_synthetic": len(synthetic),
        "real_to_synthetic": r,
    }
