"""Self-supervised pretraining of the encoder (BEST-RQ, BiRQ) and its ABX evaluation.

``quantizer`` random-projection labels, ``masking`` span masks, ``model`` the objectives,
``trainer`` the pretraining loop (``less.bin.ssl_pretrain``), ``alignment`` CTC forced
alignment and ``abx`` the ABX score (``less.bin.abx``).
"""
