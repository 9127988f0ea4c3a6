"""Attention-decoder decoding: N-best rescoring (icefall style), greedy and beam search.

The decoder is any callable ``decoder_fn(memory, memory_lens, ys_in, ys_in_lens) -> logits``
with ``memory (B, T, D)``, ``ys_in (B, U)`` starting with ``sos_id`` and unnormalised
``logits (B, U, V)``; hypotheses end with ``eos_id`` (which may equal ``sos_id``). Keeping
the model behind a callable lets these functions be tested with hand-built decoders.

Search recomputes the decoder over the whole prefix at every step (no incremental
cache): simple and exact, and affordable for the small decoders of these recipes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from less.decode.ctc import NBest
from less.decode.ctc_prefix_score import CtcPrefixScorer, CtcPrefixState

DecoderFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

NEG_INF = float("-inf")


@dataclass
class RescoredHypothesis:
    """One hypothesis after rescoring: ``score = ctc_scale * ctc_score + attention_scale * attention_score``."""

    tokens: list[int]
    score: float
    ctc_score: float
    attention_score: float


def attention_scale_key(scale: float) -> str:
    """icefall's name for the setting of one attention scale (``attention_scale_0.5``)."""
    return f"attention_scale_{scale}"


@torch.no_grad()
def attention_log_likelihoods(
    hyps: Sequence[Sequence[int]],
    utterance_index: Sequence[int],
    memory: torch.Tensor,
    memory_lens: torch.Tensor,
    decoder_fn: DecoderFn,
    sos_id: int,
    eos_id: int,
    max_hyps_per_call: int | None = None,
) -> torch.Tensor:
    """Teacher-forced decoder log-likelihood of each hypothesis: ``log P(hyp + eos | sos)``.

    ``utterance_index[i]`` names the row of ``memory`` that ``hyps[i]`` belongs to; the
    memory is expanded per hypothesis so all hypotheses go through the decoder in one
    padded call, or in chunks of ``max_hyps_per_call`` when memory is tight.

    Returns:
        ``(H,)`` float64 tensor of summed log-probabilities, on the CPU.
    """
    if len(hyps) != len(utterance_index):
        raise ValueError(f"{len(hyps)} hypotheses but {len(utterance_index)} utterance indices")
    chunk = max_hyps_per_call or max(len(hyps), 1)
    scores = torch.zeros(len(hyps), dtype=torch.float64)
    device = memory.device
    for begin in range(0, len(hyps), chunk):
        part = hyps[begin : begin + chunk]
        rows = torch.as_tensor(
            utterance_index[begin : begin + chunk], dtype=torch.long, device=device
        )
        max_len = max(len(hyp) for hyp in part) + 1
        ys_in = torch.full((len(part), max_len), eos_id, dtype=torch.long)
        ys_out = torch.full((len(part), max_len), -1, dtype=torch.long)
        for i, hyp in enumerate(part):
            ys_in[i, 0] = sos_id
            ys_in[i, 1 : len(hyp) + 1] = torch.as_tensor(list(hyp), dtype=torch.long)
            ys_out[i, : len(hyp)] = torch.as_tensor(list(hyp), dtype=torch.long)
            ys_out[i, len(hyp)] = eos_id
        ys_in_lens = torch.tensor([len(hyp) + 1 for hyp in part], dtype=torch.long)
        logits = decoder_fn(
            memory.index_select(0, rows),
            memory_lens.index_select(0, rows),
            ys_in.to(device),
            ys_in_lens.to(device),
        )
        log_probs = torch.log_softmax(logits.double(), dim=-1).cpu()
        valid = ys_out >= 0
        picked = torch.gather(log_probs, 2, ys_out.clamp(min=0)[:, :, None]).squeeze(2)
        scores[begin : begin + len(part)] = torch.where(valid, picked, 0.0).sum(dim=1)
    return scores


