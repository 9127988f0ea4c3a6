"""Few-shot completion prompts for base LMs: template, example draw, test-set guard, answers."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from lhotse import CutSet

from less.data.text import normalize
from less.llm.base import ChatPrompt, GenerationResult, LLMBackend
from less.llm.correct import CorrectionConfig, Corrector
from less.llm.fewshot import (
    FewShotConfig,
    FewShotExample,
    HeldOutOverlapError,
    WordErrorSimulator,
    draw_examples,
    load_example_file,
)
from less.llm.prompts import RENDER_VERSION, PromptBuilder, _sha, load_template
from less.llm.testing import audio_free_cut, llm_correct_args, make_pl_cuts

TRAIN = [
    f"the teacher bought {n} new books" for n in ("two", "three", "four", "five", "six", "seven")
] + [
    "we visit my grandmother on sunday",
    "my sister works in a bank",
    "they did not find the keys",
    "i would like a cup of coffee",
    "the children played football",
    "he called his brother yesterday",
]
TEST = [
    "the teacher bought three new books",
    "they did not find the keys",
    "where is the train station",
]


def _cuts(split: str, translations: Sequence[str]) -> CutSet:
    return CutSet.from_cuts(
        audio_free_cut(
            f"mini-ast-{split}-{index:05d}-0",
            language="es",
            text=f"texto {index}",
            custom={"translated_text": {"en": text}},
        )
        for index, text in enumerate(translations)
    )


@pytest.fixture()
def manifests(tmp_path):
    train = tmp_path / "mini-ast_cuts_train_sup.jsonl.gz"
    test = tmp_path / "mini-ast_cuts_test_clean.jsonl.gz"
    _cuts("train_sup", TRAIN).to_file(train)
    _cuts("test_clean", TEST).to_file(test)
    return train, test


def test_examples_from_training_cuts_never_touch_the_test_set(manifests) -> None:
    train, test = manifests
    config = FewShotConfig(count=10, source=str(train), exclude_cuts=(str(test),), seed=3)
    examples = draw_examples(config, "ast", "en")
    assert len(examples) == 10
    test_texts = {normalize(text, "en") for text in TEST}
    for example in examples:
        assert example.corrected not in test_texts and example.hypothesis not in test_texts
        assert example.source.startswith("mini-ast-train_sup-")
    # 12 training sentences, 2 of them test sentences: the other 10 are all drawn.
    assert {e.corrected for e in examples} == {normalize(t, "en") for t in TRAIN} - test_texts
    changed = [e for e in examples if e.hypothesis != e.corrected]
    assert 6 <= len(changed) <= 8  # about 75 % get simulated errors, the rest teach "leave it"
    # Without the guard the test sentences can be drawn: the exclusion is what keeps them out.
    unguarded = draw_examples(FewShotConfig(count=12, source=str(train), seed=3), "ast", "en")
    assert test_texts & {e.corrected for e in unguarded}


def test_the_draw_is_deterministic_for_a_seed(manifests) -> None:
    train, test = manifests
    config = FewShotConfig(count=4, source=str(train), exclude_cuts=(str(test),), seed=7)
    first, again = draw_examples(config, "ast", "en"), draw_examples(config, "ast", "en")
    assert first == again
    other = draw_examples(
        FewShotConfig(count=4, source=str(train), exclude_cuts=(str(test),), seed=8), "ast", "en"
    )
    assert other != first


def test_test_and_dev_sources_are_refused(manifests, tmp_path) -> None:
    train, test = manifests
    with pytest.raises(HeldOutOverlapError, match="dev/test split"):
        draw_examples(FewShotConfig(count=2, source=str(test)), "ast", "en")
    renamed = tmp_path / "mini-ast_cuts_other.jsonl.gz"
    _cuts("test_wild", TRAIN).to_file(
        renamed
    )  # a test set under another name: its cut ids give it away
    with pytest.raises(HeldOutOverlapError, match="dev/test cuts"):
        draw_examples(FewShotConfig(count=2, source=str(renamed)), "ast", "en")


def _write_examples(path, examples: Sequence[dict]) -> str:
    path.write_text("".join(json.dumps(example) + "\n" for example in examples), encoding="utf-8")
    return str(path)


def test_an_example_file_overlapping_a_test_set_is_refused(manifests, tmp_path) -> None:
    _, test = manifests
    good = [
        {
            "hypothesis": "we visit my grand mother on sunday",
            "corrected": "we visit my grandmother on sunday",
            "source": "mini-ast-train_sup-00007-0",
        }
    ]
    path = _write_examples(tmp_path / "examples.jsonl", good)
    assert draw_examples(
        FewShotConfig(count=1, examples_file=path, exclude_cuts=(str(test),)), "ast", "en"
    ) == [FewShotExample(**good[0])]
    same_text = good + [
        {"hypothesis": "they did not fine the keys", "corrected": "They did not find the keys."}
    ]
    path = _write_examples(tmp_path / "examples2.jsonl", same_text)
    with pytest.raises(HeldOutOverlapError, match="test reference"):
        draw_examples(
            FewShotConfig(count=1, examples_file=path, exclude_cuts=(str(test),)), "ast", "en"
        )
    test_id = good + [
        {"hypothesis": "a b", "corrected": "a c", "source": "mini-ast-test_clean-00002-0"}
    ]
    path = _write_examples(tmp_path / "examples3.jsonl", test_id)
    with pytest.raises(HeldOutOverlapError, match="test cut"):
        draw_examples(
            FewShotConfig(count=1, examples_file=path, exclude_cuts=(str(test),)), "ast", "en"
        )
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"hypothesis": "x"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="broken.jsonl:1"):
        load_example_file(bad)


def test_word_error_simulator_makes_errors_at_about_the_rate() -> None:
    import random

    import jiwer

    sentences = [t for t in TRAIN] * 10
    simulator = WordErrorSimulator((w for s in TRAIN for w in s.split()), "en")
    rng = random.Random(0)
    assert simulator.corrupt(TRAIN[0], 0.0, rng) == TRAIN[0]
    noisy = [simulator.corrupt(s, 0.3, rng) for s in sentences]
    assert 0.2 < jiwer.wer(sentences, noisy) < 0.45


def test_few_shot_prompt_is_a_plain_completion_with_the_examples() -> None:
    template = load_template("ast", "en", variant="fewshot")
    assert template.completion
    examples = [("i has a dog", "i have a dog"), ("the house is big", "the house is big")]
    builder = PromptBuilder(template, "ast", "en", examples=examples)
    prompt = builder.build("we was happy", request_id="c1")
    assert prompt.completion and prompt.hypothesis == "we was happy"
    text = prompt.plain_text()
    assert text.startswith(template.system)
    assert (
        text.index("Translation: i has a dog\nCorrected: i have a dog")
        < text.index("Translation: the house is big\nCorrected: the house is big")
        < text.index("Translation: we was happy")
    )
    assert text.endswith(
        "Translation: we was happy\nCorrected:"
    )  # the model writes the answer next
    # The examples are part of the prompt's identity; other examples, other cache entries.
    assert (
        PromptBuilder(template, "ast", "en", examples=examples[:1]).prompt_sha != builder.prompt_sha
    )
    # Without examples the packaged instruction prompt keeps the prompt_sha it always had.
    plain = load_template("ast", "en")
    legacy = _sha(
        {
            "kind": "correct",
            "template": plain.text,
            "task": "ast",
            "lang": "en",
            "nbest_in_prompt": 0,
            "render_version": RENDER_VERSION,
        }
    )
    assert PromptBuilder(plain, "ast", "en").prompt_sha == legacy
    with pytest.raises(ValueError, match=r"\[example\]"):
        PromptBuilder(plain, "ast", "en", examples=examples)


class _EchoingBaseLM(LLMBackend):
    """Answers like a base LM: a correction, then it goes on making up the next example."""

    model_id = "fake-base"
    parallelism = 4

    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[ChatPrompt] = []

    def generate(self, prompts: Sequence[ChatPrompt]) -> list[GenerationResult]:
        self.prompts.extend(prompts)
        return [
            GenerationResult(
                text=f" {p.hypothesis.replace('was', 'were')}\n\nTranslation: made up\nCorrected:"
            )
            for p in prompts
        ]


def test_corrector_takes_the_first_line_of_a_completion(tmp_path) -> None:
    path = _write_examples(
        tmp_path / "examples.jsonl",
        [
            {"hypothesis": "i has a dog", "corrected": "i have a dog", "source": "train:1"},
            {"hypothesis": "they is here", "corrected": "they are here", "source": "train:2"},
        ],
    )
    backend = _EchoingBaseLM()
    config = CorrectionConfig(
        task="ast",
        lang="en",
        few_shot=FewShotConfig(count=2, examples_file=path),
        show_progress=False,
    )
    corrector = Corrector(backend, config)
    cuts = make_pl_cuts(["we was happy", "you was there"], language="es")
    records = [cut.supervisions[0].custom["pl"]["llm"] for cut in corrector.run(cuts)]
    assert [r["text"] for r in records] == ["we were happy", "you were there"]
    assert all(r["status"] == "ok" and r["prompt_sha"] == corrector.prompt_sha for r in records)
    assert all(p.completion and "Corrected: i have a dog" in p.user for p in backend.prompts)
    assert len(corrector.few_shot_examples) == 2


def test_llm_correct_refuses_test_examples_before_loading_any_model(manifests, tmp_path) -> None:
    from less.bin import llm_correct

    _, test = manifests
    path = _write_examples(
        tmp_path / "examples.jsonl",
        [
            {
                "hypothesis": "the teacher bought tree new books",
                "corrected": "the teacher bought three new books",
            },
        ],
    )
    in_cuts = tmp_path / "in.jsonl.gz"
    make_pl_cuts(["we was happy"], language="es").to_file(in_cuts)
    with pytest.raises(HeldOutOverlapError, match="overlap the test sets"):
        llm_correct.main(
            llm_correct_args(
                in_cuts,
                tmp_path / "out.jsonl.gz",
                "--task ast --backend hf --few-shot 1",
                *("--model", tmp_path / "no-such-model", "--few-shot-examples", path),
                *("--exclude-cuts", test),
            )
        )
    assert not (tmp_path / "out.jsonl.gz").exists()


def test_llm_correct_few_shot_run_reports_its_examples(manifests, tmp_path) -> None:
    from less.bin import llm_correct
    from less.llm.testing import FakeChatServer

    train, test = manifests
    in_cuts, out_cuts = tmp_path / "in.jsonl.gz", tmp_path / "out.jsonl.gz"
    make_pl_cuts(["we was happy", "they is here"], language="es").to_file(in_cuts)

    def base_lm(
        request_id: str, body: dict
    ) -> str:  # continues "Translation: <hyp>\nCorrected:" like a base LM
        hypothesis = body["messages"][-1]["content"].splitlines()[-2].split(": ", 1)[1]
        return (
            f" {hypothesis.replace(' was ', ' were ').replace(' is ', ' are ')}\nTranslation: more"
        )

    with FakeChatServer(answer_fn=base_lm) as server:
        assert (
            llm_correct.main(
                llm_correct_args(
                    in_cuts,
                    out_cuts,
                    "--task ast --backend openai --model base --few-shot 3",
                    *("--base-url", server.base_url, "--few-shot-source", train),
                    *("--exclude-cuts", test),
                )
            )
            == 0
        )
    records = [cut.supervisions[0].custom["pl"]["llm"] for cut in CutSet.from_file(out_cuts)]
    assert [(r["status"], r["text"]) for r in records] == [
        ("ok", "we were happy"),
        ("ok", "they are here"),
    ]
    report = json.loads((tmp_path / "out.report.json").read_text())
    assert len(report["few_shot_examples"]) == 3 and report["context_segments"] == 1
    assert all(e["source"].startswith("mini-ast-train_sup-") for e in report["few_shot_examples"])
