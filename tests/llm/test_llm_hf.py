"""The ``hf`` backend on a tiny randomly initialised Llama saved to a temp dir."""

from __future__ import annotations

import pytest
import torch

from less.llm.base import ChatPrompt, LengthBudget, ScoreRequest
from less.llm.hf import HFBackend, HFConfig
from less.llm.standin.text_lm import ModelSize, build_model, build_tokenizer

SENTENCES = [
    "今天天气很好",
    "我们要关注这个问题",
    "你好吗",
    "请把文本改正",
    "识别结果",
    "他明天去北京开会",
]
PROMPT_CHARS = "修正后的输出：:，。？\n请改正下面的句子你是助手系统用户"
CHAT_TEMPLATE = (
    "{% for message in messages %}[{{ message['role'] }}]{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)


def _save_tiny_model(directory, chat_template: str | None) -> None:
    tokenizer = build_tokenizer(SENTENCES + [PROMPT_CHARS, "[]systemuserassistant"], "zh")
    if chat_template:
        tokenizer.chat_template = chat_template
    torch.manual_seed(0)
    model = build_model(
        len(tokenizer),
        ModelSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64),
        128,
        tokenizer,
    )
    with (
        torch.no_grad()
    ):  # larger weights than the default init: greedy outputs then depend on the input
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(std=0.5)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny_llama")
    _save_tiny_model(directory, None)
    return directory


@pytest.fixture(scope="module")
def tiny_chat_model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny_llama_chat")
    _save_tiny_model(directory, CHAT_TEMPLATE)
    return directory


def _prompts() -> list[ChatPrompt]:
    return [
        ChatPrompt(system="请改正", user=f"识别结果：{text}", hypothesis=text, request_id=str(i))
        for i, text in enumerate(SENTENCES)
    ]


@pytest.mark.parametrize("fixture_name", ["tiny_model_dir", "tiny_chat_model_dir"])
def test_batched_greedy_generation_equals_one_by_one(fixture_name, request) -> None:
    directory = request.getfixturevalue(fixture_name)
    budget = LengthBudget(ratio=1.0, margin=3, cap=64)
    batched = HFBackend(
        HFConfig(model=str(directory), batch_size=4, length_budget=budget, device="cpu")
    )
    single = HFBackend(
        HFConfig(model=str(directory), batch_size=1, length_budget=budget, device="cpu")
    )
    prompts = _prompts()
    batch_results = batched.generate(prompts)
    one_by_one = [single.generate([prompt])[0] for prompt in prompts]
    assert [(r.text, r.tokens_generated) for r in batch_results] == [
        (r.text, r.tokens_generated) for r in one_by_one
    ]
    assert len({r.text for r in batch_results}) > 1, (
        "degenerate model: every prompt got the same answer"
    )
    assert all(r.ok for r in batch_results)
    # The answer budget follows the hypothesis length (characters here): margin + ratio * n.
    for prompt, result in zip(prompts, batch_results):
        assert result.tokens_generated <= 3 + len(prompt.hypothesis)
    assert any(r.tokens_generated == 3 + len(p.hypothesis) for p, r in zip(prompts, batch_results))
    assert batched.stats.requests_sent == len(prompts)
    assert batched.stats.tokens_generated == sum(r.tokens_generated for r in batch_results)


def test_chat_template_is_used_when_the_tokenizer_has_one(
    tiny_model_dir, tiny_chat_model_dir
) -> None:
    prompt = _prompts()[0]
    plain = HFBackend(HFConfig(model=str(tiny_model_dir), device="cpu"))
    chat = HFBackend(HFConfig(model=str(tiny_chat_model_dir), device="cpu"))
    assert not plain.uses_chat_template and chat.uses_chat_template
    assert plain.render(prompt) == (prompt.plain_text(), True)
    text, add_special = chat.render(prompt)
    assert text == f"[system]{prompt.system}\n[user]{prompt.user}\n[assistant]" and not add_special
    assert chat.model_id == str(tiny_chat_model_dir)


def _manual_score(backend: HFBackend, prefix: str, continuation: str) -> float:
    tokenizer, model = backend.tokenizer, backend.model
    context = tokenizer(prefix, add_special_tokens=True)["input_ids"]  # <s> + prefix
    target = tokenizer(continuation, add_special_tokens=False)["input_ids"] + [
        tokenizer.eos_token_id
    ]
    ids = torch.tensor([context + target])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    return sum(float(log_probs[len(context) + i - 1, token]) for i, token in enumerate(target))


def test_batched_scoring_agrees_with_a_manual_computation(tiny_model_dir) -> None:
    backend = HFBackend(HFConfig(model=str(tiny_model_dir), batch_size=3, device="cpu"))
    requests = [
        ScoreRequest("今天天气很好"),
        ScoreRequest("你好吗"),
        ScoreRequest("他明天去北京开会", prefix="识别结果："),
        ScoreRequest("我们要关注这个问题"),
    ]
    scores = backend.score(requests)
    for request, score in zip(requests, scores):
        assert score == pytest.approx(
            _manual_score(backend, request.prefix, request.continuation), abs=1e-4
        )
    assert all(score < 0 for score in scores)
    without_eos = backend.score([ScoreRequest("今天天气很好", append_eos=False)])[0]
    assert without_eos > scores[0]  # one log-probability fewer


def _long_prefix_prompts() -> list[ChatPrompt]:
    system = "请改正下面的句子" * 4  # a shared prefix well over MIN_PREFIX_TOKENS characters/tokens
    return [
        ChatPrompt(system=system, user=f"识别结果：{text}", hypothesis=text, request_id=str(i))
        for i, text in enumerate(SENTENCES + SENTENCES[::-1])
    ]


@pytest.mark.parametrize("fixture_name", ["tiny_model_dir", "tiny_chat_model_dir"])
def test_shared_prefix_cache_gives_the_answers_of_plain_generation(fixture_name, request) -> None:
    directory = request.getfixturevalue(fixture_name)
    budget = LengthBudget(ratio=1.0, margin=3, cap=64)
    cached = HFBackend(
        HFConfig(model=str(directory), batch_size=4, length_budget=budget, device="cpu")
    )
    plain = HFBackend(
        HFConfig(
            model=str(directory),
            batch_size=4,
            length_budget=budget,
            device="cpu",
            prefix_cache=False,
        )
    )
    prompts = _long_prefix_prompts()
    with_cache = cached.generate(prompts)
    assert (
        cached.prefix_cache is not None and cached.prefix_cache.hits >= 2
    )  # 3 batches, one prefix computed
    assert [(r.text, r.tokens_generated) for r in with_cache] == [
        (r.text, r.tokens_generated) for r in plain.generate(prompts)
    ]
    assert len({r.text for r in with_cache}) > 1
    one_by_one = HFBackend(
        HFConfig(model=str(directory), batch_size=1, length_budget=budget, device="cpu")
    )
    assert [one_by_one.generate([p])[0].text for p in prompts[:4]] == [
        r.text for r in with_cache[:4]
    ]


def test_completion_prompts_skip_the_chat_template(tiny_chat_model_dir) -> None:
    chat = HFBackend(HFConfig(model=str(tiny_chat_model_dir), device="cpu"))
    prompt = ChatPrompt(
        system="请改正", user="识别结果：你好吗\n修正后：", hypothesis="你好吗", completion=True
    )
    assert chat.render(prompt) == ("请改正\n\n识别结果：你好吗\n修正后：", True)
