"""Compute the prompt text every request shares once, not once per request.

A correction prompt is mostly the same text: the instruction (about 100 tokens of
the 116 of SmolLM2's chat prompt) or, for a base LM, the header and k worked
examples (about 300 of 320 tokens). On a CPU the prompt's forward pass (prefill) is
compute-bound and was two thirds of the time of a batch. :class:`SharedPrefixCache`
runs the shared token prefix through the model once, keeps its key/value cache, and
each batch starts from a copy of it, so only the per-request tail is computed.

The shared prefix is found on token ids, never on text (a tokenizer may merge
across a text boundary): the longest common prefix of the batch's rows and of a
row seen before (so a batch of one, or a batch whose rows all start with "the",
does not make a prefix that no later batch shares). A few recent prefixes are kept.

The rows are laid out ``[prefix][padding][tail]``: the padding sits between the
shared prefix and each row's own tail, masked out, and positions follow the
attention mask (transformers derives them from it), so each row attends to exactly
the tokens and positions it would alone. The answers are the same up to floating-
point rounding of the differently shaped matrix products; ``tools/bench/
llm_throughput.py`` counts how many answers stay identical.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence

MIN_PREFIX_TOKENS = 16  # below this the extra forward pass is not worth it
KEEP_PREFIXES = 4


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    if not rows:
        return 0
    length = min(len(row) for row in rows)
    first = rows[0]
    for position in range(length):
        token = first[position]
        if any(row[position] != token for row in rows[1:]):
            return position
    return length


class SharedPrefixCache:
    """Key/value caches of shared prompt prefixes for one model (see the module docstring)."""

    def __init__(self, model, device, max_positions: int | None = None) -> None:
        self.model = model
        self.device = device
        self.max_positions = (
            max_positions  # e.g. a sliding attention window: longer rows go the plain way
        )
        self._caches: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._reference: list[int] | None = None
        self.hits = 0
        self.misses = 0

    def _compute(self, prefix: tuple[int, ...]):
        import torch

        with torch.inference_mode():
            output = self.model(
                input_ids=torch.tensor([prefix], device=self.device), use_cache=True
            )
        cache = getattr(output, "cache", None) or output.past_key_values
        self._caches[prefix] = cache
        while len(self._caches) > KEEP_PREFIXES:
            self._caches.popitem(last=False)
        return cache

    def prefix_for(
        self, rows: Sequence[Sequence[int]], new_tokens: int
    ) -> tuple[int, object | None]:
        """``(prefix length, cache for len(rows) rows)``, or ``(0, None)`` to generate the plain way."""
        longest = max(len(row) for row in rows)
        if self.max_positions is not None and longest + new_tokens >= self.max_positions:
            return 0, None
        candidates = list(rows) + ([self._reference] if self._reference is not None else [])
        if self._reference is None:
            self._reference = list(rows[0])
        # Leave every row at least one token of its own: generation starts from its last logits.
        shared = min(common_prefix_length(candidates), min(len(row) for row in rows) - 1)
        if len(candidates) < 2 or shared < MIN_PREFIX_TOKENS:
            return 0, None
        best: tuple[int, ...] | None = None
        for prefix in self._caches:
            if (
                len(prefix) <= shared
                and tuple(rows[0][: len(prefix)]) == prefix
                and (best is None or len(prefix) > len(best))
            ):
                best = prefix
        if best is not None and len(best) >= shared - 8:
            self.hits += 1
            self._caches.move_to_end(best)
            cache = self._caches[best]
        else:
            self.misses += 1
            best = tuple(rows[0][:shared])
            cache = self._compute(best)
        batch_cache = copy.deepcopy(cache)
        if len(rows) > 1:
            batch_cache.batch_repeat_interleave(len(rows))
        return len(best), batch_cache


def layout(rows: Sequence[Sequence[int]], prefix_length: int, pad_id: int):
    """``input_ids`` and ``attention_mask`` with the padding between prefix and tail."""
    import torch

    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        tail = row[prefix_length:]
        input_ids[index, :prefix_length] = torch.tensor(row[:prefix_length], dtype=torch.long)
        attention_mask[index, :prefix_length] = 1
        if tail:
            input_ids[index, width - len(tail) :] = torch.tensor(tail, dtype=torch.long)
            attention_mask[index, width - len(tail) :] = 1
    return input_ids, attention_mask
