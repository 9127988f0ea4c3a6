"""Rescore mode and the correction orchestration with in-process fake backends."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from less.llm.base import (
    ChatPrompt,
    GenerationResult,
    LLMBackend,
    ScoreRequest,
    ScoringNotSupportedError,
)
from less.llm.cache import AnswerCache
from less.llm.correct import CorrectionConfig, Corrector, read_pl
from less.llm.prompts import PromptBuilder, load_template, parse_template
from less.llm.testing import make_pl_cuts


class TableScorer(LLMBackend):
    """Scores text from a table; counts how many texts it was asked about."""

    model_id = "table-scorer"
    parallelism = 2

    def __init__(self, table: dict[str, float]) -> None:
        super().__init__()
        self.table = table
        self.scored: list[str] = []

    def generate(self, prompts: Sequence[ChatPrompt]) -> list[GenerationResult]:
        raise AssertionError("rescore mode must not generate")

    def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        self.scored.extend(r.continuation for r in requests)
        return [self.table[r.continuation] for r in requests]


class EchoFixer(LLMBackend):
    """'Corrects' by a replacement table, like a perfect LLM would."""

    model_id = "echo-fixer"
    parallelism = 3

    def __init__(self, fixes: dict[str, str]) -> None:
        super().__init__()
        self.fixes = fixes
        self.prompts: list[ChatPrompt] = []

    def generate(self, prompts: Sequence[ChatPrompt]) -> list[GenerationResult]:
        assert len(prompts) <= self.parallelism
        self.prompts.extend(prompts)
        return [
            GenerationResult(
                text=f"修正后：{self.fixes.get(p.hypothesis, p.hypothesis)}", tokens_generated=5
            )
            for p in prompts
        ]


def llm(cuts) -> list[dict]:
    return [cut.supervisions[0].custom["pl"]["llm"] for cut in cuts]


NBEST = [
    [("我喜欢平果", -1.0), ("我喜欢苹果", -1.4), ("我西欢苹果", -3.0)],
    [("他去北京", -0.5), ("他去背景", -0.6)],
    [("只有一个", -0.1)],
]
TABLE = {
    "我喜欢平果": -20.0,
    "我喜欢苹果": -8.0,
    "我西欢苹果": -15.0,
    "他去北京": -6.0,
    "他去背景": -9.0,
}


def test_rescore_picks_what_the_scorer_prefers(tmp_path) -> None:
    cuts = make_pl_cuts([n[0][0] for n in NBEST], nbest=NBEST)
    scorer = TableScorer(TABLE)
    config = CorrectionConfig(
        task="asr", lang="zh", mode="rescore", lm_weight=0.5, show_progress=False
    )
    records = llm(Corrector(scorer, config, AnswerCache(tmp_path / "cache.jsonl")).run(cuts))
    assert [r["text"] for r in records] == ["我喜欢苹果", "他去北京", "只有一个"]
    assert [r["nbest_index"] for r in records] == [1, 0, 0]
    assert all(
        r["status"] == "ok" and r["mode"] == "rescore" and r["model"] == "table-scorer"
        for r in records
    )
    assert "只有一个" not in scorer.scored  # a single hypothesis needs no LM
    # lm_weight 0: the teacher's own ranking
    teacher_only = CorrectionConfig(
        task="asr", lang="zh", mode="rescore", lm_weight=0.0, show_progress=False
    )
    assert [r["text"] for r in llm(Corrector(TableScorer(TABLE), teacher_only).run(cuts))][:2] == [
        "我喜欢平果",
        "他去北京",
    ]
    # A rerun takes every score from the cache.
    again = TableScorer(TABLE)
    corrector = Corrector(again, config, AnswerCache(tmp_path / "cache.jsonl"))
    assert [r["text"] for r in llm(corrector.run(cuts))] == ["我喜欢苹果", "他去北京", "只有一个"]
    assert again.scored == [] and corrector.report.cache_hits == 2


def test_length_normalisation_changes_the_choice() -> None:
    nbest = [[("我去", -1.0), ("我去了北京", -1.0)]]
    cuts = make_pl_cuts(["我去"], nbest=nbest)
    table = {"我去": -6.0, "我去了北京": -10.0}  # per character: -3.0 vs -2.0
    plain = CorrectionConfig(
        task="asr", lang="zh", mode="rescore", lm_weight=1.0, show_progress=False
    )
    normed = CorrectionConfig(
        task="asr", lang="zh", mode="rescore", lm_weight=1.0, length_norm=True, show_progress=False
    )
    assert llm(Corrector(TableScorer(table), plain).run(cuts))[0]["text"] == "我去"
    assert llm(Corrector(TableScorer(table), normed).run(cuts))[0]["text"] == "我去了北京"


def test_correct_mode_records_and_input_cuts_untouched(tmp_path) -> None:
    hypotheses = ["我喜欢平果", "他去背景", "今天天气很好", "", "明天见"]
    cuts = make_pl_cuts(hypotheses)
    fixer = EchoFixer(
        {"我喜欢平果": "我喜欢苹果", "他去背景": "他去北京", "明天见": "See you tomorrow"}
    )
    corrector = Corrector(fixer, CorrectionConfig(task="asr", lang="zh", show_progress=False))
    records = llm(corrector.run(cuts))
    assert [r["text"] for r in records] == ["我喜欢苹果", "他去北京", "今天天气很好", "", "明天见"]
    assert [r["status"] for r in records] == [
        "ok",
        "ok",
        "ok",
        "rejected:empty_hypothesis",
        "rejected:wrong_script",
    ]
    assert len({r["prompt_sha"] for r in records}) == 1 and len(records[0]["prompt_sha"]) == 64
    assert len(fixer.prompts) == 4  # no request for the empty hypothesis
    assert any("识别结果：我喜欢平果" in p.user for p in fixer.prompts)
    report = corrector.report
    assert (report.ok, report.unchanged, report.rejected, report.failures) == (3, 1, 2, 0)
    assert report.rejection_reasons == {"empty_hypothesis": 1, "wrong_script": 1}
    assert all("llm" not in cut.supervisions[0].custom["pl"] for cut in cuts)


def test_backend_without_scoring_says_so() -> None:
    with pytest.raises(ScoringNotSupportedError, match="--mode correct"):
        EchoFixer({}).score([ScoreRequest("x")])


def test_prompts_in_the_task_language_with_optional_nbest() -> None:
    zh = PromptBuilder(load_template("asr", "zh"), "asr", "zh", nbest_in_prompt=0)
    prompt = zh.build("我喜欢平果", ["我喜欢平果", "我喜欢苹果"])
    assert (
        "我喜欢平果" in prompt.user
        and "只输出改正后的文本" in prompt.user
        and "我喜欢苹果" not in prompt.user
    )
    with_nbest = PromptBuilder(load_template("asr", "zh"), "asr", "zh", nbest_in_prompt=2)
    listed = with_nbest.build("我喜欢平果", ["我喜欢平果", "我喜欢苹果", "我西欢苹果"])
    assert "1. 我喜欢平果\n2. 我喜欢苹果" in listed.user and "我西欢苹果" not in listed.user
    assert with_nbest.prompt_sha != zh.prompt_sha
    en = PromptBuilder(load_template("ast", "en"), "ast", "en")
    assert "ONLY" in en.build("i goed home").user and "i goed home" in en.build("i goed home").user


def test_user_templates_are_validated_and_hashed(tmp_path) -> None:
    custom = tmp_path / "mine.txt"
    custom.write_text(
        "# my prompt\n[system]\nBe brief.\n[user]\nFix {{braces}} and: {hypothesis}\n"
    )
    template = load_template("ast", "en", custom)
    builder = PromptBuilder(template, "ast", "en")
    assert builder.build("x y").user == "Fix {{braces}} and: x y"
    edited = PromptBuilder(parse_template(custom.read_text() + "Thanks.\n"), "ast", "en")
    assert edited.prompt_sha != builder.prompt_sha
    with pytest.raises(ValueError, match="hypothesis"):
        parse_template("[user]\nno placeholder\n")
    with pytest.raises(ValueError, match="user_nbest"):
        PromptBuilder(template, "ast", "en", nbest_in_prompt=3)
    with pytest.raises(FileNotFoundError, match="--prompt-template"):
        load_template("ast", "zh")


def test_bad_input_names_the_cut() -> None:
    cuts = make_pl_cuts(["好"])
    cut = next(iter(cuts))
    cut.supervisions[0].custom["pl"]["nbest"] = [["only text"]]
    with pytest.raises(ValueError, match="cut-0000.*nbest"):
        read_pl(cut)
    del cut.supervisions[0].custom["pl"]
    with pytest.raises(ValueError, match="cut-0000.*pseudo_label"):
        read_pl(cut)


def test_duplicate_hypotheses_are_scored_once_and_indexed_in_the_original_nbest() -> None:
    nbest = [[("他去背景。", -0.5), ("他去背景", -0.6), ("他去北京！", -0.7)]]
    cuts = make_pl_cuts(["他去背景。"], nbest=nbest)
    scorer = TableScorer(TABLE)
    config = CorrectionConfig(
        task="asr", lang="zh", mode="rescore", lm_weight=1.0, show_progress=False
    )
    record = llm(Corrector(scorer, config).run(cuts))[0]
    assert scorer.scored == ["他去背景", "他去北京"]  # normalised, each once
    assert record["text"] == "他去北京" and record["nbest_index"] == 2


def test_shards_cover_every_cut_once() -> None:
    from less.bin.llm_correct import _shard

    cuts = list(range(10))
    shards = [_shard(cuts, 3, k) for k in range(3)]
    assert sum(shards, []) == cuts and all(len(s) >= 3 for s in shards)
    with pytest.raises(ValueError, match="shard-id"):
        _shard(cuts, 3, 3)
