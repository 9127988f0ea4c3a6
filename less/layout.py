"""The experiment layout: where the LESS loop's stages put their outputs.

One definition for the Python side (report, tools); the recipes' shell functions in
``tools/less_stages.sh`` (``less_teacher``, ``less_pl_dir``, ``less_system_dir``, the
student directory of ``less_train_student``) build the same paths, and
``tests/test_layout.py`` runs them against this module so the two cannot drift apart.

::

    <exp>/<task>/iter0/                     seed model S (iteration 0)
    <exp>/<task>/<system>/iter<k>/          student of system N, L, L_<t>, U, S_cont at iteration k
    <exp>/<task>/.../<method>/results-<test>-<setting>.json
    <pl>/<task>/iter1/                      the seed's pseudo-labels, shared by every system at k = 1
    <pl>/<task>/<system>/iter<k>/           a system's teacher labels (k > 1), LLM answers, kept cuts, mix
    <pl>/<task>/<system>/iter<k>/<part>_cuts_kept.report.json   the filter's report
    <name>.shard<i>of<n>.jsonl.gz           shard i of n of a sharded job's output (its logs:
                                            <job>.shard<i>of<n>.log)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SEED_SYSTEM = "S"
ITER_PREFIX = "iter"
MANIFEST_SUFFIXES = (".jsonl.gz", ".jsonl", ".json.gz", ".json")  # longest first


def shard_suffix(shard_id: int, num_shards: int) -> str:
    """``.shard<i>of<n>``, the tag of shard i of n in file names; empty for an unsharded job."""
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise ValueError(f"shard id must be in [0, {num_shards}), got {shard_id}")
    return "" if num_shards == 1 else f".shard{shard_id}of{num_shards}"


def manifest_stem(path: str | Path) -> str:
    """A manifest's name without its format suffix (``x.jsonl.gz`` -> ``x``; else ``Path.stem``)."""
    name = Path(path).name
    ext = next((e for e in MANIFEST_SUFFIXES if name.endswith(e)), Path(name).suffix)
    return name[: len(name) - len(ext)]


def shard_path(out: str | Path, shard_id: int, num_shards: int) -> Path:
    """Where shard i of n writes ``out`` (``x.jsonl.gz`` -> ``x.shard<i>of<n>.jsonl.gz``)."""
    out = Path(out)
    stem = manifest_stem(out)
    return out.with_name(stem + shard_suffix(shard_id, num_shards) + out.name[len(stem) :])


def iter_name(iteration: int) -> str:
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, got {iteration}")
    return f"{ITER_PREFIX}{iteration}"


def parse_iter(name: str) -> int | None:
    """``iter<k>`` -> k; anything else -> None."""
    if not name.startswith(ITER_PREFIX) or not name[len(ITER_PREFIX) :].isdigit():
        return None
    return int(name[len(ITER_PREFIX) :])


def model_dir(exp: str | Path, task: str, system: str, iteration: int) -> Path:
    """Where a system's model of an iteration is trained (the seed S: iteration 0)."""
    if iteration == 0:
        if system != SEED_SYSTEM:
            raise ValueError(f"iteration 0 is the seed model {SEED_SYSTEM}, not {system!r}")
        return Path(exp) / task / iter_name(0)
    return Path(exp) / task / system / iter_name(iteration)


def teacher_dir(exp: str | Path, task: str, system: str, iteration: int) -> Path:
    """The model that labels the unlabeled audio for ``system``'s student of ``iteration``:
    the seed for iteration 1, else the system's own student of the iteration before."""
    if iteration < 1:
        raise ValueError(f"students start at iteration 1, got {iteration}")
    if iteration == 1:
        return model_dir(exp, task, SEED_SYSTEM, 0)
    return model_dir(exp, task, system, iteration - 1)


def teacher_pl_dir(pl: str | Path, task: str, system: str, iteration: int) -> Path:
    """The teacher's pseudo-labels (shared by every system at iteration 1)."""
    if iteration == 1:
        return Path(pl) / task / iter_name(1)
    return system_pl_dir(pl, task, system, iteration)


def system_pl_dir(pl: str | Path, task: str, system: str, iteration: int) -> Path:
    """A system's LLM answers, kept cuts and training mix of an iteration."""
    return Path(pl) / task / system / iter_name(iteration)


def kept_report(pl: str | Path, task: str, system: str, iteration: int, part: str) -> Path:
    return system_pl_dir(pl, task, system, iteration) / f"{part}_cuts_kept.report.json"


@dataclass(frozen=True)
class ResultPath:
    task: str
    system: str
    iteration: int
    method: str


def parse_result_path(rel: Path | tuple[str, ...]) -> ResultPath | None:
    """A results file's path relative to ``<exp>``: ``task/iter0/method/file`` (the seed) or
    ``task/system/iter<k>/method/file`` (a student); None for anything else."""
    parts = rel.parts if isinstance(rel, Path) else tuple(rel)
    if len(parts) == 4 and parse_iter(parts[1]) == 0:
        return ResultPath(parts[0], SEED_SYSTEM, 0, parts[2])
    if len(parts) == 5:
        iteration = parse_iter(parts[2])
        if iteration is not None and iteration > 0:
            return ResultPath(parts[0], parts[1], iteration, parts[3])
    return None
