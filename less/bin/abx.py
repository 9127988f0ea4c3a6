"""ABX phonetic discrimination (within / across speaker) of encoder layers or raw fbank.

Scoring as libri-light's ABX (triphone contexts, DTW over angular frame distances, error
averaged over contexts, speakers and unit pairs): see :mod:`less.ssl.abx`.

Unit segments come from ``--alignments`` (JSON lines), read when the file exists:

* exact phones of the mini corpus from espeak-ng's own phoneme events
  (``python -m less.bin.phone_alignments``; ``--units phone``: the IPA phones as they are);
* else a CTC forced alignment of the reference transcripts with a trained model
  (``--align-checkpoint``), written once and reused by every later call.  Units are
  Mandarin characters (``--units char``) or their espeak-ng syllables (``--units
  espeak-cmn``: the phoneme string espeak-ng reads for the character, tone included, so
  homophones form one category; the mini corpus was synthesised by espeak-ng).

An alignment line names a cut id, or a supervision id (the phone alignments do: cut ids
depend on how a cut set was made); the latter is moved to the cut holding that supervision.

Representations (``--layer``, repeatable): ``fbank`` (the input features, no checkpoint
needed), ``embed`` (the conv front end, 50 Hz), ``0`` .. ``5`` (Zipformer stack outputs,
50 Hz), ``final`` (encoder output, 25 Hz) of ``--checkpoint``: any checkpoint with
``model`` + ``config`` (``less.bin.train`` or ``less.bin.ssl_pretrain``).

Example::

    python -m less.bin.abx --cuts data/fbank/mini-asr_cuts_test_clean.jsonl.gz \\
        --alignments exp/ssl/abx/test_clean.align.jsonl --align-checkpoint exp/asr/iter0/epoch-30.pt \\
        --checkpoint exp/ssl/birq/epoch-15.pt --layer 2 --layer final --out exp/ssl/abx/birq.json
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from tqdm import tqdm

from less.checkpoint import add_inference_arguments, inference_device, load_checkpoint
from less.data.cuts import keep_cuts
from less.ssl.abx import CONTEXT_MODES, abx_error, make_items, segment
from less.ssl.alignment import (
    UtteranceAlignment,
    align_cuts,
    frame_times,
    load_alignments,
    save_alignments,
)
from less.utils import cli_parser, setup_logging, str2bool, write_json_atomic

log = logging.getLogger("less.abx")

UNIT_TYPES = ("char", "espeak-cmn", "phone")


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    p.add_argument(
        "--cuts",
        action="append",
        required=True,
        help="cut set with features and transcripts (repeatable)",
    )
    p.add_argument(
        "--alignments",
        type=Path,
        required=True,
        help="unit alignments (JSON lines): read if present, else made with --align-checkpoint",
    )
    p.add_argument(
        "--align-checkpoint",
        type=Path,
        help="trained CTC model checkpoint for the forced alignment",
    )
    p.add_argument("--checkpoint", type=Path, help="model whose encoder layers are evaluated")
    p.add_argument(
        "--use-averaged-model",
        type=str2bool,
        default=False,
        help="evaluate the checkpoint's running averaged model (model_avg) when it has one",
    )
    p.add_argument(
        "--layer", action="append", help="fbank, embed, 0..5, final (repeatable; default final)"
    )
    p.add_argument("--units", choices=UNIT_TYPES, default="char")
    p.add_argument("--context", choices=CONTEXT_MODES, default="triphone")
    p.add_argument(
        "--max-group-size", type=int, default=10, help="tokens kept per (context, speaker, unit)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the group subsampling")
    add_inference_arguments(p, max_duration=200.0, device="cpu")
    p.add_argument("--out", type=Path, required=True, help="JSON results, one entry per layer")
    return p


def load_encoder(path: Path, use_averaged_model: bool, device: torch.device):
    """The encoder of any checkpoint with ``model`` (+ ``model_avg``) and ``config``."""
    from less.ssl.model import EncoderOnly

    ckpt = load_checkpoint(path)
    config = ckpt["config"]
    state = (
        ckpt["model_avg"]
        if use_averaged_model and ckpt.get("model_avg") is not None
        else ckpt["model"]
    )
    encoder = EncoderOnly(config["model"], config.get("model_overrides") or {})
    wanted = encoder.encoder_state().keys()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise ValueError(f"{path}: no encoder tensors {missing[:5]} in the checkpoint")
    encoder.load_state_dict({k: state[k].float() for k in wanted})
    return encoder.to(device).eval()


def unit_map_for(alignments, units: str) -> dict[str, str] | None:
    """How units are renamed before scoring; None: as they are (characters, phones)."""
    if units in ("char", "phone"):
        return None
    from less.data import espeak  # espeak-ng, only for this option

    chars = sorted({u for a in alignments for u, _, _ in a.units})
    return {c: espeak.phonemes(c, "cmn") for c in chars}


def attach_to_cuts(alignments: list[UtteranceAlignment], cuts) -> list[UtteranceAlignment]:
    """The alignments that belong to ``cuts``, keyed by cut id.

    An alignment keyed by a cut id is kept as it is. One keyed by a supervision id (the
    mini corpus's phone alignments: lhotse names the cut of a whole recording
    ``<recording id>-<index>``, so a cut id is not known before the cut set is made) moves
    to the cut holding that supervision, its times shifted by the supervision's start in
    the cut.
    """
    cut_ids = {c.id for c in cuts}
    holders = {s.id: (c, s) for c in cuts for s in c.supervisions}
    out = []
    for a in alignments:
        if a.cut_id in cut_ids:
            out.append(a)
        elif a.cut_id in holders:
            cut, sup = holders[a.cut_id]
            out.append(
                UtteranceAlignment(
                    cut.id,
                    a.speaker,
                    cut.duration,
                    [(u, s + sup.start, e + sup.start) for u, s, e in a.units],
                )
            )
    return out


@torch.no_grad()
def utterance_features(
    cuts, layer: str, encoder, device: torch.device, max_duration: float
) -> dict[str, tuple]:
    """cut id -> (frames (T, D), centre times (T,)) of one representation."""
    from less.data.datamodule import DataConfig, make_loader

    loader, _, _ = make_loader(
        cuts,
        DataConfig(max_duration=max_duration, num_workers=0, spec_augment=False),
        training=False,
    )
    rate = {"fbank": "100", "final": "25"}.get(layer, "50")
    out = {}
    for batch in tqdm(loader, desc=f"features {layer}", unit="batch"):
        feats, lens = batch["inputs"], batch["input_lens"]
        if layer != "fbank":
            feats, lens = encoder.representation(feats.to(device), lens.to(device), layer)
        for b, cut_id in enumerate(batch["cut_ids"]):
            n = int(lens[b])
            out[cut_id] = (feats[b, :n].float().cpu(), frame_times(n, rate).float())
    return out


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    device = inference_device(args)
    from lhotse import CutSet

    cuts = CutSet.from_cuts(c for path in args.cuts for c in CutSet.from_file(path)).to_eager()
    if args.alignments.is_file():
        alignments = load_alignments(args.alignments)
        log.info("%d utterance alignments from %s", len(alignments), args.alignments)
    else:
        if args.units == "phone":
            raise SystemExit(
                f"{args.alignments} does not exist: make the phone alignments with "
                "python -m less.bin.phone_alignments"
            )
        if args.align_checkpoint is None:
            raise SystemExit(
                f"{args.alignments} does not exist: give --align-checkpoint to make it"
            )
        from less.decode.recognizer import Recognizer

        recognizer = Recognizer.from_file(args.align_checkpoint, device)
        alignments, skipped = align_cuts(recognizer, cuts)
        save_alignments(args.alignments, alignments)
        log.info(
            "aligned %d cuts with %s (%d skipped) -> %s",
            len(alignments),
            args.align_checkpoint,
            skipped,
            args.alignments,
        )
    matched = attach_to_cuts(alignments, cuts)
    if len(matched) < len(alignments):
        log.warning(
            "%d of %d alignments match no cut of %s",
            len(alignments) - len(matched),
            len(alignments),
            args.cuts,
        )
    if not matched:
        raise SystemExit(
            f"no alignment of {args.alignments} matches a cut (or a supervision) of {args.cuts}"
        )
    alignments = matched
    aligned_ids = {a.cut_id for a in alignments}
    cuts = keep_cuts(cuts, lambda c: c.id in aligned_ids)
    items = make_items(alignments, args.context, unit_map_for(alignments, args.units))
    log.info(
        "%d ABX items (%s context, %s units) from %d utterances",
        len(items),
        args.context,
        args.units,
        len(alignments),
    )

    layers = args.layer or ["final"]
    encoder = None
    if any(layer != "fbank" for layer in layers):
        if args.checkpoint is None:
            raise SystemExit(f"--layer {layers} needs --checkpoint")
        encoder = load_encoder(args.checkpoint, args.use_averaged_model, device)
    results = {}
    for layer in layers:
        if layer not in ("fbank", "embed", "final") and not layer.isdigit():
            raise SystemExit(f"unknown --layer {layer!r}: fbank, embed, a stack index or final")
        frames = utterance_features(cuts, layer, encoder, device, args.max_duration)
        features = [segment(*frames[item.cut_id], item.start, item.end) for item in items]
        empty = sum(f is None for f in features)
        result = abx_error(items, features, args.max_group_size, args.seed)
        results[layer] = {**result.as_dict(), "items_without_frames": empty}
        log.info(
            "%s layer %s: ABX within %.2f%% (%d unit pairs), across %.2f%% (%d unit pairs); %d items, "
            "%d contexts, %d without frames",
            "input" if layer == "fbank" else args.checkpoint,
            layer,
            100 * result.within,
            result.within_pairs,
            100 * result.across,
            result.across_pairs,
            result.items,
            result.contexts,
            empty,
        )
    write_json_atomic(
        args.out,
        {
            "checkpoint": str(args.checkpoint) if args.checkpoint else None,
            "use_averaged_model": args.use_averaged_model,
            "cuts": args.cuts,
            "alignments": str(args.alignments),
            "units": args.units,
            "context": args.context,
            "max_group_size": args.max_group_size,
            "layers": results,
        },
    )


if __name__ == "__main__":
    main()
