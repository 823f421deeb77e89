"""The verify stage: a verifier applied to rows on Ray Data, reward and reason recorded per row.

ReST-EM's E-step (survey, "Synthetic data for instruction-tuning") samples solutions and keeps
those with reward 1; this stage computes the reward. Each row is a problem with the model's
output in ``output_field``; columns added: ``reward`` (0 or 1), ``verify_reason`` (why, starting
with a code such as ``correct``, ``wrong_answer``, ``tests_passed``, ``wall_time_limit``) and
``verifier``. A row the verifier cannot judge (no output, a bad problem, an error inside the
verifier) gets reward 0 with its reason: every input row comes out, none is lost.

The verifier is built once per actor (``concurrency`` actors): the code verifier probes the
sandbox there and raises ``SandboxUnavailable`` at start if programs cannot be isolated; code
runs in sandbox processes, never in the actor's own process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pydantic import Field, field_validator

from synth_ray.config import StrictModel
from synth_ray.stages.verify.base import VERIFIERS, Verdict, build_verifier
from synth_ray.stages.verify.code_verifier import CodeVerifierConfig
from synth_ray.stages.verify.math_verifier import MathVerifierConfig

if TYPE_CHECKING:
    import ray.data

VERIFY_COLUMNS = {"reward": pa.int64(), "verify_reason": pa.string(), "verifier": pa.string()}


class VerifyStageConfig(StrictModel):
    verifier: str = Field("math", description="Registered verifier: math | code.")
    output_field: str = Field("output", description="Column holding the model's output.")
    math: MathVerifierConfig = Field(
        default_factory=MathVerifierConfig, description="Settings of the math verifier."
    )
    code: CodeVerifierConfig = Field(
        default_factory=CodeVerifierConfig, description="Settings of the code verifier."
    )
    batch_size: int = Field(16, ge=1, description="Rows per map_batches call.")
    concurrency: int = Field(1, ge=1, description="Verifier actors.")
    num_cpus: float = Field(
        0.5, gt=0, description="Logical CPUs per actor (the sandbox processes are extra)."
    )

    @field_validator("verifier")
    @classmethod
    def _known(cls, v: str) -> str:
        import synth_ray.stages.verify  # noqa: F401 - registration

        if v not in VERIFIERS:
            raise ValueError(f"unknown verifier {v!r}; known: {', '.join(VERIFIERS.names())}")
        return v

    def verifier_config(self) -> Any:
        return {"math": self.math, "code": self.code}.get(self.verifier)


class VerifyBatch:
    """Ray Data callable class: one verifier per actor, applied to each batch."""

    def __init__(self, config: dict):
        self.config = VerifyStageConfig.model_validate(config)
        self.verifier = build_verifier(self.config.verifier, self.config.verifier_config())

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        field = self.config.output_field
        todo = [i for i, r in enumerate(rows) if isinstance(r.get(field), str)]
        verdicts: list[Verdict] = [Verdict(0, f"no_output: no text in {field!r}")] * len(rows)
        try:
            got = self.verifier.verify_many([(rows[i], rows[i][field]) for i in todo])
        except Exception:  # judged one by one below, each failure its own reason
            got = [self._one(rows[i], rows[i][field]) for i in todo]
        for i, v in zip(todo, got):
            verdicts[i] = v
        for name, values in (
            ("reward", [v.reward for v in verdicts]),
            ("verify_reason", [v.reason for v in verdicts]),
            ("verifier", [self.config.verifier] * len(rows)),
        ):
            if name in batch.column_names:
                batch = batch.drop_columns([name])
            batch = batch.append_column(name, pa.array(values, type=VERIFY_COLUMNS[name]))
        return batch

    def _one(self, row: dict, output: str) -> Verdict:
        try:
            return self.verifier.verify(row, output)
        except Exception as exc:  # a row, not the job, fails
            return Verdict(0, f"verifier_error: {type(exc).__name__}: {str(exc)[:200]}")


def verify_rows(ds: ray.data.Dataset, config: VerifyStageConfig) -> ray.data.Dataset:
    """``ds`` with ``reward``, ``verify_reason`` and ``verifier`` added to every row."""
    import ray.data

    return ds.map_batches(
        VerifyBatch,
        fn_constructor_kwargs={"config": config.model_dump()},
        batch_size=config.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=config.concurrency),
        num_cpus=config.num_cpus,
    )
