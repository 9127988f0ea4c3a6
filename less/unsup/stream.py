"""System U's side of a training step: the unlabeled stream and its loss.

``less.bin.train --unsup-cuts`` takes one supervised and one unlabeled batch per step.
The unlabeled cuts are those the LESS filter rejected (``pl["kept"]`` false; cuts with
no mark are used too, cuts marked kept are skipped: they already train as labelled cuts
in the mix). Their stream cycles on its own, independent of the supervised epochs: an
unlabeled "epoch" is one pass of its own shuffled sampler, the next pass reshuffles.

Exact resume: the stream's position (``unsup_epoch``, ``unsup_batch_idx``: batches taken
from that pass) lives in the trainer's ``state``, which every checkpoint stores; a
resumed run rebuilds the sampler of that pass and skips the batches already taken
(:class:`less.data.datamodule.SkipBatches`), so it draws the very batches an
uninterrupted run would. The loss is stateless (its prior comes from the batch itself).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from less.pseudo.record import read_record
from less.unsup.loss import (
    Hypotheses,
    batch_label_prior,
    hypothesis_texts,
    make_hypotheses,
    sequence_level_loss,
)

log = logging.getLogger("less.unsup")


def ctc_min_frames(tokens: tuple[int, ...]) -> int:
    """Frames a CTC path of ``tokens`` needs: one per token, plus a blank between repeats."""
    return len(tokens) + sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)


def collect_hypotheses(
    cuts,
    encode: Callable[[str], list[int]],
    lm_score: Callable[[str], float] | None,
    include_llm: bool = True,
) -> tuple[dict[str, Hypotheses], dict[str, int]]:
    """cut id -> its hypothesis set, for every rejected (or unmarked) cut; and counts."""
    targets: dict[str, Hypotheses] = {}
    counts = {"cuts": 0, "kept_skipped": 0, "no_hypotheses": 0}
    for cut in cuts:
        counts["cuts"] += 1
        if len(cut.supervisions) != 1:
            raise ValueError(
                f"cut {cut.id}: expected exactly one supervision, found {len(cut.supervisions)}"
            )
        record = read_record(
            cut, "the unlabeled cuts must come from less.bin.filter_pl --annotated-cuts"
        )
        if record.kept is True:
            counts["kept_skipped"] += 1
            continue
        hyps = make_hypotheses(hypothesis_texts(record, include_llm), encode, lm_score)
        if hyps is None:
            counts["no_hypotheses"] += 1
            continue
        targets[cut.id] = hyps
    return targets, counts


class UnlabeledStream:
    """Batches of the unlabeled cuts, cycling forever; position kept in ``state``."""

    def __init__(
        self, cuts, data_config, seed: int, state: dict[str, Any], loader_kwargs: dict[str, Any]
    ):
        self.cuts = cuts
        self.data_config = data_config
        self.seed = seed
        self.state = state
        self.loader_kwargs = loader_kwargs
        self._iterator = None
        state.setdefault("unsup_epoch", 1)
        state.setdefault("unsup_batch_idx", 0)

    def _open(self) -> None:
        from less.data.datamodule import make_loader

        epoch, skip = self.state["unsup_epoch"], self.state["unsup_batch_idx"]
        loader, _, _ = make_loader(
            self.cuts,
            self.data_config,
            training=True,
            seed=self.seed,
            skip_batches=skip,
            epoch=epoch,
            **self.loader_kwargs,
        )
        self._iterator = iter(loader)
        if skip:
            log.info(
                "unlabeled stream: pass %d, skipping the %d batches already taken", epoch, skip
            )

    def next_batch(self) -> dict[str, Any]:
        for _ in range(2):
            if self._iterator is None:
                self._open()
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = None
                if self.state["unsup_batch_idx"] == 0:
                    break
                self.state["unsup_epoch"] += 1
                self.state["unsup_batch_idx"] = 0
                continue
            self.state["unsup_batch_idx"] += 1
            return batch
        raise RuntimeError(
            "the unlabeled stream yields no batch: no rejected cut fits the duration limits "
            "(--min-cut-duration/--max-cut-duration) or has a hypothesis that fits CTC"
        )


class UnsupervisedObjective:
    """The sequence-level loss on the next unlabeled batch, weighted, for one training step."""

    def __init__(
        self,
        targets: dict[str, Hypotheses],
        stream: UnlabeledStream,
        weight: float,
        lm_weight: float,
        prior_weight: float,
    ):
        self.targets = targets
        self.stream = stream
        self.weight = weight
        self.lm_weight = lm_weight
        self.prior_weight = prior_weight

    def loss(
        self, model: torch.nn.Module, device: torch.device, autocast
    ) -> dict[str, Tensor | int]:
        """``unsup_loss`` (summed over the batch, nats) and counts; utterances none of whose
        hypotheses fit the frames are left out and counted (``unsup_dropped``)."""
        batch = self.stream.next_batch()
        feats = batch["inputs"].to(device)
        feat_lens = batch["input_lens"].to(device)
        hyps = [self.targets[cut_id] for cut_id in batch["cut_ids"]]
        with autocast():
            enc_out, enc_lens = model.encode(feats, feat_lens)
            log_probs = model.ctc_log_probs(enc_out)
        log_probs = log_probs.float()
        log_prior = batch_label_prior(log_probs, enc_lens) if self.prior_weight else None
        per_utt = sequence_level_loss(
            log_probs,
            enc_lens,
            [h.tokens for h in hyps],
            [h.lm_scores for h in hyps],
            log_prior,
            self.lm_weight,
            self.prior_weight,
        )
        finite = torch.isfinite(per_utt)
        loss = per_utt[finite].sum() if bool(finite.any()) else per_utt.new_zeros(())
        return {
            "unsup_loss": loss,
            "unsup_utterances": int(finite.sum()),
            "unsup_dropped": int((~finite).sum()),
            "unsup_frames": int(enc_lens[finite].sum()),
            "unsup_hypotheses": sum(len(h.tokens) for h in hyps),
        }


def build_objective(
    cfg, ctc_tokenizer, state: dict[str, Any], loader_kwargs: dict[str, Any]
) -> UnsupervisedObjective:
    """The objective of a :class:`less.training.TrainConfig` with ``unsup_cuts`` set."""
    from dataclasses import replace

    from less.data.datamodule import load_cuts
    from less.model import output_lengths
    from less.unsup.ngram import NgramScorer, sentence_units

    lm_score = None
    if cfg.unsup_lm:
        scorer = NgramScorer.from_arpa(cfg.unsup_lm)
        lang = ctc_tokenizer.lang

        def lm_score(text: str) -> float:
            return scorer.log_prob(sentence_units(text, lang))
    elif cfg.unsup_lm_weight:
        log.warning("--unsup-lm-weight %.2f without --unsup-lm: no LM term", cfg.unsup_lm_weight)
    cuts = load_cuts([cfg.unsup_cuts])
    targets, counts = collect_hypotheses(cuts, ctc_tokenizer.encode, lm_score)
    if not targets:
        raise ValueError(f"{cfg.unsup_cuts}: no rejected cut with a hypothesis ({counts})")
    sizes = [len(h.tokens) for h in targets.values()]
    log.info(
        "unlabeled cuts %s: %d of %d used (%d kept by the filter skipped, %d without hypotheses); "
        "%.2f hypotheses per cut; LM %s (weight %.2f), prior weight %.2f, loss weight %.2f",
        cfg.unsup_cuts,
        len(targets),
        counts["cuts"],
        counts["kept_skipped"],
        counts["no_hypotheses"],
        sum(sizes) / len(sizes),
        cfg.unsup_lm,
        cfg.unsup_lm_weight if cfg.unsup_lm else 0.0,
        cfg.unsup_prior_weight,
        cfg.unsup_weight,
    )

    def fits(cut) -> bool:
        hyps = targets.get(cut.id)
        if hyps is None:
            return False
        num_frames = cut.num_frames if cut.has_features else round(cut.duration * 100)
        frames = int(output_lengths(torch.tensor([num_frames]))[0])
        return any(ctc_min_frames(tokens) <= frames for tokens in hyps.tokens)

    data_config = (
        cfg.data
        if not cfg.unsup_max_duration
        else replace(cfg.data, max_duration=cfg.unsup_max_duration)
    )
    stream = UnlabeledStream(
        cuts, data_config, cfg.seed + 1, state, {**loader_kwargs, "keep": fits}
    )
    return UnsupervisedObjective(
        targets,
        stream,
        cfg.unsup_weight,
        cfg.unsup_lm_weight if cfg.unsup_lm else 0.0,
        cfg.unsup_prior_weight,
    )
