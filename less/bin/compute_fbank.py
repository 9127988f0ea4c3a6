"""Stage 2: 80-dim fbank (lhotse's pure-torch ``Fbank``) stored with lilcom.

Input is a recording + supervision manifest pair or a cut set (e.g. the VAD segments of
stage 1). The cut set is split into ``--num-splits`` pieces (lhotse ``split``); each
piece is computed into its own lilcom archive and cut file under ``<out>.parts/``, so
pieces can run in parallel (``--num-jobs``), or one per scheduler job
(``--split-index i``), and a rerun after a kill redoes only unfinished pieces. The final
cut set is written when every piece is done.

Checks before any work: missing audio files and empty transcripts (``--require-text``)
are errors naming the cut and file; cuts shorter than ``--min-duration`` (shorter than
the 25 ms analysis window, or near it) are skipped with a counted warning, and so are
cuts without a transcript with ``--skip-empty-text`` (a validation set made from an
evaluation set that keeps such segments for its other references, e.g. Fisher dev).

Audio at another rate than ``--sampling-rate`` (8 kHz telephone speech such as Fisher,
44.1/48 kHz recordings of one's own) is resampled first: lhotse's ``Fbank`` only
accepts the rate it was configured for, and every model here works on 16 kHz fbank.

Example::

    python -m less.bin.compute_fbank \\
        --recordings data/manifests/mini-asr_recordings_train_sup.jsonl.gz \\
        --supervisions data/manifests/mini-asr_supervisions_train_sup.jsonl.gz \\
        --out-cuts data/fbank/mini-asr_cuts_train_sup.jsonl.gz --speed-perturb true
"""

from __future__ import annotations

import argparse
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from less.data.cuts import check_audio_files_exist, check_transcripts, keep_cuts
from less.utils import (
    already_done,
    cli_parser,
    progress_bar,
    save_cuts_atomic,
    setup_logging,
    str2bool,
)

log = logging.getLogger("less.compute_fbank")


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    p.add_argument("--recordings", type=Path, help="recording manifest (with --supervisions)")
    p.add_argument("--supervisions", type=Path, help="supervision manifest (with --recordings)")
    p.add_argument("--in-cuts", type=Path, help="cut set input instead of recordings+supervisions")
    p.add_argument("--out-cuts", type=Path, required=True, help="output cut set with features")
    p.add_argument("--storage-dir", type=Path, help="feature archives (default: <out-cuts>.parts/)")
    p.add_argument(
        "--trim-to-supervisions",
        type=str2bool,
        default=False,
        help="one cut per supervision (long recordings with segment transcripts)",
    )
    p.add_argument(
        "--speed-perturb",
        type=str2bool,
        default=False,
        help="add 0.9x and 1.1x speed-perturbed copies (training sets)",
    )
    p.add_argument(
        "--require-text",
        type=str2bool,
        default=False,
        help="every supervision must have a non-empty transcript (supervised sets)",
    )
    p.add_argument(
        "--skip-empty-text",
        type=str2bool,
        default=False,
        help="skip (and count) cuts whose supervision has no transcript",
    )
    p.add_argument("--min-duration", type=float, default=0.1, help="skip shorter cuts (s), counted")
    p.add_argument("--num-mel-bins", type=int, default=80)
    p.add_argument(
        "--sampling-rate",
        type=int,
        default=16000,
        help="resample audio at other rates to this one first (0: never resample)",
    )
    p.add_argument("--num-splits", type=int, default=1, help="pieces to split the cut set into")
    p.add_argument("--split-index", type=int, default=-1, help="compute only this piece (-1: all)")
    p.add_argument("--num-jobs", type=int, default=1, help="pieces computed in parallel")
    return p


def load_input_cuts(args: argparse.Namespace):
    from lhotse import CutSet

    from less.data.cuts import read_cuts, read_manifest

    if args.in_cuts:
        cuts = read_cuts(args.in_cuts).to_eager()
    elif args.recordings and args.supervisions:
        cuts = CutSet.from_manifests(
            recordings=read_manifest(args.recordings, "recording manifest"),
            supervisions=read_manifest(args.supervisions, "supervision manifest"),
        )
    elif args.recordings:
        cuts = CutSet.from_manifests(
            recordings=read_manifest(args.recordings, "recording manifest")
        )
    else:
        raise SystemExit("compute_fbank: give --in-cuts, or --recordings [--supervisions]")
    if args.trim_to_supervisions:
        cuts = cuts.trim_to_supervisions(keep_overlapping=False).to_eager()
    if args.sampling_rate > 0 and any(c.sampling_rate != args.sampling_rate for c in cuts):
        rates = sorted({c.sampling_rate for c in cuts} - {args.sampling_rate})
        log.info("resampling cuts at %s Hz to %d Hz", rates, args.sampling_rate)
        cuts = CutSet.from_cuts(
            c if c.sampling_rate == args.sampling_rate else c.resample(args.sampling_rate)
            for c in cuts
        )
    return cuts


