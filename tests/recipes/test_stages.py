"""Stages 1-3 of the mini recipe on the tiny corpus: VAD, fbank, lang dirs; bad input; resuming."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from lhotse import CutSet, load_manifest

from less.bin import compute_fbank, vad_segment
from less.data.tokenizer import load_tokenizer
from tests.helpers import flags


def test_vad_segments_match_true_utterance_boundaries(mini_data: Path):
    man = mini_data / "manifests"
    checked = 0
    for task in ("asr", "ast"):
        segments = CutSet.from_file(man / f"mini-{task}_cuts_unsup_wild.jsonl.gz")
        truth = load_manifest(man / f"mini-{task}_supervisions_unsup_wild.jsonl.gz")
        by_rec: dict[str, list] = {}
        for sup in truth:
            by_rec.setdefault(sup.recording_id, []).append(sup)
        assert len(segments) >= 2
        for cut in segments:
            utts = by_rec[cut.recording_id]
            # Under stationary noise, a segment starts near a true start and ends near a true
            # end (padding + VAD slack). Babble is speech to a VAD: it may bridge pauses or
            # extend segments, as it would on real recordings.
            if utts[0].custom["noise_type"] != "babble":
                assert min(abs(cut.start - u.start) for u in utts) < 0.35, cut.id
                assert min(abs(cut.end - u.end) for u in utts) < 0.35, cut.id
                checked += 1
            sup = cut.supervisions[0]
            assert sup.text is None and sup.custom["ref_text"]  # unlabeled, hidden truth attached
            assert cut.duration <= 30.0
        # every true utterance lies inside one segment
        covered = sum(c.supervisions[0].custom["ref_utterances"] for c in segments)
        assert covered == len(truth)
        if task == "ast":
            assert all(c.supervisions[0].custom["ref_translated_text"]["en"] for c in segments)
    assert checked >= 2  # segments of at least one recording under stationary noise


def test_vad_resumes_from_partial_progress(mini_data: Path, tmp_path: Path):
    man = mini_data / "manifests"
    recordings = man / "mini-asr_recordings_unsup_wild.jsonl.gz"
    out = tmp_path / "vad.jsonl.gz"
    first = load_manifest(recordings)[0]
    # a previous run finished one recording (with made-up segments) and died mid-write
    partial = tmp_path / "vad.jsonl.gz.partial.jsonl"
    partial.write_text(
        json.dumps({"recording_id": first.id, "segments": [[1.0, 2.5]]}) + '\n{"recording_'
    )
    vad_segment.main(["--recordings", str(recordings), "--out-cuts", str(out)])
    cuts = CutSet.from_file(out)
    mine = [c for c in cuts if c.recording_id == first.id]
    assert [(c.start, c.duration) for c in mine] == [(1.0, 1.5)]  # kept, not recomputed
    assert len({c.recording_id for c in cuts}) == len(load_manifest(recordings))
    assert not partial.exists()


def test_fbank_shapes_and_frame_counts(mini_data: Path):
    for task in ("asr", "ast"):
        for split in ("train_sup", "test_wild", "unsup_wild"):
            cuts = CutSet.from_file(mini_data / "fbank" / f"mini-{task}_cuts_{split}.jsonl.gz")
            assert len(cuts) > 0
            for cut in cuts:
                feats = cut.load_features()
                assert feats.shape == (cut.num_frames, 80)
                assert abs(cut.num_frames - round(cut.duration * 100)) <= 1
                assert feats.std() > 0.5  # real speech, not a constant
    sup = load_manifest(mini_data / "manifests" / "mini-asr_supervisions_train_sup.jsonl.gz")
    assert len(CutSet.from_file(mini_data / "fbank" / "mini-asr_cuts_train_sup.jsonl.gz")) == len(
        sup
    )


def test_lang_dirs(mini_data: Path):
    zh = load_tokenizer(mini_data / "lang_char")
    es = load_tokenizer(mini_data / "lang_bpe_128_es")
    en = load_tokenizer(mini_data / "lang_bpe_96_en")
    cuts = CutSet.from_file(mini_data / "fbank" / "mini-ast_cuts_test_clean.jsonl.gz")
    for cut in cuts:
        sup = cut.supervisions[0]
        assert es.decode(es.encode(sup.text)) == sup.text
        en_text = sup.custom["translated_text"]["en"]
        assert en.decode(en.encode(en_text)) == en_text
    for cut in CutSet.from_file(mini_data / "fbank" / "mini-asr_cuts_test_clean.jsonl.gz"):
        text = cut.supervisions[0].text
        expected = "".join(ch if ch in zh.ids else "<unk>" for ch in text)
        assert zh.decode(zh.encode(text)) == expected


def _copy_split(mini_corpus: Path, tmp_path: Path, split: str = "dev"):
    man = mini_corpus / "manifests"
    recs = load_manifest(man / f"mini-asr_recordings_{split}.jsonl.gz")
    sups = load_manifest(man / f"mini-asr_supervisions_{split}.jsonl.gz")
    return recs, sups


def test_fbank_missing_audio_names_cut_and_file(mini_corpus: Path, tmp_path: Path):
    recs, sups = _copy_split(mini_corpus, tmp_path)
    audio = tmp_path / "audio"
    audio.mkdir()
    moved = []
    for rec in recs:
        src = Path(rec.sources[0].source)
        shutil.copy(src, audio / src.name)
        moved.append(rec.with_path_prefix(str(audio)) if False else rec)
    from lhotse import RecordingSet

    relocated = RecordingSet.from_recordings(
        r.__class__(
            **{
                **r.__dict__,
                "sources": [
                    s.__class__(
                        type=s.type, channels=s.channels, source=str(audio / Path(s.source).name)
                    )
                    for s in r.sources
                ],
            }
        )
        for r in recs
    )
    victim = relocated[0]
    (audio / Path(victim.sources[0].source).name).unlink()
    relocated.to_file(tmp_path / "recs.jsonl.gz")
    sups.to_file(tmp_path / "sups.jsonl.gz")
    with pytest.raises(FileNotFoundError, match=victim.sources[0].source.replace("/", ".")) as err:
        compute_fbank.main(
            [
                *flags(
                    recordings=str(tmp_path / "recs.jsonl.gz"),
                    supervisions=str(tmp_path / "sups.jsonl.gz"),
                    out_cuts=str(tmp_path / "out.jsonl.gz"),
                ),
            ]
        )
    assert "cut " in str(err.value) and not (tmp_path / "out.jsonl.gz").exists()

    # an unreadable (corrupt) file is an error naming the cut and the file
    bad = Path(relocated[1].sources[0].source)
    bad.write_bytes(b"fLaC not really")
    (audio / Path(victim.sources[0].source).name).write_bytes(
        Path(recs[0].sources[0].source).read_bytes()
    )
    with pytest.raises(RuntimeError, match=r"cut .*" + bad.name.replace(".", r"\.")):
        compute_fbank.main(
            [
                *flags(
                    recordings=str(tmp_path / "recs.jsonl.gz"),
                    supervisions=str(tmp_path / "sups.jsonl.gz"),
                    out_cuts=str(tmp_path / "out.jsonl.gz"),
                ),
            ]
        )


def test_fbank_empty_transcript_and_short_cuts(mini_corpus: Path, tmp_path: Path):
    recs, sups = _copy_split(mini_corpus, tmp_path)
    recs.to_file(tmp_path / "recs.jsonl.gz")
    broken = sups.map(lambda s: s.transform_text(lambda t: "") if s.id == sups[0].id else s)
    broken.to_file(tmp_path / "sups.jsonl.gz")
    with pytest.raises(ValueError, match=f"empty transcript.*{sups[0].id}"):
        compute_fbank.main(
            [
                *flags(
                    recordings=str(tmp_path / "recs.jsonl.gz"),
                    supervisions=str(tmp_path / "sups.jsonl.gz"),
                    require_text="true",
                    out_cuts=str(tmp_path / "out.jsonl.gz"),
                ),
            ]
        )
    # a cut shorter than the analysis window is skipped and counted, not fatal
    cuts = CutSet.from_manifests(recordings=recs, supervisions=sups).to_eager()
    tiny = cuts[0].truncate(duration=0.02).with_id("too-short")
    CutSet.from_cuts([tiny, *cuts]).to_file(tmp_path / "in.jsonl.gz")
    compute_fbank.main(
        ["--in-cuts", str(tmp_path / "in.jsonl.gz"), "--out-cuts", str(tmp_path / "ok.jsonl.gz")]
    )
    out = CutSet.from_file(tmp_path / "ok.jsonl.gz")
    assert len(out) == len(cuts) and "too-short" not in {c.id for c in out}


def test_fbank_pieces_resume(mini_corpus: Path, tmp_path: Path):
    recs, sups = _copy_split(mini_corpus, tmp_path)
    recs.to_file(tmp_path / "recs.jsonl.gz")
    sups.to_file(tmp_path / "sups.jsonl.gz")
    out = tmp_path / "fbank" / "cuts.jsonl.gz"
    args = [
        *flags(
            recordings=str(tmp_path / "recs.jsonl.gz"),
            supervisions=str(tmp_path / "sups.jsonl.gz"),
            out_cuts=str(out),
            num_splits="2",
        ),
    ]
    compute_fbank.main([*args, "--split-index", "1"])  # one scheduler job finished, the other died
    assert not out.exists()
    part1 = tmp_path / "fbank" / "cuts.parts" / "cuts.1.jsonl.gz"
    stamp = part1.stat().st_mtime_ns
    compute_fbank.main(args)
    assert part1.stat().st_mtime_ns == stamp  # not recomputed
    assert len(CutSet.from_file(out)) == len(sups)
    assert all(c.has_features for c in CutSet.from_file(out))
