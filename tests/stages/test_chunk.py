"""Chunks never exceed the token bound and prefer sentence ends."""

from synth_ray.stages.chunk import chunk_text
from synth_ray.stages.tokenizers import load_tokenizer


def test_real_documents_within_bound(tiny_model, c4_docs):
    tok = load_tokenizer(tiny_model)
    for doc in c4_docs[:120]:
        chunks = chunk_text(doc["text"], tok, 300)
        assert chunks, doc["id"]
        for text, n in chunks:
            assert text == text.strip() and text
            assert n == len(tok(text, add_special_tokens=False)["input_ids"]) <= 300
        # nothing dropped: every word of the document is in some chunk, in order
        assert " ".join(doc["text"].split()) == " ".join(" ".join(t for t, _ in chunks).split())


def test_prefers_sentence_ends(tiny_model):
    tok = load_tokenizer(tiny_model)
    text = " ".join(f"Sentence number {i} is here and it goes on a while." for i in range(60))
    chunks = chunk_text(text, tok, 64)
    assert len(chunks) > 3
    assert all(t.endswith(".") for t, _ in chunks)
    assert all(n <= 64 for _, n in chunks)


def test_unbreakable_text_is_hard_split(tiny_model):
    tok = load_tokenizer(tiny_model)
    text = "x" * 5000 + " ünïcödé 漢字 🙂" * 50
    chunks = chunk_text(text, tok, 32)
    assert all(n <= 32 for _, n in chunks)
    assert "".join(t for t, _ in chunks).replace(" ", "") == text.replace(" ", "")


def test_short_and_whitespace(tiny_model):
    tok = load_tokenizer(tiny_model)
    assert chunk_text("  Hello.  ", tok, 300) == [
        ("Hello.", len(tok("Hello.", add_special_tokens=False)["input_ids"]))
    ]
    assert chunk_text("   ", tok, 300) == []
