"""SpeechLM-P: unit tokenizer (less.ssl.units), unit encoder, pre-training losses (less.ssl.speechlm)."""

from __future__ import annotations

import random

import pytest
import torch
from lhotse import CutSet

from less.data import espeak
from less.decode.ctc import ctc_greedy_search
from less.model import build_model, output_lengths
from less.ssl.alignment import UtteranceAlignment
from less.ssl.speechlm import (
    SPEECHLM_PREFIXES,
    SpeechLmConfig,
    SpeechLmModel,
    TextUnitBatches,
    swap_positions,
)
from less.ssl.units import (
    SIL_ID,
    DurationModel,
    UnitLexicon,
    frame_units,
    unit_runs,
)
from less.training import load_state_into
from tests.helpers import SMALL_ZIPFORMER as SMALL
from tests.helpers import flags, ssl_args, torchrun


def test_upsampling_is_deterministic_and_its_mean_duration_is_the_configured_one() -> None:
    model = DurationModel(mean=6.0, std=2.5, per_unit={5: (12.0, 3.0)}, sil_mean=0.0)
    rng = random.Random(0)
    units = [rng.randrange(2, 9) for _ in range(3000)]
    a = model.upsample(units, random.Random(7))
    assert a == model.upsample(units, random.Random(7))
    assert a != model.upsample(units, random.Random(8))
    runs = unit_runs(a)
    # equal neighbours merge into one run: count frames per unit occurrence instead
    frames = {u: sum(n for v, n in runs if v == u) / units.count(u) for u in set(units)}
    pooled = [frames[u] for u in set(units) if u != 5]
    assert abs(sum(pooled) / len(pooled) - 6.0) / 6.0 < 0.10
    assert abs(frames[5] - 12.0) / 12.0 < 0.10  # a unit with its own measured duration
    assert min(n for _, n in runs) >= 1


def test_silence_is_added_at_both_ends_with_the_measured_length() -> None:
    model = DurationModel(mean=4.0, std=0.0, sil_mean=10.0, sil_std=0.0)
    out = model.upsample([3, 4], random.Random(0))
    assert out == [SIL_ID] * 10 + [3] * 4 + [4] * 4 + [SIL_ID] * 10


def test_homophones_share_a_unit() -> None:
    lexicon = UnitLexicon.build("他她它你是事市", espeak.pronouncer("cmn"))
    assert lexicon.unit_of("他") == lexicon.unit_of("她") == lexicon.unit_of("它")
    assert lexicon.unit_of("是") == lexicon.unit_of("事") == lexicon.unit_of("市")
    assert lexicon.unit_of("你") != lexicon.unit_of("他") != lexicon.unit_of("是")
    assert lexicon.unit_of("𠀀") == 1  # not in the lexicon: <unk>
    assert len(lexicon) == 2 + 3  # <sil>, <unk>, ta, shi, ni


def test_lexicon_round_trip(tmp_path) -> None:
    lexicon = UnitLexicon({"a": "x1", "b": "y2", "c": "x1"})
    lexicon.save(tmp_path)
    again = UnitLexicon.load(tmp_path)
    assert again.units == lexicon.units and again.char_units == lexicon.char_units
    assert again.encode("a b c") == [again.index["x1"], again.index["y2"], again.index["x1"]]


def test_frame_labels_match_the_encoder_frame_count_and_the_segments() -> None:
    lexicon = UnitLexicon({"你": "ni3", "好": "xau3"})
    feat_frames = 300  # 3 s of fbank
    num_frames = int(output_lengths(torch.tensor([feat_frames]))[0])
    alignment = UtteranceAlignment("c1", "s", 3.0, [("你", 0.5, 1.0), ("好", 1.0, 2.0)])
    labels = frame_units(alignment, num_frames, lexicon)
    assert len(labels) == num_frames == 73
    runs = unit_runs(labels)
    assert [u for u, _ in runs] == [SIL_ID, lexicon.index["ni3"], lexicon.index["xau3"], SIL_ID]
    # 25 Hz: 0.5 s of "ni" is about 12-13 frames, 1 s of "hao" about 25
    assert abs(runs[1][1] - 12.5) <= 1 and abs(runs[2][1] - 25) <= 1


def test_durations_are_measured_from_alignments() -> None:
    lexicon = UnitLexicon({"a": "x", "b": "y"})
    alignments = [
        (UtteranceAlignment(f"c{i}", "s", 2.0, [("a", 0.2, 0.6), ("b", 0.6, 0.8)]), 49)
        for i in range(6)
    ]
    model = DurationModel.fit(alignments, lexicon, min_count=5)
    assert model.per_unit[lexicon.index["x"]][0] == pytest.approx(10, abs=1)  # 0.4 s = 10 frames
    assert model.per_unit[lexicon.index["y"]][0] == pytest.approx(5, abs=1)
    assert model.sil_mean > 0
    assert DurationModel.from_dict(model.to_dict()) == model


