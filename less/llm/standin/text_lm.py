"""A small causal text LM (Llama architecture) trained from scratch on CPU.

Rescore mode needs *some* language model of the target language. No Chinese
instruct model is available offline, so the Mandarin mini recipe trains one here
on its text and loads it through the ``hf`` backend like any other model: the
output directory holds a ``LlamaForCausalLM`` and a ``PreTrainedTokenizerFast``
(``AutoModelForCausalLM.from_pretrained(dir)`` / ``AutoTokenizer.from_pretrained(dir)``).

Tokenizer: one token per character for ``zh`` (Mandarin LMs are character LMs; it
also matches the CER the filter computes), a small BPE for ``es``/``en``. Both are
built with the ``tokenizers`` library and add ``<s>`` in front of every text, so a
hypothesis can be scored from the sentence start. Training text goes through
:func:`less.data.text.normalize`, as the hypotheses it will score do.

``objective="correct"`` trains a *correction* LM instead (:mod:`less.llm.standin.correction_pairs`):
the same model on ``<s> noisy \n clean </s>`` pairs made from the text with simulated
recognition errors, the loss on the clean part only; ``llm_correct --mode correct``
uses it to rewrite hypotheses. Its held-out check: the character error rate of
held-out noisy sentences before and after greedy correction. The simulated errors are
espeak-ng or pycorrector homophone substitutions at random rates, or (``confusions=
"seed-errors"``) the errors a seed model was measured to make on dev; those statistics are
saved as ``error_stats.json`` beside the model.

Speed: on a CPU with bf16 matrix units (avx512_bf16/AMX) the matmuls run under bf16
autocast (``precision="bf16"``, weights and optimiser stay fp32), and attention is the
plain ("eager") implementation: for sequences of ~30 tokens under bf16, SDPA's CPU
flash-attention backward took as long as all the matmuls together. Measured on the mini
corpus' 2-core CPU (1 thread, ``tiny``, batches of 64 pairs, the four set-ups interleaved
in one process): 4.0 steps/s fp32+sdpa (the old path), 4.0 fp32+eager, 6.5 bf16+sdpa,
10.6 bf16+eager (2.6x); the recipe's corrector (3 copies, 2 epochs, 1838 steps) trained
in 453 s before and 182-235 s after, with the same held-out correction quality.
``precision="fp32"`` (and ``attn_implementation="sdpa"``) keep the old numerics.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from less.data.text import normalize
from less.llm.standin.correction_pairs import correction_pairs

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")  # ids 0, 1, 2, 3


@dataclass(frozen=True)
class ModelSize:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int


MODEL_SIZES = {
    "nano": ModelSize(
        hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128
    ),  # tests, smoke runs
    "tiny": ModelSize(hidden_size=192, num_layers=4, num_heads=4, intermediate_size=512),
    "small": ModelSize(hidden_size=384, num_layers=6, num_heads=6, intermediate_size=1024),
}


@dataclass
class TextLMTrainConfig:
    lang: str = "zh"
    size: str = "tiny"
    epochs: float = 2.0
    max_steps: int | None = None
    batch_size: int = 64
    learning_rate: float = 3e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    max_len: int = 96  # tokens per sentence, <s> and </s> included; longer ones are cut
    vocab_size: int = 2000  # BPE only
    min_char_count: int = 1  # zh: characters seen fewer times map to <unk>
    heldout_fraction: float = 0.02
    max_heldout: int = 2000
    eval_every: int = 200
    seed: int = 0
    objective: str = "lm"  # lm | correct
    copies: int = 3  # correct: noisy versions of every sentence
    # correct: per-sentence error rate drawn from [0, this]; with seed-errors a cap on the measured
    # rates. None: 0.4 (random rates), 1.0 (seed-errors: the teacher's bad utterances are kept, so the
    # corrector learns to leave hopeless hypotheses alone rather than rewrite them).
    max_error_rate: float | None = None
    confusions: str = (
        "espeak"  # correct: espeak | pycorrector | seed-errors | none (see CONFUSIONS)
    )
    error_stats: tuple[
        str, ...
    ] = ()  # seed-errors: dev result files (recogs-dev-*.txt) or an error_stats.json
    backoff_confusions: str = (
        "espeak"  # seed-errors: homophones for unmeasured characters (espeak|pycorrector|none)
    )
    measured_only: bool = (
        False  # seed-errors: substitute/insert only what was measured (no back-off)
    )
    precision: str = (
        "bf16"  # bf16: autocast matmuls (fp32 where the CPU lacks bf16); fp32: the old numerics
    )
    attn_implementation: str = "eager"  # eager (fastest for short CPU sequences) | sdpa


CONFUSIONS = ("espeak", "pycorrector", "seed-errors", "none")
"""Where simulated substitutions come from: espeak-ng similar-sounding characters,
pycorrector's same-pinyin lists, a seed model's measured dev errors, or random characters."""


def read_sentences(
    paths: Sequence[str | os.PathLike], lang: str, skip_first_field: bool = False
) -> list[str]:
    """Normalised non-empty lines of the given files (Kaldi ``text`` with ``skip_first_field``)."""
    sentences = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if skip_first_field:
                    parts = line.split(maxsplit=1)
                    line = parts[1] if len(parts) == 2 else ""
                text = normalize(line, lang)
                if text:
                    sentences.append(text)
    if not sentences:
        raise ValueError(f"no text in {[str(p) for p in paths]}")
    return sentences


def build_tokenizer(
    sentences: Sequence[str],
    lang: str,
    vocab_size: int = 2000,
    min_char_count: int = 1,
    extra_chars: Sequence[str] = (),
):
    """Character tokenizer (``zh``) or BPE (others) as a ``PreTrainedTokenizerFast``;
    ``extra_chars`` (zh) join the vocabulary whatever their count (e.g. a separator)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if lang == "zh":
        counts = Counter(ch for sentence in sentences for ch in sentence)
        vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
        for ch, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            if count >= min_char_count and ch not in vocab:
                vocab[ch] = len(vocab)
        for ch in extra_chars:
            vocab.setdefault(ch, len(vocab))
        tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
        tokenizer.decoder = decoders.Fuse()
    else:
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(SPECIAL_TOKENS),
            min_frequency=2,
            show_progress=False,
        )
        tokenizer.train_from_iterator(sentences, trainer)
    bos_id = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


