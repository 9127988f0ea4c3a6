"""Export a trained model to ONNX: the encoder with its CTC head, and the attention decoder.

Files written to ``--out-dir``:

* ``model.onnx``: fbank ``x`` (N, T, 80) float32 and ``x_lens`` (N,) int64 ->
  ``log_probs`` (N, T', V) CTC log-probabilities, ``log_probs_len`` (N,), ``encoder_out``
  (N, T', D) at 25 Hz (T' = ((T - 7) // 2 + 1) // 2). The first two outputs are the layout
  sherpa-onnx's offline Zipformer CTC model expects (``--zipformer-ctc-model``, subsampling
  factor 4, vocabulary size from ``log_probs``' last axis), so sherpa-onnx decodes it with
  ``tokens.txt`` as it does icefall's ``export-onnx-ctc.py`` models.
* ``decoder.onnx`` (models with an attention decoder): ``encoder_out``, ``encoder_out_lens``,
  ``ys_in`` (N, U) int64 (``<sos>`` first) and ``ys_in_lens`` -> ``logits`` (N, U, V'): one
  call scores a whole prefix (attention rescoring of N-best lists, or greedy/beam search
  that re-runs the prefix).
* ``tokens.txt`` (the CTC vocabulary, ``<symbol> <id>``, ``<blk>`` = 0) and, for a
  translation model, ``decoder_tokens.txt``.

Metadata in ``model.onnx``: ``model_type`` (``zipformer2_ctc``), ``task``,
``vocab_size``, ``subsampling_factor``, ``feature_dim``, ``sos_id``/``eos_id`` and the
source checkpoint. Features are Kaldi-style 80-dim log-mel fbank at 100 Hz (lhotse's
``Fbank``; sherpa-onnx computes the same with kaldi-native-fbank).

After writing, the export is checked: onnxruntime and torch run the same random batch of
two lengths (one padded) and the largest difference on valid frames is logged; above
``--tolerance`` the export fails (and the files are removed).

Example::

    python -m less.bin.export_onnx --exp-dir exp/asr/iter0 --epoch 30 --avg 5 --out-dir exp/asr/iter0/onnx
    # sherpa-onnx (pip install sherpa-onnx):
    #   sherpa-onnx-offline --zipformer-ctc-model=exp/asr/iter0/onnx/model.onnx \\
    #     --tokens=exp/asr/iter0/onnx/tokens.txt some.wav
"""

from __future__ import annotations

import argparse
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from less.checkpoint import add_model_selection_arguments
from less.utils import cli_parser, setup_logging

log = logging.getLogger("less.export_onnx")


class CtcExport(torch.nn.Module):
    """fbank -> (CTC log-probs, their lengths, encoder output)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, x_lens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        emb, emb_lens = self.model.encoder_embed(x, x_lens)
        enc, enc_lens = self.model.encoder(emb, emb_lens)
        if self.model.unit_encoder is not None:  # SpeechLM's unit encoder
            enc = self.model.unit_encoder(enc, enc_lens)
        return self.model.ctc_log_probs(enc), enc_lens, enc


class DecoderExport(torch.nn.Module):
    """(encoder output, prefixes) -> attention-decoder logits of every prefix position."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, encoder_out: Tensor, encoder_out_lens: Tensor, ys_in: Tensor, ys_in_lens: Tensor
    ) -> Tensor:
        return self.model.decoder_logits(encoder_out, encoder_out_lens, ys_in, ys_in_lens)


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    add_model_selection_arguments(p)
    p.add_argument(
        "--checkpoint", type=Path, help="or: any checkpoint/export with 'model' and 'config'"
    )
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-3,
        help="largest allowed |onnxruntime - torch| on the check batch",
    )
    return p


def _export(
    module: torch.nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    inputs: dict[str, str],
    outputs: dict[str, str],
    opset: int,
) -> None:
    """Export ``module`` called on ``args`` to ``path``. ``inputs`` and ``outputs`` map each
    tensor's name to the names of its dynamic axes, in order (``"N T"``: batch and time)."""
    names = {**inputs, **outputs}
    dynamic = {name: dict(enumerate(axes.split())) for name, axes in names.items()}
    module.eval()
    with warnings.catch_warnings():
        # the TorchScript-based exporter (the one icefall's export-onnx scripts use) is deprecated
        # in favour of torch.export, which needs onnxscript and cannot trace data-dependent shapes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=dynamic,
            opset_version=opset,
            do_constant_folding=True,
        )
    module.eval()  # the exporter restores the wrapper's own (training) mode


def _add_metadata(path: Path, meta: dict[str, Any]) -> None:
    import onnx

    model = onnx.load(str(path))
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(model, str(path))


def check_batch(feature_dim: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Random features of two lengths, the second padded (the check of every export)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 301, feature_dim, generator=g), torch.tensor([301, 187])


