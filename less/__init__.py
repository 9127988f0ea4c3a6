"""LESS: LLM-Enhanced Semi-Supervised learning recipes for speech (ASR and speech translation)."""

__version__ = "0.1.0"
