"""Rendering (prompt, response) pairs in a model's chat template: shared by training and scoring.

A reward model must see at serving time exactly the tokens it was trained on, so the trainer's
data stages (``synth_ray.train.pref_data``) and the scorer (``synth_ray.engines.reward_model``)
both call :func:`full_tokens`.
"""

from __future__ import annotations

from typing import Any


def token_ids(out) -> list[int]:
    """``apply_chat_template(tokenize=True)`` output as a list of ints (transformers 5 returns a
    BatchEncoding, earlier versions a list)."""
    if hasattr(out, "input_ids"):
        out = out["input_ids"]
    return [int(t) for t in out]


def prompt_messages(prompt: Any) -> list[dict[str, str]]:
    """A row's prompt as chat messages: a string is one user turn; a list is taken as messages."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def response_message(response: Any) -> dict[str, str]:
    """A response as one assistant message: a string, or a one-message list (TRL's format)."""
    if isinstance(response, str):
        return {"role": "assistant", "content": response}
    msgs = list(response)
    if len(msgs) != 1 or msgs[0]["role"] != "assistant":
        raise ValueError("a conversational response must be a single assistant message")
    return {"role": "assistant", "content": msgs[0]["content"]}


def full_tokens(tokenizer, prompt: Any, response: Any) -> list[int]:
    """prompt + response in the chat template (what the reward model scores)."""
    msgs = prompt_messages(prompt) + [response_message(response)]
    return token_ids(tokenizer.apply_chat_template(msgs, tokenize=True))