def attention_rescoring(
    nbest: Sequence[NBest],
    memory: torch.Tensor,
    memory_lens: torch.Tensor,
    decoder_fn: DecoderFn,
    sos_id: int,
    eos_id: int,
    attention_scales: Sequence[float] = (1.0,),
    ctc_scale: float = 1.0,
    max_hyps_per_call: int | None = None,
) -> dict[float, list[list[RescoredHypothesis]]]:
    """Re-rank CTC N-best lists with the attention decoder, for several attention scales.

    As icefall's attention-decoder rescoring without an n-gram LM, each hypothesis gets
    ``ctc_scale * ctc_score + attention_scale * attention_score``, where ``ctc_score`` is
    the prefix-beam-search log-probability and ``attention_score`` the teacher-forced
    decoder log-likelihood (:func:`attention_log_likelihoods`). The decoder runs once;
    every scale re-ranks the same scores, so sweeping scales costs nothing extra.

    Returns:
        ``{attention_scale: per utterance, hypotheses best first}``. The 1-best of a
        scale is ``result[scale][utt][0].tokens``; see :func:`best_per_scale`.
    """
    if len(nbest) != memory.shape[0]:
        raise ValueError(f"{len(nbest)} N-best lists for a batch of {memory.shape[0]} utterances")
    flat_hyps = [hyp for utt_nbest in nbest for hyp, _ in utt_nbest]
    flat_utts = [utt for utt, utt_nbest in enumerate(nbest) for _ in utt_nbest]
    attention_scores = attention_log_likelihoods(
        flat_hyps, flat_utts, memory, memory_lens, decoder_fn, sos_id, eos_id, max_hyps_per_call
    ).tolist()
    result: dict[float, list[list[RescoredHypothesis]]] = {}
    for scale in attention_scales:
        per_utt: list[list[RescoredHypothesis]] = []
        position = 0
        for utt_nbest in nbest:
            rescored = []
            for hyp, ctc_score in utt_nbest:
                attention_score = attention_scores[position]
                position += 1
                rescored.append(
                    RescoredHypothesis(
                        tokens=list(hyp),
                        score=ctc_scale * ctc_score + scale * attention_score,
                        ctc_score=ctc_score,
                        attention_score=attention_score,
                    )
                )
            rescored.sort(key=lambda h: -h.score)  # stable: ties keep the CTC order
            per_utt.append(rescored)
        result[scale] = per_utt
    return result


def best_per_scale(
    rescored: dict[float, list[list[RescoredHypothesis]]],
) -> dict[str, list[list[int]]]:
    """The 1-best tokens per utterance for every scale, keyed by :func:`attention_scale_key`."""
    return {
        attention_scale_key(scale): [hyps[0].tokens if hyps else [] for hyps in per_utt]
        for scale, per_utt in rescored.items()
    }


def _max_output_lengths(
    memory_lens: torch.Tensor, max_len_ratio: float, max_len: int | None
) -> list[int]:
    """Output tokens allowed per utterance (eos excluded): ``ratio * encoder frames``, capped."""
    lengths = []
    for frames in memory_lens.tolist():
        limit = max(1, int(max_len_ratio * frames))
        if max_len is not None:
            limit = min(limit, max_len)
        lengths.append(limit)
    return lengths


@torch.no_grad()
def attention_greedy_search(
    memory: torch.Tensor,
    memory_lens: torch.Tensor,
    decoder_fn: DecoderFn,
    sos_id: int,
    eos_id: int,
    max_len_ratio: float = 1.0,
    max_len: int | None = None,
    suppress_ids: Sequence[int] = (),
) -> list[list[int]]:
    """Most likely next token at each step until ``eos`` or the length limit (batched)."""
    num_utts = memory.shape[0]
    limits = _max_output_lengths(memory_lens, max_len_ratio, max_len)
    ys = torch.full((num_utts, 1), sos_id, dtype=torch.long, device=memory.device)
    hyps: list[list[int]] = [[] for _ in range(num_utts)]
    active = list(range(num_utts))
    suppress = list(suppress_ids)
    while active:
        rows = torch.as_tensor(active, dtype=torch.long, device=memory.device)
        prefix = ys[rows]
        lens = torch.full((len(active),), prefix.shape[1], dtype=torch.long, device=memory.device)
        logits = decoder_fn(memory[rows], memory_lens[rows], prefix, lens)[:, -1].double()
        if suppress:
            logits[:, suppress] = NEG_INF
        next_tokens = logits.argmax(dim=-1).tolist()
        step = torch.full((num_utts, 1), eos_id, dtype=torch.long, device=memory.device)
        still_active = []
        for utt, token in zip(active, next_tokens):
            step[utt, 0] = token
            if token == eos_id:
                continue
            hyps[utt].append(token)
            if len(hyps[utt]) < limits[utt]:
                still_active.append(utt)
        ys = torch.cat([ys, step], dim=1)
        active = still_active
    return hyps


@dataclass
class _Finished:
    tokens: list[int]
    score: float  # accumulated search score, eos included
    rank_score: float  # score used for ranking (length-normalised if asked)


