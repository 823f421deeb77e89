"""The engine contract.

An engine turns a Ray Dataset of *requests* into a Dataset of *generations*.

Request columns (built by the prompt stage):
    id           str, stable id of the request (see ``synth_ray.io.ids``)
    prompt       str, raw text prompt (``input_kind="prompt"``), or
    messages     list of {role, content} (``input_kind="messages"``; chat template applied)
    sampling     str, JSON of the row's sampling parameters (``SamplingConfig`` fields)
    ...          any other column passes through unchanged

Generation columns added (one row per request and sample):
    id                 request id, suffixed ``-s<k>`` when ``n > 1``
    request_id         the request's id (the same for all n samples)
    sample_index       int, 0..n-1
    completion         str (empty on error)
    finish_reason      "stop" | "length" | "error"
    prompt_tokens      int
    completion_tokens  int
    error              null, or why this row failed
    model              the model name as configured
    engine_s           seconds the row spent in the engine (vllm) or in HTTP calls (openai)

An error whose text starts with ``INVALID_REQUEST`` failed for a reason a retry cannot fix (a
prompt longer than the model's context, a request the server rejects as invalid): resume treats
its id as done and records it, where other errors (timeouts, a dead engine) are retried by the
next run.

``n > 1`` is handled here, uniformly for every engine: a request is expanded into n rows with
seeds ``seed + k`` (when a seed is set), each sent with ``n=1``. Token accounting stays exact
per row, ids stay stable per sample, and vLLM's prefix cache makes the repeated prompt cheap.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pyarrow as pa
from pydantic import BeforeValidator, Field, model_validator

from synth_ray.config import StrictModel
from synth_ray.io.layout import FINAL_ERROR_PREFIX
from synth_ray.registry import Registry

if TYPE_CHECKING:
    import ray.data

    from synth_ray.models import ResolvedModel

ENGINES: Registry[type[Engine]] = Registry("engine")

INVALID_REQUEST = FINAL_ERROR_PREFIX  # "invalid_request: "

GENERATION_COLUMNS = (
    "request_id",
    "sample_index",
    "completion",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "error",
    "model",
    "engine_s",
)


class SamplingConfig(StrictModel):
    """Sampling parameters; a request row may carry its own (the ``sampling`` column)."""

    temperature: float = Field(1.0, ge=0.0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_tokens: int = Field(256, ge=1, description="Maximum completion tokens per sample.")
    n: int = Field(1, ge=1, le=64, description="Samples per prompt (expanded into n rows).")
    seed: int | None = Field(
        None, description="Base seed; sample k of a request uses seed + k. None: random."
    )
    presence_penalty: float = Field(
        0.0, ge=-2.0, le=2.0, description="Penalty on tokens already present (OpenAI semantics)."
    )
    frequency_penalty: float = Field(
        0.0, ge=-2.0, le=2.0, description="Penalty growing with a token's count so far."
    )
    stop: list[str] = Field(default_factory=list, description="Stop strings.")
    ignore_eos: bool = Field(
        False, description="Generate max_tokens whatever the model says (benchmarks, vLLM only)."
    )
    json_schema: dict[str, Any] | None = Field(
        None,
        description="Ask the engine for JSON matching this schema (vLLM structured outputs, "
        "or `response_format` on OpenAI-compatible servers).",
    )
    regex: str | None = Field(
        None,
        description="Constrain the completion to match this regular expression (vLLM "
        "structured outputs; `structured_outputs` on vLLM's OpenAI-compatible server). "
        "Exclusive with json_schema.",
    )

    @model_validator(mode="after")
    def _one_constraint(self) -> SamplingConfig:
        if self.regex is not None and self.json_schema is not None:
            raise ValueError("sampling: set regex or json_schema, not both")
        return self

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), sort_keys=True)


class EngineConfig(StrictModel):
    """Fields every engine shares; each engine subclasses it with a ``type`` literal."""

    type: str = Field(description="Engine name: one of the registered engines (vllm, openai).")
    replicas: int = Field(1, ge=1, description="Engine replicas (actor pool size).")
    batch_size: int = Field(64, ge=1, description="Rows sent to an engine replica per call.")


class Engine(ABC):
    config_cls: type[EngineConfig] = EngineConfig
    name: str = ""

    def __init__(self, config: EngineConfig, model: ResolvedModel):
        self.config = config
        self.model = model
        self.starts = 0  # engine start-ups caused by this object (recorded in run.json)
        # "dataset": engines may start per generate() call; "run": they stay up until close().
        lifetime = getattr(config, "lifetime", "run")
        self.lifetime = "dataset" if lifetime == "auto" else lifetime

    def use_lifetime(self, wanted: str) -> None:
        """The method's preference, applied when the config leaves ``lifetime`` on auto."""
        if getattr(self.config, "lifetime", None) == "auto":
            self.lifetime = wanted

    def rows_per_call(self, num_rows: int | None = None) -> int:
        """Rows one call to a replica takes (``batch_size``; an engine may send fewer when the
        dataset of ``num_rows`` is small). The generation stage writes its output per such
        batch, so a killed run keeps every finished one."""
        return self.config.batch_size

    def close(self) -> None:
        """Stop whatever this engine keeps running (long-lived replicas)."""

    def preflight(self) -> None:
        """Checks run before any work (endpoint reachable, model served, ...)."""

    @abstractmethod
    def _generate(
        self, ds: ray.data.Dataset, input_kind: str, num_rows: int | None = None
    ) -> ray.data.Dataset:
        """Generate for already-expanded rows (``n == 1`` each); ``num_rows``: a size hint."""

    def generate(
        self,
        ds: ray.data.Dataset,
        input_kind: Literal["prompt", "messages"] = "prompt",
        num_rows: int | None = None,
    ) -> ray.data.Dataset:
        """Generation rows for request rows; ``num_rows`` (rows after expanding ``n``), when the
        caller knows it, lets an engine spread a small dataset over all its replicas."""
        if input_kind not in ("prompt", "messages"):
            raise ValueError(f"input_kind must be 'prompt' or 'messages', not {input_kind!r}")
        ds = ds.map_batches(expand_samples, batch_format="pyarrow", num_cpus=0.25)
        return self._generate(ds, input_kind, num_rows)


