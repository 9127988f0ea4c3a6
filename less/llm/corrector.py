"""Training pairs for a small *correction* LM: a text-only stand-in for an instruct LLM.

LESS asks an instruct LLM to rewrite a teacher's hypothesis. No Chinese instruct model
ships offline, and rescoring the teacher's N-best with a language model (``--mode
rescore``) can only pick among hypotheses that share the teacher's errors: on the mini
corpus it left the pseudo-label error where it was (53.05 -> 52.97 % CER). A correction
LM learns to *rewrite*: it is a causal LM trained on ``<s> noisy \\n clean </s>``, where
``clean`` is a sentence of the text-only corpus and ``noisy`` the same sentence with
simulated recognition errors; the loss covers the clean part only. At correction time
``less.bin.llm_correct --mode correct --backend hf`` gives it ``<s> hypothesis \\n`` (the
plain prompt of a template whose ``[user]`` section is ``{hypothesis}``,
``less/llm/prompts/asr_zh_corrector.txt``) and it writes the corrected text.

Simulated errors (:class:`ErrorSimulator`), per character with a per-sentence rate drawn
uniformly from ``[0, max_rate]`` (some sentences stay clean, so the model also learns to
copy): substitution (60 %) by a similar-sounding character when the pronunciation table
knows one (70 % of substitutions), else by a random one; deletion (20 %); insertion of a
random character (20 %). Similar-sounding: the same syllable ignoring tone and stress,
else a syllable one phoneme away (:func:`confusion_sets`; pronunciations from espeak-ng,
which also voiced the mini corpus, or any ``char -> phoneme string`` function).
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

logger = logging.getLogger(__name__)

SEPARATOR = "\n"  # what ends the hypothesis in a plain (no chat template) prompt
_TONE_AND_STRESS = set("12345ˈˌɜ")


def sound_key(phonemes: str) -> str:
    """A syllable's phonemes without tone and stress marks: homophones share it."""
    return "".join(ch for ch in phonemes if ch not in _TONE_AND_STRESS and not ch.isspace())


def _one_edit_apart(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def confusion_sets(chars: Iterable[str], pronounce: Callable[[str], str]) -> dict[str, list[str]]:
    """char -> similar-sounding characters: homophones (tone ignored) first, then
    characters whose syllable is one phoneme away. Characters without a pronunciation
    (``pronounce`` returns "") get none."""
    keys = {}
    for ch in sorted(set(chars)):
        key = sound_key(pronounce(ch))
        if key:
            keys[ch] = key
    by_key: dict[str, list[str]] = defaultdict(list)
    for ch, key in keys.items():
        by_key[key].append(ch)
    distinct = sorted(by_key)
    near = {key: [other for other in distinct if _one_edit_apart(key, other)] for key in distinct}
    sets = {}
    for ch, key in keys.items():
        same = [c for c in by_key[key] if c != ch]
        close = [c for other in near[key] for c in by_key[other]]
        sets[ch] = same + close
    return sets


class ErrorSimulator:
    """Corrupts a sentence the way a recogniser does: substitutions (often by a
    similar-sounding character), deletions and insertions."""

    def __init__(self, chars: Sequence[str], confusions: dict[str, list[str]] | None = None,
                 substitute: float = 0.6, delete: float = 0.2, similar: float = 0.7) -> None:
        if not chars:
            raise ValueError("the error simulator needs a character inventory")
        self.chars = list(chars)
        self.confusions = confusions or {}
        self.substitute, self.delete, self.similar = substitute, delete, similar

    def _other(self, ch: str, rng: random.Random) -> str:
        options = self.confusions.get(ch)
        if options and rng.random() < self.similar:
            return rng.choice(options)
        return rng.choice(self.chars)

    def corrupt(self, text: str, rate: float, rng: random.Random) -> str:
        out = []
        for ch in text:
            if rng.random() >= rate:
                out.append(ch)
                continue
            draw = rng.random()
            if draw < self.substitute:
                out.append(self._other(ch, rng))
            elif draw < self.substitute + self.delete:
                continue
            else:
                out.extend((ch, rng.choice(self.chars)) if rng.random() < 0.5 else (rng.choice(self.chars), ch))
        return "".join(out)


def correction_pairs(sentences: Sequence[str], simulator: ErrorSimulator, copies: int, max_rate: float,
                     rng: random.Random) -> list[tuple[str, str]]:
    """``copies`` (noisy, clean) pairs per sentence, error rates uniform in [0, max_rate]."""
    pairs = []
    for sentence in sentences:
        for _ in range(copies):
            noisy = simulator.corrupt(sentence, rng.uniform(0.0, max_rate), rng) or sentence
            pairs.append((noisy, sentence))
    return pairs


def espeak_pronouncer(voice: str = "cmn") -> Callable[[str], str]:
    """Pronunciations from espeak-ng (through the mini corpus' ctypes binding)."""
    from less.local.mini import tts

    def pronounce(ch: str) -> str:
        try:
            return tts.phonemes(ch, voice)
        except Exception:  # a character espeak cannot read: no confusions for it
            return ""

    return pronounce