def build_model(
    vocab_size: int, size: ModelSize, max_len: int, tokenizer, attn_implementation: str = "eager"
):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=size.hidden_size,
        intermediate_size=size.intermediate_size,
        num_hidden_layers=size.num_layers,
        num_attention_heads=size.num_heads,
        num_key_value_heads=size.num_heads,
        max_position_embeddings=max(128, max_len),
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config._attn_implementation = attn_implementation
    return LlamaForCausalLM(config)


Example = tuple[list[int], int]  # token ids, index of the first token the loss scores


def _encode(tokenizer, sentences: Sequence[str], max_len: int) -> list[Example]:
    eos = tokenizer.eos_token_id
    encoded = tokenizer(list(sentences), add_special_tokens=True)["input_ids"]
    return [(ids[: max_len - 1] + [eos], 1) for ids in encoded]


def _encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]], max_len: int) -> list[Example]:
    """``<s> noisy SEP clean </s>``, scored from the first clean token (pairs too long are cut
    from the noisy side's end, never the clean side)."""
    from less.llm.standin.correction_pairs import SEPARATOR

    eos = tokenizer.eos_token_id
    prefixes = tokenizer([noisy + SEPARATOR for noisy, _ in pairs], add_special_tokens=True)[
        "input_ids"
    ]
    targets = tokenizer([clean for _, clean in pairs], add_special_tokens=False)["input_ids"]
    examples = []
    for prefix, target in zip(prefixes, targets):
        target = target[: max_len // 2 - 1] + [eos]
        room = max_len - len(target)
        if len(prefix) > room:
            prefix = prefix[: room - 1] + prefix[-1:]  # keep the separator
        examples.append((prefix + target, len(prefix)))
    return examples


def _batches(sequences: list[Example], batch_size: int, rng: random.Random, shuffle: bool):
    """Batches of similar lengths (little padding), in random order when ``shuffle``."""
    order = list(range(len(sequences)))
    if shuffle:
        rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for begin in range(0, len(order), pool):
        group = sorted(order[begin : begin + pool], key=lambda i: len(sequences[i][0]))
        batches.extend(group[i : i + batch_size] for i in range(0, len(group), batch_size))
    if shuffle:
        rng.shuffle(batches)
    return batches


def _collate(sequences: list[Example], indices: list[int], pad_id: int):
    """input ids, attention mask, and the mask of the tokens the loss scores."""
    import torch

    longest = max(len(sequences[i][0]) for i in indices)
    input_ids = torch.full((len(indices), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(indices), longest), dtype=torch.long)
    scored = torch.zeros((len(indices), longest), dtype=torch.bool)
    for row, i in enumerate(indices):
        ids, first = sequences[i]
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
        scored[row, first : len(ids)] = True
    return input_ids, mask, scored


def _nll(model, input_ids, mask, scored):
    """Summed negative log-likelihood of the scored tokens, and their count."""
    import torch

    logits = model(input_ids=input_ids, attention_mask=mask).logits
    targets = input_ids[:, 1:]
    target_mask = scored[:, 1:]
    losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="none"
    ).view_as(targets)
    return losses[target_mask].sum(), int(target_mask.sum())


