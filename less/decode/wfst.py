"""CTC decoding with an n-gram LM through a WFST (WeNet's TLG, for character units).

The graph is ``T o G``: ``G`` is an ARPA n-gram LM over the CTC vocabulary's own units
(Mandarin characters: ``less.bin.train_ngram --lang zh``), converted by ``kaldilm``
(Kaldi's arpa2fst) with its backoff arcs and sentence boundaries made epsilons; ``T`` is
the CTC topology that maps frame labels to units (Kaldi's transition-id convention: input
label = token id + 1, so ``kaldi_decoder.DecodableCtc`` reads column label - 1). The
lexicon ``L`` of a word-level LM is the identity here; a BPE vocabulary would need a real
``L`` (words -> pieces), which is not built: :func:`build_graph` refuses it.

Two topologies (``topo``):

* ``standard``: states 0 (blank) and one per unit; a unit's frames repeat on its state,
  a different unit or a blank moves on; exactly CTC's collapsing rule, (V+1)^2 arcs;
* ``compact``: WeNet's smaller graph (a unit state returns to the blank state by an
  epsilon arc): ~3V arcs, but two identical units may follow each other without a blank
  between them; use it for vocabularies of thousands of units.

Decoding: ``kaldi_decoder.FasterDecoder`` (Viterbi beam search over the graph) on the CTC
log-probabilities scaled by ``1 / lm_scale`` (the same best path as ``log p_ctc + lm_scale *
log p_lm``), best path read with ``kaldifst.get_linear_symbol_sequence``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("less.decode")

SPECIAL = ("<blk>", "<sos/eos>", "<unk>", "<s>", "</s>", "<eps>")


def read_symbols(path: str | Path) -> dict[str, int]:
    table = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(
                    f"{path}:{number}: expected '<symbol> <id>', got {line.rstrip()!r}"
                )
            table[parts[0]] = int(parts[1])
    return table


def arpa_to_g(arpa: str | Path):
    """``G`` of an ARPA LM and its symbol table: kaldilm's arpa2fst with ``#0`` on the backoff
    arcs (and ``<s>``/``</s>`` as epsilons), then ``#0`` made an epsilon as well."""
    import kaldifst
    import kaldilm

    with tempfile.TemporaryDirectory() as tmp:
        words_path = Path(tmp) / "words.txt"
        text = kaldilm.arpa2fst(
            str(arpa),
            "",
            disambig_symbol="#0",
            write_symbol_table=str(words_path),
            max_arpa_warnings=0,
        )
        words = read_symbols(words_path)
    backoff = words["#0"]
    g = kaldifst.StdVectorFst()
    start = None
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        state = int(fields[0])
        if start is None:
            start = state  # the text format's first line leaves the start state
        while g.num_states <= state:
            g.add_state()
        if len(fields) <= 2:  # final state [weight]
            g.set_final(state, float(fields[1]) if len(fields) == 2 else 0.0)
            continue
        dest, ilabel, olabel = int(fields[1]), int(fields[2]), int(fields[3])
        while g.num_states <= dest:
            g.add_state()
        weight = float(fields[4]) if len(fields) == 5 else 0.0
        g.add_arc(state, kaldifst.StdArc(0 if ilabel == backoff else ilabel, olabel, weight, dest))
    g.start = start if start is not None else g.add_state()
    kaldifst.arcsort(g, sort_type="ilabel")
    return g, words


def ctc_topology(units: dict[int, int], topo: str = "standard"):
    """``T``: input token id + 1, output the unit's id in ``G`` (``units``: token -> word id)."""
    import kaldifst

    if topo not in ("standard", "compact"):
        raise ValueError(f"unknown CTC topology {topo!r}: standard or compact")
    t = kaldifst.StdVectorFst()
    blank = t.add_state()
    t.start = blank
    t.set_final(blank, 0.0)
    state_of = {}
    for token in units:
        state_of[token] = t.add_state()
        t.set_final(state_of[token], 0.0)
    Arc = kaldifst.StdArc
    t.add_arc(blank, Arc(1, 0, 0.0, blank))  # blank (token 0) stays
    for token, word in units.items():
        s = state_of[token]
        t.add_arc(blank, Arc(token + 1, word, 0.0, s))
        t.add_arc(s, Arc(token + 1, 0, 0.0, s))  # the unit's repeated frames
        t.add_arc(s, Arc(1, 0, 0.0, blank))
        if topo == "compact":
            t.add_arc(s, Arc(0, 0, 0.0, blank))
        else:
            for other, other_word in units.items():
                if other != token:
                    t.add_arc(s, Arc(other + 1, other_word, 0.0, state_of[other]))
    kaldifst.arcsort(t, sort_type="olabel")
    return t


