"""Tiny fake corpora laid out exactly as the real ones are on disk, with what a preparer should find.

The real corpora cannot be downloaded here, so the preparers in ``less.local`` are
tested on these: AISHELL-1 (wav tree + transcript), WenetSpeech (``WenetSpeech.json``
+ Ogg Opus audio) and Fisher/Callhome Spanish (NIST SPHERE audio, LDC transcripts,
and the fisher-callhome-corpus mapping/translation files). Every builder returns a
dataclass with the corpus paths and the expected manifest contents (ids,
normalised texts, translations, channels, times), written out by hand rather than
computed with the code under test.

Use from Python::

    from tests.fake_corpora import make_aishell, make_wenetspeech, make_fisher_callhome

or from a shell (recipe tests), which prints the paths as JSON::

    python -m tests.fake_corpora aishell|wenetspeech|fisher-callhome OUT_DIR
"""

from tests.fake_corpora.aishell import FakeAishell, make_aishell
from tests.fake_corpora.audio import noise, sphere_header, ulaw_encode, write_sphere
from tests.fake_corpora.fisher_callhome import (
    CALLHOME_CONVERSATIONS,
    FISHER_CONVERSATIONS,
    ExpectedSegment,
    FakeFisherCallhome,
    make_fisher_callhome,
)
from tests.fake_corpora.wenetspeech import FakeWenetSpeech, make_wenetspeech

__all__ = [
    "CALLHOME_CONVERSATIONS",
    "FISHER_CONVERSATIONS",
    "ExpectedSegment",
    "FakeAishell",
    "FakeFisherCallhome",
    "FakeWenetSpeech",
    "make_aishell",
    "make_fisher_callhome",
    "make_wenetspeech",
    "noise",
    "sphere_header",
    "ulaw_encode",
    "write_sphere",
]
