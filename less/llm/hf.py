"""Backend that runs a transformers causal LM in-process (local dir, hub id or GGUF).

Greedy decoding is batched with *left* padding, or padding between the shared prompt
prefix and each row's own tail (every prompt ends where generation starts, and the
attention mask plus mask-derived positions make a padded row compute what it would
alone), so a batch returns the same answers as one prompt at a time, only faster. The answer budget of each prompt is
``margin + ratio * tokens(hypothesis)``; a batch decodes up to the largest budget
and each row is cut back to its own, so batching never changes an answer.

GGUF files (the built-in SmolLM2 Q4_1, Gemma 3 270M Q4_K_M) are dequantised by
transformers (``gguf_file=``; needs the ``gguf`` and ``accelerate`` packages) once,
and the result is kept as a plain transformers directory (:mod:`less.llm.gguf_cache`)
that later runs load in seconds instead of a minute.

The prompt text every request shares (instruction, few-shot examples) is run through
the model once and its key/value cache reused by every batch
(:mod:`less.llm.prefix_cache`): on a CPU the prompt's forward pass was most of the
time of a batch. ``--dtype bfloat16`` on a CPU with native bf16 (avx512_bf16, AMX) is
another 2-3x, but rounds differently and changes some answers (measured in
``tools/bench/llm_throughput.py``), so ``auto`` stays fp32 on CPU.

Few-shot completion prompts (``ChatPrompt.completion``) are always rendered as plain
text, even when the tokenizer has a chat template: they are written for base LMs and
end where the answer starts. Multi-segment prompts (``answer_lines > 1``) stop a row
once it holds that many numbered lines instead of after the first line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from less.llm.base import ChatPrompt, GenerationResult, LengthBudget, LLMBackend, ScoreRequest
from less.llm.cleaning import answer_complete
from less.llm.models import cache_dir, model_id, resolve_model
from less.llm.segments import numbered_answer_complete

logger = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class HFConfig:
    model: str
    gguf_file: str | None = None
    device: str = "auto"  # auto: cuda when available, else cpu
    dtype: str = "auto"  # auto: bf16 (fp16 without bf16 support) on GPU, fp32 on CPU
    batch_size: int = 8
    length_budget: LengthBudget = field(default_factory=LengthBudget)
    trust_remote_code: bool = False
    num_threads: int | None = None  # torch CPU threads; None: torch's default
    stop_at_answer: bool = True  # stop a row once it holds a complete answer line
    gguf_cache_dir: str | None = None  # dequantised GGUF copies; None: <LESS cache>/hf_from_gguf
    gguf_cache: bool = True  # False: dequantise the GGUF file in every run (slow)
    prefix_cache: bool = (
        True  # compute the prompt prefix all requests share once (less.llm.prefix_cache)
    )


def _select_device_dtype(device: str, dtype: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {DTYPES}")
    if dtype == "auto":
        if device.startswith("cuda"):
            torch_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            torch_dtype = torch.float32
    else:
        torch_dtype = getattr(torch, dtype)
    return torch.device(device), torch_dtype


class HFBackend(LLMBackend):
    def __init__(self, config: HFConfig) -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if config.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {config.batch_size}")
        self.config = config
        directory, gguf_file = resolve_model(config.model, config.gguf_file)
        if gguf_file is not None:
            import importlib.util

            for package in ("gguf", "accelerate"):
                if importlib.util.find_spec(package) is None:
                    raise ImportError(
                        f"loading the GGUF file {gguf_file} with transformers needs the {package!r} "
                        f"package: pip install {package}"
                    )
        self.device, self.dtype = _select_device_dtype(config.device, config.dtype)
        if config.num_threads:
            import torch

            torch.set_num_threads(config.num_threads)
        self.model_id = model_id(config.model, config.gguf_file)
        self.parallelism = config.batch_size
        start = time.perf_counter()
        directory, gguf_file = self._dequantised(directory, gguf_file)
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(
            directory, trust_remote_code=config.trust_remote_code, **extra
        )
        self.model = AutoModelForCausalLM.from_pretrained(
            directory, dtype=self.dtype, trust_remote_code=config.trust_remote_code, **extra
        )
        self.model.to(self.device).eval()
        if self.tokenizer.pad_token_id is None:
            fallback = self.tokenizer.eos_token or self.tokenizer.unk_token
            if fallback is None:
                raise ValueError(f"{config.model}: tokenizer has neither pad, eos nor unk token")
            self.tokenizer.pad_token = fallback
        self.tokenizer.padding_side = "left"
        self.eos_ids = self._eos_ids()
        self.uses_chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.set_prefix_cache(config.prefix_cache)
        parameters = sum(p.numel() for p in self.model.parameters())
        logger.info(
            "loaded %s (%.1fM parameters, %s, %s, chat template: %s) in %.1f s",
            self.model_id,
            parameters / 1e6,
            self.device,
            str(self.dtype).replace("torch.", ""),
            "yes" if self.uses_chat_template else "no (plain prompt)",
            time.perf_counter() - start,
        )

    def set_prefix_cache(self, enabled: bool) -> None:
        """Start (afresh) or stop reusing the key/value cache of the prompt prefix requests share."""
        from less.llm.prefix_cache import SharedPrefixCache

        self.config.prefix_cache = enabled
        self.prefix_cache = None
        if enabled:
            # A sliding-window layer (Gemma 3: 512) keeps only the window: longer rows go the plain way.
            text_config = (
                self.model.config.get_text_config()
                if hasattr(self.model.config, "get_text_config")
                else self.model.config
            )
            window = getattr(text_config, "sliding_window", None)
            self.prefix_cache = SharedPrefixCache(
                self.model, self.device, max_positions=window or None
            )

    def _dequantised(self, directory: str, gguf_file: str | None) -> tuple[str, str | None]:
        """Where to load from: the dequantised copy of a local GGUF file (made now if needed)."""
        from pathlib import Path

        from less.llm.gguf_cache import convert_gguf, ensure_dequantised

        if gguf_file is None or not self.config.gguf_cache:
            return directory, gguf_file
        path = Path(directory) / gguf_file
        if not path.is_file():  # a GGUF file in a hub repo: transformers downloads and converts it
            return directory, gguf_file
        root = (
            Path(self.config.gguf_cache_dir)
            if self.config.gguf_cache_dir
            else cache_dir() / "hf_from_gguf"
        )
        trust = self.config.trust_remote_code
        copy, made = ensure_dequantised(
            path, root, lambda source, out: convert_gguf(source, out, trust)
        )
        logger.info("%s %s", "dequantised into" if made else "loading the dequantised copy", copy)
        return str(copy), None

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        for value in (configured, self.tokenizer.eos_token_id):
            if value is None:
                continue
            for token_id in value if isinstance(value, list) else [value]:
                if token_id not in ids:
                    ids.append(int(token_id))
        return ids

    # -- generation --------------------------------------------------------------------------

    def render(self, prompt: ChatPrompt) -> tuple[str, bool]:
        """The prompt as text, and whether the tokenizer must still add special tokens."""
        if not self.uses_chat_template or prompt.completion:
            return prompt.plain_text(), True
        try:
            text = self.tokenizer.apply_chat_template(
                prompt.messages(), tokenize=False, add_generation_prompt=True
            )
        except (
            Exception
        ):  # templates without a system role (e.g. Gemma): fold it into the user turn
            merged = ChatPrompt(system="", user=f"{prompt.system}\n\n{prompt.user}".strip())
            text = self.tokenizer.apply_chat_template(
                merged.messages(), tokenize=False, add_generation_prompt=True
            )
        return text, False

    def _budget(self, prompt: ChatPrompt) -> int:
        budget = self.config.length_budget
        if not prompt.hypothesis:
            return budget.cap
        hypothesis_tokens = len(
            self.tokenizer(prompt.hypothesis, add_special_tokens=False)["input_ids"]
        )
        return budget.max_new_tokens(hypothesis_tokens)

    def _generate_batch(self, prompts: Sequence[ChatPrompt]) -> list[GenerationResult]:
        import torch
        from transformers import GenerationConfig

        from less.llm.prefix_cache import layout

        rendered = [self.render(p) for p in prompts]
        add_special = rendered[0][1]
        rows = self.tokenizer([text for text, _ in rendered], add_special_tokens=add_special)[
            "input_ids"
        ]
        budgets = [self._budget(p) for p in prompts]
        prefix_length, cache = 0, None
        if self.prefix_cache is not None:
            prefix_length, cache = self.prefix_cache.prefix_for(rows, max(budgets))
        input_ids, attention_mask = layout(rows, prefix_length, self.tokenizer.pad_token_id)
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        # transformers 5 calls the cache argument "cache", 4.x "past_key_values".
        cache_argument = {}
        if cache is not None:
            import inspect

            name = (
                "cache"
                if "cache" in inspect.signature(self.model.forward).parameters
                else "past_key_values"
            )
            cache_argument = {name: cache}
        stopping = []
        if self.config.stop_at_answer:
            stopping.append(self._answer_stopper(input_ids.shape[1], prompts))
        generation_config = GenerationConfig(
            max_new_tokens=max(budgets),
            do_sample=False,
            num_beams=1,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.eos_ids or None,
        )
        start = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=generation_config,
                stopping_criteria=stopping or None,
                **cache_argument,
            )
        elapsed = time.perf_counter() - start
        new_tokens = output[:, input_ids.shape[1] :].tolist()
        results = []
        # A finished row continues with padding (the pad token may be the eos token).
        ends = set(self.eos_ids) | {self.tokenizer.pad_token_id}
        for row, budget in zip(new_tokens, budgets):
            row = row[:budget]
            length = next((i for i, t in enumerate(row) if t in ends), len(row))
            text = self.tokenizer.decode(row[:length], skip_special_tokens=True)
            results.append(GenerationResult(text=text, tokens_generated=length))
        self.stats.requests_sent += len(prompts)
        self.stats.tokens_generated += sum(r.tokens_generated for r in results)
        self.stats.generation_seconds += elapsed
        return results

    def _answer_stopper(self, prompt_length: int, prompts: Sequence[ChatPrompt]):
        """Per-row stop once the decoded answer holds a complete answer (line, or numbered lines)."""
        import torch
        from transformers import StoppingCriteria

        tokenizer = self.tokenizer

        def complete(generated: str, prompt: ChatPrompt) -> bool:
            if prompt.answer_lines > 1:
                return numbered_answer_complete(generated, prompt.answer_lines)
            return answer_complete(generated, prompt.hypothesis)

        class AnswerComplete(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                done = [
                    complete(
                        tokenizer.decode(row[prompt_length:], skip_special_tokens=True), prompt
                    )
                    for row, prompt in zip(input_ids, prompts)
                ]
                return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

        return AnswerComplete()

    def generate(self, prompts: Sequence[ChatPrompt]) -> list[GenerationResult]:
        results: list[GenerationResult] = []
        size = self.config.batch_size
        for begin in range(0, len(prompts), size):
            results.extend(self._generate_batch(prompts[begin : begin + size]))
        return results

    # -- scoring -----------------------------------------------------------------------------

    def _score_ids(self, request: ScoreRequest) -> tuple[list[int], int]:
        """Token ids of prefix + continuation, and where the scored part starts."""
        context = self.tokenizer(request.prefix, add_special_tokens=True)["input_ids"]
        continuation = self.tokenizer(request.continuation, add_special_tokens=False)["input_ids"]
        if request.append_eos and self.tokenizer.eos_token_id is not None:
            continuation = continuation + [self.tokenizer.eos_token_id]
        if not context:
            start_id = self.tokenizer.bos_token_id
            if start_id is None:
                start_id = self.tokenizer.eos_token_id
            if start_id is not None:
                context = [start_id]
            else:  # nothing to condition the first token on: it goes unscored
                context, continuation = continuation[:1], continuation[1:]
        return context + continuation, len(context)

    def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        import torch

        scores: list[float] = []
        size = self.config.batch_size
        pad_id = self.tokenizer.pad_token_id
        for begin in range(0, len(requests), size):
            chunk = [self._score_ids(r) for r in requests[begin : begin + size]]
            longest = max(len(ids) for ids, _ in chunk)
            input_ids = torch.full((len(chunk), longest), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(chunk), longest), dtype=torch.long)
            for row, (ids, _) in enumerate(chunk):  # right padding: positions stay 0..n-1
                input_ids[row, : len(ids)] = torch.tensor(ids)
                attention_mask[row, : len(ids)] = 1
            start = time.perf_counter()
            with torch.inference_mode():
                logits = self.model(
                    input_ids=input_ids.to(self.device),
                    attention_mask=attention_mask.to(self.device),
                ).logits.float()
            log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
            targets = input_ids[:, 1:].to(self.device)
            token_scores = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu()
            for row, (ids, scored_from) in enumerate(chunk):
                # token t is predicted at position t-1
                scores.append(float(token_scores[row, scored_from - 1 : len(ids) - 1].sum()))
            self.stats.requests_sent += len(chunk)
            self.stats.generation_seconds += time.perf_counter() - start
        return scores

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