def compute_piece(
    piece_cuts, storage_path: Path, part_path: Path, num_mel_bins: int, sampling_rate: int = 16000
) -> tuple[int, float]:
    """Compute one piece; returns (cuts, seconds of audio). Errors name the cut and its file."""
    import torch
    from lhotse import CutSet, Fbank, FbankConfig, LilcomChunkyWriter

    torch.set_num_threads(1)
    extractor = Fbank(FbankConfig(num_mel_bins=num_mel_bins, sampling_rate=sampling_rate or 16000))
    out = []
    with LilcomChunkyWriter(storage_path) as writer:
        for cut in piece_cuts:
            try:
                out.append(cut.compute_and_store_features(extractor, writer))
            except Exception as e:
                paths = (
                    ", ".join(s.source for s in cut.recording.sources) if cut.has_recording else "?"
                )
                raise RuntimeError(f"cut {cut.id} ({paths}): feature extraction failed: {e}") from e
    save_cuts_atomic(CutSet.from_cuts(out), part_path)
    return len(out), sum(c.duration for c in out)


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    if already_done(args.out_cuts, log):
        return
    from lhotse import CutSet

    begin = time.time()
    cuts = load_input_cuts(args)
    check_audio_files_exist(cuts)
    if args.require_text:
        check_transcripts(cuts, str(args.supervisions or args.in_cuts))
        unlabeled = [
            c.id for c in cuts if any(s.text is None for s in c.supervisions) or not c.supervisions
        ]
        if unlabeled:
            raise ValueError(
                f"--require-text: {len(unlabeled)} cut(s) without a transcript, e.g. {unlabeled[:5]}"
            )
    if args.skip_empty_text:
        empty = [
            c.id for c in cuts if not c.supervisions or any(not s.text for s in c.supervisions)
        ]
        if empty:
            log.warning(
                "skipping %d cut(s) without a transcript, e.g. %s", len(empty), ", ".join(empty[:5])
            )
            skipped = set(empty)
            cuts = keep_cuts(cuts, lambda c: c.id not in skipped)
    short = [c for c in cuts if c.duration < args.min_duration]
    if short:
        log.warning(
            "skipping %d cut(s) shorter than %.2f s, e.g. %s",
            len(short),
            args.min_duration,
            ", ".join(f"{c.id} ({c.duration:.3f} s)" for c in short[:5]),
        )
        cuts = keep_cuts(cuts, lambda c: c.duration >= args.min_duration)
    if args.speed_perturb:
        cuts = (cuts + cuts.perturb_speed(0.9) + cuts.perturb_speed(1.1)).to_eager()
    if len(cuts) == 0:
        raise ValueError(
            f"no cuts to compute features for (input: {args.in_cuts or args.recordings})"
        )

    parts_dir = args.storage_dir or args.out_cuts.with_name(
        args.out_cuts.name.replace(".jsonl.gz", "") + ".parts"
    )
    parts_dir.mkdir(parents=True, exist_ok=True)
    num_splits = min(args.num_splits, len(cuts))
    pieces = cuts.split(num_splits) if num_splits > 1 else [cuts]
    todo = []
    for i, piece in enumerate(pieces):
        if args.split_index >= 0 and i != args.split_index:
            continue
        part_path = parts_dir / f"cuts.{i}.jsonl.gz"
        if part_path.is_file():
            continue
        todo.append(
            (piece, parts_dir / f"feats.{i}", part_path, args.num_mel_bins, args.sampling_rate)
        )
    log.info(
        "%d cuts (%.2f h) in %d piece(s); %d to compute",
        len(cuts),
        sum(c.duration for c in cuts) / 3600,
        len(pieces),
        len(todo),
    )
    seconds = 0.0
    if args.num_jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(args.num_jobs) as pool:
            futures = [pool.submit(compute_piece, *job) for job in todo]
            for future in progress_bar(futures, desc="fbank pieces", unit="piece"):
                seconds += future.result()[1]
    else:
        for piece, storage, part, bins, rate in todo:
            if len(todo) == 1:
                piece = progress_bar(piece, desc="fbank", unit="cut")
            seconds += compute_piece(piece, storage, part, bins, rate)[1]

    part_paths = [parts_dir / f"cuts.{i}.jsonl.gz" for i in range(len(pieces))]
    missing = [p for p in part_paths if not p.is_file()]
    if missing:
        log.info(
            "%d piece(s) still to compute; the cut set is written when all are done", len(missing)
        )
        return
    combined = CutSet.from_cuts(c for p in part_paths for c in CutSet.from_file(p))
    save_cuts_atomic(combined, args.out_cuts)
    elapsed = time.time() - begin
    log.info(
        "wrote %s: %d cuts; computed %.1f min of audio in %.1f s (%.0fx real time)",
        args.out_cuts,
        len(combined),
        seconds / 60,
        elapsed,
        seconds / max(elapsed, 1e-9),
    )


if __name__ == "__main__":
    main()