def expand_samples(batch: pa.Table) -> pa.Table:
    """One row per (request, sample): ``n`` becomes 1, ``seed`` becomes ``seed + k``.

    Idempotent: rows that already carry ``sample_index`` pass unchanged.
    """
    if "sample_index" in batch.column_names:
        return batch
    ids = batch.column("id").to_pylist()
    samplings = [json.loads(s) for s in batch.column("sampling").to_pylist()]
    take, new_ids, req_ids, sample_idx, new_sampling = [], [], [], [], []
    for i, (rid, s) in enumerate(zip(ids, samplings)):
        n = int(s.get("n", 1) or 1)
        for k in range(n):
            take.append(i)
            req_ids.append(rid)
            sample_idx.append(k)
            new_ids.append(rid if n == 1 else f"{rid}-s{k}")
            sk = dict(s, n=1)
            if s.get("seed") is not None:
                sk["seed"] = int(s["seed"]) + k
            new_sampling.append(json.dumps(sk, sort_keys=True))
    out = batch.take(pa.array(take, pa.int64()))
    out = out.set_column(out.schema.get_field_index("id"), "id", pa.array(new_ids, pa.string()))
    out = out.set_column(
        out.schema.get_field_index("sampling"), "sampling", pa.array(new_sampling, pa.string())
    )
    out = out.append_column("request_id", pa.array(req_ids, pa.string()))
    return out.append_column("sample_index", pa.array(sample_idx, pa.int32()))


def finish_reason(error: str | None, completion_tokens: int, max_tokens: int) -> str:
    if error:
        return "error"
    return "length" if completion_tokens >= max_tokens else "stop"


def build_engine(config: EngineConfig | dict, model: ResolvedModel) -> Engine:
    if isinstance(config, dict):
        config = parse_engine_config(config)
    return ENGINES.get(config.type)(config, model)


def parse_engine_config(data: Any) -> EngineConfig:
    """Dispatch on ``type`` to the registered engine's config model."""
    if isinstance(data, EngineConfig):
        return data
    if not isinstance(data, dict):
        raise ValueError("engine must be a mapping with a 'type' field")
    etype = data.get("type", "vllm")
    try:
        cls = ENGINES.get(etype)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    return cls.config_cls.model_validate({**data, "type": etype})


def _engine_before(v: Any) -> EngineConfig:
    return parse_engine_config(v)


# Use as the type of a config field: validated by the engine registered under its ``type``.
EngineSpec = Annotated[EngineConfig, BeforeValidator(_engine_before)]