def resolve_precision(precision: str) -> str:
    """``bf16`` where the CPU has bf16 matrix instructions (else ``fp32``, logged): bf16
    autocast on a CPU without them is emulated and slower than fp32."""
    import torch

    if precision not in ("bf16", "fp32"):
        raise ValueError(f"unknown precision {precision!r}: bf16 or fp32")
    if precision == "bf16" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        logger.warning("this CPU has no bf16 matrix instructions: training in fp32")
        return "fp32"
    return precision


def _autocast(precision: str):
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def perplexity(
    model, sequences: list[Example], pad_id: int, batch_size: int = 64, precision: str = "fp32"
) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode(), _autocast(precision):
        for indices in _batches(sequences, batch_size, random.Random(0), shuffle=False):
            nll, n = _nll(model, *_collate(sequences, indices, pad_id))
            total += float(nll)
            count += n
    model.train()
    return math.exp(total / max(1, count))


def train_text_lm(
    sentences: Sequence[str], out_dir: str | os.PathLike, config: TextLMTrainConfig
) -> dict:
    """Train, evaluate on a held-out slice, save model + tokenizer to ``out_dir`` atomically."""
    import torch

    from less.utils import progress_bar

    if config.size not in MODEL_SIZES:
        raise ValueError(
            f"unknown model size {config.size!r}; expected one of {sorted(MODEL_SIZES)}"
        )
    if config.attn_implementation not in ("eager", "sdpa"):
        raise ValueError(
            f"unknown attention implementation {config.attn_implementation!r}: eager or sdpa"
        )
    precision = resolve_precision(config.precision)
    rng = random.Random(config.seed)  # every draw (split, errors, batches) comes from here
    torch.manual_seed(config.seed)  # initialisation
    sentences = list(sentences)
    rng.shuffle(sentences)
    heldout_count = min(config.max_heldout, max(1, int(len(sentences) * config.heldout_fraction)))
    if len(sentences) < 2 * heldout_count:
        raise ValueError(f"too little text to train on: {len(sentences)} sentences")
    heldout, train = sentences[:heldout_count], sentences[heldout_count:]
    heldout_pairs: list[tuple[str, str]] = []
    error_stats, max_rate = None, None
    if config.objective == "lm":
        tokenizer = build_tokenizer(train, config.lang, config.vocab_size, config.min_char_count)
        train_ids = _encode(tokenizer, train, config.max_len)
        heldout_ids = _encode(tokenizer, heldout, config.max_len)
    elif config.objective == "correct":
        from less.llm.standin.correction_pairs import SEPARATOR

        if config.lang != "zh":
            raise ValueError(
                f"the correction objective simulates character errors: zh only, not {config.lang!r}"
            )
        tokenizer = build_tokenizer(
            train, config.lang, config.vocab_size, config.min_char_count, extra_chars=[SEPARATOR]
        )
        simulator, error_stats = _error_simulator(train, config)
        max_rate = max_error_rate(config)
        train_ids = _encode_pairs(
            tokenizer,
            correction_pairs(train, simulator, config.copies, max_rate, rng),
            config.max_len,
        )
        # Their own generator: the held-out check stays the same sentences and errors whatever
        # --copies/--epochs are, so settings can be compared on it.
        heldout_rng = random.Random(config.seed + 1)
        heldout_pairs = correction_pairs(heldout, simulator, 1, max_rate, heldout_rng)
        heldout_ids = _encode_pairs(tokenizer, heldout_pairs, config.max_len)
    else:
        raise ValueError(f"unknown objective {config.objective!r}: lm or correct")
    model = build_model(
        len(tokenizer),
        MODEL_SIZES[config.size],
        config.max_len,
        tokenizer,
        config.attn_implementation,
    )
    parameters = sum(p.numel() for p in model.parameters())
    steps_per_epoch = math.ceil(len(train_ids) / config.batch_size)
    total_steps = config.max_steps or max(1, int(config.epochs * steps_per_epoch))
    logger.info(
        "text LM (%s, %s, objective %s, %s, %s attention): %.2fM parameters, vocab %d, %d train / %d held-out "
        "sequences, %d steps",
        config.lang,
        config.size,
        config.objective,
        precision,
        config.attn_implementation,
        parameters / 1e6,
        len(tokenizer),
        len(train_ids),
        len(heldout_ids),
        total_steps,
    )
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        betas=(0.9, 0.98),
    )

    def learning_rate_factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_factor)
    pad_id = tokenizer.pad_token_id
    history = [
        {"step": 0, "heldout_ppl": perplexity(model, heldout_ids, pad_id, precision=precision)}
    ]
    logger.info("step 0: held-out perplexity %.2f", history[0]["heldout_ppl"])
    start = time.perf_counter()
    step, tokens_seen = 0, 0
    model.train()
    with progress_bar(total=total_steps, unit="step", desc="text lm") as progress:
        while step < total_steps:
            for indices in _batches(train_ids, config.batch_size, rng, shuffle=True):
                with _autocast(precision):
                    nll, count = _nll(model, *_collate(train_ids, indices, pad_id))
                loss = nll / max(1, count)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                step += 1
                tokens_seen += count
                progress.update(1)
                progress.set_postfix(loss=f"{loss.item():.3f}")
                if step % config.eval_every == 0 or step == total_steps:
                    ppl = perplexity(model, heldout_ids, pad_id, precision=precision)
                    history.append(
                        {"step": step, "train_loss": round(loss.item(), 4), "heldout_ppl": ppl}
                    )
                    logger.info(
                        "step %d: train loss %.3f, held-out perplexity %.2f", step, loss.item(), ppl
                    )
                if step >= total_steps:
                    break
    seconds = time.perf_counter() - start  # training steps and the periodic held-out perplexity
    check_start = time.perf_counter()
    correction = correction_check(model, tokenizer, heldout_pairs) if heldout_pairs else None
    summary = {
        "lang": config.lang,
        "parameters": parameters,
        "vocab_size": len(tokenizer),
        "train_sentences": len(train_ids),
        "heldout_sentences": len(heldout_ids),
        "steps": step,
        "train_seconds": round(seconds, 1),
        "steps_per_second": round(step / seconds, 2) if seconds else 0.0,
        "check_seconds": round(time.perf_counter() - check_start, 1),
        "precision": precision,
        "tokens_per_second": round(tokens_seen / seconds, 1) if seconds else 0.0,
        "initial_heldout_ppl": history[0]["heldout_ppl"],
        "final_heldout_ppl": history[-1]["heldout_ppl"],
        "history": history,
        "config": asdict(config),
    }
    if correction:
        summary["heldout_correction"] = correction
        logger.info(
            "held-out correction of %d simulated hypotheses: CER %.2f%% -> %.2f%%",
            correction["sentences"],
            correction["cer_before"],
            correction["cer_after"],
        )
    if max_rate is not None:
        summary["max_error_rate"] = max_rate
    if error_stats is not None:
        summary["error_stats"] = error_stats.summary()
    save_text_lm(
        model,
        tokenizer,
        out_dir,
        summary,
        error_stats.to_json() if error_stats is not None else None,
    )
    logger.info(
        "trained in %.0f s (%.0f tokens/s): held-out perplexity %.2f -> %.2f; saved to %s",
        seconds,
        summary["tokens_per_second"],
        summary["initial_heldout_ppl"],
        summary["final_heldout_ppl"],
        out_dir,
    )
    return summary


