"""Append-only answer cache: a rerun or a resume never pays for an answer twice.

``data/pl/iter<K>/llm_cache.jsonl`` holds one JSON object per answered request,
keyed by ``(cut_id, model, prompt_sha, mode)``. Each answer is written with one
``os.write`` on an ``O_APPEND`` descriptor and ``fsync``-ed as soon as it arrives,
so Ctrl-C, SIGKILL or a crash loses at most the answers still in flight, and
shards running in parallel may share the file (appends of one write each do not
interleave on a local filesystem).

A kill in the middle of a write (power loss, a full disk) can leave a truncated
last line: loading logs and skips it, and the next append starts on a fresh line
rather than gluing a good record onto the broken one.

An entry also stores ``input_sha`` (hash of the rendered prompt / scored texts):
if the teacher's hypothesis changed under the same cut id, the cached answer is
stale and is asked again instead of being reused for a different input.

Only answers are cached. A request that failed after all retries is not, so a
rerun asks it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CacheKey = tuple[str, str, str, str]  # (cut_id, model, prompt_sha, mode)


def input_sha(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


@dataclass
class CacheEntry:
    cut_id: str
    model: str
    prompt_sha: str
    mode: str
    input_sha: str
    answer: str | None = None  # correct mode: the raw LLM answer
    scores: list[float] | None = None  # rescore mode: one log-prob per N-best text
    tokens: int = 0

    @property
    def key(self) -> CacheKey:
        return (self.cut_id, self.model, self.prompt_sha, self.mode)

    def to_json(self) -> str:
        record = {
            "cut_id": self.cut_id,
            "model": self.model,
            "prompt_sha": self.prompt_sha,
            "mode": self.mode,
            "input_sha": self.input_sha,
            "tokens": self.tokens,
            "time": round(time.time(), 3),
        }
        if self.answer is not None:
            record["answer"] = self.answer
        if self.scores is not None:
            record["scores"] = self.scores
        return json.dumps(record, ensure_ascii=False)


class AnswerCache:
    """Load once, then :meth:`get` and :meth:`append` (durable on return)."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path is not None else None
        self.entries: dict[CacheKey, CacheEntry] = {}
        self.bad_lines = 0
        self.stale_hits = 0
        self._fd: int | None = None
        self._needs_newline = False
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        data = self.path.read_bytes()
        self._needs_newline = bool(data) and not data.endswith(b"\n")
        lines = data.split(b"\n")
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                entry = CacheEntry(
                    cut_id=record["cut_id"],
                    model=record["model"],
                    prompt_sha=record["prompt_sha"],
                    mode=record["mode"],
                    input_sha=record["input_sha"],
                    answer=record.get("answer"),
                    scores=record.get("scores"),
                    tokens=int(record.get("tokens", 0)),
                )
            except (ValueError, KeyError, TypeError) as error:
                self.bad_lines += 1
                where = "truncated last line" if line_number == len(lines) else "unreadable line"
                logger.warning(
                    "%s: %s %d skipped (%s); its request will be sent again if needed",
                    self.path,
                    where,
                    line_number,
                    type(error).__name__,
                )
                continue
            self.entries[entry.key] = entry  # a later line wins (e.g. a re-asked stale entry)
        logger.info("cache %s: %d answers loaded", self.path, len(self.entries))

    def get(self, key: CacheKey, expected_input_sha: str) -> CacheEntry | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry.input_sha != expected_input_sha:
            self.stale_hits += 1
            return None
        return entry

    def append(self, entry: CacheEntry) -> None:
        self.entries[entry.key] = entry
        if self.path is None:
            return
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        payload = (entry.to_json() + "\n").encode("utf-8")
        if self._needs_newline:
            payload = b"\n" + payload
            self._needs_newline = False
        written = os.write(self._fd, payload)
        while written < len(payload):  # only on a full disk or the like; one write is the norm
            written += os.write(self._fd, payload[written:])
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __len__(self) -> int:
        return len(self.entries)
