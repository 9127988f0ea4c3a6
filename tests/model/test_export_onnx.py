"""less.bin.export_onnx: onnxruntime agrees with torch; sherpa-onnx decodes the export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip(
    "onnx", reason="the exporter needs the onnx package (pip install 'less[export]')"
)
ort = pytest.importorskip("onnxruntime", reason="the export is checked with onnxruntime")

from less.bin import export_onnx  # noqa: E402
from less.model import build_model  # noqa: E402

TINY = {"num_encoder_layers": [1, 1, 1, 1, 1, 1], "decoder_num_layers": 1}


@pytest.mark.slow
def test_asr_and_ast_exports_match_torch_on_other_lengths(tmp_path: Path):
    """Traced at one shape, run at others: a padded batch, odd lengths (the downsampling
    stacks pad by one frame), a decoder prefix longer than the traced one."""
    torch.manual_seed(0)
    for task, decoder_vocab in (("asr", 40), ("ast", 30)):
        model = build_model("xs", ctc_vocab_size=40, decoder_vocab_size=decoder_vocab, **TINY)
        out = tmp_path / task
        diffs = export_onnx.export_model(model, out, {"task": task})
        assert set(diffs) == {"log_probs", "encoder_out", "logits"}
        assert max(diffs.values()) < 1e-3

        meta = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
        assert (
            meta["model_type"] == "zipformer2_ctc"
            and meta["vocab_size"] == "40"
            and meta["task"] == task
        )
        session = ort.InferenceSession(str(out / "model.onnx"))
        assert [o.name for o in session.get_outputs()] == [
            "log_probs",
            "log_probs_len",
            "encoder_out",
        ]
        assert session.get_outputs()[0].shape[2] == 40  # sherpa-onnx reads the vocabulary size here

        # three utterances, lengths never seen at export time
        x = torch.randn(3, 419, 80)
        x_lens = torch.tensor([419, 263, 97])
        lp, lens, enc = session.run(None, {"x": x.numpy(), "x_lens": x_lens.numpy()})
        with torch.no_grad():
            ref_enc, ref_lens = model.eval().encode(x, x_lens)
            ref_lp = model.ctc_log_probs(ref_enc)
        assert lens.tolist() == ref_lens.tolist() == [103, 64, 23]
        for i, n in enumerate(ref_lens.tolist()):
            assert np.abs(lp[i, :n] - ref_lp[i, :n].numpy()).max() < 1e-3

        decoder = ort.InferenceSession(str(out / "decoder.onnx"))
        ys = torch.tensor([[model.sos_id, 5, 6, 7, 8, 9, 10], [model.sos_id, 3, 0, 0, 0, 0, 0]])
        ys_lens = torch.tensor([7, 2])
        (logits,) = decoder.run(
            None,
            {
                "encoder_out": enc[:2],
                "encoder_out_lens": lens[:2],
                "ys_in": ys.numpy(),
                "ys_in_lens": ys_lens.numpy(),
            },
        )
        assert logits.shape == (2, 7, decoder_vocab)
        with torch.no_grad():
            ref = model.decoder_logits(
                torch.from_numpy(enc[:2]), torch.from_numpy(lens[:2]), ys, ys_lens
            )
        assert np.abs(logits[0] - ref[0].numpy()).max() < 1e-3
        assert np.abs(logits[1, :2] - ref[1, :2].numpy()).max() < 1e-3


@pytest.mark.slow
def test_export_cli_writes_tokens_and_a_wrong_export_is_refused(
    mini_data: Path, seed_model, tmp_path: Path, monkeypatch
):
    exp = seed_model("ast")
    out = tmp_path / "onnx"
    export_onnx.main(["--exp-dir", str(exp), "--epoch", "1", "--out-dir", str(out)])
    assert sorted(p.name for p in out.iterdir()) == [
        "decoder.onnx",
        "decoder_tokens.txt",
        "model.onnx",
        "tokens.txt",
    ]
    assert (out / "decoder_tokens.txt").read_text() == (
        mini_data / "lang_bpe_96_en" / "tokens.txt"
    ).read_text()
    meta = {p.key: p.value for p in onnx.load(str(out / "decoder.onnx")).metadata_props}
    assert meta["vocab_size"] == "96" and meta["task"] == "ast" and "epoch 1" in meta["source"]

    # an exporter that gets the model wrong (here: a different model in torch than in the file)
    # fails and leaves no file behind
    real = export_onnx.CtcExport.forward

    def skewed(self, x, x_lens):
        log_probs, lens, enc = real(self, x, x_lens)
        if torch.onnx.is_in_onnx_export():
            return log_probs, lens, enc
        return log_probs + 0.5, lens, enc

    monkeypatch.setattr(export_onnx.CtcExport, "forward", skewed)
    bad = tmp_path / "bad"
    with pytest.raises(RuntimeError, match="differ by 5.00e-01 on log_probs"):
        export_onnx.main(["--exp-dir", str(exp), "--epoch", "1", "--out-dir", str(bad)])
    assert not list(bad.glob("*.onnx"))


def test_sherpa_onnx_decodes_the_export_as_we_do(mini_data: Path, tmp_path: Path):
    """The runtime icefall users deploy with: sherpa-onnx's offline Zipformer CTC recognizer
    reads the exported model and tokens.txt, computes its own fbank from the waveform
    (kaldi-native-fbank) and greedy-decodes; our path (lhotse Fbank -> onnxruntime -> CTC
    greedy) must give the same text on real mini-corpus audio. A random model with a sharpened
    CTC head emits many non-blank tokens, so the comparison is not of empty outputs."""
    sherpa_onnx = pytest.importorskip(
        "sherpa_onnx", reason="pip install sherpa-onnx (less[export])"
    )
    from lhotse import Fbank, FbankConfig, RecordingSet

    symbols = [
        line.split()[0]
        for line in (mini_data / "lang_char" / "tokens.txt").read_text().splitlines()
    ]
    torch.manual_seed(0)
    model = build_model("xs", ctc_vocab_size=len(symbols), decoder_vocab_size=None, **TINY)
    with torch.no_grad():
        model.ctc_output[1].weight.mul_(10.0)
    out = tmp_path / "onnx"
    export_onnx.export_model(model, out, {"task": "asr"})
    (out / "tokens.txt").write_text((mini_data / "lang_char" / "tokens.txt").read_text())

    recognizer = sherpa_onnx.OfflineRecognizer.from_zipformer_ctc(
        model=str(out / "model.onnx"), tokens=str(out / "tokens.txt")
    )
    session = ort.InferenceSession(str(out / "model.onnx"))
    fbank = Fbank(FbankConfig(num_mel_bins=80))
    recordings = RecordingSet.from_file(
        mini_data / "manifests" / "mini-asr_recordings_test_clean.jsonl.gz"
    )
    lengths = []
    for recording in list(recordings)[:6]:
        audio = recording.load_audio()[0]
        stream = recognizer.create_stream()
        stream.accept_waveform(recording.sampling_rate, audio)
        recognizer.decode_stream(stream)

        feats = fbank.extract(audio, recording.sampling_rate)[None].astype(np.float32)
        log_probs, lens, _ = session.run(None, {"x": feats, "x_lens": np.array([feats.shape[1]])})
        best = log_probs[0, : lens[0]].argmax(-1)
        tokens = [int(t) for i, t in enumerate(best) if t != 0 and (i == 0 or t != best[i - 1])]
        ours = "".join(symbols[t] for t in tokens)
        assert stream.result.text == ours, recording.id
        lengths.append(len(tokens))
    assert min(lengths) > 5
