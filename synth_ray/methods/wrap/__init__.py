"""WRAP: Web Rephrase Augmented Pretraining (survey, "Synthetic data for pretraining").

Maini et al. (Apple) rephrase C4 documents with an instruction-tuned model in four styles:
(i) easy text a child can understand, (ii) medium, high-quality Wikipedia-like text, (iii) hard,
terse and abstruse text, (iv) Q&A in conversational question-answering format, each over at most
300 tokens (longer inputs lost information), and pretrain on real and synthetic text sampled
1:1 (keeping the noisy web text's typos and style in the mix).

Defaults are the paper's: the four style prompts of the survey verbatim (``templates/``, in the
Vicuna chat format the survey shows), 300-token chunks, a 1:1 mix.
Named deviations, all options:
- ``prompt_format``: the paper sends the Vicuna-style text as a raw prompt (``raw``). The
  default here, ``auto``, follows the model: a model with a chat template (every
  instruction-tuned model, SmolLM2-135M-Instruct, the tiny test model) gets the same
  instruction as system + user messages through its own template (``chat``), a base model the
  raw text. Measured on SmolLM2-135M-Instruct: raw gave empty easy rephrasings and "A:\nA:..."
  loops in the hard and Q&A styles; chat gave readable rephrasings in all four. The resolved
  choice is in run.json (``prompt_format``) and in the request ids.
- ``sampling``: the survey gives no sampling parameters for WRAP; the defaults here
  (temperature 0.7, top_p 0.9, max_tokens 512) are ours.
- ``mix.real_to_synthetic``: the ratio of real to synthetic rows (1.0 = the paper's 1:1). The
  mix is made without repeating any row, so the side with more rows is subsampled.

Data flow, input file to Parquet::

    read_documents (JSONL plain or compressed, Parquet; streamed; bad files, rows and
                    duplicate ids -> rejects/)
      -> chunk_documents (<= chunk_tokens tokens of the model's tokenizer)
      -> build_requests (one per chunk and style; stable ids)
      -> generate_pending (skip ids already done; engine; append to data/)
      -> build_mix (real chunks + rephrasings at the configured ratio -> mix/)
"""

from synth_ray.methods.wrap.wrap import WRAP, WrapConfig

__all__ = ["WRAP", "WrapConfig"]
