"""Several consecutive segments per request (--llm-context-segments): grouping, prompt, split-back, cache."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import pytest
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from lhotse.audio import AudioSource

from less.llm.base import ChatPrompt, GenerationResult, LLMBackend
from less.llm.cache import AnswerCache
from less.llm.correct import CorrectionConfig, Corrector
from less.llm.fewshot import FewShotConfig, FewShotExample
from less.llm.prompts import PromptBuilder, load_template, parse_template
from less.llm.segments import (
    first_numbered_block,
    group_cuts,
    numbered_answer_complete,
    split_numbered_answer,
)
from less.llm.testing import llm_correct_args, make_pl_cuts

# (recording, start, teacher hypothesis); deliberately not in time order
SEGMENTS = [
    ("rec-a", 12.0, "segment a three"),
    ("rec-b", 0.5, "segment b one"),
    ("rec-a", 0.0, "segment a one"),
    ("rec-a", 30.0, "segment a four"),
    ("rec-a", 5.0, "segment a two"),
    ("rec-b", 9.0, "segment b two"),
]


def _vad_cuts(segments=SEGMENTS) -> CutSet:
    """Cuts shaped like less.bin.vad_segment's: one recording, many segments with their start."""
    recordings = {
        rec: Recording(
            id=rec,
            sources=[AudioSource(type="file", channels=[0], source=f"/nonexistent/{rec}.wav")],
            sampling_rate=16000,
            num_samples=16000 * 60,
            duration=60.0,
        )
        for rec, _, _ in segments
    }
    cuts = []
    for rec, start, hypothesis in segments:
        cut_id = f"{rec}-{round(start * 100):07d}-{round((start + 2) * 100):07d}"
        pl = {
            "iter": 1,
            "teacher": "t",
            "hyp": hypothesis,
            "nbest": [[hypothesis, -1.0]],
            "confidence": 0.9,
        }
        supervision = SupervisionSegment(
            id=cut_id,
            recording_id=rec,
            start=0.0,
            duration=2.0,
            channel=0,
            language="es",
            custom={"pl": pl},
        )
        cuts.append(
            MonoCut(
                id=cut_id,
                start=start,
                duration=2.0,
                channel=0,
                recording=recordings[rec],
                supervisions=[supervision],
            )
        )
    return CutSet.from_cuts(cuts)


def test_groups_are_consecutive_segments_of_one_recording_in_time_order() -> None:
    cuts = list(_vad_cuts())
    groups = group_cuts(cuts, 3)
    texts = [[cuts[i].supervisions[0].custom["pl"]["hyp"] for i in group] for group in groups]
    assert texts == [
        ["segment a one", "segment a two", "segment a three"],
        ["segment a four"],  # the rest of rec-a: groups never span recordings
        ["segment b one", "segment b two"],
    ]
    assert group_cuts(cuts, 1) == [[i] for i in range(len(cuts))]
    with pytest.raises(ValueError):
        group_cuts(cuts, 0)


def test_split_back_maps_lines_by_number_and_rejects_what_it_cannot_map() -> None:
    good = split_numbered_answer(
        "Here are the corrections:\n1. first one\n2) second one\n\n3: third\nDone.", 3
    )
    assert good.accepted and good.texts == ["first one", "second one", "third"]
    shuffled = split_numbered_answer("2. second\n1. first\n3. third", 3)
    assert shuffled.accepted and shuffled.texts == [
        "first",
        "second",
        "third",
    ]  # by number, not position
    assert split_numbered_answer("1. first\n2. second", 3).reason == "group_count"
    assert split_numbered_answer("1. a\n2. b\n3. c\n4. d", 3).reason == "group_count"
    assert split_numbered_answer("1. a\n1. b\n3. c", 3).reason == "group_numbering"
    assert split_numbered_answer("1. a\n2. b\n4. c", 3).reason == "group_numbering"
    assert (
        split_numbered_answer("1. a\nwrapped rest of a\n2. b\n3. c", 3).reason
        == "group_unnumbered_line"
    )
    assert split_numbered_answer("first\nsecond\nthird", 3).reason == "group_count"
    assert split_numbered_answer("  \n", 3).reason == "empty"
    assert numbered_answer_complete("1. a\n2. b\n3. c\n", 3)
    assert not numbered_answer_complete("1. a\n2. b\n3. c", 3)  # the last line may still grow
    assert not numbered_answer_complete("Sure:\n1. a\n2. b\n", 3)


def test_group_prompt_numbers_the_segments_in_time_order() -> None:
    template = load_template("ast", "en", variant="segments")
    builder = PromptBuilder(template, "ast", "en", context_segments=3)
    cuts = list(_vad_cuts())
    group = group_cuts(cuts, 3)[0]
    prompt = builder.build_group([cuts[i].supervisions[0].custom["pl"]["hyp"] for i in group])
    assert "1. segment a one\n2. segment a two\n3. segment a three" in prompt.user
    assert "exactly 3 lines" in prompt.user and prompt.answer_lines == 3
    plain = load_template("ast", "en")
    with pytest.raises(ValueError, match=r"\[user_group\]"):
        PromptBuilder(plain, "ast", "en", context_segments=3)
    assert builder.prompt_sha != PromptBuilder(template, "ast", "en", context_segments=2).prompt_sha
    with pytest.raises(ValueError, match="--mode correct"):
        Corrector(
            _GroupLM(lambda s: ""),
            CorrectionConfig(task="ast", lang="en", mode="rescore", context_segments=3),
        )


