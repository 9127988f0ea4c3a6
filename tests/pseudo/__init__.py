"""Tests of less.pseudo: pseudo-label records, teachers, the filter and the mix."""
