"""Decoding algorithms against hand-built posteriors, brute force and mock decoders."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from less.decode.attention import (
    attention_beam_search,
    attention_greedy_search,
    attention_log_likelihoods,
    attention_rescoring,
    attention_scale_key,
    best_per_scale,
)
from less.decode.ctc import (
    ctc_greedy_search,
    ctc_prefix_beam_search,
    hypothesis_confidence,
    mean_max_frame_posterior,
    nbest_posteriors,
)
from less.decode.ctc_prefix_score import CtcPrefixScorer

# ---------------------------------------------------------------- helpers


def _log_probs_from_probs(probs: list[list[float]]) -> torch.Tensor:
    return torch.tensor(probs, dtype=torch.float64).log()[None]


def _collapse(path: tuple[int, ...], blank: int = 0) -> tuple[int, ...]:
    out, previous = [], None
    for token in path:
        if token != previous and token != blank:
            out.append(token)
        previous = token
    return tuple(out)


def _brute_force_sequence_scores(log_probs: np.ndarray) -> dict[tuple[int, ...], float]:
    """log P(label sequence) by summing every alignment: V^T paths."""
    frames, vocab = log_probs.shape
    totals: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(vocab), repeat=frames):
        score = float(sum(log_probs[t, c] for t, c in enumerate(path)))
        key = _collapse(path)
        totals[key] = float(np.logaddexp(totals.get(key, -np.inf), score))
    return totals


def _peaky_log_probs(seed: int, batch: int, frames: int, vocab: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, frames, vocab, generator=generator)
    winners = torch.randint(0, vocab, (batch, frames), generator=generator)
    # Blank wins half the frames, as in trained CTC models.
    winners = torch.where(torch.rand(batch, frames, generator=generator) < 0.5, 0, winners)
    logits.scatter_add_(2, winners[:, :, None], torch.full((batch, frames, 1), 12.0))
    return logits.log_softmax(-1)


class TableDecoder:
    """Mock attention decoder: next-token log-probs looked up by (utterance, prefix).

    The utterance is read from ``memory[b, 0, 0]`` so that tests also check that the
    memory rows are expanded/selected per hypothesis correctly.
    """

    def __init__(
        self, vocab: int, tables: list[dict[tuple[int, ...], dict[int, float]]], floor: float = 1e-4
    ):
        self.vocab = vocab
        self.tables = tables
        self.floor = floor
        self.calls = 0

    def __call__(self, memory, memory_lens, ys_in, ys_in_lens):
        self.calls += 1
        batch, length = ys_in.shape
        logits = torch.full((batch, length, self.vocab), math.log(self.floor), dtype=torch.float64)
        for b in range(batch):
            table = self.tables[int(memory[b, 0, 0])]
            for u in range(int(ys_in_lens[b])):
                prefix = tuple(ys_in[b, 1 : u + 1].tolist())
                for token, prob in table.get(prefix, {}).items():
                    logits[b, u, token] = math.log(prob)
        return logits


class RandomDecoder:
    """Deterministic random decoder: logits depend on the last two inputs and the memory."""

    def __init__(self, vocab: int, dim: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        self.last = torch.randn(vocab, vocab, generator=generator) * 2
        self.before_last = torch.randn(vocab, vocab, generator=generator)
        self.from_memory = torch.randn(dim, vocab, generator=generator)

    def __call__(self, memory, memory_lens, ys_in, ys_in_lens):
        previous = torch.cat([ys_in[:, :1], ys_in[:, :-1]], dim=1)
        context = (memory.mean(dim=1) @ self.from_memory)[:, None, :]
        return self.last[ys_in] + self.before_last[previous] + context


def _memory_for(
    utterances: list[int], frames: int = 6, dim: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    memory = torch.zeros(len(utterances), frames, dim)
    for b, utt in enumerate(utterances):
        memory[b, 0, 0] = utt
    return memory, torch.full((len(utterances),), frames, dtype=torch.long)


# ---------------------------------------------------------------- CTC


def test_greedy_merges_repeats_and_drops_blanks():
    # best path 1 1 - 1 2 2 | 3 (last frame beyond the length)
    paths = [[1, 1, 0, 1, 2, 2, 3], [0, 2, 2, 0, 0, 3, 3]]
    log_probs = torch.full((2, 7, 4), math.log(0.1 / 3))
    for b, path in enumerate(paths):
        for t, token in enumerate(path):
            log_probs[b, t, token] = math.log(0.9)
    hyps = ctc_greedy_search(log_probs, torch.tensor([6, 7]))
    assert hyps == [[1, 1, 2], [2, 3]]


def test_prefix_beam_sums_alignments_on_hand_built_posteriors():
    # Two frames: P([1]) = p(1,1) + p(1,-) + p(-,1); greedy path is "- -" (empty).
    probs = [[0.4, 0.35, 0.25], [0.4, 0.35, 0.25]]
    nbest = ctc_prefix_beam_search(
        _log_probs_from_probs(probs), torch.tensor([2]), beam_size=10, nbest=10
    )[0]
    as_dict = {tuple(tokens): score for tokens, score in nbest}
    expected_one = 0.35 * 0.35 + 0.35 * 0.4 + 0.4 * 0.35
    assert as_dict[(1,)] == pytest.approx(math.log(expected_one), abs=1e-9)
    assert as_dict[()] == pytest.approx(math.log(0.16), abs=1e-9)
    assert as_dict[(1, 2)] == pytest.approx(math.log(0.35 * 0.25), abs=1e-9)
    assert nbest[0][0] == [1]  # the summed prefix beats the best single path
    assert ctc_greedy_search(_log_probs_from_probs(probs), torch.tensor([2])) == [[]]
    # Probabilities of all label sequences sum to one.
    assert sum(math.exp(s) for _, s in nbest) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_prefix_beam_with_beam_one_equals_greedy(seed):
    log_probs = _peaky_log_probs(seed, batch=3, frames=40, vocab=12)
    lens = torch.tensor([40, 31, 17])
    greedy = ctc_greedy_search(log_probs, lens)
    beam = ctc_prefix_beam_search(log_probs, lens, beam_size=1, nbest=1)
    assert [hyps[0][0] for hyps in beam] == greedy
    assert any(len(h) > 3 for h in greedy)  # the test exercises real sequences


@pytest.mark.parametrize(
    "seed,frames,vocab", [(0, 3, 3), (1, 4, 3), (2, 5, 3), (3, 5, 2), (4, 5, 3), (5, 4, 2)]
)
def test_prefix_beam_nbest_equals_brute_force(seed, frames, vocab):
    generator = torch.Generator().manual_seed(seed)
    log_probs = (torch.randn(1, frames, vocab, generator=generator) * 1.5).log_softmax(-1).double()
    exact = sorted(
        _brute_force_sequence_scores(log_probs[0].numpy()).items(), key=lambda kv: -kv[1]
    )
    n = min(8, len(exact))
    # A beam wider than the number of distinct prefixes never prunes: the result is exact.
    nbest = ctc_prefix_beam_search(log_probs, torch.tensor([frames]), beam_size=64, nbest=n)[0]
    assert len(nbest) == n
    for (tokens, score), (exact_tokens, exact_score) in zip(nbest, exact[:n]):
        assert tuple(tokens) == exact_tokens
        assert score == pytest.approx(exact_score, abs=1e-5)


def test_prefix_beam_float32_input_and_sorted_output():
    log_probs = _peaky_log_probs(7, batch=2, frames=30, vocab=20).float()
    results = ctc_prefix_beam_search(log_probs, torch.tensor([30, 0]), beam_size=6, nbest=4)
    scores = [s for _, s in results[0]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 4
    assert len({tuple(t) for t, _ in results[0]}) == 4
    assert results[1] == [([], 0.0)]  # no frames: the empty sequence with probability 1


def test_prefix_beam_pruning_keeps_the_result_on_peaky_posteriors():
    log_probs = _peaky_log_probs(3, batch=2, frames=50, vocab=30)
    lens = torch.tensor([50, 42])
    full = ctc_prefix_beam_search(log_probs, lens, beam_size=5, nbest=3)
    topk = ctc_prefix_beam_search(log_probs, lens, beam_size=5, nbest=3, prune_topk=29)
    assert topk == full  # 29 of 29 non-blank tokens: no pruning at all
    pruned = ctc_prefix_beam_search(log_probs, lens, beam_size=5, nbest=3, prune_topk=3)
    thresholded = ctc_prefix_beam_search(
        log_probs, lens, beam_size=5, nbest=3, prune_threshold=math.log(1e-3)
    )
    for a, b, c in zip(full, pruned, thresholded):
        assert a[0][0] == b[0][0] == c[0][0]
        assert a[0][1] == pytest.approx(b[0][1], abs=1e-3)


def test_prefix_beam_rejects_bad_input():
    with pytest.raises(ValueError):
        ctc_prefix_beam_search(torch.zeros(2, 3), torch.tensor([3]), 2, 1)
    with pytest.raises(ValueError):
        ctc_prefix_beam_search(torch.zeros(1, 3, 2), torch.tensor([4]), 2, 1)


def test_confidences():
    nbest = [([1], math.log(0.6)), ([2], math.log(0.2)), ([1, 2], math.log(0.2))]
    assert nbest_posteriors(nbest) == pytest.approx([0.6, 0.2, 0.2])
    assert hypothesis_confidence(nbest) == pytest.approx(0.6)
    assert hypothesis_confidence([]) == 0.0
    log_probs = _log_probs_from_probs([[0.9, 0.05, 0.05], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    log_probs = torch.cat([log_probs, log_probs])
    assert mean_max_frame_posterior(log_probs, torch.tensor([3, 2])) == pytest.approx(
        [2.2 / 3, 0.7]
    )


# ---------------------------------------------------------------- CTC prefix scorer


def test_ctc_prefix_scorer_matches_brute_force():
    generator = torch.Generator().manual_seed(11)
    frames, vocab = 5, 3
    log_probs = (torch.randn(2, frames, vocab, generator=generator) * 1.5).double().log_softmax(-1)
    lens = torch.tensor([5, 4])
    scorer = CtcPrefixScorer(log_probs, lens, blank=0)
    exact = [_brute_force_sequence_scores(log_probs[b, : int(lens[b])].numpy()) for b in range(2)]

    def prefix_probability(b: int, prefix: tuple[int, ...]) -> float:
        values = [s for seq, s in exact[b].items() if seq[: len(prefix)] == prefix]
        return float(np.logaddexp.reduce(values)) if values else -math.inf

    state = scorer.initial_state()
    for prefix in [(1,), (1, 1), (1, 2), (2, 1, 2)]:
        # extend the empty state token by token, both rows at once
        current = state
        for position, token in enumerate(prefix):
            candidates = torch.tensor([[token, 3 - token]] * 2)
            scores, blank_end, token_end = scorer.extend(current, candidates)
            current = CtcPrefixScorer.make_state(
                scores,
                blank_end,
                token_end,
                candidates,
                torch.arange(2),
                torch.zeros(2, dtype=torch.long),
            )
            for b in range(2):
                assert float(scores[b, 0]) == pytest.approx(
                    prefix_probability(b, prefix[: position + 1]), abs=1e-9
                )
                other = prefix[:position] + (3 - token,)
                assert float(scores[b, 1]) == pytest.approx(prefix_probability(b, other), abs=1e-9)
        full = scorer.final_score(current)
        for b in range(2):
            assert float(full[b]) == pytest.approx(exact[b].get(prefix, -math.inf), abs=1e-9)


# ---------------------------------------------------------------- attention rescoring


def test_attention_log_likelihoods_teacher_forced():
    table = {(): {3: 0.5, 2: 0.3}, (3,): {1: 0.25}, (2,): {1: 0.9}}
    decoder = TableDecoder(vocab=4, tables=[table], floor=0.05)
    memory, lens = _memory_for([0])
    scores = attention_log_likelihoods(
        [[3], [2], []], [0, 0, 0], memory, lens, decoder, sos_id=1, eos_id=1
    )

    # softmax over logits: listed probabilities are not normalised, so normalise by hand
    def prob(prefix, token):
        row = [table.get(prefix, {}).get(v, 0.05) for v in range(4)]
        return row[token] / sum(row)

    expected = [
        math.log(prob((), 3)) + math.log(prob((3,), 1)),
        math.log(prob((), 2)) + math.log(prob((2,), 1)),
        math.log(prob((), 1)),
    ]
    assert scores.tolist() == pytest.approx(expected, abs=1e-9)
    assert decoder.calls == 1  # one padded call for all hypotheses
    chunked = attention_log_likelihoods(
        [[3], [2], []], [0, 0, 0], memory, lens, decoder, sos_id=1, eos_id=1, max_hyps_per_call=2
    )
    assert chunked.tolist() == pytest.approx(expected, abs=1e-9)
    assert decoder.calls == 3


def test_attention_rescoring_reorders_when_decoder_prefers_another_hypothesis():
    # Utterance 0: CTC prefers [2, 3]; decoder strongly prefers [2, 4].
    # Utterance 1 (checks memory expansion): decoder agrees with CTC on [4].
    table0 = {(): {2: 0.9}, (2,): {3: 0.01, 4: 0.9}, (2, 3): {1: 0.9}, (2, 4): {1: 0.9}}
    table1 = {(): {4: 0.9, 2: 0.05}, (4,): {1: 0.9}, (2,): {1: 0.9}}
    decoder = TableDecoder(vocab=5, tables=[table0, table1])
    memory, lens = _memory_for([0, 1])
    nbest = [
        [([2, 3], -1.0), ([2, 4], -1.5)],
        [([4], -0.2), ([2], -2.0)],
    ]
    rescored = attention_rescoring(
        nbest, memory, lens, decoder, sos_id=1, eos_id=1, attention_scales=[0.0, 0.5, 1.0]
    )
    assert decoder.calls == 1
    assert [h.tokens for h in rescored[0.0][0]] == [[2, 3], [2, 4]]
    assert [h.tokens for h in rescored[1.0][0]] == [[2, 4], [2, 3]]
    assert [h.tokens for h in rescored[1.0][1]] == [[4], [2]]
    top = rescored[0.5][0][0]
    assert top.score == pytest.approx(top.ctc_score + 0.5 * top.attention_score)
    assert top.ctc_score == -1.5
    best = best_per_scale(rescored)
    assert best[attention_scale_key(1.0)] == [[2, 4], [4]]
    assert best["attention_scale_0.0"] == [[2, 3], [4]]


# ---------------------------------------------------------------- attention search

SOS, EOS = 1, 2


@pytest.mark.parametrize("eos", [EOS, SOS])
def test_beam_search_returns_the_sequence_the_decoder_prefers(eos):
    # Utterance 0 prefers 3 4 5, utterance 1 prefers 6 3; sos may double as eos.
    tables = [
        {(): {3: 0.9}, (3,): {4: 0.9}, (3, 4): {5: 0.9}, (3, 4, 5): {eos: 0.9}},
        {(): {6: 0.9}, (6,): {3: 0.9}, (6, 3): {eos: 0.9}},
    ]
    decoder = TableDecoder(vocab=7, tables=tables)
    memory, lens = _memory_for([0, 1])
    result = attention_beam_search(memory, lens, decoder, SOS, eos, beam_size=3, nbest=2)
    assert [utt[0][0] for utt in result] == [[3, 4, 5], [6, 3]]
    assert all(len(utt) == 2 and utt[0][1] > utt[1][1] for utt in result)
    # Scores are the decoder's log-likelihoods of hyp + eos.
    exact = attention_log_likelihoods(
        [result[0][0][0], result[0][1][0]], [0, 0], memory, lens, decoder, SOS, eos
    )
    assert [s for _, s in result[0]] == pytest.approx(exact.tolist(), abs=1e-9)
    assert attention_greedy_search(memory, lens, decoder, SOS, eos) == [[3, 4, 5], [6, 3]]


def test_beam_search_beats_greedy_when_the_first_choice_is_a_trap():
    # Greedy takes 3 (0.55) but everything after 3 is uncertain; 4 (0.45) then eos is sure.
    table = {(): {3: 0.55, 4: 0.45}, (4,): {EOS: 0.99}}
    decoder = TableDecoder(vocab=6, tables=[table], floor=1e-6)
    memory, lens = _memory_for([0])
    assert attention_greedy_search(memory, lens, decoder, SOS, EOS)[0][0] == 3
    assert attention_beam_search(memory, lens, decoder, SOS, EOS, beam_size=2)[0][0][0] == [4]


@pytest.mark.parametrize("seed", range(4))
def test_beam_one_equals_greedy(seed):
    decoder = RandomDecoder(vocab=9, dim=4, seed=seed)
    generator = torch.Generator().manual_seed(100 + seed)
    memory = torch.randn(3, 5, 4, generator=generator)
    lens = torch.tensor([5, 4, 2])
    greedy = attention_greedy_search(memory, lens, decoder, SOS, EOS, max_len_ratio=2.0)
    beam = attention_beam_search(memory, lens, decoder, SOS, EOS, beam_size=1, max_len_ratio=2.0)
    assert [utt[0][0] for utt in beam] == greedy


def test_beam_search_length_limit_and_normalisation():
    # The decoder never wants to stop: eos must be forced at the length limit.
    table = {prefix: {3: 0.99} for prefix in [(), (3,), (3, 3), (3, 3, 3), (3, 3, 3, 3)]}
    decoder = TableDecoder(vocab=5, tables=[table], floor=1e-6)
    memory, lens = _memory_for([0], frames=6)
    result = attention_beam_search(memory, lens, decoder, SOS, EOS, beam_size=1, max_len_ratio=0.5)
    assert result[0][0][0] == [3, 3, 3]  # int(0.5 * 6) tokens
    result = attention_beam_search(memory, lens, decoder, SOS, EOS, beam_size=1, max_len=2)
    assert result[0][0][0] == [3, 3]
    result = attention_beam_search(
        memory, lens, decoder, SOS, EOS, beam_size=3, nbest=3, max_len_ratio=0.5
    )
    assert len(result[0]) == 3 and all(len(tokens) <= 3 for tokens, _ in result[0])

    # Short [4] (0.5 * 0.9) beats long [3 3 3 3] (0.5 * 0.8^4) in total, not per token.
    table = {(): {4: 0.5, 3: 0.5}, (4,): {EOS: 0.9, 0: 0.1}}
    for prefix in [(3,), (3, 3), (3, 3, 3)]:
        table[prefix] = {3: 0.8, 0: 0.2}
    table[(3, 3, 3, 3)] = {EOS: 0.8, 0: 0.2}
    decoder = TableDecoder(vocab=5, tables=[table], floor=1e-9)
    plain = attention_beam_search(memory, lens, decoder, SOS, EOS, beam_size=4, nbest=2)
    normalised = attention_beam_search(
        memory, lens, decoder, SOS, EOS, beam_size=4, nbest=2, normalise_length=True
    )
    assert plain[0][0][0] == [4]
    assert normalised[0][0][0] == [3, 3, 3, 3]
    long_score = attention_log_likelihoods([[3, 3, 3, 3]], [0], memory, lens, decoder, SOS, EOS)[0]
    assert normalised[0][0][1] == pytest.approx(float(long_score) / 5, abs=1e-9)
    bonus = attention_beam_search(memory, lens, decoder, SOS, EOS, beam_size=4, length_bonus=0.5)
    assert bonus[0][0][0] == [3, 3, 3, 3]  # a per-token bonus favours the long hypothesis
    assert bonus[0][0][1] == pytest.approx(float(long_score) + 5 * 0.5, abs=1e-9)


def test_joint_ctc_scoring_changes_the_result_when_ctc_disagrees():
    # Decoder prefers [3]; CTC posteriors clearly say [4 5].
    vocab = 6
    table = {(): {3: 0.6, 4: 0.4}, (3,): {EOS: 0.9}, (4,): {5: 0.7, EOS: 0.3}, (4, 5): {EOS: 0.9}}
    decoder = TableDecoder(vocab=vocab, tables=[table], floor=1e-3)
    memory, lens = _memory_for([0], frames=6)
    frames = [0, 4, 4, 0, 5, 0]
    ctc = torch.full((1, 6, vocab), math.log(0.02))
    for t, token in enumerate(frames):
        ctc[0, t, token] = math.log(0.9)
    ctc = ctc.log_softmax(-1)
    without = attention_beam_search(memory, lens, decoder, SOS, EOS, beam_size=3)
    assert without[0][0][0] == [3]
    joint = attention_beam_search(
        memory, lens, decoder, SOS, EOS, beam_size=3, ctc_log_probs=ctc, ctc_weight=0.5
    )
    assert joint[0][0][0] == [4, 5]
    # The joint score is (1 - w) * attention + w * CTC of the full hypothesis.
    attention = attention_log_likelihoods([[4, 5]], [0], memory, lens, decoder, SOS, EOS)[0]
    ctc_score = -torch.nn.functional.ctc_loss(
        ctc.double().transpose(0, 1),
        torch.tensor([[4, 5]]),
        torch.tensor([6]),
        torch.tensor([2]),
        reduction="sum",
    ).item()
    assert joint[0][0][1] == pytest.approx(0.5 * float(attention) + 0.5 * ctc_score, abs=1e-6)


def test_joint_ctc_scoring_in_a_padded_batch_matches_single_utterances():
    vocab = 7
    decoder = RandomDecoder(vocab=vocab, dim=4, seed=5)
    generator = torch.Generator().manual_seed(9)
    memory = torch.randn(2, 8, 4, generator=generator)
    lens = torch.tensor([8, 5])
    ctc = _peaky_log_probs(4, batch=2, frames=8, vocab=vocab)
    ctc[:, :, EOS] = -30.0
    ctc = ctc.log_softmax(-1)
    kwargs = dict(beam_size=3, nbest=2, ctc_weight=0.3, max_len_ratio=1.0)
    batched = attention_beam_search(memory, lens, decoder, SOS, EOS, ctc_log_probs=ctc, **kwargs)
    for b in range(2):
        n = int(lens[b])
        single = attention_beam_search(
            memory[b : b + 1],
            lens[b : b + 1],
            decoder,
            SOS,
            EOS,
            ctc_log_probs=ctc[b : b + 1, :n],
            **kwargs,
        )
        assert [t for t, _ in single[0]] == [t for t, _ in batched[b]]
        assert [s for _, s in single[0]] == pytest.approx([s for _, s in batched[b]], abs=1e-6)


def test_incremental_beam_search_equals_full_prefix_recompute():
    """The real decoder's cached step gives the same N-best as recomputing every prefix."""
    from less.model.attention_decoder import AttentionDecoder

    torch.manual_seed(0)
    decoder = AttentionDecoder(
        vocab_size=23, decoder_dim=32, num_layers=2, num_heads=4, feedforward_dim=64, memory_dim=16
    ).eval()
    memory = torch.randn(3, 17, 16)
    memory_lens = torch.tensor([17, 11, 6])
    full = attention_beam_search(
        memory, memory_lens, decoder, sos_id=1, eos_id=1, beam_size=4, nbest=3, max_len=12
    )
    cached = attention_beam_search(
        memory,
        memory_lens,
        decoder,
        sos_id=1,
        eos_id=1,
        beam_size=4,
        nbest=3,
        max_len=12,
        incremental=decoder,
    )
    assert [[h for h, _ in utt] for utt in full] == [[h for h, _ in utt] for utt in cached]
    for a, b in zip(full, cached):
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-4)
    assert any(len(h) > 2 for utt in full for h, _ in utt)  # long enough to exercise the cache
