"""Test package: lets recipe tests import shared builders (``from tests.fake_corpora import ...``)."""
