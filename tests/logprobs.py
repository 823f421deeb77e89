"""An independent computation of an option's log-probability after a prompt, with transformers
on the full sequence (the scoring service's /v1/compare and the RL-CAI label stage are checked
against it)."""

from __future__ import annotations


def transformers_option_logprob(model, tok, prefix: str, option: str) -> float:
    """Sum of log p(option's tokens | prefix), tokenizing prefix and prefix + option whole."""
    import torch

    head, full = tok(prefix)["input_ids"], tok(prefix + option)["input_ids"]
    n = next(i for i, (a, b) in enumerate(zip(head + [-1], full)) if a != b)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([full])).logits[0].float(), -1)
    return sum(logp[pos - 1, full[pos]].item() for pos in range(n, len(full)))
