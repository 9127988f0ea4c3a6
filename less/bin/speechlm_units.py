"""SpeechLM's phoneme-unit tokenizer (:mod:`less.ssl.units`): writes the unit lexicon, the
speech frame units and the upsampled text units that ``less.bin.ssl_pretrain --method
speechlm`` trains on.

1. lexicon: every character of ``--lang-dir`` and of the text corpus -> its espeak-ng
   syllable (``--voice cmn``; homophones share a unit): ``units.txt``, ``lexicon.txt``;
2. durations: ``--ref-cuts`` (transcribed, e.g. train_sup) forced-aligned to their
   references with the seed model ``--checkpoint``; frames per unit and edge silence:
   ``durations.json``;
3. speech units: ``--hyp-cuts`` (unlabeled, e.g. unsup_wild) recognised by the same model
   (CTC greedy) and aligned to that hypothesis; one unit per 25 Hz encoder frame:
   ``speech_units.jsonl.gz`` (``{"cut_id", "units"}``; the reference-aligned ``--ref-cuts``
   are added with ``--ref-speech true``, and ``--valid-cuts`` from their references).  Where the cuts carry hidden references
   (``custom["ref_text"]``, the mini corpus), the unit error rate and the character error
   rate of the hypotheses are logged;
4. text units: each sentence of ``--text`` -> units, upsampled (seeded per sentence):
   ``text_units.jsonl.gz`` (``{"text", "units"}``).

Example::

    python -m less.bin.speechlm_units --checkpoint exp/asr/iter0/epoch-30.pt --lang-dir data/lang_char \\
        --ref-cuts data/fbank/mini-asr_cuts_train_sup.jsonl.gz --hyp-cuts data/fbank/mini-asr_cuts_unsup_wild.jsonl.gz \\
        --text data/text/mini-asr_text_only.zh.txt --out-dir exp/asr/speechlm_units
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import random
from pathlib import Path

import torch

from less.checkpoint import (
    add_inference_arguments,
    add_model_selection_arguments,
    check_model_selection,
    inference_device,
    selected_model_state,
)
from less.utils import atomic_path, cli_parser, setup_logging, str2bool, write_json_atomic

log = logging.getLogger("less.speechlm_units")

DONE = ".done"


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="the seed CTC model as one file (pretrained.pt, or an epoch-N.pt as it is)",
    )
    add_model_selection_arguments(p)  # or: the seed model as decoding averages it
    p.add_argument(
        "--lang-dir", type=Path, required=True, help="its character tokens (data/lang_char)"
    )
    p.add_argument(
        "--ref-cuts",
        action="append",
        required=True,
        help="transcribed cuts: durations (repeatable)",
    )
    p.add_argument(
        "--hyp-cuts", action="append", default=[], help="unlabeled cuts: speech units (repeatable)"
    )
    p.add_argument(
        "--valid-cuts",
        action="append",
        default=[],
        help="transcribed cuts for the pretraining's validation: units from their references (repeatable)",
    )
    p.add_argument(
        "--ref-speech",
        type=str2bool,
        default=False,
        help="also write speech units of --ref-cuts (aligned to their references)",
    )
    p.add_argument(
        "--text", type=Path, required=True, help="text-only corpus, one sentence per line"
    )
    p.add_argument("--voice", default="cmn", help="espeak-ng voice giving a character's unit")
    p.add_argument(
        "--min-count", type=int, default=5, help="aligned occurrences for a unit's own duration"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the text upsampling")
    add_inference_arguments(p, max_duration=200.0)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--overwrite", type=str2bool, default=False)
    return p


def _load_cuts(paths: list[str]):
    from lhotse import CutSet

    return CutSet.from_cuts(c for path in paths for c in CutSet.from_file(path)).to_eager()


def _encoder_frames(cut) -> int:
    from less.model import output_lengths

    if not cut.has_features:
        raise ValueError(f"cut {cut.id}: no features (run compute_fbank first)")
    return int(output_lengths(torch.tensor([cut.num_frames]))[0])


def _write_jsonl(path: Path, rows) -> int:
    count = 0
    with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    check_model_selection(args)
    setup_logging()
    device = inference_device(args)
    out = args.out_dir
    if (out / DONE).exists() and not args.overwrite:
        log.info("%s is finished (%s exists); skipping (use --overwrite to redo)", out, DONE)
        return
    out.mkdir(parents=True, exist_ok=True)

    from less.data import espeak
    from less.data.text import normalize
    from less.data.tokenizer import load_tokenizer
    from less.decode.recognizer import Recognizer
    from less.metrics import align_units
    from less.pseudo.filter import reference_of
    from less.ssl.alignment import align_cuts
    from less.ssl.units import DurationModel, UnitLexicon, frame_units

    tokenizer = load_tokenizer(args.lang_dir)
    if not hasattr(tokenizer, "symbols"):
        raise SystemExit(
            f"{args.lang_dir}: SpeechLM units need a character tokenizer (Mandarin lang_char)"
        )
    sentences = [
        normalize(line, tokenizer.lang)
        for line in args.text.read_text(encoding="utf-8").splitlines()
    ]
    sentences = [s for s in sentences if s]
    if not sentences:
        raise SystemExit(f"{args.text}: no sentences")
    chars = {c for c in tokenizer.symbols if len(c) == 1} | {
        c for s in sentences for c in s if not c.isspace()
    }
    lexicon = UnitLexicon.build(chars, espeak.pronouncer(args.voice))
    lexicon.save(out)
    unknown = sorted(c for c, u in lexicon.char_units.items() if u == "<unk>")
    log.info(
        "lexicon: %d characters -> %d units (%d characters unread: %s)",
        len(lexicon.char_units),
        len(lexicon),
        len(unknown),
        "".join(unknown[:20]),
    )

    state, config = selected_model_state(args)
    recognizer = Recognizer.from_config(config, state, device)
    ref_cuts = _load_cuts(args.ref_cuts)
    ref_alignments, skipped = align_cuts(recognizer, ref_cuts, args.max_duration)
    frames_of = {c.id: _encoder_frames(c) for c in ref_cuts}
    durations = DurationModel.fit(
        ((a, frames_of[a.cut_id]) for a in ref_alignments), lexicon, args.min_count
    )
    durations.save(out / "durations.json")
    log.info(
        "durations from %d aligned reference cuts (%d skipped): %.2f +- %.2f frames per unit "
        "(%d units with their own), edge silence %.1f +- %.1f",
        len(ref_alignments),
        skipped,
        durations.mean,
        durations.std,
        len(durations.per_unit),
        durations.sil_mean,
        durations.sil_std,
    )

    rows = []
    if args.ref_speech:
        rows += [
            {"cut_id": a.cut_id, "units": frame_units(a, frames_of[a.cut_id], lexicon)}
            for a in ref_alignments
        ]
    if args.valid_cuts:
        valid_cuts = _load_cuts(args.valid_cuts)
        valid_alignments, skipped = align_cuts(recognizer, valid_cuts, args.max_duration)
        valid_frames = {c.id: _encoder_frames(c) for c in valid_cuts}
        rows += [
            {"cut_id": a.cut_id, "units": frame_units(a, valid_frames[a.cut_id], lexicon)}
            for a in valid_alignments
        ]
        log.info(
            "speech units of %d validation cuts from their references (%d skipped)",
            len(valid_alignments),
            skipped,
        )
    if args.hyp_cuts:
        hyp_cuts = _load_cuts(args.hyp_cuts)
        hyp_alignments, empty = align_cuts(recognizer, hyp_cuts, args.max_duration, hypotheses=True)
        by_id = {c.id: c for c in hyp_cuts}
        unit_errors = unit_total = char_errors = char_total = 0
        for a in hyp_alignments:
            cut = by_id[a.cut_id]
            rows.append(
                {"cut_id": a.cut_id, "units": frame_units(a, _encoder_frames(cut), lexicon)}
            )
            ref = reference_of(cut.supervisions[0], "asr") if cut.supervisions else None
            if ref:
                hyp_text = "".join(u for u, _, _ in a.units)
                ref_text = normalize(ref, tokenizer.lang).replace(" ", "")
                unit_err = align_units(
                    [str(u) for u in lexicon.encode(ref_text)],
                    [str(u) for u in lexicon.encode(hyp_text)],
                )
                char_err = align_units(list(ref_text), list(hyp_text))
                unit_errors += unit_err.errors
                unit_total += len(unit_err.ref)
                char_errors += char_err.errors
                char_total += len(char_err.ref)
        log.info(
            "speech units of %d unlabeled cuts (%d with an empty hypothesis, left out)",
            len(hyp_alignments),
            empty,
        )
        if unit_total:
            log.info(
                "against the hidden references: unit error rate %.2f %%, character error rate %.2f %% "
                "(%d reference characters)",
                100 * unit_errors / unit_total,
                100 * char_errors / char_total,
                char_total,
            )
            write_json_atomic(
                out / "unit_error_rate.json",
                {
                    "unit_error_rate": 100 * unit_errors / unit_total,
                    "cer": 100 * char_errors / char_total,
                    "reference_chars": char_total,
                    "cuts": len(hyp_alignments),
                },
            )
    if not rows:
        raise SystemExit("no speech units: give --hyp-cuts or --ref-speech true")
    _write_jsonl(out / "speech_units.jsonl.gz", rows)

    def text_rows():
        for i, sentence in enumerate(sentences):
            units = lexicon.encode(sentence)
            rng = random.Random(args.seed * 1_000_003 + i)
            yield {"text": sentence, "units": durations.upsample(units, rng)}

    count = _write_jsonl(out / "text_units.jsonl.gz", text_rows())
    log.info("wrote %d speech and %d text unit sequences to %s", len(rows), count, out)
    (out / DONE).touch()


def load_speech_units(path: str | Path) -> dict[str, list[int]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return {row["cut_id"]: row["units"] for row in map(json.loads, f)}


def load_text_units(path: str | Path) -> list[tuple[str, list[int]]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [(row["text"], row["units"]) for row in map(json.loads, f)]


if __name__ == "__main__":
    main()
