"""LLM correction of pseudo-labels (LESS step 3).

- :mod:`less.llm.base`: the backend interface (``generate`` chat prompts, ``score`` text).
- :mod:`less.llm.hf`: in-process transformers causal LMs (local dir, hub id, GGUF).
- :mod:`less.llm.openai_http`: OpenAI-compatible servers (vLLM, NIM, Ollama, OpenAI).
- :mod:`less.llm.prompts` and ``prompts/*.txt``: correction prompts and ``prompt_sha``.
- :mod:`less.llm.cleaning`: answer extraction, plausibility checks, normalisation.
- :mod:`less.llm.cache`: append-only, fsync-ed answer cache for resumable runs.
- :mod:`less.llm.correct`: ``correct`` / ``rescore`` orchestration and the report.
- :mod:`less.llm.standin`: the offline stand-in LM (a small text LM or correction LM that
  ``less.bin.train_text_lm`` trains), for the language without an offline instruct LLM.
- :mod:`less.llm.models`: model resolution, incl. the built-in SmolLM2 and Gemma 3 270M GGUFs.
- :mod:`less.llm.gguf_cache`: GGUF files dequantised once, kept as plain transformers dirs.
- :mod:`less.llm.prefix_cache`: the prompt prefix all requests share, computed once.
- :mod:`less.llm.fewshot`: worked examples for base LMs, from training data only.
- :mod:`less.llm.segments`: several consecutive segments per request, split back per cut.
- :mod:`less.llm.testing`: a fake chat-completions server and tiny cut sets for tests.

Heavy dependencies (torch, transformers, requests) are imported where they are used.
"""