@torch.no_grad()
def attention_beam_search(
    memory: torch.Tensor,
    memory_lens: torch.Tensor,
    decoder_fn: DecoderFn,
    sos_id: int,
    eos_id: int,
    beam_size: int = 4,
    nbest: int = 1,
    max_len_ratio: float = 1.0,
    max_len: int | None = None,
    length_bonus: float = 0.0,
    normalise_length: bool = False,
    ctc_log_probs: torch.Tensor | None = None,
    ctc_lens: torch.Tensor | None = None,
    ctc_weight: float = 0.0,
    blank_id: int = 0,
    ctc_candidates: int | None = None,
    suppress_ids: Sequence[int] = (),
    incremental=None,
) -> list[NBest]:
    """Batched beam search with the attention decoder, optionally joint with CTC prefix scores.

    Every step scores ``beam_size`` running hypotheses per utterance; of the ``2 * beam``
    best extensions, those ending in ``eos`` among the first ``beam`` are finished and
    the best ``beam`` others keep running. An utterance stops when nothing runs any more,
    at ``max(1, int(max_len_ratio * encoder frames))`` tokens (capped by ``max_len``), where
    ``eos`` is forced, or earlier: when scores can only fall (no normalisation, no positive
    bonus), once no running hypothesis beats the ``nbest``-th finished one (exact for the
    beam); otherwise, heuristically, once ``beam_size`` finished hypotheses all beat the
    best running one were it to end now. With ``beam_size=1`` this is greedy search.

    Scores per step: ``(1 - ctc_weight) * log P_att(token) + ctc_weight * (CTC prefix
    score of the extended hypothesis - that of its parent) + length_bonus``, so a finished
    hypothesis totals ``(1 - w) * log P_att(hyp + eos) + w * log P_ctc(hyp)`` plus the bonus
    per emitted token (eos included). Joint scoring needs a CTC head over the decoder's
    vocabulary (``ctc_log_probs (B, T, V)`` with blank ``blank_id``), and is limited, as in
    ESPnet, to the ``ctc_candidates`` (default ``int(1.5 * beam_size)``, at least 1) tokens
    the decoder ranks highest per hypothesis; ``blank_id`` is never emitted then.

    Args:
        normalise_length: rank finished hypotheses by ``score / (len(tokens) + 1)``.
        suppress_ids: tokens never emitted (e.g. blank or ``<unk>``).
        incremental: optionally the decoder module itself, with ``start_incremental(memory,
            memory_lens)`` and ``step(state, tokens)`` (cached keys/values): each step then
            feeds one position instead of the whole prefix. Same results as ``decoder_fn``.

    Returns:
        Per utterance up to ``nbest`` ``(tokens, score)`` pairs, best first; ``score`` is the
        ranking score (length-normalised when ``normalise_length``), tokens without sos/eos.
    """
    if beam_size < 1 or nbest < 1:
        raise ValueError(f"beam_size and nbest must be >= 1, got {beam_size} and {nbest}")
    device = memory.device
    num_utts = memory.shape[0]
    ctc_vocab_size: int | None = None
    use_ctc = ctc_weight > 0.0
    if use_ctc:
        if ctc_log_probs is None:
            raise ValueError("ctc_weight > 0 needs ctc_log_probs")
        if ctc_log_probs.shape[0] != num_utts:
            raise ValueError(
                f"ctc_log_probs has {ctc_log_probs.shape[0]} rows for {num_utts} utterances"
            )
        ctc_vocab_size = ctc_log_probs.shape[2]
    limits = _max_output_lengths(memory_lens, max_len_ratio, max_len)
    num_rows = num_utts * beam_size
    row_utt = torch.arange(num_utts, device=device).repeat_interleave(beam_size)
    memory_rows = memory.index_select(0, row_utt)
    memory_lens_rows = memory_lens.index_select(0, row_utt)
    tokens = torch.full((num_rows, 1), sos_id, dtype=torch.long, device=device)
    scores = torch.full((num_utts, beam_size), NEG_INF, dtype=torch.float64)
    scores[:, 0] = 0.0

    scorer = None
    ctc_state = None
    if use_ctc:
        lens = ctc_lens if ctc_lens is not None else memory_lens
        scorer = CtcPrefixScorer(
            ctc_log_probs.index_select(0, row_utt.to(ctc_log_probs.device)),
            lens.to(ctc_log_probs.device).index_select(0, row_utt.to(ctc_log_probs.device)),
            blank=blank_id,
        )
        ctc_state = scorer.initial_state()
        num_ctc_candidates = max(1, ctc_candidates or int(1.5 * beam_size))

    state = None
    state_index = torch.full((num_rows,), -1, dtype=torch.long)  # row -> its position in `state`
    if incremental is not None:
        state = incremental.start_incremental(memory_rows, memory_lens_rows)
        state.memory_owner = row_utt.cpu()  # the beams of an utterance share its memory
        state_index = torch.arange(num_rows)

    finished: list[list[_Finished]] = [[] for _ in range(num_utts)]
    active = [True] * num_utts
    suppress = sorted(set(suppress_ids) | ({blank_id} if use_ctc else set()))
    step = 0
    while any(active):
        step += 1  # number of tokens emitted after this step, eos included
        active_utts = [utt for utt in range(num_utts) if active[utt]]
        rows = torch.tensor(
            [utt * beam_size + k for utt in active_utts for k in range(beam_size)], dtype=torch.long
        )
        rows_dev = rows.to(device)
        prefix_len = tokens.shape[1]
        if state is not None:
            state = state.select(state_index[rows].to(device))
            logits, state = incremental.step(state, tokens.index_select(0, rows_dev)[:, -1])
            state_index = torch.full((num_rows,), -1, dtype=torch.long)
            state_index[rows] = torch.arange(len(rows))
        else:
            logits = decoder_fn(
                memory_rows.index_select(0, rows_dev),
                memory_lens_rows.index_select(0, rows_dev),
                tokens.index_select(0, rows_dev),
                torch.full((len(rows),), prefix_len, dtype=torch.long, device=device),
            )[:, -1]
        vocab_size = logits.shape[-1]
        if ctc_vocab_size is not None and ctc_vocab_size != vocab_size:
            raise ValueError(f"CTC vocabulary {ctc_vocab_size} != decoder vocabulary {vocab_size}")
        att = torch.log_softmax(logits.double(), dim=-1).cpu()
        if suppress:
            att[:, suppress] = NEG_INF
        forced_end = torch.tensor([step > limits[utt] for utt in active_utts]).repeat_interleave(
            beam_size
        )

        if use_ctc:
            ctc_rows = rows.to(ctc_state.prefix_score.device)
            step_scores, ctc_extend = _joint_step_scores(
                att,
                scorer,
                ctc_state.select(ctc_rows),
                ctc_rows,
                ctc_weight,
                eos_id,
                num_ctc_candidates,
            )
        else:
            step_scores, ctc_extend = att, None
        if forced_end.any():
            eos_column = step_scores[:, eos_id].clone()
            step_scores[forced_end] = NEG_INF
            step_scores[forced_end, eos_id] = eos_column[forced_end]
        step_scores = step_scores + length_bonus

        row_scores = scores[active_utts].reshape(-1)
        candidate_scores = (row_scores[:, None] + step_scores).reshape(len(active_utts), -1)
        width = min(2 * beam_size, candidate_scores.shape[1])
        top_scores, top_index = candidate_scores.topk(width, dim=1)

        new_parent = torch.zeros(num_rows, dtype=torch.long)
        new_token = torch.full((num_rows,), eos_id, dtype=torch.long)
        new_scores = torch.full((num_utts, beam_size), NEG_INF, dtype=torch.float64)
        kept_local = []  # (new row, parent's row among the active rows, token): for the CTC state
        for slot, utt in enumerate(active_utts):
            running = 0
            for position in range(width):
                score = float(top_scores[slot, position])
                if score == NEG_INF:
                    break
                beam_index, token = divmod(int(top_index[slot, position]), vocab_size)
                parent_row = utt * beam_size + beam_index
                if token == eos_id:
                    if position < beam_size:
                        hyp = tokens[parent_row, 1:].tolist()
                        rank = score / (len(hyp) + 1) if normalise_length else score
                        finished[utt].append(_Finished(hyp, score, rank))
                    continue
                if running < beam_size:
                    row = utt * beam_size + running
                    new_parent[row] = parent_row
                    new_token[row] = token
                    new_scores[utt, running] = score
                    kept_local.append((row, slot * beam_size + beam_index, token))
                    running += 1
            active[utt] = _still_searching(
                finished[utt],
                new_scores[utt],
                step,
                beam_size,
                nbest,
                normalise_length,
                length_bonus,
            )

        tokens = torch.cat(
            [tokens.index_select(0, new_parent.to(device)), new_token.to(device)[:, None]], dim=1
        )
        if state is not None:
            state_index = state_index[new_parent]  # a row continues its parent's cached prefix
        scores = new_scores
        if use_ctc and kept_local:
            ctc_state = _advance_ctc_state(ctc_state, ctc_extend, kept_local)

    results: list[NBest] = []
    for utt_finished in finished:
        utt_finished.sort(key=lambda h: -h.rank_score)
        results.append([(h.tokens, h.rank_score) for h in utt_finished[:nbest]])
    return results


