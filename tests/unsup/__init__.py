"""Tests of less.unsup: the sequence-level unsupervised loss (system U), its n-gram LM and theory."""
