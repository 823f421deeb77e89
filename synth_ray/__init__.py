"""synth-ray: the synthetic-data methods of LLM finetuning as production jobs on Ray.

Layers import only downward:

    io, models, engines          data in/out (readers, writers, ids, rejects), model resolution,
                                 generation engines (vLLM on Ray Data, OpenAI-compatible HTTP)
    stages                       prompt building, chunking, parsing, filters
    methods                      one module per survey method (WRAP, ...)
    runner, cli                  job configs, run bookkeeping, the `synth-ray` command
"""

__version__ = "0.1.0"
