"""Prompt templates for pseudo-label correction, and the ``prompt_sha`` that names them.

Templates live in ``less/llm/prompts/<task>_<lang>.txt`` (Mandarin ASR in Chinese,
English translation in English) and can be replaced with ``--prompt-template FILE``.
A template file has sections::

    # comment lines start with '#'
    [system]
    ...
    [user]
    ... {hypothesis} ...
    [user_nbest]          (optional: used when the N-best is shown to the LLM)
    ... {nbest_list} ... {hypothesis} ...
    [example]             (optional: makes it a few-shot *completion* template)
    ... {hypothesis} ... {corrected} ...
    [user_group]          (optional: several segments per request, --llm-context-segments)
    ... {count} ... {segments} ...
    [example_group]       (optional: a worked group example, few-shot with several segments)
    ... {segments} ... {corrected_segments} ...

Placeholders are replaced literally (not ``str.format``), so templates may contain
braces.

A template with an ``[example]`` section is for *base* LMs (no chat template, e.g.
Gemma 3 270M): the prompt is ``system``, the k worked examples (each ``[example]``
filled with a noisy/corrected pair, separated by blank lines) and ``user``, as plain
text that ends where the answer starts; the answer is the model's first line. The
examples come from :mod:`less.llm.fewshot` (never from test sets) and are the same
for every request (a deterministic, seeded draw), so they are hashed into
``prompt_sha``.

``[user_group]`` asks for several consecutive segments of one recording at once (the
LESS authors' recipe sends 5): ``{segments}`` becomes numbered lines ``1. text``,
``{count}`` their number, and the answer must be one numbered line per segment
(:mod:`less.llm.segments`). A few-shot template takes groups too when it has
``[example_group]`` and ``[user_group]``: the k worked examples are shown K at a time
as numbered groups (the last one may be smaller), and the prompt ends where the numbered
answer starts. Every template asks for the corrected text only; :mod:`less.llm.cleaning`
copes with models that do not listen.

``prompt_sha`` hashes the template text together with the parameters that change
the rendered prompt (task, language, N-best size). It is the same for every cut of
a run, identifies the prompt in ``pl["llm"]["prompt_sha"]`` and is part of the cache
key: editing a template invalidates cached answers instead of silently reusing them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from less.llm.base import ChatPrompt

TEMPLATE_DIR = Path(__file__).with_name("prompts")
SECTIONS = ("system", "user", "user_nbest", "example", "user_group", "example_group")
# Bump when the rendering code changes what a template produces.
RENDER_VERSION = 1


@dataclass(frozen=True)
class PromptTemplate:
    source: str  # file the template came from (for messages)
    text: str  # the whole file, hashed into prompt_sha
    system: str
    user: str
    user_nbest: str | None
    example: str | None = None
    user_group: str | None = None
    example_group: str | None = None

    @property
    def completion(self) -> bool:
        """A few-shot completion template for base LMs (it has an ``[example]`` section)."""
        return self.example is not None


def parse_template(text: str, source: str = "<string>") -> PromptTemplate:
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#") and current is None:
            continue
        if stripped.startswith("[") and stripped.endswith("]") and stripped[1:-1] in SECTIONS:
            current = stripped[1:-1]
            if current in sections:
                raise ValueError(f"{source}:{line_number}: section [{current}] appears twice")
            sections[current] = []
            continue
        if current is None:
            if stripped:
                raise ValueError(
                    f"{source}:{line_number}: text before the first section; expected one of "
                    + ", ".join(f"[{s}]" for s in SECTIONS)
                )
            continue
        sections[current].append(line)
    body = {name: "\n".join(lines).strip() for name, lines in sections.items()}
    if not body.get("user"):
        raise ValueError(f"{source}: template needs a non-empty [user] section")
    if "{hypothesis}" not in body["user"]:
        raise ValueError(f"{source}: the [user] section must contain {{hypothesis}}")
    user_nbest = body.get("user_nbest") or None
    if user_nbest is not None and "{nbest_list}" not in user_nbest:
        raise ValueError(f"{source}: the [user_nbest] section must contain {{nbest_list}}")
    example = body.get("example") or None
    if example is not None and ("{hypothesis}" not in example or "{corrected}" not in example):
        raise ValueError(
            f"{source}: the [example] section must contain {{hypothesis}} and {{corrected}}"
        )
    user_group = body.get("user_group") or None
    if user_group is not None and "{segments}" not in user_group:
        raise ValueError(f"{source}: the [user_group] section must contain {{segments}}")
    example_group = body.get("example_group") or None
    if example_group is not None:
        if "{segments}" not in example_group or "{corrected_segments}" not in example_group:
            raise ValueError(
                f"{source}: the [example_group] section must contain {{segments}} and "
                "{corrected_segments}"
            )
        if example is None or user_group is None:
            raise ValueError(
                f"{source}: an [example_group] section needs [example] and [user_group] sections"
            )
    return PromptTemplate(
        source=source,
        text=text,
        system=body.get("system", ""),
        user=body["user"],
        user_nbest=user_nbest,
        example=example,
        user_group=user_group,
        example_group=example_group,
    )


def default_template_path(task: str, lang: str, variant: str = "") -> Path:
    """``<task>_<lang>[_<variant>].txt``; variants: ``fewshot`` (base LMs), ``segments``,
    ``fewshot_segments`` (base LMs, several segments per request)."""
    return TEMPLATE_DIR / f"{task}_{lang}{'_' + variant if variant else ''}.txt"


def load_template(
    task: str, lang: str, path: str | Path | None = None, variant: str = ""
) -> PromptTemplate:
    """The user's template file if given, else the packaged one for ``task``/``lang``/``variant``."""
    if path is None:
        path = default_template_path(task, lang, variant)
        if not path.is_file():
            available = sorted(p.stem for p in TEMPLATE_DIR.glob("*.txt"))
            raise FileNotFoundError(
                f"no packaged prompt template for task={task!r} lang={lang!r} (have: {available}); "
                "pass --prompt-template FILE"
            )
    path = Path(path)
    return parse_template(path.read_text(encoding="utf-8"), source=str(path))


