"""Sequence-level unsupervised training: system U learns from the cuts the LESS filter rejects.

Source: Z. Yang, J. Barkoczi, R. Schlüter, H. Ney, "Sequence-Level Unsupervised Training
in Speech Recognition: A Theoretical Study", arXiv 2603.02285 (ICASSP 2026). Only the
abstract and third-party summaries of it were reachable while this package was written;
what they state and what we derived ourselves is kept apart below and in each module.

What the reachable material states (abstract; arxivlens summary page):

* two conditions under which unsupervised ASR is possible, and their necessity:
  (C1) the real conditional distribution of the audio has the factorisation the model
  assumes; (C2) the language-model matrix has full column rank;
* under them, a bound on the classification-error mismatch of the form
  ``D_q <= N^2 ||P^+ C||_1 sum_x |p_r(x) - q(x)|`` (``P^+`` a pseudo-inverse of the LM
  matrix; ``C`` is not defined in the material we could read), where
  ``q(x) = sum_c p_LM(c) q(x|c)`` is the model's marginal of the audio;
* minimising the KL divergence between the true and the model marginal also minimises
  the mismatch, which motivates a single-stage sequence-level cross-entropy loss.

What we derived (flagged as ours wherever it is used):

* :mod:`less.unsup.theory`: a rigorous chain with known constants,
  ``D_q <= ||p_r(x,c) - q(x,c)||_1 <= N sum_k pi(k) ||e_r(.|k) - e_q(.|k)||_1`` (under C1),
  Pinsker's ``||p_r - q||_1 <= sqrt(2 KL)``, and a first-order identifiability constant
  (the inverse smallest singular value of the marginal's Jacobian) that is infinite when
  C2 fails and grows as the LM matrix's smallest singular value shrinks;
* :mod:`less.unsup.loss`: with a discriminative model ``p_theta(c|x)`` the implied
  generative model is ``q(x|c) = p_theta(c|x) p_r(x) / p_theta(c)``, so the cross-entropy
  ``E_{p_r}[-log q(x)]`` equals, up to a constant,
  ``E_x[-log sum_c exp(log p_theta(c|x) - log p_theta(c) + log p_LM(c))]``: the loss U
  trains with, summed over a hypothesis set instead of all ``c``.

Modules: ``theory`` (the toy model, EM, bounds), ``simulation`` (the paper's settings at
toy size, ``python -m less.bin.simulate_unsup``), ``conditions`` (C2 on a corpus's text,
C1 by a context ABX, ``python -m less.bin.check_unsup_conditions``), ``ngram``
(interpolated Kneser-Ney character LMs, ``python -m less.bin.train_ngram``), ``loss`` (the
sequence-level loss and its hypothesis sets), ``stream`` (the cycling, exactly resumable
stream of unlabeled batches that ``less.bin.train --unsup-cuts`` draws from).
"""
