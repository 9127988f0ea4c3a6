"""Several consecutive segments of one recording per LLM request (``--llm-context-segments K``).

The LESS authors' released recipe sends 5 consecutive segments per request: a VAD
segment is a few seconds of a conversation, and its neighbours tell the LLM what
the conversation is about. Cuts made by ``less.bin.vad_segment`` carry their
recording id and start time, so :func:`group_cuts` orders the cuts of each recording
by time and takes them K at a time (the last group of a recording may be smaller;
groups never span recordings).

The answer must give one numbered line per segment. :func:`split_numbered_answer`
maps lines to segments by their *number*, never by position, and refuses anything
it cannot map with certainty, so a corrected text can never land on the wrong cut:

* numbered lines ``1. text`` (also ``1)``, ``1:``, ``(1)``, ``[1]``), blank lines ignored;
* lines before the first numbered line are a preamble ("Here are ...") and dropped;
  lines after the numbered block are an explanation and dropped;
* an unnumbered line *inside* the block (a wrapped or merged sentence?) rejects the group;
* the numbers must be exactly 1..n, each once: a missing, extra or repeated number
  rejects the group; the same numbers in another order are mapped by number.

A rejected group keeps the teacher's text for all its cuts, each recorded as
``rejected:<reason>``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

_NUMBERED = re.compile(r"^\s*(?:\*\*)?[(\[]?(\d{1,3})[.):\]](?:\*\*)?\s*(.*?)\s*$")
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)


def group_cuts(cuts: Sequence, size: int) -> list[list[int]]:
    """Indices of ``cuts`` in groups of at most ``size`` consecutive segments of one recording.

    Recordings come in order of first appearance, segments of a recording in time
    order (start, then cut id for ties); with ``size == 1`` every cut is its own group
    in input order.
    """
    if size < 1:
        raise ValueError(f"group size must be >= 1, got {size}")
    if size == 1:
        return [[index] for index in range(len(cuts))]
    by_recording: dict[str, list[int]] = defaultdict(list)
    for index, cut in enumerate(cuts):
        by_recording[_recording_id(cut)].append(index)
    groups: list[list[int]] = []
    for indices in by_recording.values():
        ordered = sorted(indices, key=lambda i: (float(cuts[i].start), cuts[i].id))
        groups.extend(ordered[begin : begin + size] for begin in range(0, len(ordered), size))
    return groups


def _recording_id(cut) -> str:
    recording_id = getattr(cut, "recording_id", None)
    if recording_id is None and cut.supervisions:
        recording_id = cut.supervisions[0].recording_id
    if recording_id is None:
        raise ValueError(f"cut {cut.id}: no recording id, cannot group it with its neighbours")
    return str(recording_id)


def group_request_id(cut_ids: Sequence[str]) -> str:
    """The cache key of a group: its cut ids in prompt order (unique and stable across resumes)."""
    return "+".join(cut_ids)


@dataclass
class SplitAnswer:
    texts: list[str]  # one per segment, in segment order; empty when rejected
    reason: str | None = None  # group_count, group_numbering, group_unnumbered_line, empty

    @property
    def accepted(self) -> bool:
        return self.reason is None


def split_numbered_answer(raw: str, count: int) -> SplitAnswer:
    """The answer line of each of ``count`` segments, or why the answer cannot be split."""
    text = _THINK.sub("", raw).replace("\r\n", "\n").replace("```", "")
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return SplitAnswer([], "empty")
    numbered: list[tuple[int, str]] = []
    block_ended = False
    for line in lines:
        match = _NUMBERED.match(line)
        if match:
            if block_ended:
                return SplitAnswer([], "group_unnumbered_line")
            numbered.append((int(match.group(1)), match.group(2)))
        elif numbered:
            block_ended = True  # an explanation after the block, or a stray line inside it
    if not numbered:
        return SplitAnswer([], "group_count")
    numbers = [number for number, _ in numbered]
    if len(numbers) != count:
        return SplitAnswer([], "group_count")
    if sorted(numbers) != list(range(1, count + 1)):
        return SplitAnswer([], "group_numbering")
    by_number = dict(numbered)
    return SplitAnswer([by_number[number] for number in range(1, count + 1)])


def first_numbered_block(raw: str) -> str:
    """A base LM's completion up to the end of its first numbered block: after answering, a
    few-shot prompt's model goes on with a made-up next example ("Translations:", "1. ..."),
    which is not part of the answer."""
    kept: list[str] = []
    started = False
    for line in raw.replace("\r\n", "\n").split("\n"):
        if _NUMBERED.match(line):
            started = True
        elif started and line.strip():
            break
        kept.append(line)
    return "\n".join(kept)


def numbered_answer_complete(generated: str, count: int) -> bool:
    """Whether a partial generation already holds ``count`` finished numbered lines."""
    if "\n" not in generated:
        return False
    finished = _THINK.sub("", generated)
    finished = finished[: finished.rfind("\n")]
    return sum(1 for line in finished.split("\n") if _NUMBERED.match(line)) >= count