def max_error_rate(config: TextLMTrainConfig) -> float:
    """The configured cap, or the default of the confusion mode (see ``max_error_rate``)."""
    if config.max_error_rate is not None:
        return config.max_error_rate
    return 1.0 if config.confusions == "seed-errors" else 0.4


def _homophones(chars: Sequence[str], source: str) -> dict[str, list[str]]:
    from less.data import espeak
    from less.llm.standin.correction_pairs import confusion_sets, pycorrector_confusions

    if source == "none":
        return {}
    if source == "espeak":
        confusions = confusion_sets(chars, espeak.pronouncer())
    elif source == "pycorrector":
        confusions = pycorrector_confusions(chars)
    else:
        raise ValueError(f"unknown homophone source {source!r}: espeak, pycorrector or none")
    logger.info(
        "similar-sounding characters for %d of %d characters (%s)",
        sum(bool(v) for v in confusions.values()),
        len(chars),
        source,
    )
    return confusions


def _error_simulator(sentences: Sequence[str], config: TextLMTrainConfig):
    """The simulator of ``config.confusions``, and the measured statistics (seed-errors) or None."""
    from less.llm.standin.correction_pairs import (
        ErrorSimulator,
        SeedErrorSimulator,
        measure_error_stats,
    )

    chars = sorted({ch for sentence in sentences for ch in sentence})
    if config.confusions not in CONFUSIONS:
        raise ValueError(
            f"unknown confusions {config.confusions!r}: one of {', '.join(CONFUSIONS)}"
        )
    if config.confusions != "seed-errors":
        if config.error_stats:
            raise ValueError("error statistics are only used with confusions='seed-errors'")
        return ErrorSimulator(chars, _homophones(chars, config.confusions)), None
    if not config.error_stats:
        raise ValueError(
            "confusions='seed-errors' needs the seed's dev results (--error-stats recogs-dev-...txt)"
        )
    stats = measure_error_stats(config.error_stats)
    logger.info("seed errors from %s: %s", ", ".join(config.error_stats), stats.summary())
    backoff = {} if config.measured_only else _homophones(chars, config.backoff_confusions)
    return SeedErrorSimulator(chars, stats, backoff, measured_only=config.measured_only), stats


