"""Tests of less.decode: CTC and attention decoding, WFST decoding."""