def export_model(
    model: torch.nn.Module,
    out_dir: Path,
    meta: dict[str, Any],
    opset: int = 17,
    tolerance: float = 1e-3,
) -> dict[str, float]:
    """Write ``model.onnx`` (+ ``decoder.onnx``) for ``model`` and check them against torch;
    the largest differences, by output."""
    import onnxruntime as ort

    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    feature_dim = model.config.encoder.feature_dim
    ctc = CtcExport(model)
    x, x_lens = check_batch(feature_dim)
    paths = [out_dir / "model.onnx"]
    _export(
        ctc,
        (x[:, :200], torch.tensor([200, 150])),
        paths[0],
        {"x": "N T", "x_lens": "N"},
        {"log_probs": "N T_out", "log_probs_len": "N", "encoder_out": "N T_out"},
        opset,
    )
    _add_metadata(
        paths[0],
        {
            "model_type": "zipformer2_ctc",
            "subsampling_factor": 4,
            "feature_dim": feature_dim,
            "vocab_size": model.config.ctc_vocab_size,
            **meta,
        },
    )
    diffs: dict[str, float] = {}
    try:
        with torch.no_grad():
            ref_lp, ref_lens, ref_enc = ctc(x, x_lens)
        session = ort.InferenceSession(str(paths[0]), providers=["CPUExecutionProvider"])
        lp, lens, enc = session.run(None, {"x": x.numpy(), "x_lens": x_lens.numpy()})
        if lens.tolist() != ref_lens.tolist():
            raise RuntimeError(
                f"{paths[0]}: output lengths {lens.tolist()} differ from torch's {ref_lens.tolist()}"
            )
        valid = torch.arange(ref_lp.shape[1])[None, :] < ref_lens[:, None]
        diffs["log_probs"] = float((torch.from_numpy(lp) - ref_lp).abs()[valid].max())
        diffs["encoder_out"] = float((torch.from_numpy(enc) - ref_enc).abs()[valid].max())
        if model.attention_decoder is not None:
            paths.append(out_dir / "decoder.onnx")
            dec = DecoderExport(model)
            ys = torch.tensor([[model.sos_id, 3, 5, 7, 2], [model.sos_id, 4, 6, 0, 0]])
            ys_lens = torch.tensor([5, 3])
            _export(
                dec,
                (ref_enc, ref_lens, ys[:, :4], torch.tensor([4, 2])),
                paths[1],
                {
                    "encoder_out": "N T_out",
                    "encoder_out_lens": "N",
                    "ys_in": "N U",
                    "ys_in_lens": "N",
                },
                {"logits": "N U"},
                opset,
            )
            _add_metadata(
                paths[1],
                {
                    "vocab_size": model.config.decoder_vocab_size,
                    "sos_id": model.sos_id,
                    "eos_id": model.eos_id,
                    **meta,
                },
            )
            with torch.no_grad():
                ref_logits = dec(ref_enc, ref_lens, ys, ys_lens)
            session = ort.InferenceSession(str(paths[1]), providers=["CPUExecutionProvider"])
            (logits,) = session.run(
                None,
                {
                    "encoder_out": ref_enc.numpy(),
                    "encoder_out_lens": ref_lens.numpy(),
                    "ys_in": ys.numpy(),
                    "ys_in_lens": ys_lens.numpy(),
                },
            )
            valid = torch.arange(ys.shape[1])[None, :] < ys_lens[:, None]
            diffs["logits"] = float((torch.from_numpy(logits) - ref_logits).abs()[valid].max())
        worst = max(diffs, key=diffs.get)
        if diffs[worst] > tolerance:
            raise RuntimeError(
                f"onnxruntime and torch differ by {diffs[worst]:.2e} on {worst} "
                f"(tolerance {tolerance:g}): the export is wrong"
            )
    except Exception:
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    return diffs


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    from less.checkpoint import selected_model_state
    from less.model.spec import ModelSpec

    state, config = selected_model_state(args)
    source = (
        str(args.checkpoint)
        if args.checkpoint is not None
        else f"{args.exp_dir} epoch {args.epoch} avg {args.avg}"
    )
    spec = ModelSpec.from_train_config(config)
    ctc_tokenizer, decoder_tokenizer = spec.tokenizers()
    decoder_lang = spec.decoder_lang_dir
    model = spec.build(ctc_tokenizer, decoder_tokenizer)
    model.load_state_dict(state)
    diffs = export_model(
        model, args.out_dir, {"task": spec.task, "source": source}, args.opset, args.tolerance
    )
    shutil.copyfile(Path(config["lang_dir"]) / "tokens.txt", args.out_dir / "tokens.txt")
    if decoder_lang:
        shutil.copyfile(Path(decoder_lang) / "tokens.txt", args.out_dir / "decoder_tokens.txt")
    log.info(
        "exported %s to %s (%s); onnxruntime vs torch, largest difference on valid frames: %s",
        source,
        args.out_dir,
        ", ".join(sorted(p.name for p in args.out_dir.glob("*.onnx"))),
        ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()),
    )


if __name__ == "__main__":
    main()
