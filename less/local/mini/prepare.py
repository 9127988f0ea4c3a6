"""Build the synthetic bilingual mini corpus: audio, lhotse manifests, text-only corpus.

    python -m less.local.mini.prepare --out-dir data --profile default --seed 42 --tasks asr,ast --num-jobs 2

Per task (``asr``: Mandarin speech; ``ast``: Spanish speech with English translations)
it writes ``<out-dir>/manifests/mini-<task>_{recordings,supervisions}_<split>.jsonl.gz``
for the splits train_sup, unsup_wild, dev, test_clean, test_wild, the FLAC audio under
``<out-dir>/audio/mini-<task>/<split>/``, and the text-only LM corpus under
``<out-dir>/text/``. A split whose two manifests exist is skipped, so an interrupted
build resumes where it stopped; a directory built with another seed, profile or profile
size table or other ``--conditions`` is refused (the texts of a split depend on the
sizes of the others).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from less.data import espeak
from less.data.text import normalize
from less.utils import (
    cli_parser,
    progress_bar,
    save_cuts_atomic,
    setup_logging,
    write_json_atomic,
    write_text_atomic,
)

from . import grammar
from .noise import NOISE_RECORDINGS, prepare_noise
from .plan import (
    CONDITIONS,
    PROFILES,
    SPLITS,
    TASKS,
    LongRecordingSpec,
    PlannedUtterance,
    SplitPlan,
    corpus_name,
    plan_split,
    plan_texts,
    spoken_text,
    spoken_texts,
)
from .synthesis import SAMPLE_RATE, RenderResult, render

logger = logging.getLogger("less.local.mini.prepare")


@dataclass
class SplitSummary:
    task: str
    split: str
    recordings: int
    utterances: int
    hours: float
    seconds: float | None  # build time; None when skipped


def manifest_paths(out_dir: Path, task: str, split: str) -> tuple[Path, Path]:
    base = out_dir / "manifests"
    return (
        base / f"{corpus_name(task)}_recordings_{split}.jsonl.gz",
        base / f"{corpus_name(task)}_supervisions_{split}.jsonl.gz",
    )


def text_only_paths(out_dir: Path, task: str) -> dict[str, Path]:
    info = TASKS[task]
    languages = [info.language] + ([info.translation] if info.translation else [])
    return {
        lang: out_dir / "text" / f"{corpus_name(task)}_text_only.{lang}.txt" for lang in languages
    }


def _supervision_custom(task: str, utterance: PlannedUtterance, hidden: bool) -> dict:
    sentence = utterance.sentence
    custom: dict = {
        "domain": sentence.domain,
        "condition": "clean" if utterance.wild is None else "wild",
        "template": sentence.template,
        "rate": utterance.voice.rate,
        "pitch": utterance.voice.pitch,
    }
    if utterance.wild is not None:
        custom.update(utterance.wild.describe())
    source = spoken_text(task, sentence)
    if hidden:
        custom["ref_text"] = source
        if TASKS[task].translation:
            custom["ref_translated_text"] = {"en": sentence.en}
    elif TASKS[task].translation:
        custom["translated_text"] = {"en": sentence.en}
    return custom


def build_manifests(task: str, plan: SplitPlan, results: list[RenderResult]):
    """lhotse RecordingSet + SupervisionSet of one rendered split, validated."""
    from lhotse import AudioSource, Recording, RecordingSet, SupervisionSegment, SupervisionSet
    from lhotse.qa import validate_recordings_and_supervisions

    recordings, supervisions = [], []
    language = TASKS[task].language
    for recording_id, utterances, result in zip(plan.recording_ids, plan.utterances, results):
        if len(result.segments) != len(utterances):
            raise RuntimeError(
                f"{result.audio_path}: {len(result.segments)} segments for {len(utterances)} utterances"
            )
        recordings.append(
            Recording(
                id=recording_id,
                sources=[AudioSource(type="file", channels=[0], source=result.audio_path)],
                sampling_rate=SAMPLE_RATE,
                num_samples=result.num_samples,
                duration=result.num_samples / SAMPLE_RATE,
            )
        )
        hidden = plan.split == "unsup_wild"
        for utterance, (start, duration) in zip(utterances, result.segments):
            sentence = utterance.sentence
            supervisions.append(
                SupervisionSegment(
                    id=utterance.utterance_id,
                    recording_id=recording_id,
                    start=start,
                    duration=duration,
                    channel=0,
                    text=None if hidden else spoken_text(task, sentence),
                    language=language,
                    speaker=utterance.voice.voice,
                    custom=_supervision_custom(task, utterance, hidden),
                )
            )
    recording_set, supervision_set = (
        RecordingSet.from_recordings(recordings),
        SupervisionSet.from_segments(supervisions),
    )
    validate_recordings_and_supervisions(recording_set, supervision_set)
    return recording_set, supervision_set


def _render_all(specs: list, pool, desc: str) -> list[RenderResult]:
    if pool is None:
        iterator = map(render, specs)
    else:
        chunksize = 1 if specs and isinstance(specs[0], LongRecordingSpec) else 4
        iterator = pool.imap(render, specs, chunksize=chunksize)
    return list(progress_bar(iterator, total=len(specs), desc=desc, unit="rec", leave=False))


def _check_build_info(out_dir: Path, task: str, info: dict) -> None:
    path = out_dir / "manifests" / f"{corpus_name(task)}_build.json"
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != info:
            raise RuntimeError(
                f"{path} records a build with {previous}, this run asks for {info} "
                "(seed, profile, profile sizes or conditions differ): "
                "use another --out-dir or delete the old corpus"
            )
    else:
        write_json_atomic(path, info)


def replan(out_dir: Path, task: str, splits: tuple[str, ...] = SPLITS) -> dict[str, SplitPlan]:
    """The plans of an existing corpus's splits, redone from its build record.

    Planning is deterministic and cheap, so what a corpus holds (every utterance's sentence,
    voice, condition, seed) can be recovered without storing it: scene images and phone
    alignments are derived from these plans. The audio is not touched.
    """
    path = out_dir / "manifests" / f"{corpus_name(task)}_build.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no build record of the {task} corpus (run the corpus stage)"
        )
    info = json.loads(path.read_text())
    name = info["conditions"]["name"]
    if name not in CONDITIONS:
        raise ValueError(
            f"{path}: unknown conditions {name!r}; expected one of {sorted(CONDITIONS)}"
        )
    sizes = type(PROFILES["default"])(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in info["sizes"].items()}
    )
    conditions = CONDITIONS[name]
    texts = plan_texts(info["seed"], task, sizes, conditions.sup_conversational)
    return {
        split: plan_split(info["seed"], task, split, sizes, texts[split], out_dir, conditions)
        for split in splits
    }


def _existing_summary(
    task: str, split: str, recordings_path: Path, supervisions_path: Path
) -> SplitSummary:
    from lhotse import load_manifest

    recordings, supervisions = load_manifest(recordings_path), load_manifest(supervisions_path)
    hours = sum(r.duration for r in recordings) / 3600
    return SplitSummary(task, split, len(recordings), len(supervisions), hours, None)


class _LazyPool:
    """A spawn-context pool created only when some split actually needs synthesis."""

    def __init__(self, num_jobs: int) -> None:
        self.num_jobs, self.pool = num_jobs, None

    def get(self):
        if self.num_jobs > 1 and self.pool is None:
            self.pool = multiprocessing.get_context("spawn").Pool(self.num_jobs)
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


def prepare_task(
    out_dir: Path, task: str, profile: str, seed: int, pool: _LazyPool, conditions: str = "default"
) -> list[SplitSummary]:
    sizes = PROFILES[profile]
    # The sizes too: a split's texts depend on the sizes of the splits planned before it.
    build_info = {
        "seed": seed,
        "profile": profile,
        "sizes": json.loads(json.dumps(asdict(sizes))),
        "conditions": {
            "name": conditions,
            **json.loads(json.dumps(asdict(CONDITIONS[conditions]))),
        },
    }
    _check_build_info(out_dir, task, build_info)
    texts = plan_texts(seed, task, sizes, CONDITIONS[conditions].sup_conversational)
    text_paths = text_only_paths(out_dir, task)
    if all(p.is_file() for p in text_paths.values()):
        logger.info("%s text-only corpus exists, skipping", corpus_name(task))
    else:
        for lang, path in text_paths.items():
            write_text_atomic(path, "".join(getattr(s, lang) + "\n" for s in texts["text_only"]))
        logger.info(
            "%s text-only corpus: %d sentences -> %s",
            corpus_name(task),
            len(texts["text_only"]),
            ", ".join(str(p) for p in text_paths.values()),
        )
    checked_characters: set[str] = set()
    summaries = []
    for split in SPLITS:
        recordings_path, supervisions_path = manifest_paths(out_dir, task, split)
        if recordings_path.is_file() and supervisions_path.is_file():
            summary = _existing_summary(task, split, recordings_path, supervisions_path)
            logger.info(
                "%s %s: manifests exist, skipping (%d utterances, %.3f h)",
                corpus_name(task),
                split,
                summary.utterances,
                summary.hours,
            )
            summaries.append(summary)
            continue
        started = time.monotonic()
        plan = plan_split(seed, task, split, sizes, texts[split], out_dir, CONDITIONS[conditions])
        if TASKS[task].language == "zh":
            characters = {
                c for text in spoken_texts(plan) for c in normalize(text, "zh")
            } - checked_characters
            unvoiced = espeak.unvoiced_characters(characters)
            if unvoiced:
                raise RuntimeError(
                    f"espeak-ng cmn cannot voice {''.join(unvoiced)!r}; fix the grammar lexicon"
                )
            checked_characters |= characters
        results = _render_all(plan.specs, pool.get(), f"{corpus_name(task)} {split}")
        recordings, supervisions = build_manifests(task, plan, results)
        save_cuts_atomic(supervisions, supervisions_path)
        save_cuts_atomic(recordings, recordings_path)
        seconds = time.monotonic() - started
        hours = sum(r.duration for r in recordings) / 3600
        summaries.append(
            SplitSummary(task, split, len(recordings), len(supervisions), hours, seconds)
        )
        logger.info(
            "%s %s: %d recordings, %d utterances, %.3f h, built in %.1f s",
            corpus_name(task),
            split,
            len(recordings),
            len(supervisions),
            hours,
            seconds,
        )
    return summaries


def format_summary(summaries: list[SplitSummary]) -> str:
    lines = [f"{'corpus':<10} {'split':<11} {'recs':>6} {'utts':>6} {'hours':>7} {'build s':>8}"]
    for s in summaries:
        built = "skipped" if s.seconds is None else f"{s.seconds:.1f}"
        lines.append(
            f"{corpus_name(s.task):<10} {s.split:<11} {s.recordings:>6} {s.utterances:>6} {s.hours:>7.3f} {built:>8}"
        )
    return "\n".join(lines)


def prepare(
    out_dir: Path,
    profile: str = "tiny",
    seed: int = 42,
    tasks: tuple[str, ...] = ("asr", "ast"),
    num_jobs: int = 1,
    conditions: str = "default",
) -> list[SplitSummary]:
    """Build (or complete) the corpus; returns one summary row per task and split."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or profile not in PROFILES or conditions not in CONDITIONS:
        raise ValueError(
            f"unknown task(s) {unknown}, profile {profile!r} or conditions {conditions!r}; "
            f"tasks {list(TASKS)}, profiles {list(PROFILES)}, conditions {list(CONDITIONS)}"
        )
    for domain in ("read", "conversational"):
        space = grammar.assert_large_space(domain)
        logger.info("grammar domain %s: ~%.3g distinct sentences", domain, space)
    espeak.check_voice("cmn")  # fail early, with a clear message, if espeak-ng cannot load
    pool = _LazyPool(num_jobs)
    try:
        summaries = [
            row
            for task in tasks
            for row in prepare_task(out_dir, task, profile, seed, pool, conditions)
        ]
    finally:
        pool.close()
    prepare_noise(out_dir, seed, count=NOISE_RECORDINGS[profile])
    return summaries


