"""Turn an LLM's answer into a pseudo-label, or reject it with a reason.

Instruct models, small ones especially, wrap the answer: "Sure! Here is the
corrected text: ...", quotes, markdown, code fences, an explanation after it.
:func:`clean_answer` peels these off and then checks that what is left can be a
correction of the hypothesis at all: not empty, in the target language's script,
of a plausible length. A rejected answer never becomes a label; the cut keeps the
teacher's text and its status says why (``rejected:<reason>``), so the filter and
the report can count it. The accepted text is normalised with
:func:`less.data.text.normalize`, exactly like the teacher's hypothesis, so the
``hypo_wer`` filter compares like with like.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from less.data.text import normalize, scoring_units


@dataclass
class CleaningConfig:
    """Plausibility bounds; an answer outside them keeps the teacher's text.

    Length is counted in scoring units (characters for ``zh``, words otherwise):
    the answer may have at most ``max_length_ratio * n + length_slack`` units and at
    least ``min_length_ratio * n - length_slack`` for a hypothesis of ``n`` units
    (the slack keeps very short hypotheses from being judged by a ratio of 1 to 3).
    """

    min_length_ratio: float = 0.5
    max_length_ratio: float = 2.0
    length_slack: int = 2
    # zh: share of CJK among letters must be at least this fraction of the hypothesis's share
    min_script_fraction: float = 0.5


@dataclass
class CleanedAnswer:
    text: str  # normalised; empty when rejected
    reason: str | None = None  # None when accepted

    @property
    def accepted(self) -> bool:
        return self.reason is None


_CODE_FENCE = re.compile(r"```[^\n`]*\n?(.*?)(?:```|$)", re.DOTALL)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_QUOTE_PAIRS = [
    ('"', '"'),
    ("'", "'"),
    ("“", "”"),
    ("‘", "’"),
    ("「", "」"),
    ("『", "』"),
    ("«", "»"),
    ("`", "`"),
]

# Phrases that open an answer before the text itself. Applied repeatedly at the start,
# unless the hypothesis itself starts with the same words ("okay so ..." is speech).
_PREAMBLES = [
    r"(?:sure|okay|ok|certainly|of course|absolutely|no problem|great|alright)\b[!,.]*",
    r"(?:here(?:'s| is| are)|below is|this is)\b[^:\n：]{0,60}[:：]",
    r"(?:the |a |my |your )(?:corrected|fixed|revised|improved|edited|final|proofread)\b[^:\n：]{0,40}?"
    r"(?:[:：]|\b(?:is|would be|reads|should be)\b\s*[:：]?)",
    r"(?:corrected|fixed|revised|improved|edited|proofread)\b[^:\n：]{0,40}?[:：]",
    r"(?:correction|correct text|output|answer|result|translation|transcript|"
    r"sentence|text|best|response)\s*[:：]",
    r"(?:the |a )?(?:new |final )?(?:sentence|text|translation|transcript|answer|output)\s+"
    r"(?:is|would be|reads|should be)\s*[:：]",
    r"(?:修正|纠正|改正|更正|校正|修改|纠错)(?:后|过)?的?(?:文本|句子|结果|内容|识别结果|版本)?\s*(?:是|为|如下)?\s*[:：]",
    r"(?:好的|当然|没问题|可以)[！!，,。.]*",
    r"(?:答案|输出|结果|识别结果|最佳识别结果|文本)\s*[:：]",
]
_PREAMBLE = re.compile(r"^\s*(?:" + "|".join(_PREAMBLES) + r")\s*", re.IGNORECASE)
# A line that carries the correction explicitly: preferred over any other line.
_CORRECTION_LABEL = re.compile(
    r"^\s*(?:(?:the |a )?(?:corrected|fixed|revised)\b[^:\n：]{0,40}?[:：]|"
    r"(?:修正|纠正|改正|更正|校正)(?:后|过)的?[^:\n：]{0,8}[:：])\s*",
    re.IGNORECASE,
)
# A line that repeats the input ("Original: ..."): never the answer when another line exists.
_ECHO_LABEL = re.compile(
    r"^\s*(?:original|input|source|hypothesis|原文|原句|原始文本|输入)\s*[:：]", re.IGNORECASE
)

# Where an explanation starts inside the answer line: everything from there on is dropped.
_EXPLANATION = re.compile(
    r"(?:\s*[(（\[]\s*(?:note|explanation|corrected|changed|fixed|i (?:corrected|changed|fixed|replaced)|"
    r"注|说明|解释|修改|改正|纠正)"
    r"|\s*\b(?:note|explanation|explanations|changes|changes made)\s*[:：]"
    r"|\s*(?:注|注意|说明|解释|修改说明)\s*[:：]"
    r"|(?<=[.!?。！？])\s*(?:I (?:corrected|changed|fixed|replaced|removed|added)|This (?:corrects|fixes)|"
    r"The (?:errors?|mistakes?|changes?) (?:was|were|is|are)\b)).*$",
    re.IGNORECASE,
)
_REFUSAL = re.compile(
    r"^\s*(?:i'?m sorry|i am sorry|sorry,|as an ai|i cannot|i can't|i can not|i'm unable|i am unable|"
    r"抱歉|对不起|作为一个?(?:ai|人工智能))",
    re.IGNORECASE,
)
# A parenthesised remark closing the answer ("(no changes needed)"): speech has none.
_TRAILING_PARENTHESES = re.compile(r"\s*(?:\([^()]*\)|（[^（）]*）)\s*[.。]?$")
_MARKDOWN_LINE = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+•]\s+|\d+[.)]\s+)")
_MARKDOWN_INLINE = re.compile(r"(\*\*|__|\*|~~)(.+?)\1")

_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_FOREIGN_FOR_LATIN = re.compile(
    r"[\u0400-\u04ff\u0590-\u06ff\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
)


def _strip_quotes(text: str) -> str:
    changed = True
    while changed and len(text) >= 2:
        changed = False
        for left, right in _QUOTE_PAIRS:
            if (
                text.startswith(left)
                and text.endswith(right)
                and len(text) > len(left) + len(right) - 1
            ):
                text = text[len(left) : len(text) - len(right)].strip()
                changed = True
    return text


def _loose(text: str) -> str:
    """Lower-case letters and digits only: to compare a removed preamble with the hypothesis."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _strip_preambles(text: str, hypothesis: str) -> str:
    hypothesis_start = _loose(hypothesis)
    for _ in range(6):
        match = _PREAMBLE.match(text)
        if not match or not match.group(0).strip():
            break
        removed = _loose(match.group(0))
        if removed and hypothesis_start.startswith(removed):
            break  # the speech itself starts this way ("okay so ...", "好的我们...")
        text = text[match.end() :]
    return text


