"""less.bin.pseudo_label: checkpoint and Whisper teachers, records, sharding, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lhotse import CutSet

from less.bin import pseudo_label
from tests.helpers import flags


def byte_symbols() -> list[str]:
    """A byte-level BPE alphabet (GPT-2's layout): printable bytes stand for themselves."""
    keep = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    symbols, extra = [], 0
    for b in range(256):
        if b in keep:
            symbols.append(chr(b))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory) -> Path:
    """A randomly initialised Whisper with a byte-level tokenizer, saved as a local directory."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    out = tmp_path_factory.mktemp("whisper")
    specials = [
        "<|startoftranscript|>",
        "<|en|>",
        "<|zh|>",
        "<|es|>",
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ]
    tok = WhisperTokenizer(
        vocab={c: i for i, c in enumerate(byte_symbols())},
        merges=[],
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    tok.add_special_tokens({"additional_special_tokens": specials})
    ids = {s: tok.convert_tokens_to_ids(s) for s in ["<|endoftext|>", *specials]}
    WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tok
    ).save_pretrained(out)
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    config = WhisperConfig(
        vocab_size=len(tok),
        num_mel_bins=80,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_source_positions=1500,
        max_target_positions=24,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        bos_token_id=eot,
        max_length=24,
        is_multilingual=True,
        lang_to_id={f"<|{x}|>": ids[f"<|{x}|>"] for x in ("en", "zh", "es")},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        suppress_tokens=[],
        begin_suppress_tokens=[],
    )
    model.save_pretrained(out)
    return out


@pytest.fixture
def teachers(seed_model) -> dict[str, Path]:
    """One-epoch tiny seed models for both tasks (what the LESS loop uses as teachers)."""
    torch.set_num_threads(1)
    return {task: seed_model(task) for task in ("asr", "ast")}


def run_pl(mini_data: Path, teacher: Path, task: str, out: Path, *extra: str) -> CutSet | None:
    pseudo_label.main(
        [
            *flags(
                in_cuts=str(mini_data / "fbank" / f"mini-{task}_cuts_unsup_wild.jsonl.gz"),
                out_cuts=str(out),
                iter="1",
                exp_dir=str(teacher),
                epoch="1",
                beam_size="2",
                nbest="2",
                num_threads="1",
            ),
            *extra,
        ]
    )
    return CutSet.from_file(out) if out.is_file() else None


def test_checkpoint_teacher_records(mini_data: Path, teachers: dict[str, Path], tmp_path: Path):
    unlabeled = CutSet.from_file(mini_data / "fbank" / "mini-asr_cuts_unsup_wild.jsonl.gz")
    labelled = run_pl(mini_data, teachers["asr"], "asr", tmp_path / "asr_pl.jsonl.gz")
    assert [c.id for c in labelled] == [c.id for c in unlabeled]
    for cut, source in zip(labelled, unlabeled):
        (sup,) = cut.supervisions
        pl = sup.custom["pl"]
        assert pl["iter"] == 1 and str(teachers["asr"]) in pl["teacher"]
        assert sup.text == pl["hyp"] and 0.0 <= pl["confidence"] <= 1.0
        scores = [s for _, s in pl["nbest"]]
        assert 1 <= len(scores) <= 2 and scores == sorted(scores, reverse=True)
        assert pl["nbest"][0][0] == pl["hyp"]
        assert (
            sup.custom["ref_text"] == source.supervisions[0].custom["ref_text"]
        )  # hidden truth kept
        assert cut.has_features and sup.duration == pytest.approx(cut.duration)


def test_ast_labels_carry_source_transcript_and_translation(mini_data, teachers, tmp_path):
    labelled = run_pl(mini_data, teachers["ast"], "ast", tmp_path / "ast_pl.jsonl.gz")
    for cut in labelled:
        sup = cut.supervisions[0]
        pl = sup.custom["pl"]
        assert sup.text == pl["src_hyp"]  # the student's CTC target: the Spanish transcript
        assert sup.custom["translated_text"] == {"en": pl["hyp"]}
        assert sup.custom["ref_translated_text"]["en"]


def test_shards_combine_to_the_single_run_and_resume(mini_data, teachers, tmp_path):
    single = run_pl(mini_data, teachers["asr"], "asr", tmp_path / "one" / "pl.jsonl.gz")
    out = tmp_path / "sharded" / "pl.jsonl.gz"
    # shard 1 was killed after labelling one cut (with a made-up label), mid-write of the next
    shard1 = out.with_name("pl.shard1of2.jsonl.gz.partial.jsonl")
    shard1.parent.mkdir(parents=True)
    victim = [c for i, c in enumerate(single) if i % 2 == 1][0]
    fake = {**victim.supervisions[0].custom["pl"], "hyp": "假的", "nbest": [["假的", 0.0]]}
    shard1.write_text(
        json.dumps({"cut_id": victim.id, "pl": fake}, ensure_ascii=False) + '\n{"cut_'
    )
    assert (
        run_pl(mini_data, teachers["asr"], "asr", out, "--num-shards", "2", "--shard-id", "0")
        is None
    )
    assert out.with_name("pl.shard0of2.jsonl.gz").is_file()  # shard 0 done, shard 1 still to go
    run_pl(mini_data, teachers["asr"], "asr", out, "--num-shards", "2", "--shard-id", "1")
    combined = {c.id: c.supervisions[0].custom["pl"]["hyp"] for c in CutSet.from_file(out)}
    expected = {c.id: c.supervisions[0].custom["pl"]["hyp"] for c in single}
    assert combined.keys() == expected.keys()
    assert combined[victim.id] == "假的"  # the finished answer was kept, not recomputed
    assert {k: v for k, v in combined.items() if k != victim.id} == {
        k: v for k, v in expected.items() if k != victim.id
    }
    assert not shard1.exists()


def test_a_bad_progress_entry_is_named_and_nothing_is_written(mini_data: Path, tmp_path: Path):
    # every cut already has an entry (so no teacher is loaded); one entry is not a record
    cuts = CutSet.from_file(mini_data / "fbank" / "mini-asr_cuts_unsup_wild.jsonl.gz").to_eager()
    cuts = cuts.subset(first=3)
    cuts.to_file(tmp_path / "in.jsonl.gz")
    out = tmp_path / "pl.jsonl.gz"
    partial = out.with_name(out.name + ".partial.jsonl")
    entries = [{"cut_id": c.id, "pl": {"iter": 1, "teacher": "t", "hyp": "好"}} for c in cuts]
    entries[1]["pl"]["hyp"] = None
    partial.write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
    args = flags(in_cuts=str(tmp_path / "in.jsonl.gz"), out_cuts=str(out), iter="1")
    with pytest.raises(ValueError, match=f"{partial}: cut {cuts[1].id}: .*'hyp'.* must be a str"):
        pseudo_label.main(args)
    assert not out.exists() and partial.is_file()  # the labelled cuts are kept for a rerun


def test_whisper_teacher(mini_data: Path, tiny_whisper: Path, tmp_path: Path):
    cuts = CutSet.from_file(mini_data / "fbank" / "mini-ast_cuts_unsup_wild.jsonl.gz").to_eager()
    cuts.subset(first=3).to_file(tmp_path / "in.jsonl.gz")
    pseudo_label.main(
        [
            *flags(
                in_cuts=str(tmp_path / "in.jsonl.gz"),
                out_cuts=str(tmp_path / "out.jsonl.gz"),
                iter="2",
                teacher="whisper",
                whisper_model=str(tiny_whisper),
                language="es",
                whisper_task="translate",
                num_threads="1",
            ),
        ]
    )
    labelled = CutSet.from_file(tmp_path / "out.jsonl.gz")
    assert len(labelled) == 3
    for cut in labelled:
        pl = cut.supervisions[0].custom["pl"]
        assert pl["teacher"].startswith("whisper:") and pl["iter"] == 2
        assert "src_hyp" in pl  # translate mode also transcribes, for the CTC target
        assert pl["nbest"][0][1] < 0 and 0 < pl["confidence"] < 1  # average token log-probability
        assert cut.supervisions[0].custom["translated_text"]["en"] == pl["hyp"]
    with pytest.raises(ValueError, match="fp16 Whisper needs a GPU"):
        from less.pseudo.teachers import WhisperTeacher

        WhisperTeacher(str(tiny_whisper), "es", device="cpu", dtype="fp16")


def test_lm_decoding_for_the_lm_filter(mini_data: Path, teachers: dict[str, Path], tmp_path: Path):
    """--lm decodes each cut a second time through T o G into pl["lm"]; filter_pl --max-lm-cer
    keeps the cuts where both decodings agree (WeNet's LM filter)."""
    from less.bin import filter_pl
    from less.data.cuts import read_cuts
    from tests.helpers import train_mini_lm

    lm = tmp_path / "lm.arpa"
    train_mini_lm(mini_data, lm)
    labelled = run_pl(
        mini_data,
        teachers["asr"],
        "asr",
        tmp_path / "pl.jsonl.gz",
        *flags(lm=str(lm), lm_scale="2.0"),
    )
    plain = run_pl(mini_data, teachers["asr"], "asr", tmp_path / "plain.jsonl.gz")
    lm_texts = [c.supervisions[0].custom["pl"]["lm"]["text"] for c in labelled]
    # the teacher's own label is unchanged by the second decoding
    assert [c.supervisions[0].text for c in labelled] == [c.supervisions[0].text for c in plain]
    assert (
        all(isinstance(t, str) for t in lm_texts)
        and "lm" not in plain[0].supervisions[0].custom["pl"]
    )
    from less.metrics import hypo_wer

    teacher_texts = [c.supervisions[0].custom["pl"]["hyp"] for c in labelled]
    assert any(t != h for t, h in zip(lm_texts, teacher_texts))  # the LM changed some labels
    filter_pl.main(
        [
            *flags(
                in_cuts=str(tmp_path / "pl.jsonl.gz"),
                out_cuts=str(tmp_path / "kept.jsonl.gz"),
                task="asr",
                lang="zh",
                max_hypo_wer="-1",
                label="teacher",
                max_lm_cer="0.7",
            ),
        ]
    )
    kept = {c.id for c in read_cuts(tmp_path / "kept.jsonl.gz")}
    expected = {
        c.id
        for c, t, h in zip(labelled, lm_texts, teacher_texts)
        if h and hypo_wer(h, t, "zh") <= 0.7
    }
    assert kept == expected
    with pytest.raises(SystemExit, match="for ASR teachers"):
        run_pl(mini_data, teachers["ast"], "ast", tmp_path / "ast.jsonl.gz", "--lm", str(lm))
