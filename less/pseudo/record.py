"""The pseudo-label record: what every stage of the LESS loop reads and adds to a cut.

It lives in ``supervision.custom["pl"]`` (JSON in the cut manifests), written by
``less.bin.pseudo_label`` and extended by the later stages:

====================  ====================================================  ===============
key                   meaning                                               written by
====================  ====================================================  ===============
``iter``              LESS iteration the labels are for                     pseudo_label
``teacher``           which model made them                                 pseudo_label
``hyp``               the teacher's 1-best (AST: the translation)          pseudo_label
``nbest``             ``[[text, score], ...]``, best first                  pseudo_label
``confidence``        the teacher's confidence in ``hyp`` (0..1)            pseudo_label
``src_hyp``           AST: the teacher's source-language transcript (CTC)   pseudo_label
``lm``                ``{"text"}``: the same audio decoded with an n-gram   pseudo_label --lm
                      LM (WeNet's LM filter)
``llm``               the LLM's answer: ``{"model", "prompt_sha", "text",   llm_correct
                      "status", ...}``
``hypo_wer``          edit-distance rate of ``llm.text`` against ``hyp``    filter_pl
``kept``              whether the filter kept the cut                        filter_pl
``drop_reason``       why not                                                filter_pl
====================  ====================================================  ===============

:class:`PseudoLabelRecord` is that record typed; :func:`read_record` finds and validates it
on a cut (errors name the cut), :func:`with_record` writes it back into a copy. Keys it
does not know are carried along unchanged (``extra``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class PseudoLabelRecord:
    iter: int
    teacher: str
    hyp: str
    nbest: list[tuple[str, float]] = field(default_factory=list)
    confidence: float = 1.0
    src_hyp: str | None = None
    lm: dict[str, Any] | None = None
    llm: dict[str, Any] | None = None
    hypo_wer: float | None = None
    kept: bool | None = None
    drop_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def llm_text(self) -> str | None:
        """The LLM's corrected text, if it answered."""
        return (self.llm or {}).get("text")

    @classmethod
    def from_custom(cls, pl: Any, where: str = "cut") -> PseudoLabelRecord:
        """The record of ``custom["pl"]``, validated (``where`` names the cut in errors)."""
        if not isinstance(pl, dict):
            raise ValueError(
                f"{where}: custom['pl'] must be a JSON object, got {type(pl).__name__}"
            )
        hyp = pl.get("hyp")
        if not isinstance(hyp, str):
            raise ValueError(
                f"{where}: custom['pl']['hyp'] must be a string, got {type(hyp).__name__}"
            )
        nbest = []
        for item in pl.get("nbest") or []:
            if (
                not isinstance(item, (list, tuple))
                or len(item) != 2
                or not isinstance(item[0], str)
            ):
                raise ValueError(
                    f"{where}: custom['pl']['nbest'] entries must be [text, score], got {item!r}"
                )
            nbest.append((item[0], float(item[1]) if item[1] is not None else 0.0))
        known = {f.name for f in fields(cls)} - {"extra", "nbest"}
        values = {k: v for k, v in pl.items() if k in known}
        values.setdefault("iter", 0)
        values.setdefault("teacher", "")
        return cls(
            **values, nbest=nbest, extra={k: v for k, v in pl.items() if k not in known | {"nbest"}}
        )

    def to_custom(self) -> dict[str, Any]:
        """The JSON object stored in ``custom["pl"]`` (fields that are None left out)."""
        out: dict[str, Any] = {
            "iter": self.iter,
            "teacher": self.teacher,
            "hyp": self.hyp,
            "nbest": [[text, float(score)] for text, score in self.nbest],
            "confidence": float(self.confidence),
        }
        for name in ("src_hyp", "lm", "llm", "hypo_wer", "kept", "drop_reason"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return {**out, **self.extra}


def find_supervision(cut) -> int | None:
    """Index of the supervision carrying ``custom["pl"]``; None if none does. A malformed
    record still counts (reading it then says what is wrong, rather than skipping it)."""
    for index, supervision in enumerate(cut.supervisions):
        if supervision.custom and supervision.custom.get("pl") is not None:
            return index
    return None


def pl_supervision_index(cut, hint: str = "run less.bin.pseudo_label first") -> int:
    """Index of the supervision carrying ``custom["pl"]``; a clear error (with ``hint``) if
    none does."""
    index = find_supervision(cut)
    if index is None:
        raise ValueError(f"cut {cut.id}: no supervision with custom['pl'] ({hint})")
    return index


def read_record(cut, hint: str = "run less.bin.pseudo_label first") -> PseudoLabelRecord:
    """The pseudo-label record of a cut, validated (errors name the cut and say ``hint``)."""
    supervision = cut.supervisions[pl_supervision_index(cut, hint)]
    return PseudoLabelRecord.from_custom(supervision.custom["pl"], f"cut {cut.id}")


def find_record(cut, where: str = "") -> PseudoLabelRecord | None:
    """The pseudo-label record of a cut, validated, or None for a cut without one (a
    supervised cut); ``where`` (a file) goes before the cut id in errors."""
    index = find_supervision(cut)
    if index is None:
        return None
    pl = cut.supervisions[index].custom["pl"]
    return PseudoLabelRecord.from_custom(pl, f"{where}{': ' if where else ''}cut {cut.id}")


def with_record(cut, record: PseudoLabelRecord):
    """A copy of ``cut`` whose pseudo-label supervision carries ``record``."""
    from lhotse.utils import fastcopy

    index = pl_supervision_index(cut)
    supervision = cut.supervisions[index]
    supervisions = list(cut.supervisions)
    supervisions[index] = fastcopy(
        supervision, custom={**supervision.custom, "pl": record.to_custom()}
    )
    return fastcopy(cut, supervisions=supervisions)