def get_parser() -> argparse.ArgumentParser:
    parser = cli_parser(__doc__)
    parser.add_argument(
        "--out-dir", type=Path, default=Path("data"), help="output data directory (default: data)"
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="default",
        help="corpus size: tiny (tests, seconds) or default (recipe) (default: default)",
    )
    parser.add_argument(
        "--conditions",
        choices=sorted(CONDITIONS),
        default="default",
        help="how far the wild speech is from the supervised speech: default (a seed model "
        "recognises much of it), hard (it does not), padded (default with 0.1-0.5 s of silence "
        "around single utterances) (default: default)",
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="corpus seed; same seed, same corpus (default: 42)"
    )
    parser.add_argument(
        "--tasks",
        default="asr,ast",
        help="comma-separated tasks among asr, ast, asr_en (default: asr,ast)",
    )
    parser.add_argument(
        "--num-jobs", type=int, default=1, help="synthesis worker processes (default: 1)"
    )
    parser.add_argument(
        "--log-file",
        type=Path,
        default=None,
        help="also log to this file (default: <out-dir>/log/prepare_mini.log)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_file or args.out_dir / "log" / "prepare_mini.log")
    started = time.monotonic()
    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    summaries = prepare(
        args.out_dir, args.profile, args.seed, tasks, args.num_jobs, args.conditions
    )
    print(format_summary(summaries))
    logger.info("mini corpus ready in %s (%.1f s)", args.out_dir, time.monotonic() - started)


if __name__ == "__main__":
    main()
