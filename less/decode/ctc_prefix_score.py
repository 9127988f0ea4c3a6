"""CTC prefix scores of growing hypotheses, for joint CTC/attention beam search.

The attention decoder alone happily ends too early or loops; CTC knows how many tokens
the audio holds. Joint decoding (Watanabe et al., 2017, as in ESPnet) therefore adds the
CTC *prefix* probability of every extended hypothesis: the total probability of all CTC
label sequences that start with it. For a hypothesis ``g`` the scorer keeps, per frame
``t``, the log-probabilities ``r_t^n(g)`` and ``r_t^b(g)`` of having emitted exactly
``g`` by frame ``t`` with the last frame a non-blank or a blank. Extending by ``c``:

* ``phi_t = r_t^b(g)`` if ``c`` repeats the last token of ``g``, else ``r_t^b(g) + r_t^n(g)``
  (in log space, ``logaddexp``);
* ``r_t^n(g+c) = (r_{t-1}^n(g+c) + phi_{t-1}) * x_t(c)``,
  ``r_t^b(g+c) = (r_{t-1}^b(g+c) + r_{t-1}^n(g+c)) * x_t(blank)``;
* ``prefix(g+c) = sum_t phi_{t-1} * x_t(c)``, with ``phi_{-1} = 1`` for the empty ``g``;
* ``prefix(g+eos) = r_T^b(g) + r_T^n(g)``: the full CTC probability of ``g``.

Frames past an utterance's length are padded with ``x(blank) = 1`` and ``x(c) = 0``
(log 0 / -inf), which carries ``r`` unchanged to the last padded frame and adds nothing
to prefix scores, so a padded batch scores exactly like separate utterances.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NEG_INF = float("-inf")


@dataclass
class CtcPrefixState:
    """CTC state of ``N`` hypotheses (rows)."""

    blank_end: torch.Tensor  # (N, T) log r_t^b
    token_end: torch.Tensor  # (N, T) log r_t^n
    prefix_score: torch.Tensor  # (N,) CTC prefix log-probability of the hypothesis
    last_token: torch.Tensor  # (N,) last token id, -1 for the empty hypothesis

    def select(self, rows: torch.Tensor) -> CtcPrefixState:
        return CtcPrefixState(
            self.blank_end[rows],
            self.token_end[rows],
            self.prefix_score[rows],
            self.last_token[rows],
        )


class CtcPrefixScorer:
    """Scores extensions of ``N`` hypotheses against their utterances' CTC posteriors.

    Args:
        log_probs: ``(N, T, V)`` CTC log-probabilities, one row per hypothesis (expand
            the batch by the beam before building the scorer).
        lens: ``(N,)`` valid frames per row.
        blank: CTC blank id.
    """

    def __init__(self, log_probs: torch.Tensor, lens: torch.Tensor, blank: int = 0) -> None:
        if log_probs.dim() != 3:
            raise ValueError(f"log_probs must be (N, T, V), got shape {tuple(log_probs.shape)}")
        log_probs = log_probs.detach().double().clone()
        num_rows, num_frames, _ = log_probs.shape
        padded = (
            torch.arange(num_frames, device=log_probs.device)[None, :]
            >= lens.to(log_probs.device)[:, None]
        )
        log_probs[padded] = NEG_INF
        log_probs[..., blank][padded] = 0.0
        self.log_probs = log_probs
        self.blank = blank
        self.num_frames = num_frames

    def initial_state(self) -> CtcPrefixState:
        """State of the empty hypothesis in every row."""
        num_rows = self.log_probs.shape[0]
        blank_end = torch.cumsum(self.log_probs[:, :, self.blank], dim=1)
        token_end = torch.full_like(blank_end, NEG_INF)
        prefix_score = torch.zeros(num_rows, dtype=torch.float64, device=blank_end.device)
        last_token = torch.full((num_rows,), -1, dtype=torch.long, device=blank_end.device)
        return CtcPrefixState(blank_end, token_end, prefix_score, last_token)

    def final_score(self, state: CtcPrefixState) -> torch.Tensor:
        """``(N,)`` full CTC log-probability of each hypothesis (its score for ``eos``)."""
        return torch.logaddexp(state.blank_end[:, -1], state.token_end[:, -1])

    def extend(
        self, state: CtcPrefixState, candidates: torch.Tensor, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prefix scores of each hypothesis extended by each of its candidate tokens.

        Args:
            state: state of ``N`` hypotheses.
            candidates: ``(N, C)`` token ids (never blank, never eos).
            rows: ``(N,)`` rows of the scorer's posteriors the hypotheses belong to, when
                ``state`` covers a subset of the rows (default: all rows, in order).

        Returns:
            ``(prefix_scores (N, C), blank_end (N, C, T), token_end (N, C, T))``; the last
            two are the states of the extended hypotheses, for :meth:`make_state`.
        """
        num_rows, num_candidates = candidates.shape
        frames = self.num_frames
        log_probs = self.log_probs if rows is None else self.log_probs.index_select(0, rows)
        # x_t(c) for every candidate: (T, N, C)
        token_log_probs = torch.gather(
            log_probs, 2, candidates[:, None, :].expand(num_rows, frames, num_candidates)
        ).permute(1, 0, 2)
        blank_log_probs = log_probs[:, :, self.blank].T  # (T, N)
        either_end = torch.logaddexp(state.blank_end, state.token_end).T  # (T, N)
        repeats = candidates == state.last_token[:, None]  # (N, C)
        # phi_t: (T, N, C)
        phi = torch.where(repeats[None], state.blank_end.T[:, :, None], either_end[:, :, None])
        is_empty = state.last_token < 0
        start = torch.where(is_empty, 0.0, NEG_INF).to(torch.float64)[:, None]  # phi_{-1}

        token_end = torch.empty(
            frames, num_rows, num_candidates, dtype=torch.float64, device=candidates.device
        )
        blank_end = torch.empty_like(token_end)
        token_end[0] = start + token_log_probs[0]
        blank_end[0] = NEG_INF
        for t in range(1, frames):
            token_end[t] = torch.logaddexp(token_end[t - 1], phi[t - 1]) + token_log_probs[t]
            blank_end[t] = (
                torch.logaddexp(blank_end[t - 1], token_end[t - 1]) + blank_log_probs[t][:, None]
            )
        entries = torch.cat(
            [(start + token_log_probs[0])[None], phi[:-1] + token_log_probs[1:]], dim=0
        )
        prefix_scores = torch.logsumexp(entries, dim=0)
        return prefix_scores, blank_end.permute(1, 2, 0), token_end.permute(1, 2, 0)

    @staticmethod
    def make_state(
        prefix_scores: torch.Tensor,
        blank_end: torch.Tensor,
        token_end: torch.Tensor,
        candidates: torch.Tensor,
        rows: torch.Tensor,
        columns: torch.Tensor,
    ) -> CtcPrefixState:
        """States of the chosen extensions ``(rows[i], columns[i])`` of :meth:`extend`."""
        return CtcPrefixState(
            blank_end=blank_end[rows, columns],
            token_end=token_end[rows, columns],
            prefix_score=prefix_scores[rows, columns],
            last_token=candidates[rows, columns],
        )
