"""Scene images of a mini corpus's utterances, for speech-image grounding.

Every utterance of the mini corpus is a sentence of the synchronous grammar; its scene
(:mod:`less.local.mini.scenes`: people, objects and their count, colour and size, place,
time, drawn as icons without any text) is derived from the sentence's drawn slots, which the
corpus plan recovers from the build record (``mini-<task>_build.json``) without touching the
audio. A sentence's Mandarin and Spanish renderings share its scene; the two tasks' corpora
hold different sentences, so their images share icons (objects, colours, counts), rarely a
whole scene.

Writes ``<out-dir>/images/<scene>.png`` (64 x 64 RGB; one file per distinct scene) and
``<out-dir>/scenes.jsonl``, one line per utterance::

    {"id": "<supervision id>", "scene": "<scene key>", "image": "images/<scene>.png",
     "task": "asr", "split": "train_sup", "icons": 5}

Example::

    python -m less.bin.render_scenes --data-dir data --tasks asr,ast \\
        --splits train_sup,dev,test_clean,test_wild --out-dir data/scenes
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path

from less.local.mini.plan import SPLITS, TASKS
from less.local.mini.prepare import replan
from less.local.mini.scenes import png_bytes, scene_of
from less.utils import atomic_path, cli_parser, progress_bar, setup_logging, write_text_atomic

log = logging.getLogger("less.render_scenes")


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    p.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="the mini corpus (its manifests/ hold the build records)",
    )
    p.add_argument("--tasks", default="asr,ast", help=f"comma-separated, of {sorted(TASKS)}")
    p.add_argument("--splits", default=",".join(SPLITS), help=f"comma-separated, of {SPLITS}")
    p.add_argument("--out-dir", type=Path, required=True)
    return p


def _check_choices(values: list[str], allowed, what: str) -> None:
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise SystemExit(
            f"render_scenes: unknown {what} {unknown}; expected some of {sorted(allowed)}"
        )


def render_scenes(data_dir: Path, tasks: list[str], splits: list[str], out_dir: Path) -> list[dict]:
    """Write the images and the utterance -> scene index; returns the index rows."""
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    written = 0
    for task in tasks:
        plans = replan(data_dir, task, tuple(splits))
        for split in splits:
            utterances = [u for recording in plans[split].utterances for u in recording]
            for utterance in progress_bar(
                utterances, desc=f"{task} {split}", unit="utt", leave=False
            ):
                scene = scene_of(utterance.sentence)
                path = images / f"{scene.key}.png"
                if not path.is_file():
                    with atomic_path(path) as tmp:
                        tmp.write_bytes(png_bytes(scene))
                    written += 1
                rows.append(
                    {
                        "id": utterance.utterance_id,
                        "scene": scene.key,
                        "image": f"images/{scene.key}.png",
                        "task": task,
                        "split": split,
                        "icons": scene.num_icons,
                    }
                )
            log.info("%s %s: %d utterances", task, split, len(utterances))
    write_text_atomic(
        out_dir / "scenes.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    )
    scenes = Counter(r["scene"] for r in rows)
    log.info(
        "%d utterances, %d distinct scenes (%d new images), %.1f icons per utterance, "
        "%d scenes shared by more than one utterance -> %s",
        len(rows),
        len(scenes),
        written,
        sum(r["icons"] for r in rows) / max(len(rows), 1),
        sum(1 for c in scenes.values() if c > 1),
        out_dir / "scenes.jsonl",
    )
    return rows


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    tasks, splits = args.tasks.split(","), args.splits.split(",")
    _check_choices(tasks, TASKS, "task(s)")
    _check_choices(splits, SPLITS, "split(s)")
    render_scenes(args.data_dir, tasks, splits, args.out_dir)


if __name__ == "__main__":
    main()
