"""Tests of less.data: cuts, data loading, text, tokenizers, phone alignments, VAD segments."""
