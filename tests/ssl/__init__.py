"""Tests of less.ssl: BEST-RQ, BiRQ, SpeechLM, visual grounding and ABX."""