def _clean_line(line: str, hypothesis: str) -> str:
    line = _MARKDOWN_LINE.sub("", line.strip())
    line = _MARKDOWN_INLINE.sub(r"\2", line)
    line = _strip_quotes(line.strip())
    line = _strip_preambles(line, hypothesis)
    return _strip_quotes(line.strip())


def extract_answer(raw: str, hypothesis: str = "") -> str:
    """The answer text without wrappers (not yet normalised or checked).

    Picks the line after an explicit correction label if there is one ("Corrected:",
    "修正后："), else the first non-empty line that does not echo the input; later
    lines are taken for explanations and dropped.
    """
    text = _THINK.sub("", raw).replace("\r\n", "\n")
    fenced = [block.strip() for block in _CODE_FENCE.findall(text) if block.strip()]
    if fenced:
        text = fenced[0]
    lines = [line for line in text.replace("```", "").split("\n")]

    def first_answer(candidates: list[str]) -> str:
        for line in candidates:
            cleaned = _clean_line(line, hypothesis)
            if cleaned:
                return cleaned
        return ""

    answer = ""
    for i, line in enumerate(lines):
        unmarked = _MARKDOWN_INLINE.sub(r"\2", _MARKDOWN_LINE.sub("", line.strip()))
        label = _CORRECTION_LABEL.match(unmarked)
        if label:
            # Text after the label, or (label alone on its line) the next line with text.
            answer = first_answer([unmarked[label.end() :]] + lines[i + 1 :])
            break
    if not answer:
        non_echo = [line for line in lines if line.strip() and not _ECHO_LABEL.match(line)]
        answer = first_answer(non_echo or lines)
    answer = _EXPLANATION.sub("", answer).strip()
    answer = _TRAILING_PARENTHESES.sub("", answer).strip()
    return _strip_quotes(answer)


