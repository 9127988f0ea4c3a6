"""Decoding: CTC greedy/prefix beam search (``ctc``), attention rescoring and beam search
(``attention``, joint CTC prefix scores in ``ctc_prefix_score``), icefall result files
(``results``). Scoring itself lives in :mod:`less.metrics`."""
