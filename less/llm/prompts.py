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

Placeholders are replaced literally (not ``str.format``), so templates may contain
braces. Every template asks for the corrected text only; :mod:`less.llm.cleaning`
copes with models that do not listen.

``prompt_sha`` hashes the template text together with the parameters that change
the rendered prompt (task, language, N-best size). It is the same for every cut of
a run, identifies the prompt in ``pl["llm"]["prompt_sha"]`` and is part of the cache
key: editing a template invalidates cached answers instead of silently reusing them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from less.llm.base import ChatPrompt

TEMPLATE_DIR = Path(__file__).with_name("prompts")
SECTIONS = ("system", "user", "user_nbest")
# Bump when the rendering code changes what a template produces.
RENDER_VERSION = 1


@dataclass(frozen=True)
class PromptTemplate:
    source: str  # file the template came from (for messages)
    text: str  # the whole file, hashed into prompt_sha
    system: str
    user: str
    user_nbest: str | None


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
    return PromptTemplate(
        source=source, text=text, system=body.get("system", ""), user=body["user"], user_nbest=user_nbest
    )


def default_template_path(task: str, lang: str) -> Path:
    return TEMPLATE_DIR / f"{task}_{lang}.txt"


def load_template(task: str, lang: str, path: str | Path | None = None) -> PromptTemplate:
    """The user's template file if given, else the packaged one for ``task``/``lang``."""
    if path is None:
        path = default_template_path(task, lang)
        if not path.is_file():
            available = sorted(p.stem for p in TEMPLATE_DIR.glob("*.txt"))
            raise FileNotFoundError(
                f"no packaged prompt template for task={task!r} lang={lang!r} (have: {available}); "
                "pass --prompt-template FILE"
            )
    path = Path(path)
    return parse_template(path.read_text(encoding="utf-8"), source=str(path))


def _sha(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


class PromptBuilder:
    """Renders the correction prompt of one cut from its 1-best and N-best."""

    def __init__(self, template: PromptTemplate, task: str, lang: str, nbest_in_prompt: int = 0) -> None:
        if nbest_in_prompt < 0:
            raise ValueError(f"nbest_in_prompt must be >= 0, got {nbest_in_prompt}")
        if nbest_in_prompt > 0 and template.user_nbest is None:
            raise ValueError(f"{template.source}: --nbest-in-prompt needs a [user_nbest] section")
        self.template = template
        self.task = task
        self.lang = lang
        self.nbest_in_prompt = nbest_in_prompt
        self.prompt_sha = _sha(
            {
                "kind": "correct",
                "template": template.text,
                "task": task,
                "lang": lang,
                "nbest_in_prompt": nbest_in_prompt,
                "render_version": RENDER_VERSION,
            }
        )

    def build(self, hypothesis: str, nbest: Sequence[str] = (), request_id: str = "") -> ChatPrompt:
        candidates = list(dict.fromkeys(t for t in nbest if t))[: self.nbest_in_prompt]
        if self.nbest_in_prompt > 0 and len(candidates) > 1:
            nbest_list = "\n".join(f"{i}. {text}" for i, text in enumerate(candidates, start=1))
            user = self.template.user_nbest.replace("{nbest_list}", nbest_list)  # type: ignore[union-attr]
        else:
            user = self.template.user
        user = user.replace("{hypothesis}", hypothesis)
        return ChatPrompt(system=self.template.system, user=user, hypothesis=hypothesis, request_id=request_id)


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
