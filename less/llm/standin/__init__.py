"""The offline stand-in for a Chinese instruct LLM (none ships offline): a small causal text LM
trained from scratch on the text-only corpus (:mod:`.text_lm`), either a plain LM for rescore
mode or a *correction* LM trained on simulated recognition errors (:mod:`.correction_pairs`)
for correct mode. ``less.bin.train_text_lm`` trains it; ``less.bin.llm_correct --backend hf``
runs it like any other model."""
