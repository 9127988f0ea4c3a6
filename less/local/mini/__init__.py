"""Deterministic synthetic bilingual mini corpus (Mandarin ASR, Spanish->English AST).

Imitates the LESS setting on a laptop: clean read speech with labels versus messier,
unlabeled in-the-wild conversational speech.

* :mod:`.lexicon`, :mod:`.grammar`: parallel zh/es/en sentences in two domains;
* :mod:`less.data.espeak`: espeak-ng through ctypes (synthesis, phonemes); :mod:`.augment`:
  noise, babble, reverb, gain;
* :mod:`.plan`, :mod:`.synthesis`: what each split holds, and rendering it to FLAC;
* :mod:`.prepare`: the command line builder writing lhotse manifests.
"""
