"""WenetSpeech (in-the-wild Mandarin) -> lhotse manifests; the training subset as UNLABELED audio.

Layout expected below ``--corpus-dir`` (as the official download script leaves it)::

    WenetSpeech.json
    audio/{train,dev,test_net,test_meeting}/.../<aid>.opus

``WenetSpeech.json``: ``{"audios": [{"aid", "path", "duration", "segments": [{"sid",
"begin_time", "end_time", "text", "confidence", "subsets": ["L", "M", "S"]}, ...]}, ...]}``,
``path`` relative to the corpus directory. Subset labels are ``S``/``M``/``L`` (nested:
an ``S`` segment also lists ``M`` and ``L``), ``W`` (weak labels), ``DEV``, ``TEST_NET``,
``TEST_MEETING``; the GigaSpeech-style spelling ``{S}`` is accepted too.

The JSON is parsed here with the same ids and recording fields as lhotse's
``prepare_wenet_speech`` (recording id = ``aid``, supervision id = ``sid``), rather than
by calling it, because it (a) silently produces an empty subset when no segment
carries the requested label, (b) never checks that an audio file exists, and
(c) builds every recording for every subset. Here:

* a requested subset that no segment carries is an error listing the labels seen;
* a missing audio file is an error naming the JSON file, the ``aid`` and the path
  (``--skip-missing-audio`` makes it a counted skip, for partial downloads);
* each used ``.opus`` is probed with soundfile (libsndfile >= 1.0.29 decodes Ogg Opus;
  lhotse 1.33 reads ``.opus`` through libsndfile too, no ffmpeg needed), so the
  recording's sampling rate and length are the real ones; ``--no-probe-audio``
  trusts the JSON duration at 16 kHz instead, as lhotse does;
* segments whose text is tagged ``<SIL>``, ``<MUSIC>``, ``<NOISE>`` or ``<OTHER>`` are
  dropped and counted (they are not speech); other ``<...>`` tags (GigaSpeech-style
  punctuation such as ``<COMMA>``) are removed; texts pass through
  ``less.data.text.normalize(text, "zh")``; segments left empty are dropped;
* segment ends beyond the end of the audio are clipped (counted);
* duration bounds (``--min-duration/--max-duration``, default 1.0/20.0 s) apply to the
  training subset only; DEV and the test sets stay whole.

The training subset is the *unlabeled in-the-wild* audio of LESS: its supervisions
have ``text=None`` and the corpus label, normalised, in ``custom["ref_text"]``, used
only to measure pseudo-label quality. DEV, TEST_NET and TEST_MEETING keep ``text``.

Outputs (atomic; finished splits are skipped on a rerun)::

    <output-dir>/wenetspeech_{recordings,supervisions}_<S|M|L>.jsonl.gz   (--subset)
    <output-dir>/wenetspeech_{recordings,supervisions}_{DEV,TEST_NET,TEST_MEETING}.jsonl.gz

Usage::

    python -m less.local.wenetspeech --corpus-dir download/WenetSpeech \\
        --output-dir data/manifests [--subset S] [--min-duration 1.0] [--max-duration 20.0] \\
        [--skip-missing-audio] [--no-probe-audio] [--num-jobs 4] [--log-file F]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lhotse import Recording, SupervisionSegment
from lhotse.audio import AudioSource
from lhotse.utils import add_durations, compute_num_samples
from tqdm import tqdm

from less.data.cuts import manifest_errors
from less.data.text import normalize
from less.local.common import (
    DropCounter,
    DurationBounds,
    add_output_arguments,
    parse_preparer_args,
    preparer_parser,
    require_dir,
    require_file,
    split_is_done,
    write_split,
)

logger = logging.getLogger(__name__)

CORPUS = "wenetspeech"
TRAIN_SUBSETS = ("S", "M", "L")
EVAL_SETS = ("DEV", "TEST_NET", "TEST_MEETING")
JSON_NAME = "WenetSpeech.json"
JSON_SAMPLING_RATE = 16000
LAYOUT_HINT = f"Expected {JSON_NAME} and audio/... inside it (the WenetSpeech download)."
GARBAGE_TAG = re.compile(r"<(SIL|MUSIC|NOISE|OTHER)>")
ANY_TAG = re.compile(r"<[A-Z_]+>")


def subset_label(label: str) -> str:
    """``{S}`` (GigaSpeech spelling) -> ``S``."""
    return label.strip().strip("{}").strip()


@dataclass(slots=True)
class _Segment:
    audio_index: int
    sid: str
    begin: float
    end: float
    text: str


def _field(obj: dict[str, Any], name: str, where: str) -> Any:
    if name not in obj:
        raise KeyError(f"{where}: no {name!r} field")
    return obj[name]


def collect_segments(
    meta: dict[str, Any], json_path: Path, wanted: tuple[str, ...]
) -> dict[str, list[_Segment]]:
    """Segments of each wanted subset; raise if a wanted subset is carried by no segment."""
    audios = meta.get("audios") if isinstance(meta, dict) else None
    if not isinstance(audios, list):
        raise ValueError(f"{json_path}: expected a JSON object with an 'audios' list")
    by_split: dict[str, list[_Segment]] = {split: [] for split in wanted}
    seen: set[str] = set()
    for audio_index, audio in enumerate(
        tqdm(audios, desc=f"reading {json_path.name}", unit="audio")
    ):
        where = f"{json_path}: audios[{audio_index}]"
        aid = _field(audio, "aid", where)
        for segment_index, segment in enumerate(_field(audio, "segments", f"{where} ({aid})")):
            try:
                labels = {subset_label(s) for s in segment["subsets"]}
                seen |= labels
                splits = labels.intersection(wanted)
                if not splits:
                    continue
                item = _Segment(
                    audio_index=audio_index,
                    sid=segment["sid"],
                    begin=float(segment["begin_time"]),
                    end=float(segment["end_time"]),
                    text=segment["text"] or "",
                )
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(
                    f"{where} ({aid}) segments[{segment_index}]: missing or bad field: {e!r}"
                ) from e
            for split in splits:
                by_split[split].append(item)
    empty = [split for split in wanted if not by_split[split]]
    if empty:
        raise ValueError(
            f"{json_path}: no segment lists subset(s) {empty} in its 'subsets' field; "
            f"subset labels present: {sorted(seen)}"
        )
    return by_split


def _probe(path: Path) -> tuple[int, int, int]:
    import soundfile as sf

    info = sf.info(str(path))
    return info.samplerate, info.frames, info.channels


def build_recordings(
    audios: list[dict[str, Any]],
    indices: set[int],
    corpus_dir: Path,
    json_path: Path,
    probe_audio: bool,
    skip_missing_audio: bool,
    num_jobs: int,
) -> dict[int, Recording]:
    """Recordings of the used audio entries, by index in the JSON ``audios`` list."""
    paths: dict[int, Path] = {}
    missing = []
    for index in sorted(indices):
        audio = audios[index]
        path = corpus_dir / _field(audio, "path", f"{json_path}: audios[{index}]")
        if path.is_file():
            paths[index] = path
            continue
        message = f"{json_path}: audio {audio['aid']} (audios[{index}]) refers to {path}, which does not exist"
        if not skip_missing_audio:
            raise FileNotFoundError(message + " (use --skip-missing-audio to skip such audio)")
        missing.append(message)
    if missing:
        for message in missing[:5]:
            logger.warning(message)
        logger.warning("skipped %d audio file(s) that do not exist", len(missing))

    def make(index: int) -> tuple[int, Recording]:
        audio, path = audios[index], paths[index]
        if probe_audio:
            try:
                sampling_rate, num_samples, channels = _probe(path)
            except Exception as e:  # soundfile raises its own error types
                raise RuntimeError(
                    f"cannot read audio {path} of {audio['aid']} ({json_path}): {e}"
                ) from e
        else:
            sampling_rate, channels = JSON_SAMPLING_RATE, 1
            seconds = float(_field(audio, "duration", f"{json_path}: audios[{index}]"))
            num_samples = compute_num_samples(seconds, JSON_SAMPLING_RATE)
        recording = Recording(
            id=audio["aid"],
            sources=[AudioSource(type="file", channels=list(range(channels)), source=str(path))],
            sampling_rate=sampling_rate,
            num_samples=num_samples,
            duration=num_samples / sampling_rate,
        )
        return index, recording

    with ThreadPoolExecutor(max(1, num_jobs)) as pool:
        jobs = pool.map(make, sorted(paths))
        return dict(
            tqdm(jobs, total=len(paths), desc="probing audio", unit="file", disable=not probe_audio)
        )


def make_supervisions(
    split: str,
    segments: list[_Segment],
    recordings: dict[int, Recording],
    unlabeled: bool,
    bounds: DurationBounds | None,
) -> list[SupervisionSegment]:
    drops = DropCounter(CORPUS, split)
    clipped = 0
    supervisions = []
    for segment in segments:
        recording = recordings.get(segment.audio_index)
        if recording is None:
            drops.drop("audio file missing")
            continue
        tag = GARBAGE_TAG.search(segment.text)
        if tag is not None:
            drops.drop(f"text tagged {tag.group()}")
            continue
        text = normalize(ANY_TAG.sub(" ", segment.text), "zh")
        if not text:
            drops.drop("empty text after normalisation")
            continue
        if segment.begin >= recording.duration:
            drops.drop("starts after the end of its audio")
            continue
        end = segment.end
        if end > recording.duration:
            end = recording.duration
            clipped += 1
        duration = add_durations(end, -segment.begin, sampling_rate=recording.sampling_rate)
        if duration <= 0:
            drops.drop("non-positive duration")
            continue
        if bounds is not None:
            reason = bounds.reason_to_drop(duration)
            if reason is not None:
                drops.drop(reason)
                continue
        supervisions.append(
            SupervisionSegment(
                id=segment.sid,
                recording_id=recording.id,
                start=segment.begin,
                duration=duration,
                channel=0,
                language="zh",
                text=None if unlabeled else text,
                custom={"ref_text": text} if unlabeled else None,
            )
        )
    if clipped:
        logger.warning(
            "%s %s: clipped %d segment end(s) to the end of their audio", CORPUS, split, clipped
        )
    drops.log()
    return supervisions


def prepare_wenetspeech(
    corpus_dir: str | Path,
    output_dir: str | Path,
    subset: str = "S",
    bounds: DurationBounds = DurationBounds(1.0, 20.0),
    skip_missing_audio: bool = False,
    probe_audio: bool = True,
    num_jobs: int = 1,
) -> None:
    """Write the manifests of ``subset`` (unlabeled) and of DEV/TEST_NET/TEST_MEETING."""
    if subset not in TRAIN_SUBSETS:
        raise ValueError(f"subset must be one of {TRAIN_SUBSETS}, not {subset!r}")
    todo = tuple(
        split for split in (subset, *EVAL_SETS) if not split_is_done(output_dir, CORPUS, split)
    )
    if not todo:
        logger.info("WenetSpeech manifests already in %s; nothing to do", output_dir)
        return
    corpus_dir = require_dir(corpus_dir, "WenetSpeech corpus directory", LAYOUT_HINT)
    json_path = require_file(corpus_dir / JSON_NAME, "WenetSpeech metadata", LAYOUT_HINT)
    logger.info(
        "loading %s (the full corpus file takes minutes and several GB of memory)", json_path
    )
    with open(json_path, encoding="utf-8") as f, manifest_errors(json_path, "WenetSpeech metadata"):
        meta = json.load(f)
    by_split = collect_segments(meta, json_path, todo)
    used = {segment.audio_index for segments in by_split.values() for segment in segments}
    recordings = build_recordings(
        meta["audios"], used, corpus_dir, json_path, probe_audio, skip_missing_audio, num_jobs
    )
    for split in todo:
        unlabeled = split in TRAIN_SUBSETS
        supervisions = make_supervisions(
            split,
            by_split[split],
            recordings,
            unlabeled=unlabeled,
            bounds=bounds if unlabeled else None,
        )
        split_recordings = {s.audio_index for s in by_split[split]}
        write_split(
            (recordings[i] for i in sorted(split_recordings) if i in recordings),
            supervisions,
            output_dir,
            CORPUS,
            split,
        )


def get_parser() -> argparse.ArgumentParser:
    parser = preparer_parser(
        "Prepare WenetSpeech manifests: a training subset as unlabeled audio "
        "(text in custom['ref_text']) plus DEV, TEST_NET and TEST_MEETING."
    )
    parser.add_argument(
        "--corpus-dir",
        type=Path,
        required=True,
        help="directory containing WenetSpeech.json and audio/",
    )
    parser.add_argument(
        "--subset",
        choices=TRAIN_SUBSETS,
        default="S",
        help="training subset prepared as unlabeled audio",
    )
    add_output_arguments(parser, min_duration=1.0, max_duration=20.0, what="segments of the subset")
    parser.add_argument(
        "--skip-missing-audio",
        action="store_true",
        help="skip (and count) audio files listed in the JSON but absent, instead of failing",
    )
    parser.add_argument(
        "--no-probe-audio",
        dest="probe_audio",
        action="store_false",
        help="trust the JSON durations at 16 kHz instead of reading each file's header "
        "(by default every used file is probed)",
    )
    parser.add_argument("--num-jobs", type=int, default=1, help="threads probing audio files")
    return parser


def main(argv: list[str] | None = None) -> None:
    args, bounds = parse_preparer_args(get_parser(), argv)
    prepare_wenetspeech(
        args.corpus_dir,
        args.output_dir,
        subset=args.subset,
        bounds=bounds,
        skip_missing_audio=args.skip_missing_audio,
        probe_audio=args.probe_audio,
        num_jobs=args.num_jobs,
    )


if __name__ == "__main__":
    main()
