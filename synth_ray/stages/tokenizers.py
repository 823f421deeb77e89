"""Tokenizers loaded once per worker process."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4)
def load_tokenizer(source: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source)
    tok.model_max_length = 1 << 30  # used for counting and chunking, never to truncate
    return tok