@dataclass
class CtcWfstDecoder:
    graph: object  # kaldifst.StdVectorFst, T o G
    token_of_word: dict[int, int]  # G's unit id -> CTC token id
    lm_scale: float = 0.5
    beam: float = 16.0
    max_active: int = 3000

    def decode(self, log_probs: np.ndarray, lm_scale: float | None = None) -> list[int]:
        """One utterance's (T, V) CTC log-probabilities -> the best token sequence
        (``lm_scale``: this search's LM weight; default the decoder's)."""
        import kaldi_decoder
        import kaldifst

        opts = kaldi_decoder.FasterDecoderOptions()
        opts.beam, opts.max_active = self.beam, self.max_active
        decoder = kaldi_decoder.FasterDecoder(self.graph, opts)
        scale = self.lm_scale if lm_scale is None else lm_scale
        scores = np.ascontiguousarray(log_probs / scale, dtype=np.float32)
        decoder.decode(kaldi_decoder.DecodableCtc(scores))
        if not decoder.reached_final():
            log.debug("ctc-wfst: no final state reached within the beam; best partial path")
        found, lattice = decoder.get_best_path()
        if not found:
            return []  # no path survived the beam (an empty or all-blank utterance)
        ok, _, olabels, _ = kaldifst.get_linear_symbol_sequence(lattice)
        if not ok:
            raise RuntimeError("ctc-wfst: the best path is not linear")
        return [self.token_of_word[w] for w in olabels]


def build_graph(
    tokens: Sequence[str],
    arpa: str | Path,
    topo: str = "auto",
    lm_scale: float = 0.5,
    beam: float = 16.0,
    max_active: int = 3000,
) -> CtcWfstDecoder:
    """The decoder for a CTC vocabulary (``tokens[id]``) and an ARPA LM over the same units."""
    import kaldifst

    g, words = arpa_to_g(arpa)
    units, missing = {}, []
    for token_id, symbol in enumerate(tokens):
        if token_id == 0 or symbol in SPECIAL:
            continue
        if symbol in words:
            units[token_id] = words[symbol]
        else:
            missing.append(symbol)
    if any("\u2581" in symbol for symbol in missing[:50]) or not units:
        raise ValueError(
            f"{arpa}: the LM's units are not the CTC vocabulary's ({len(units)} of {len(tokens)} tokens "
            f"found, e.g. missing {missing[:5]}); ctc-wfst needs an LM over the CTC units "
            "(Mandarin characters: less.bin.train_ngram --lang zh); BPE vocabularies need a lexicon "
            "L, which is not built"
        )
    if missing:
        log.warning(
            "ctc-wfst: %d CTC tokens are not in the LM and can never be output: %s",
            len(missing),
            missing[:10],
        )
    if topo == "auto":
        topo = "standard" if len(units) <= 1000 else "compact"
    t = ctc_topology(units, topo)
    graph = kaldifst.compose(t, g)
    kaldifst.arcsort(graph, sort_type="ilabel")
    log.info(
        "ctc-wfst graph (T o G, %s topology) for %s: %d units, %d states, %d arcs",
        topo,
        arpa,
        len(units),
        graph.num_states,
        sum(graph.num_arcs(s) for s in range(graph.num_states)),
    )
    return CtcWfstDecoder(
        graph,
        {word: token for token, word in units.items()},
        lm_scale=lm_scale,
        beam=beam,
        max_active=max_active,
    )
