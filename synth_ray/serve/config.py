"""The scoring app's arguments: the ``args:`` block of an application in ``serve/config.yaml``.

Serve's own settings (replicas, autoscaling, ``max_ongoing_requests``, ``max_queued_requests``,
``backpressure_config``, ``ray_actor_options``) stay in the config file's ``deployments:`` list,
where Serve and KubeRay's RayService read them; these models cover what the app itself needs.
Unknown keys are rejected; ``synth-ray serve`` validates before starting anything.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from synth_ray.config import StrictModel
from synth_ray.engines.vllm_engine import VLLMEngineConfig


class RewardModelConfig(StrictModel):
    model: str = Field(
        "tiny-reward",
        description="Reward model: a local folder or hub id of a sequence classifier with one "
        "label (what `synth-ray run jobs/reward.yaml` writes to OUTPUT_DIR/model), or "
        "'tiny-reward' (a random tiny one built on demand, for tests and demos).",
    )
    revision: str | None = Field(
        None, description="Hub revision (branch, tag or commit) to load; reported in replies."
    )
    batching: bool = Field(
        True,
        description="Dynamic batching (@serve.batch): items of concurrent requests share one "
        "forward pass. Off: one forward per item (benchmarks/serve_load.py compares both).",
    )
    max_batch_size: int = Field(32, ge=1, description="Items per forward pass at most.")
    batch_wait_timeout_s: float = Field(
        0.005, ge=0, description="How long a batch waits for more items before it runs."
    )
    max_length: int = Field(
        2048,
        ge=8,
        description="Tokens per (prompt, response) at most; longer inputs are "
        "truncated keeping the start (as the reward trainer truncates), flagged `truncated`.",
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights dtype (float32 on CPU)."
    )
    torch_threads: int | None = Field(
        None, ge=1, description="torch intra-op threads of a replica (default: torch's choice)."
    )


class JudgeConfig(StrictModel):
    model: str = Field(
        "tiny",
        description="The judge LLM (an instruction-tuned model for the rubrics; a pretrained LM "
        "is what Constitutional AI uses for /v1/compare): folder, hub id, or 'tiny'.",
    )
    engine: VLLMEngineConfig = Field(
        default_factory=VLLMEngineConfig,
        description="vLLM engine settings (device, max_model_len, kv_cache_space_gb, "
        "engine_kwargs...). The replica's resources come from the deployment's "
        "ray_actor_options in the Serve config.",
    )
    temperature: float = Field(
        0.7,
        ge=0,
        description="Sampling temperature of the judgements (several samples are "
        "averaged, so they must differ).",
    )
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling of the judgements.")
    max_tokens: int = Field(
        256, ge=8, description="Tokens per judgement (the rubrics ask for <= 100 words + score)."
    )
    default_samples: int = Field(
        3,
        ge=1,
        description="Judgements averaged per item when a request does not say "
        "(Self-Rewarding scores each response three times).",
    )
    output: Literal["regex", "json", "free"] = Field(
        "regex",
        description="How judgements are produced. regex (default): vLLM structured outputs "
        "constrain each to '<reasoning line>\\nScore: N', so every judgement parses; json: to "
        "{reasoning, score}; free: unconstrained text parsed for its last 'Score: N' (the "
        "papers; a small model rarely writes one). The reply reports the parse rate.",
    )
    max_reason_chars: int = Field(
        400, ge=16, description="Constrained outputs: characters of reasoning at most."
    )
    guided_format: bool | None = Field(
        None, description="Deprecated: true is output: regex, false is output: free."
    )
    seed: int | None = Field(
        None, description="Base sampling seed (None: random); item i, sample j uses seed+i*n+j."
    )

    @model_validator(mode="before")
    @classmethod
    def _guided_format(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("guided_format") is not None:
            data = {**data, "output": "regex" if data["guided_format"] else "free"}
            data["guided_format"] = None
        return data


class LimitsConfig(StrictModel):
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Request bodies over this many bytes are refused (413)."
    )
    max_items: int = Field(64, ge=1, description="Items per request at most (413 above).")
    max_text_chars: int = Field(
        32_000, ge=1, description="Characters per text field (prompt, response, principle)."
    )
    over_long: Literal["truncate", "refuse"] = Field(
        "truncate",
        description="A text over max_text_chars: 'truncate' keeps its first max_text_chars "
        "characters and flags the item `truncated`; 'refuse' answers 413 naming the field.",
    )
    max_samples: int = Field(8, ge=1, description="Most judgements a request may ask per item.")


class AuthConfig(StrictModel):
    token_env: str = Field(
        "SYNTH_RAY_SERVE_TOKEN",
        description="Environment variable holding the bearer token (of the replica processes).",
    )
    token_file: str | None = Field(
        None,
        description="File holding the bearer token (a mounted Kubernetes Secret); read at "
        "start. Takes precedence over token_env. The token itself never goes in this config.",
    )
    required: bool = Field(
        False,
        description="Refuse to start when no token is configured (production). Off: with no "
        "token the service is open (local development).",
    )


class ServeAppConfig(StrictModel):
    """Arguments of ``synth_ray.serve.app:build_app``."""

    reward: RewardModelConfig | None = Field(
        default_factory=RewardModelConfig,
        description="The reward model behind /v1/reward and /get_reward; null: not deployed.",
    )
    judge: JudgeConfig | None = Field(
        default_factory=JudgeConfig,
        description="The LLM judge behind /v1/judge and /v1/compare; null: not deployed.",
    )
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Request limits.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Bearer-token auth.")
