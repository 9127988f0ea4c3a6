"""less.unsup.fixes: errors one system fixes against another, inside vs outside label groups."""

from __future__ import annotations

import pytest

from less.unsup.fixes import EPS, compare_fixes, reference_status


def test_reference_status_marks_substitutions_and_deletions_not_insertions():
    assert reference_status("abc", "abd") == [None, None, "d"]
    assert reference_status("abc", "ac") == [None, EPS, None]
    assert reference_status("abc", "axbc") == [None, None, None]


def test_fixes_are_split_by_the_label_groups():
    groups = [["一", "二", "三"], ["红", "绿"]]
    ref = list("我买了一个红球")
    base = {
        "u1": (
            ref,
            list("我买了二个蓝球"),
        ),  # 一->二 inside a group; 红->蓝 outside (蓝 in no group)
        "u2": (list("三只猫"), list("三只")),
    }  # a deletion: outside
    other = {
        "u1": (ref, list("我买了二个红球")),  # fixes the outside error only
        "u2": (list("三只猫"), list("二只猫")),
    }  # fixes the deletion, breaks 三
    counts = compare_fixes(base, other, groups)
    assert (counts.errors_inside, counts.fixed_inside) == (1, 0)
    assert (counts.errors_outside, counts.fixed_outside) == (2, 2)
    assert counts.broken == 1
    assert counts.fix_rate_inside == 0 and counts.fix_rate_outside == 1


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="two groups"):
        compare_fixes({}, {}, [["a", "b"], ["b", "c"]])
    with pytest.raises(ValueError, match="one system only"):
        compare_fixes({"u1": ("a", "a")}, {}, [])
    with pytest.raises(ValueError, match="different references"):
        compare_fixes({"u1": ("ab", "ab")}, {"u1": ("ac", "ac")}, [])