def test_swapped_positions_are_never_masked() -> None:
    g = torch.Generator().manual_seed(0)
    lens = torch.tensor([50, 80, 30])
    real = torch.arange(80)[None, :] < lens[:, None]
    from less.ssl.masking import span_mask

    masked = span_mask(lens, 80, 0.16, 5, g) & real
    swap = swap_positions(masked, real, 0.3, 2, g)
    assert int(swap.sum()) > 10
    assert not bool((swap & masked).any())
    assert not bool((swap & ~real).any())


def test_a_swapped_frame_keeps_its_unit_among_louder_speech_frames() -> None:
    """The Zipformer's output is ~30x the RMS of a new unit embedding (2.4 against 0.08): the
    unit encoder must still tell which unit was swapped in.  Two swaps that differ only in the
    unit change the unit encoder's output there by more than its own size (1.25-1.42 measured;
    without the input LayerNorm, 0.13-0.16)."""
    from less.model.unit_encoder import UnitEncoder

    torch.manual_seed(0)
    dim, t = 160, 30
    encoder = UnitEncoder(dim, 2).eval()
    embed = torch.nn.Embedding(50, dim)
    torch.nn.init.normal_(embed.weight, std=dim**-0.5)  # as SpeechLmModel initialises it
    speech = 2.4 * torch.randn(4, 60, dim)
    lens = torch.full((4,), 60)
    for first, second in ((1, 2), (3, 4), (5, 6), (7, 8)):
        a, b = speech.clone(), speech.clone()
        a[:, t], b[:, t] = embed.weight[first], embed.weight[second]
        with torch.no_grad():
            out_a, out_b = encoder(a, lens)[:, t], encoder(b, lens)[:, t]
        assert float((out_a - out_b).norm() / out_a.norm()) > 0.7


def _toy_texts(n: int, seed: int) -> tuple[list[list[int]], list[list[int]]]:
    """Unit u (2..9) spells character u + 1 (ids 3..10); each unit lasts 3-5 frames; no unit
    follows itself (two equal neighbours would be one run of frames, as in speech)."""
    rng = random.Random(seed)
    units, chars = [], []
    for _ in range(n):
        sentence, length = [rng.randrange(2, 10)], rng.randrange(3, 8)
        while len(sentence) < length:
            sentence.append(rng.choice([u for u in range(2, 10) if u != sentence[-1]]))
        frames = [u for u in sentence for _ in range(rng.randrange(3, 6))]
        units.append(frames)
        chars.append([u + 1 for u in sentence])
    return units, chars


