"""Tests of less.llm: LLM back ends, prompts, caching, cleaning and the offline stand-in LM."""