class _GroupLM(LLMBackend):
    """Answers numbered prompts with ``answer(segments)``; counts what it was asked."""

    model_id = "fake-group-lm"
    parallelism = 8

    def __init__(self, answer: Callable[[list[str]], str]) -> None:
        super().__init__()
        self.answer = answer
        self.prompts: list[ChatPrompt] = []

    def generate(self, prompts: Sequence[ChatPrompt]) -> list[GenerationResult]:
        self.prompts.extend(prompts)
        results = []
        for prompt in prompts:
            segments = re.findall(r"^\d+\. (.*)$", prompt.user, flags=re.MULTILINE)
            results.append(GenerationResult(text=self.answer(segments)))
        return results


def _records(cuts) -> dict[str, dict]:
    return {cut.id: cut.supervisions[0].custom["pl"]["llm"] for cut in cuts}


def test_corrector_splits_group_answers_back_per_cut_and_resumes_from_the_cache(tmp_path) -> None:
    def fix(segments: list[str]) -> str:
        return "\n".join(
            f"{i}. {text.replace('segment', 'part')}" for i, text in enumerate(segments, start=1)
        )

    cuts = _vad_cuts()
    config = CorrectionConfig(task="ast", lang="en", context_segments=3, show_progress=False)
    backend = _GroupLM(fix)
    cache = AnswerCache(tmp_path / "llm_cache.jsonl")
    output = Corrector(backend, config, cache).run(cuts)
    cache.close()
    assert [cut.id for cut in output] == [cut.id for cut in cuts]  # output keeps the input order
    records = _records(output)
    for cut in cuts:
        record = records[cut.id]
        assert record["status"] == "ok"
        assert record["text"] == cut.supervisions[0].custom["pl"]["hyp"].replace("segment", "part")
    assert len(backend.prompts) == 3  # three groups, one request each
    assert records[list(cuts)[2].id]["segments"] == {"size": 3, "position": 0}
    # A rerun asks nothing: the cache holds one entry per group request.
    again = _GroupLM(lambda segments: "should not be asked")
    cache = AnswerCache(tmp_path / "llm_cache.jsonl")
    assert len(cache) == 3
    corrector = Corrector(again, config, cache)
    assert _records(corrector.run(cuts)) == records and again.prompts == []
    assert corrector.report.cache_hits == len(cuts)


def test_a_wrong_number_of_answer_lines_rejects_the_whole_group() -> None:
    def drop_last(segments: list[str]) -> str:
        kept = segments[:-1] if len(segments) == 3 else segments
        return "\n".join(f"{i}. fixed {text}" for i, text in enumerate(kept, start=1))

    cuts = _vad_cuts()
    output = Corrector(
        _GroupLM(drop_last),
        CorrectionConfig(task="ast", lang="en", context_segments=3, show_progress=False),
    ).run(cuts)
    for cut in output:
        record = cut.supervisions[0].custom["pl"]["llm"]
        hypothesis = cut.supervisions[0].custom["pl"]["hyp"]
        if cut.recording_id == "rec-a" and cut.start < 20:  # the group of three
            assert record["status"] == "rejected:group_count" and record["text"] == hypothesis
        else:
            assert record["status"] == "ok" and record["text"] == f"fixed {hypothesis}"


def test_one_segment_per_request_is_unchanged() -> None:
    cuts = make_pl_cuts(["we was happy", "they is here"], language="es")
    backend = _GroupLM(lambda segments: "unused")
    prompts = []

    def answer(prompt_list):
        prompts.extend(prompt_list)
        return [GenerationResult(text=p.hypothesis) for p in prompt_list]

    backend.generate = answer  # type: ignore[method-assign]
    corrector = Corrector(backend, CorrectionConfig(task="ast", lang="en", show_progress=False))
    corrector.run(cuts)
    plain = PromptBuilder(load_template("ast", "en"), "ast", "en")
    assert corrector.prompt_sha == plain.prompt_sha
    assert [p.user for p in prompts] == [
        plain.build(h).user for h in ("we was happy", "they is here")
    ]
    assert all(p.answer_lines == 1 and not p.completion for p in prompts)