@pytest.mark.slow
def test_uctc_alone_learns_a_toy_unit_to_character_mapping() -> None:
    import kaldialign

    torch.manual_seed(0)
    cfg = SpeechLmConfig(num_units=10, unit_encoder_layers=1, mask_prob=0.0, text_weight=1.0)
    model = SpeechLmModel(cfg, ctc_vocab_size=12)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    batches = TextUnitBatches(*_toy_texts(400, 0), max_frames=600, seed=0)
    model.train()
    for step in range(200):
        loss, _ = model.text_loss(*batches[step], generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    errors = total = 0
    units, chars = _toy_texts(50, 1)
    with torch.no_grad():
        for u, c in zip(units, chars):
            x = model.unit_embed(torch.tensor([u]))
            log_probs = model.ctc_output(model.unit_encoder(x, torch.tensor([len(u)])))
            hyp = ctc_greedy_search(log_probs, torch.tensor([len(u)]))[0]
            errors += kaldialign.edit_distance(c, hyp)["total"]
            total += len(c)
    assert errors / total < 0.05, f"CER {100 * errors / total:.1f} %"


def test_text_batches_depend_on_the_index_alone() -> None:
    units, chars = _toy_texts(100, 0)
    a = TextUnitBatches(units, chars, max_frames=120, seed=3)
    b = TextUnitBatches(units, chars, max_frames=120, seed=3)
    late_first = [b[i] for i in (40, 17, 5, 0)][::-1]  # asked in another order: the same batches
    assert [a[i] for i in (0, 5, 17, 40)] == late_first
    assert a[0] != a[a.per_pass]  # the next pass is shuffled again
    assert all(sum(len(u) for u in a[i][0]) <= 120 for i in range(3 * a.per_pass))
    with pytest.raises(ValueError, match="shorter than the longest"):
        TextUnitBatches(units, chars, max_frames=5)


def _toy_speech(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[list[int]]]:
    """fbank whose 25 Hz frames carry their unit as a bump in one mel band."""
    g = torch.Generator().manual_seed(seed)
    feat_lens = torch.tensor([300 - 20 * b for b in range(batch)])
    feats = 0.3 * torch.randn(batch, 300, 80, generator=g)
    labels = []
    for b in range(batch):
        n = int(output_lengths(feat_lens[b : b + 1])[0])
        units = [2 + (j // 6) % 6 for j in range(n)]
        for j, u in enumerate(units):
            feats[b, 4 * j + 3 : 4 * j + 7, 10 * u : 10 * u + 8] += 3.0
        labels.append(units)
    return feats, feat_lens, labels


def test_a_short_tiny_run_lowers_the_loss_and_the_checkpoint_fine_tunes(tmp_path) -> None:
    torch.manual_seed(0)
    cfg = SpeechLmConfig(num_units=10, unit_encoder_layers=1)
    model = SpeechLmModel(cfg, ctc_vocab_size=12)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    text = TextUnitBatches(*_toy_texts(100, 0), max_frames=300, seed=0)
    losses = []
    model.train()
    for step in range(20):
        feats, feat_lens, labels = _toy_speech(3, step)
        g = torch.Generator().manual_seed(step)
        out = model(feats, feat_lens, labels, text[step], g)
        assert out["swapped"] > 0 and out["masked"] > 0
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(out["loss"].item())
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4, losses

    # the fine-tuning model (CTC/AED with the unit encoder) takes every transferable tensor
    state = model.transferable_state()
    assert {k.split(".")[0] + "." for k in state} == set(SPEECHLM_PREFIXES)
    path = tmp_path / "pretrained.pt"
    torch.save({"model": model.state_dict()}, path)
    student = build_model("xs", ctc_vocab_size=12, decoder_vocab_size=12, unit_encoder_layers=1)
    loaded = torch.load(path, weights_only=True)["model"]
    load_state_into(student, loaded, str(path), prefixes=SPEECHLM_PREFIXES)
    own = student.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items())


def test_frame_label_count_mismatch_is_an_error() -> None:
    model = SpeechLmModel(SpeechLmConfig(num_units=8, unit_encoder_layers=1), ctc_vocab_size=12)
    feats, feat_lens, labels = _toy_speech(2, 0)
    labels[1] = labels[1][:-1]
    with pytest.raises(ValueError, match="utterance 1: .* unit labels for .* encoder frames"):
        model(feats, feat_lens, labels)


def test_default_model_has_no_unit_encoder_and_checkpoints_are_unchanged() -> None:
    plain = build_model("xs", ctc_vocab_size=12, decoder_vocab_size=12)
    assert plain.unit_encoder is None
    assert not any(k.startswith("unit_encoder.") for k in plain.state_dict())
    with_units = build_model("xs", ctc_vocab_size=12, decoder_vocab_size=12, unit_encoder_layers=2)
    feats, feat_lens, _ = _toy_speech(2, 0)
    with_units.eval()
    out, lens = with_units.encode(feats, feat_lens)
    assert out.shape[1] == int(lens.max()) and out.shape[-1] == with_units.config.encoder.output_dim


@pytest.mark.slow
def test_units_pretraining_resume_and_fine_tuning_end_to_end(mini_data, tmp_path) -> None:
    """seed model -> less.bin.speechlm_units -> ssl_pretrain --method speechlm (exact resume)
    -> less.bin.train from the unit encoder and the UCTC head."""
    import gzip
    import json
    import shutil

    from less.bin import speechlm_units, ssl_pretrain
    from less.bin import train as train_cli
    from less.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    fbank = mini_data / "fbank"
    lang = str(mini_data / "lang_char")
    common = [
        *flags(
            task="asr",
            lang_dir=lang,
            model="xs",
            max_duration="20",
            num_workers="0",
            seed="5",
            valid_cuts=str(fbank / "mini-asr_cuts_dev.jsonl.gz"),
        ),
    ]
    train_cli.main(
        [
            *common,
            *flags(
                model_overrides=json.dumps(SMALL),
                num_epochs="1",
                max_batches_per_epoch="2",
                train_cuts=str(fbank / "mini-asr_cuts_train_sup.jsonl.gz"),
                exp_dir=str(tmp_path / "seed"),
            ),
        ]
    )

    units_dir = tmp_path / "units"
    units_args = [
        *flags(
            checkpoint=str(tmp_path / "seed" / "epoch-1.pt"),
            lang_dir=lang,
            ref_cuts=str(fbank / "mini-asr_cuts_train_sup.jsonl.gz"),
            ref_speech="true",
            hyp_cuts=str(fbank / "mini-asr_cuts_dev.jsonl.gz"),
            text=str(mini_data / "text" / "mini-asr_text_only.zh.txt"),
            out_dir=str(units_dir),
        ),
    ]
    speechlm_units.main(units_args)
    lexicon = UnitLexicon.load(units_dir)
    assert lexicon.unit_of("他") == lexicon.unit_of("她")  # homophones of the corpus share a unit
    speech = speechlm_units.load_speech_units(units_dir / "speech_units.jsonl.gz")
    train_sup = CutSet.from_file(fbank / "mini-asr_cuts_train_sup.jsonl.gz")
    for cut in train_sup:
        if cut.id in speech:
            assert len(speech[cut.id]) == int(output_lengths(torch.tensor([cut.num_frames]))[0])
    text_rows = gzip.open(units_dir / "text_units.jsonl.gz", "rt").read()
    shutil.rmtree(units_dir)
    # the same model chosen as decoding chooses one (one epoch, no running average):
    # deterministic, the same speech and text units again
    by_exp_dir = [a for a in units_args if not a.startswith(str(tmp_path / "seed"))]
    by_exp_dir.remove("--checkpoint")
    by_exp_dir += flags(exp_dir=tmp_path / "seed", epoch=1, avg=1, use_averaged_model="false")
    speechlm_units.main(by_exp_dir)
    assert gzip.open(units_dir / "text_units.jsonl.gz", "rt").read() == text_rows
    assert speechlm_units.load_speech_units(units_dir / "speech_units.jsonl.gz") == speech
    with pytest.raises(SystemExit, match="give --checkpoint, or --exp-dir with --epoch"):
        speechlm_units.main(by_exp_dir[: by_exp_dir.index("--exp-dir")])

    def pretrain_args(exp_dir, *extra) -> list[str]:
        return [
            *ssl_args(
                "speechlm",
                exp_dir,
                unit_dir=str(units_dir),
                lang_dir=lang,
                train_cuts=str(fbank / "mini-asr_cuts_train_sup.jsonl.gz"),
                valid_cuts=str(fbank / "mini-asr_cuts_dev.jsonl.gz"),
                unit_encoder_layers="1",
                max_duration="8",
                max_cut_duration="10",
                log_interval="1",
                seed="3",
                num_epochs="2",
                max_batches_per_epoch="3",
                save_every_n="2",
            ),
            *extra,
        ]

    def pretrain(exp_dir, *extra):
        ssl_pretrain.main(pretrain_args(exp_dir, *extra))

    straight = tmp_path / "straight"
    pretrain(straight)
    final = load_checkpoint(straight / "epoch-2.pt")
    assert final["train_state"]["batch_idx_train"] == 6
    assert final["config"]["speechlm"]["num_units"] == len(lexicon)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(straight / "checkpoint-4.pt", resumed / "checkpoint-4.pt")
    pretrain(resumed)
    again = load_checkpoint(resumed / "epoch-2.pt")["model"]
    assert all(torch.equal(again[k], final["model"][k]) for k in final["model"])
    log_text = next((straight / "log").glob("log-ssl-*.txt")).read_text()
    assert "text_ctc" in log_text and "unit_acc" in log_text

    # two ranks (torchrun, gloo): each its share of the speech and its own text batches, and
    # the same weights at the end
    ddp = torchrun(
        "less.bin.ssl_pretrain",
        *pretrain_args(tmp_path / "ddp", *flags(num_epochs="1", num_threads="1")),
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    log_text = next((tmp_path / "ddp" / "log").glob("log-ssl-*.txt")).read_text()
    assert "text_ctc" in log_text and "DDP: the 2 ranks hold identical weights" in log_text

    overrides = json.dumps({**SMALL, "unit_encoder_layers": 1})
    train_cli.main(
        [
            *common,
            *flags(
                model_overrides=overrides,
                num_epochs="1",
                max_batches_per_epoch="1",
                train_cuts=str(fbank / "mini-asr_cuts_train_sup.jsonl.gz"),
                init_encoder_from=str(straight / "epoch-2.pt"),
                init_prefixes=",".join(SPEECHLM_PREFIXES),
                exp_dir=str(tmp_path / "fine"),
            ),
        ]
    )
    tuned = load_checkpoint(tmp_path / "fine" / "epoch-1.pt")
    assert any(k.startswith("unit_encoder.") for k in tuned["model"])
    assert tuned["config"]["init_prefixes"] == list(SPEECHLM_PREFIXES)