def correction_check(model, tokenizer, pairs: Sequence[tuple[str, str]], limit: int = 200) -> dict:
    """CER of (noisy, clean) pairs before and after greedy correction by ``model``."""
    import torch

    from less.llm.standin.correction_pairs import SEPARATOR
    from less.metrics import error_rate

    model.eval()
    pairs = list(pairs[:limit])
    corrections = []
    with torch.inference_mode():
        for noisy, _ in pairs:
            ids = tokenizer(noisy + SEPARATOR, return_tensors="pt")[
                "input_ids"
            ]  # fp32, as llm_correct runs it
            output = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=2 * len(noisy) + 8,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
            corrections.append(
                tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)
            )
    model.train()
    references = [clean for _, clean in pairs]
    return {
        "sentences": len(pairs),
        "cer_before": round(error_rate(references, [noisy for noisy, _ in pairs], "zh").percent, 2),
        "cer_after": round(error_rate(references, corrections, "zh").percent, 2),
    }


def save_text_lm(
    model, tokenizer, out_dir: str | os.PathLike, summary: dict, error_stats: dict | None = None
) -> None:
    """Write into a temporary sibling directory, then rename: a kill leaves no half model.
    ``error_stats`` (a seed-errors corrector's measured statistics) goes to
    ``error_stats.json``, from which the same simulator can be rebuilt."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    model.save_pretrained(tmp_dir)
    tokenizer.save_pretrained(tmp_dir)
    # The generic class name, which transformers 4.x and 5.x both resolve.
    config_path = tmp_dir / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text(encoding="utf-8"))
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(
        json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (tmp_dir / "train_summary.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
    )
    if error_stats is not None:
        (tmp_dir / "error_stats.json").write_text(
            json.dumps(error_stats, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
        )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp_dir, out_dir)