def test_llm_correct_sends_groups_and_resumes_them_from_its_cache(tmp_path) -> None:
    from less.bin import llm_correct
    from less.llm.testing import FakeChatServer

    in_cuts, out_cuts = tmp_path / "in.jsonl.gz", tmp_path / "out.jsonl.gz"
    _vad_cuts().to_file(in_cuts)

    def numbered(request_id: str, body: dict) -> str:
        segments = re.findall(r"^\d+\. (.*)$", body["messages"][-1]["content"], flags=re.MULTILINE)
        return "\n".join(f"{i}. {text} fixed" for i, text in enumerate(segments, start=1))

    options = "--task ast --backend openai --model m --llm-context-segments 3"
    command = llm_correct_args(in_cuts, out_cuts, options)
    with FakeChatServer(answer_fn=numbered) as server:
        assert llm_correct.main(command + ["--base-url", server.base_url]) == 0
        assert server.total_requests == 3
        assert llm_correct.main(command + ["--base-url", server.base_url, "--overwrite"]) == 0
        assert server.total_requests == 3  # every group answered from the cache
    records = {cut.id: cut.supervisions[0].custom["pl"] for cut in CutSet.from_file(out_cuts)}
    assert all(pl["llm"]["text"] == f"{pl['hyp']} fixed" for pl in records.values())


# --- few-shot completion prompts (base LMs) with several segments per request ---------------

EXAMPLES = [(f"noisy {i}", f"clean {i}") for i in range(1, 6)]


def test_few_shot_group_prompt_shows_the_examples_in_numbered_groups() -> None:
    template = load_template("ast", "en", variant="fewshot_segments")
    builder = PromptBuilder(template, "ast", "en", examples=EXAMPLES, context_segments=3)
    prompt = builder.build_group(["segment one", "segment two"], request_id="g")
    assert prompt.completion and prompt.answer_lines == 2
    # five examples, three at a time: a group of three, then one of two, then the question
    first = "Translations:\n1. noisy 1\n2. noisy 2\n3. noisy 3\nCorrected:\n1. clean 1\n2. clean 2\n3. clean 3"
    second = "Translations:\n1. noisy 4\n2. noisy 5\nCorrected:\n1. clean 4\n2. clean 5"
    assert (
        prompt.user
        == f"{first}\n\n{second}\n\nTranslations:\n1. segment one\n2. segment two\nCorrected:"
    )
    assert prompt.plain_text().endswith(
        "Corrected:"
    )  # the model continues with the numbered answer
    single = PromptBuilder(template, "ast", "en", examples=EXAMPLES, context_segments=2)
    assert single.prompt_sha != builder.prompt_sha
    # a few-shot template without the group form says which template has it
    with pytest.raises(ValueError, match=r"\[example_group\].*fewshot_segments"):
        PromptBuilder(
            load_template("ast", "en", variant="fewshot"),
            "ast",
            "en",
            examples=EXAMPLES,
            context_segments=3,
        )
    with pytest.raises(
        ValueError, match=r"\[example_group\] section needs \[example\] and \[user_group\]"
    ):
        parse_template("[user]\n{hypothesis}\n[example_group]\n{segments} {corrected_segments}\n")


class _CompletionLM(_GroupLM):
    """A base LM: answers the question's segments, then goes on with a made-up next example."""

    def generate(self, prompts: Sequence[ChatPrompt]) -> list[GenerationResult]:
        self.prompts.extend(prompts)
        results = []
        for prompt in prompts:
            question = prompt.user.rsplit("Translations:\n", 1)[1]
            segments = re.findall(r"^\d+\. (.*)$", question, flags=re.MULTILINE)
            answer = self.answer(segments)
            results.append(
                GenerationResult(text=f"\n{answer}\n\nTranslations:\n1. made up\nCorrected:\n1. x")
            )
        return results


def test_few_shot_groups_are_split_back_up_to_the_end_of_the_first_numbered_block() -> None:
    def fix(segments: list[str]) -> str:
        if segments[0] == "segment b one":  # recording b: one line short
            return "1. fixed"
        return "\n".join(f"{i}. {text} ok" for i, text in enumerate(segments, start=1))

    cuts = _vad_cuts()
    config = CorrectionConfig(
        task="ast",
        lang="en",
        context_segments=3,
        show_progress=False,
        few_shot=FewShotConfig(count=5),
    )
    backend = _CompletionLM(fix)
    examples = [FewShotExample(h, c, source="train") for h, c in EXAMPLES]
    output = Corrector(backend, config, few_shot_examples=examples).run(cuts)
    assert all(p.completion and "1. noisy 1" in p.user for p in backend.prompts)
    for cut in output:
        record = cut.supervisions[0].custom["pl"]["llm"]
        hypothesis = cut.supervisions[0].custom["pl"]["hyp"]
        if cut.recording_id == "rec-b":  # its group of two got one line
            assert record["status"] == "rejected:group_count" and record["text"] == hypothesis
        else:
            assert record["status"] == "ok" and record["text"] == f"{hypothesis} ok", record


def test_first_numbered_block_stops_at_the_made_up_next_example() -> None:
    raw = "\n1. a\n\n2. b\nTranslations:\n1. c\n"
    assert split_numbered_answer(first_numbered_block(raw), 2).texts == ["a", "b"]
    assert (
        first_numbered_block("Sure:\n1. a\n2. b") == "Sure:\n1. a\n2. b"
    )  # a preamble stays (split drops it)
