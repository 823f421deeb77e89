"""The verifier contract and registry: (problem row, model output) -> reward in {0, 1} + reason.

ReST-EM (survey, "Synthetic data for instruction-tuning") filters sampled solutions by a
binary reward: for math the final answer against the ground truth, for code the program against
test cases. Each verifier is one module registering a class under a name; ``build_verifier``
fails on an unknown name, listing the known ones. Reasons start with a machine-groupable code
(``correct``, ``wrong_answer``, ``tests_passed``, ``test_failed``, ``wall_time_limit``, ...),
then ``: `` and the detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synth_ray.registry import Registry

VERIFIERS: Registry[type[Verifier]] = Registry("verifier")


@dataclass(frozen=True)
class Verdict:
    reward: int  # 1: accepted, 0: not
    reason: str

    @property
    def code(self) -> str:
        """The machine-groupable part of the reason."""
        return self.reason.split(":", 1)[0].strip()


class Verifier:
    """Subclasses set ``name`` and implement ``verify``; ``close`` frees helper processes."""

    name = ""

    def verify(self, problem: dict[str, Any], output: str) -> Verdict:
        raise NotImplementedError

    def verify_many(self, pairs: list[tuple[dict[str, Any], str]]) -> list[Verdict]:
        """Verdicts of (problem, output) pairs, in order; verifiers may run them concurrently."""
        return [self.verify(p, o) for p, o in pairs]

    def close(self) -> None:
        pass


def build_verifier(name: str, config: Any = None) -> Verifier:
    """The verifier ``name`` built with its config (its own config model, or None: defaults)."""
    import synth_ray.stages.verify  # noqa: F401 - registers the built-in verifiers

    cls = VERIFIERS.get(name)
    return cls(config) if config is not None else cls()
