"""Unit alignments for ABX: Viterbi forced alignment over CTC log-probabilities (no k2).

The mini corpus has no per-character timing, so a trained CTC model aligns each
utterance to its reference transcript.  CTC emits each token on one or a few "spike"
frames and blanks elsewhere; a unit's segment runs from the midpoint of the blank gap
before its spike to the midpoint of the gap after it (the first and last units extend
outwards as far as they do inwards), which is the usual way to turn CTC spikes into
segments.

Times: encoder frame ``j`` (25 Hz) is centred on input frame ``4j + 4``; input frame
``k`` (10 ms shift, 25 ms window) is centred at ``k * 0.01 + 0.0125`` s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from less.utils import atomic_path

log = logging.getLogger("less.ssl.align")

FRAME_SHIFT = 0.01
WINDOW_CENTRE = 0.0125


def frame_times(num_frames: int, rate: str) -> Tensor:
    """Centre times (s) of a representation's frames: ``100`` (fbank), ``50`` (front end and
    stack outputs: frame i from input frames 2i..2i+6) or ``25`` (encoder output)."""
    k = torch.arange(num_frames, dtype=torch.float64)
    if rate == "100":
        centre = k
    elif rate == "50":
        centre = 2 * k + 3
    elif rate == "25":
        centre = 4 * k + 4
    else:
        raise ValueError(f"unknown frame rate {rate!r}")
    return centre * FRAME_SHIFT + WINDOW_CENTRE


def ctc_forced_align(log_probs: Tensor, tokens: Sequence[int], blank: int = 0) -> list[int] | None:
    """Best CTC path of ``tokens`` through ``log_probs`` (T, V): per frame, the index of the
    token it emits, or -1 for blank.  None when the path cannot fit (too few frames)."""
    num_frames = log_probs.shape[0]
    num_tokens = len(tokens)
    if num_tokens == 0:
        return [-1] * num_frames
    ext = torch.full((2 * num_tokens + 1,), blank, dtype=torch.long)
    ext[1::2] = torch.tensor(list(tokens), dtype=torch.long)
    num_states = ext.shape[0]
    # a state may be entered from two states back when it is a token differing from that one
    skip_ok = torch.zeros(num_states, dtype=torch.bool)
    skip_ok[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    emit = log_probs.double()[:, ext]  # (T, S)
    neg_inf = torch.tensor(float("-inf"), dtype=torch.float64)
    score = torch.full((num_states,), float("-inf"), dtype=torch.float64)
    score[0] = emit[0, 0]
    if num_states > 1:
        score[1] = emit[0, 1]
    back = torch.zeros(num_frames, num_states, dtype=torch.int8)
    for t in range(1, num_frames):
        stay = score
        step = torch.cat([neg_inf.view(1), score[:-1]])
        skip = torch.where(skip_ok, torch.cat([neg_inf.view(1).expand(2), score[:-2]]), neg_inf)
        candidates = torch.stack([stay, step, skip])
        best, choice = candidates.max(dim=0)
        back[t] = choice.to(torch.int8)
        score = best + emit[t]
    finals = [num_states - 1, num_states - 2] if num_states > 1 else [0]
    state = max(finals, key=lambda s: float(score[s]))
    if not torch.isfinite(score[state]):
        return None
    path = [0] * num_frames
    for t in range(num_frames - 1, -1, -1):
        path[t] = state
        state -= int(back[t, state])
    if path[0] > 1:
        return None
    return [(s - 1) // 2 if s % 2 == 1 else -1 for s in path]


def token_spans(frame_tokens: Sequence[int], num_tokens: int) -> list[tuple[int, int]]:
    """(first, last) frame of each token in a forced-alignment path."""
    spans: list[list[int]] = [[-1, -1] for _ in range(num_tokens)]
    for t, index in enumerate(frame_tokens):
        if index >= 0:
            if spans[index][0] < 0:
                spans[index][0] = t
            spans[index][1] = t
    if any(first < 0 for first, _ in spans):
        raise ValueError("a token has no frame in the alignment path")
    return [(first, last) for first, last in spans]


def spans_to_segments(
    spans: Sequence[tuple[int, int]], duration: float
) -> list[tuple[float, float]]:
    """Encoder-frame spans -> (start, end) seconds, boundaries at the middle of each gap."""
    if not spans:
        return []
    times = frame_times(max(last for _, last in spans) + 1, "25").tolist()
    firsts = [times[first] for first, _ in spans]
    lasts = [times[last] for _, last in spans]
    inner = [(lasts[i - 1] + firsts[i]) / 2 for i in range(1, len(spans))]
    lead = (inner[0] - lasts[0]) if inner else 0.04
    tail = (firsts[-1] - inner[-1]) if inner else 0.04
    bounds = [max(0.0, firsts[0] - lead), *inner, min(duration, lasts[-1] + tail)]
    return [(bounds[i], bounds[i + 1]) for i in range(len(spans))]


@dataclass
class UtteranceAlignment:
    cut_id: str
    speaker: str
    duration: float
    units: list[tuple[str, float, float]]  # (unit, start s, end s)

    def to_json(self) -> str:
        return json.dumps(
            {
                "cut_id": self.cut_id,
                "speaker": self.speaker,
                "duration": self.duration,
                "units": [[u, round(s, 4), round(e, 4)] for u, s, e in self.units],
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, line: str) -> UtteranceAlignment:
        data = json.loads(line)
        return cls(
            data["cut_id"], data["speaker"], data["duration"], [tuple(u) for u in data["units"]]
        )


def save_alignments(path: str | Path, alignments: Iterable[UtteranceAlignment]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(a.to_json() + "\n" for a in alignments), encoding="utf-8")


def load_alignments(path: str | Path) -> list[UtteranceAlignment]:
    return [
        UtteranceAlignment.from_json(line)
        for line in Path(path).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def _symbol(tokenizer, token: int) -> str:
    if hasattr(tokenizer, "symbols"):
        return tokenizer.symbols[token]
    return tokenizer.sp.id_to_piece(token)  # BPE


@torch.no_grad()
def align_cuts(
    recognizer, cuts, max_duration: float = 200.0, hypotheses: bool = False
) -> tuple[list[UtteranceAlignment], int]:
    """Forced-align every cut's transcript with a trained CTC model (a
    :class:`less.decode.recognizer.Recognizer`).  Returns the alignments and the number of
    cuts skipped (no transcript, ``<unk>`` tokens or a path that does not fit).

    ``hypotheses``: align the model's own CTC greedy hypothesis instead (unlabeled audio,
    SpeechLM's speech tokenizer); a cut with an empty hypothesis is skipped."""
    from tqdm import tqdm

    from less.data.datamodule import DataConfig, make_loader
    from less.decode.ctc import ctc_greedy_search

    tokenizer = recognizer.ctc_tokenizer
    by_id = {c.id: c for c in cuts}
    loader, _, _ = make_loader(
        cuts,
        DataConfig(max_duration=max_duration, num_workers=0, spec_augment=False),
        training=False,
    )
    out: list[UtteranceAlignment] = []
    skipped = 0
    model = recognizer.model
    for batch in tqdm(loader, desc="forced alignment", unit="batch"):
        feats = batch["inputs"].to(recognizer.device)
        enc_out, enc_lens = model.encode(feats, batch["input_lens"].to(recognizer.device))
        log_probs = model.ctc_log_probs(enc_out).cpu()
        greedy = (
            ctc_greedy_search(log_probs, enc_lens.cpu(), tokenizer.blank_id) if hypotheses else None
        )
        for b, cut_id in enumerate(batch["cut_ids"]):
            cut = by_id[cut_id]
            if hypotheses:
                tokens = greedy[b]
                if not tokens:
                    skipped += 1
                    continue
            else:
                text = cut.supervisions[0].text
                tokens = tokenizer.encode(text) if text else []
                if not tokens or tokenizer.unk_id in tokens:
                    skipped += 1
                    log.warning(
                        "cut %s: no transcript or out-of-vocabulary characters; not aligned", cut_id
                    )
                    continue
            path = ctc_forced_align(log_probs[b, : int(enc_lens[b])], tokens, tokenizer.blank_id)
            if path is None:
                skipped += 1
                log.warning(
                    "cut %s: %d tokens do not fit in %d frames; not aligned",
                    cut_id,
                    len(tokens),
                    int(enc_lens[b]),
                )
                continue
            segments = spans_to_segments(token_spans(path, len(tokens)), cut.duration)
            symbols = [_symbol(tokenizer, t) for t in tokens]
            out.append(
                UtteranceAlignment(
                    cut_id,
                    (cut.supervisions[0].speaker if cut.supervisions else None) or "unknown",
                    cut.duration,
                    [(u, s, e) for u, (s, e) in zip(symbols, segments)],
                )
            )
    return out, skipped
