"""Which errors a system fixes against another, inside vs outside near-interchangeable labels.

The theory of unsupervised ASR behind system U (Yang et al., arXiv 2603.02285) says that
unpaired audio cannot tell apart labels the language model cannot tell apart (C2 fails for
them): if two characters occur in the same contexts, swapping them leaves the marginal
cross-entropy unchanged. So a sequence-level loss on unlabeled audio should fix few
confusions *within* such a group (e.g. one digit for another) and more of the others.

:func:`compare_fixes` aligns both systems' hypotheses with the references (kaldialign) and
classifies each reference character that the base system gets wrong: a substitution by a
character of the same near-interchangeable group (:mod:`less.unsup.conditions`' groups)
is "inside", every other error (other substitutions, deletions) "outside". A fix is such an
error that the other system gets right. The base rates (errors inside / outside) come with
the fixes, so the shares can be compared.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from less.metrics import EPS, align_units


@dataclass
class FixCounts:
    errors_inside: int = 0  # the base system's errors that are within-group substitutions
    errors_outside: int = 0
    fixed_inside: int = 0  # ... of which the other system gets right
    fixed_outside: int = 0
    broken: int = 0  # reference characters the base gets right and the other wrong

    @property
    def fix_rate_inside(self) -> float:
        return self.fixed_inside / self.errors_inside if self.errors_inside else float("nan")

    @property
    def fix_rate_outside(self) -> float:
        return self.fixed_outside / self.errors_outside if self.errors_outside else float("nan")

    def as_dict(self) -> dict[str, float]:
        return {
            **asdict(self),
            "fix_rate_inside": self.fix_rate_inside,
            "fix_rate_outside": self.fix_rate_outside,
        }


def reference_status(ref: Sequence[str], hyp: Sequence[str]) -> list[str | None]:
    """Per reference unit: None when recognised, else what stands in its place (a unit, or
    ``EPS`` for a deletion), by the scoring's minimum-edit alignment."""
    status: list[str | None] = []
    for r, h in align_units(ref, hyp).alignment:
        if r == EPS:
            continue  # an insertion: no reference unit
        status.append(None if h == r else h)
    return status


def group_index(groups: Iterable[Iterable[str]]) -> dict[str, int]:
    index: dict[str, int] = {}
    for n, group in enumerate(groups):
        for label in group:
            if label in index:
                raise ValueError(f"label {label!r} in two groups ({index[label]} and {n})")
            index[label] = n
    return index


def compare_fixes(
    base: dict[str, tuple[Sequence[str], Sequence[str]]],
    other: dict[str, tuple[Sequence[str], Sequence[str]]],
    groups: Iterable[Iterable[str]],
) -> FixCounts:
    """``base`` / ``other``: cut id -> (reference units, hypothesis units), same references."""
    index = group_index(groups)
    counts = FixCounts()
    missing = set(base) ^ set(other)
    if missing:
        raise ValueError(
            f"{len(missing)} cut(s) decoded by one system only, e.g. {sorted(missing)[:3]}"
        )
    for cut_id, (ref, hyp) in base.items():
        other_ref, other_hyp = other[cut_id]
        if list(other_ref) != list(ref):
            raise ValueError(
                f"cut {cut_id}: the two systems were scored against different references"
            )
        for unit, was, now in zip(
            ref, reference_status(ref, hyp), reference_status(ref, other_hyp)
        ):
            if was is None:
                counts.broken += now is not None
                continue
            inside = was != EPS and unit in index and index.get(was) == index[unit]
            if inside:
                counts.errors_inside += 1
                counts.fixed_inside += now is None
            else:
                counts.errors_outside += 1
                counts.fixed_outside += now is None
    return counts
