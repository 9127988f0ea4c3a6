"""Mix supervised and kept pseudo-labelled cuts into one training set for the next student.

Two knobs, both in hours so they mean the same for any cut lengths:

* ``pl_ratio``: hours of pseudo-labelled audio per hour of supervised audio. The kept
  pseudo-labelled cuts are subsampled (seeded) to reach it; ``0`` uses all of them. When
  fewer hours were kept than asked for, all are used and the shortfall is logged.
* ``sup_repeat``: each supervised cut appears this many times (ids suffixed ``_rep<k>``),
  to up-weight clean labels when the pseudo-labelled set is much larger (WeNet's NST
  recipe keeps 25% supervised / 75% pseudo).

Every cut gets ``custom["origin"]`` = ``"sup"`` or ``"pl"`` so training logs and reports
can tell them apart.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

log = logging.getLogger("less.pseudo.mix")


@dataclass
class MixStats:
    sup_cuts: int
    sup_hours: float
    pl_cuts: int
    pl_hours: float
    pl_available_hours: float

    def __str__(self) -> str:
        total = self.sup_hours + self.pl_hours
        return (
            f"{self.sup_cuts} supervised cuts ({self.sup_hours:.2f} h) + {self.pl_cuts} pseudo-labelled cuts "
            f"({self.pl_hours:.2f} h of {self.pl_available_hours:.2f} h kept): "
            f"{100 * self.pl_hours / max(total, 1e-9):.0f}% pseudo-labelled"
        )


def _tag(cut, origin: str, new_id: str | None = None):
    from lhotse.utils import fastcopy

    custom = dict(cut.custom or {})
    custom["origin"] = origin
    return fastcopy(cut, id=new_id or cut.id, custom=custom)


def mix_cuts(sup_cuts, pl_cuts, pl_ratio: float = 0.0, sup_repeat: int = 1, seed: int = 0):
    """Return (mixed CutSet, MixStats)."""
    from lhotse import CutSet

    if sup_repeat < 1:
        raise ValueError(f"sup_repeat must be >= 1, got {sup_repeat}")
    if pl_ratio < 0:
        raise ValueError(f"pl_ratio must be >= 0, got {pl_ratio}")
    sup = list(sup_cuts)
    pl = list(pl_cuts)
    ids = {c.id for c in sup}
    clash = [c.id for c in pl if c.id in ids]
    if clash:
        raise ValueError(f"pseudo-labelled cut ids also in the supervised set: {clash[:5]}")
    if not sup:
        raise ValueError("the supervised cut set is empty")
    if not pl:
        log.warning(
            "no pseudo-labelled cuts were kept: the student trains on the supervised cuts only"
        )
    sup_hours = sum(c.duration for c in sup) / 3600
    available = sum(c.duration for c in pl) / 3600
    if pl_ratio > 0:
        target = pl_ratio * sup_hours * 3600
        rng = random.Random(seed)
        rng.shuffle(pl)
        chosen, total = [], 0.0
        for cut in pl:
            if total >= target:
                break
            chosen.append(cut)
            total += cut.duration
        if total < target:
            log.warning(
                "asked for %.2f h of pseudo-labelled audio, only %.2f h were kept: using all",
                target / 3600,
                total / 3600,
            )
        pl = sorted(chosen, key=lambda c: c.id)
    mixed = []
    for k in range(sup_repeat):
        for cut in sup:
            mixed.append(_tag(cut, "sup", cut.id if k == 0 else f"{cut.id}_rep{k}"))
    mixed.extend(_tag(cut, "pl") for cut in pl)
    stats = MixStats(
        sup_cuts=len(sup) * sup_repeat,
        sup_hours=sup_hours * sup_repeat,
        pl_cuts=len(pl),
        pl_hours=sum(c.duration for c in pl) / 3600,
        pl_available_hours=available,
    )
    return CutSet.from_cuts(mixed), stats