def _sha(obj: dict) -> str:
    return hashlib.sha256(
        json.dumps(obj, ensure_ascii=False, sort_keys=True).encode("utf-8")
    ).hexdigest()


def _fill(text: str, values: dict[str, str]) -> str:
    """Replace ``{name}`` placeholders in one pass (a value containing braces stays as is)."""
    pattern = re.compile("|".join(re.escape("{" + name + "}") for name in values))
    return pattern.sub(lambda match: values[match.group(0)[1:-1]], text)


class PromptBuilder:
    """Renders the correction prompt of one cut (or one group of cuts) from the teacher's text.

    ``examples`` are ``(hypothesis, corrected)`` pairs for a few-shot template;
    ``context_segments > 1`` renders groups with ``[user_group]``. Both enter
    ``prompt_sha`` only when used, so the default prompt keeps the hash (and the cached
    answers) it had before they existed.
    """

    def __init__(
        self,
        template: PromptTemplate,
        task: str,
        lang: str,
        nbest_in_prompt: int = 0,
        examples: Sequence[tuple[str, str]] = (),
        context_segments: int = 1,
    ) -> None:
        if nbest_in_prompt < 0:
            raise ValueError(f"nbest_in_prompt must be >= 0, got {nbest_in_prompt}")
        if nbest_in_prompt > 0 and template.user_nbest is None:
            raise ValueError(f"{template.source}: --nbest-in-prompt needs a [user_nbest] section")
        if examples and template.example is None:
            raise ValueError(
                f"{template.source}: few-shot examples need a template with an [example] section "
                "(e.g. the packaged <task>_<lang>_fewshot.txt)"
            )
        if context_segments < 1:
            raise ValueError(f"context_segments must be >= 1, got {context_segments}")
        if context_segments > 1:
            if template.user_group is None or (
                template.completion and template.example_group is None
            ):
                sections, packaged = (
                    ("[example_group] and [user_group] sections", "fewshot_segments")
                    if template.completion
                    else ("a [user_group] section", "segments")
                )
                raise ValueError(
                    f"{template.source}: --llm-context-segments > 1 needs {sections} "
                    f"(e.g. the packaged <task>_<lang>_{packaged}.txt)"
                )
            if nbest_in_prompt > 0:
                raise ValueError(
                    "--llm-context-segments > 1 does not show the N-best (--nbest-in-prompt 0)"
                )
        self.template = template
        self.task = task
        self.lang = lang
        self.nbest_in_prompt = nbest_in_prompt
        self.examples = [(str(hypothesis), str(corrected)) for hypothesis, corrected in examples]
        self.context_segments = context_segments
        identity: dict = {
            "kind": "correct",
            "template": template.text,
            "task": task,
            "lang": lang,
            "nbest_in_prompt": nbest_in_prompt,
            "render_version": RENDER_VERSION,
        }
        if self.examples:
            identity["examples"] = self.examples
        if context_segments > 1:
            identity["context_segments"] = context_segments
        self.prompt_sha = _sha(identity)
        self._examples_block = "\n\n".join(
            _fill(template.example, {"hypothesis": hypothesis, "corrected": corrected})  # type: ignore[arg-type]
            for hypothesis, corrected in self.examples
        )
        self._group_examples_block = ""
        if context_segments > 1 and template.example_group is not None:
            chunks = [
                self.examples[begin : begin + context_segments]
                for begin in range(0, len(self.examples), context_segments)
            ]
            self._group_examples_block = "\n\n".join(
                _fill(
                    template.example_group,
                    {
                        "segments": _numbered(h for h, _ in chunk),
                        "corrected_segments": _numbered(c for _, c in chunk),
                        "count": str(len(chunk)),
                    },
                )
                for chunk in chunks
            )

    def build(self, hypothesis: str, nbest: Sequence[str] = (), request_id: str = "") -> ChatPrompt:
        candidates = list(dict.fromkeys(t for t in nbest if t))[: self.nbest_in_prompt]
        if self.nbest_in_prompt > 0 and len(candidates) > 1:
            nbest_list = "\n".join(f"{i}. {text}" for i, text in enumerate(candidates, start=1))
            user = self.template.user_nbest.replace("{nbest_list}", nbest_list)  # type: ignore[union-attr]
        else:
            user = self.template.user
        user = user.replace("{hypothesis}", hypothesis)
        return self._prompt(user, self._examples_block, hypothesis, request_id)

    def build_group(self, hypotheses: Sequence[str], request_id: str = "") -> ChatPrompt:
        """One prompt for consecutive segments, numbered from 1 in the order given (time order)."""
        if self.template.user_group is None:
            raise ValueError(f"{self.template.source}: no [user_group] section")
        segments = _numbered(hypotheses)
        user = _fill(
            self.template.user_group, {"segments": segments, "count": str(len(hypotheses))}
        )
        # The budget follows the whole numbered list: every answer line repeats its number.
        return self._prompt(
            user, self._group_examples_block, segments, request_id, answer_lines=len(hypotheses)
        )

    def _prompt(
        self, user: str, examples: str, hypothesis: str, request_id: str, **extra: Any
    ) -> ChatPrompt:
        """The request; a completion template (a base model's) has its worked ``examples`` (a
        rendered block) before the task."""
        if self.template.completion and examples:
            user = f"{examples}\n\n{user}"
        return ChatPrompt(
            system=self.template.system,
            user=user,
            hypothesis=hypothesis,
            request_id=request_id,
            completion=self.template.completion,
            **extra,
        )


def _numbered(texts) -> str:
    """``1. text`` lines, numbered from 1."""
    return "\n".join(f"{number}. {text}" for number, text in enumerate(texts, start=1))


def rescore_prompt_sha(prefix: str, lang: str, normalize_text: bool, append_eos: bool) -> str:
    """``prompt_sha`` of rescore mode: what changes the LLM scores (not how they are combined)."""
    return _sha(
        {
            "kind": "rescore",
            "prefix": prefix,
            "lang": lang,
            "normalize": normalize_text,
            "append_eos": append_eos,
            "render_version": RENDER_VERSION,
        }
    )
