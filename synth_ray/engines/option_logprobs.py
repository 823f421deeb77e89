"""The log-probability of a continuation after a prompt, from vLLM's prompt log-probabilities:
what Constitutional AI's feedback model reads off for the options "(A)" and "(B)" (the scoring
service's ``/v1/compare`` and the RL-CAI label stage share it).

The prompt and the prompt + option are tokenized whole (so the option's tokens are the ones the
model sees after that prompt, merges at the seam included); the option's log-probability is the
sum of the prompt log-probabilities of the tokens after their common prefix, from one request
with ``prompt_logprobs=0`` (the chosen token's log-probability at every position) and a single
greedy output token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


def option_span(tokenize: Callable[[str], list[int]], prefix: str, option: str):
    """(token ids of prefix + option, index of the option's first token)."""
    head, full = tokenize(prefix), tokenize(prefix + option)
    n = 0
    while n < min(len(head), len(full)) and head[n] == full[n]:
        n += 1
    if n == len(full):
        raise ValueError(f"option {option!r} adds no tokens after the prompt")
    return full, max(n, 1)


def option_params():
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    return SamplingParams(
        max_tokens=1,
        temperature=0.0,
        prompt_logprobs=0,
        output_kind=RequestOutputKind.FINAL_ONLY,
    )


async def option_logprob(
    run: Callable[[Any, Any], Awaitable[Any]],
    tokenize: Callable[[str], list[int]],
    prefix: str,
    option: str,
) -> float:
    """Sum of log p(option's tokens | prefix); ``run(prompt, params)`` returns vLLM's final
    RequestOutput of one request."""
    from vllm.inputs import TokensPrompt

    full, start = option_span(tokenize, prefix, option)
    final = await run(TokensPrompt(prompt_token_ids=full), option_params())
    return sum(final.prompt_logprobs[pos][full[pos]].logprob for pos in range(start, len(full)))