def _still_searching(
    finished: list[_Finished],
    running_scores: torch.Tensor,
    num_tokens: int,
    beam_size: int,
    nbest: int,
    normalise_length: bool,
    length_bonus: float,
) -> bool:
    """Whether an utterance's search goes on after a step that left ``num_tokens`` per running hyp."""
    best_running = float(running_scores.max())
    if best_running == NEG_INF:
        return False
    ranks = sorted((h.rank_score for h in finished), reverse=True)
    if not normalise_length and length_bonus <= 0:
        # Scores only fall from here: stop once no running hypothesis can enter the N-best.
        return len(ranks) < nbest or best_running > ranks[nbest - 1]
    # Scores may rise with length: a heuristic stop once the beam is full of finished
    # hypotheses that all beat the best running one were it to end now.
    if len(ranks) < beam_size:
        return True
    running_rank = best_running / (num_tokens + 1) if normalise_length else best_running
    return running_rank > ranks[beam_size - 1]


def _joint_step_scores(
    att: torch.Tensor,
    scorer: CtcPrefixScorer,
    state: CtcPrefixState,
    rows: torch.Tensor,
    ctc_weight: float,
    eos_id: int,
    num_candidates: int,
) -> tuple[torch.Tensor, tuple]:
    """Joint scores ``(rows, V)``: -inf outside the CTC-scored candidates and eos."""
    without_eos = att.clone()
    without_eos[:, eos_id] = NEG_INF
    num_candidates = min(num_candidates, att.shape[1])
    candidates = without_eos.topk(num_candidates, dim=1).indices
    device = scorer.log_probs.device
    prefix_scores, blank_end, token_end = scorer.extend(state, candidates.to(device), rows)
    prefix_scores = prefix_scores.cpu()
    parent_scores = state.prefix_score.cpu()
    ctc_delta = _log_ratio(prefix_scores, parent_scores[:, None])
    eos_delta = _log_ratio(scorer.final_score(state).cpu(), parent_scores)
    joint = torch.full_like(att, NEG_INF)
    joint.scatter_(
        1, candidates, (1 - ctc_weight) * att.gather(1, candidates) + ctc_weight * ctc_delta
    )
    joint[:, eos_id] = (1 - ctc_weight) * att[:, eos_id] + ctc_weight * eos_delta
    return joint, (candidates, prefix_scores, blank_end, token_end)