def answer_complete(generated: str, hypothesis: str = "") -> bool:
    """Whether a partial generation already holds a complete answer line.

    True once a finished line (followed by a newline) would be taken as the answer:
    a line after a correction label, or any line with text that does not merely
    label or echo. Generation can stop there: :func:`extract_answer` ignores the
    rest, and small models otherwise ramble until their token budget runs out.
    """
    if "\n" not in generated:
        return False
    text = _THINK.sub("", generated)
    if "<think>" in text.lower():
        return False  # still thinking
    completed = text[: text.rfind("\n")].replace("```", "").split("\n")
    for i, line in enumerate(completed):
        unmarked = _MARKDOWN_INLINE.sub(r"\2", _MARKDOWN_LINE.sub("", line.strip()))
        label = _CORRECTION_LABEL.match(unmarked)
        if label:
            rest = [unmarked[label.end() :]] + completed[i + 1 :]
            return any(_clean_line(candidate, hypothesis) for candidate in rest)
        if _ECHO_LABEL.match(line):
            continue
        if _clean_line(line, hypothesis):
            return True
    return False


def _script_reason(answer: str, hypothesis: str, lang: str, config: CleaningConfig) -> str | None:
    letters = [ch for ch in answer if ch.isalpha()]
    if not letters:
        return None
    if lang == "zh":

        def cjk_share(text: str) -> float:
            chars = [ch for ch in text if ch.isalpha()]
            return sum(1 for ch in chars if _CJK_CHAR.match(ch)) / len(chars) if chars else 1.0

        hyp_share = cjk_share(hypothesis)
        if cjk_share(answer) < config.min_script_fraction * max(hyp_share, 0.5):
            return "wrong_script"
        return None
    foreign = sum(1 for ch in letters if _FOREIGN_FOR_LATIN.match(ch))
    return "wrong_script" if foreign > 0.1 * len(letters) else None


def clean_answer(
    raw: str, hypothesis: str, lang: str, config: CleaningConfig | None = None
) -> CleanedAnswer:
    """Extract, check and normalise one answer; ``reason`` says why it was rejected."""
    config = config or CleaningConfig()
    if not raw or not raw.strip():
        return CleanedAnswer("", "empty")
    if _REFUSAL.match(raw):
        return CleanedAnswer("", "refusal")
    answer = extract_answer(raw, hypothesis)
    if not answer:
        return CleanedAnswer("", "empty")
    reason = _script_reason(answer, hypothesis, lang, config)
    if reason:
        return CleanedAnswer("", reason)
    text = normalize(answer, lang)
    if not text:
        return CleanedAnswer("", "empty")
    answer_units = len(scoring_units(text, lang))
    hypothesis_units = len(scoring_units(hypothesis, lang))
    if hypothesis_units > 0:
        upper = config.max_length_ratio * hypothesis_units + config.length_slack
        lower = config.min_length_ratio * hypothesis_units - config.length_slack
        if answer_units > upper or answer_units < lower:
            return CleanedAnswer("", "length_ratio")
    return CleanedAnswer(text, None)
