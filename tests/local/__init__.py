"""Tests of less.local: the corpus preparers and the synthetic mini corpus."""