def _log_ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``numerator - denominator`` with -inf (not NaN) where either is -inf."""
    ratio = numerator - denominator
    return torch.where(torch.isfinite(numerator) & torch.isfinite(denominator), ratio, NEG_INF)


def _advance_ctc_state(
    state: CtcPrefixState, ctc_extend: tuple, kept: list[tuple[int, int, int]]
) -> CtcPrefixState:
    """Rebuild the full ``num_rows`` CTC state from the kept extensions (others stay stale)."""
    candidates, prefix_scores, blank_end, token_end = ctc_extend
    device = blank_end.device
    target_rows = torch.tensor([row for row, _, _ in kept], dtype=torch.long, device=device)
    local_rows = torch.tensor([local for _, local, _ in kept], dtype=torch.long)
    chosen_tokens = torch.tensor([token for _, _, token in kept], dtype=torch.long)
    columns = (candidates[local_rows] == chosen_tokens[:, None]).float().argmax(dim=1)
    local_rows_dev = local_rows.to(device)
    columns_dev = columns.to(device)
    new_state = CtcPrefixState(
        blank_end=state.blank_end.clone(),
        token_end=state.token_end.clone(),
        prefix_score=state.prefix_score.clone(),
        last_token=state.last_token.clone(),
    )
    new_state.blank_end[target_rows] = blank_end[local_rows_dev, columns_dev]
    new_state.token_end[target_rows] = token_end[local_rows_dev, columns_dev]
    new_state.prefix_score[target_rows] = prefix_scores[local_rows, columns].to(device)
    new_state.last_token[target_rows] = chosen_tokens.to(device)
    return new_state
