"""Tests of the synthetic mini corpus builder (less.local.mini), on the tiny profile."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import pytest

from less.data import espeak
from less.data.text import normalize, number_to_words
from less.local.mini import augment, grammar, morphology
from less.local.mini.plan import PROFILES, SPLITS, plan_texts
from less.local.mini.prepare import manifest_paths, prepare, text_only_paths

SEED = 42


@pytest.fixture(scope="module")
def corpus(mini_corpus) -> Path:
    """The session's tiny corpus (tests/conftest.py), built with seed 42."""
    return mini_corpus


def _load(out_dir: Path, task: str, split: str):
    from lhotse import load_manifest

    recordings_path, supervisions_path = manifest_paths(out_dir, task, split)
    return load_manifest(recordings_path), load_manifest(supervisions_path)


def _source_text(supervision) -> str:
    return supervision.text if supervision.text is not None else supervision.custom["ref_text"]


# ------------------------------------------------------------------------- grammar


@pytest.mark.parametrize("domain", ["read", "conversational"])
def test_grammar_is_deterministic_per_seed(domain):
    a = grammar.SentenceSampler(domain, 5)
    b = grammar.SentenceSampler(domain, 5)
    c = grammar.SentenceSampler(domain, 6)
    sentences_a = [a.sample() for _ in range(50)]
    assert sentences_a == [b.sample() for _ in range(50)]
    assert sentences_a != [c.sample() for _ in range(50)]


@pytest.mark.parametrize("domain", ["read", "conversational"])
def test_sentences_are_normalised_and_short(domain):
    sampler = grammar.SentenceSampler(domain, 1)
    for _ in range(300):
        s = sampler.sample()
        assert s.zh == normalize(s.zh_display, "zh") and s.es == normalize(s.es_display, "es")
        assert s.en == normalize(s.en, "en") and s.es == s.es.lower()
        assert 6 <= len(s.zh) <= 16 and 5 <= len(s.es.split()) <= 12
        assert s.domain == domain


def test_numbers_agree_across_languages():
    """Every template with a number slot renders that number in all three languages."""
    rng = random.Random(0)
    checked = 0
    for domain in ("read", "conversational"):
        for template in grammar.templates(domain):
            if "n" not in template.slots:
                continue
            values = [v for v in template.slots["n"].items if v >= 3 and v % 10 != 1 and v != 11]
            for _ in range(20):
                slots = {k: rng.choices(s.items, s.weights)[0] for k, s in template.slots.items()}
                slots["n"] = rng.choice(values)
                rendered = template.render(slots)
                if rendered is None:
                    continue
                zh, es, en = rendered
                n = slots["n"]
                assert number_to_words(n, "zh") in zh, (template.name, zh)
                es_words = (
                    number_to_words(n, "es").replace("ientos", "ientas")
                    if "ientas" in es
                    else number_to_words(n, "es")
                )
                assert es_words in es, (template.name, es)
                assert number_to_words(n, "en") in en, (template.name, en)
                checked += 1
    assert checked > 100


def test_spanish_and_english_agreement_helpers():
    m = morphology
    cases = [
        (m.es_count(21, "m"), "veintiún"),
        (m.es_count(21, "f"), "veintiuna"),
        (m.es_count(31, "m"), "treinta y un"),
        (m.es_count(1, "f"), "una"),
        (m.es_count(200, "f"), "doscientas"),
        (m.es_count(500, "f"), "quinientas"),
        (m.es_adjective("nuevo", "f", True), "nuevas"),
        (m.es_adjective("azul", "m", True), "azules"),
        (m.es_contract("vamos a el parque de el pueblo"), "vamos al parque del pueblo"),
        (m.es_conjugate("jugar al tenis", "pres1s"), "juego al tenis"),
        (m.es_conjugate("leer", "pret3p"), "leyeron"),
        (m.en_indefinite("old car"), "an"),
        (m.en_indefinite("useful pen"), "a"),
        (m.zh_count(2), "两"),
        (m.zh_count(12), "十二"),
    ]
    for got, expected in cases:
        assert got == expected


def test_domains_differ_and_spaces_are_large():
    read_sampler, conv_sampler = (
        grammar.SentenceSampler("read", 3),
        grammar.SentenceSampler("conversational", 3),
    )
    read = [read_sampler.sample().es for _ in range(400)]
    conv = [conv_sampler.sample().es for _ in range(400)]
    read_words = {w for s in read for w in s.split()}
    conv_words = {w for s in conv for w in s.split()}
    assert "alcalde" in read_words or "alcaldesa" in read_words
    assert not {"alcalde", "alcaldesa", "ayuntamiento"} & conv_words
    assert {"quieres", "creo", "vamos"} & conv_words and not {"quieres", "creo"} & read_words
    assert len(read_words & conv_words) > 50  # a shared vocabulary
    for domain in ("read", "conversational"):
        assert grammar.assert_large_space(domain) >= 1e7


# ---------------------------------------------------------------------- synthesis


def test_espeak_voices_every_character_and_flags_unknown_ones():
    sampler = grammar.SentenceSampler("conversational", 11)
    characters = {c for _ in range(300) for c in sampler.sample().zh}
    assert espeak.unvoiced_characters(characters) == []
    assert espeak.unvoiced_characters({"\U00020000"}) == [
        "\U00020000"
    ]  # read as its code point by espeak
    with pytest.raises(espeak.EspeakError):
        espeak.check_voice("no-such-voice")


def test_synthesis_is_16k_and_deterministic():
    a = espeak.synthesize("你明天有空吗？", "cmn+f3", rate=150, pitch=60)
    b = espeak.synthesize("你明天有空吗？", "cmn+f3", rate=150, pitch=60)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert 0.5 < len(a) / espeak.SAMPLE_RATE < 4.0 and np.sqrt(np.mean(a**2)) > 0.01


def test_augmentation_snr_and_gain():
    rng = np.random.default_rng(0)
    speech = espeak.synthesize("el profesor compró tres libros nuevos", "es")
    estimates = []
    for snr in (5.0, 20.0):
        noise = augment.colored_noise(len(speech), "pink", rng)
        estimates.append(augment.estimate_snr_db(augment.add_noise(speech, noise, snr)))
    assert estimates[0] + 5 < estimates[1] < augment.estimate_snr_db(speech)
    loud, applied = augment.apply_gain(speech, 30.0)
    assert np.abs(loud).max() <= 0.99 + 1e-6 and applied < 30.0


# ------------------------------------------------------------------------- corpus


def test_manifests_load_validate_and_point_to_16k_audio(corpus):
    import soundfile
    from lhotse import CutSet
    from lhotse.qa import validate_recordings_and_supervisions

    for task in ("asr", "ast"):
        for split in SPLITS:
            recordings, supervisions = _load(corpus, task, split)
            assert len(recordings) > 0 and len(supervisions) >= len(recordings)
            validate_recordings_and_supervisions(recordings, supervisions)
            assert len(
                CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
            ) == len(recordings)
            for recording in recordings:
                path = recording.sources[0].source
                assert path.endswith(".flac") and Path(path).parent.name == split
                info = soundfile.info(path)
                assert (
                    info.samplerate == 16000
                    and info.channels == 1
                    and recording.sampling_rate == 16000
                )
                audio = recording.load_audio()[0]
                assert np.sqrt(np.mean(audio**2)) > 1e-3, recording.id


def test_supervision_fields(corpus):
    for task, language in (("asr", "zh"), ("ast", "es")):
        for split in SPLITS:
            _, supervisions = _load(corpus, task, split)
            for s in supervisions:
                assert (
                    s.language == language
                    and s.speaker
                    and s.custom["condition"] in ("clean", "wild")
                )
                if split == "unsup_wild":
                    assert s.text is None and "translated_text" not in s.custom
                    assert s.custom["ref_text"] == normalize(s.custom["ref_text"], language)
                    if task == "ast":
                        assert s.custom["ref_translated_text"]["en"]
                    continue
                assert s.text and s.text == normalize(s.text, language)
                if task == "ast":
                    english = s.custom["translated_text"]["en"]
                    assert isinstance(english, str) and english == normalize(english, "en")
                else:
                    assert "translated_text" not in s.custom
                expected = (
                    "clean"
                    if split in ("train_sup", "test_clean")
                    else "wild"
                    if split == "test_wild"
                    else None
                )
                if expected:
                    assert s.custom["condition"] == expected
        _, dev = _load(corpus, task, "dev")
        assert {s.custom["domain"] for s in dev} == {"read", "conversational"}


def test_test_and_dev_sentences_never_appear_elsewhere(corpus):
    for task in ("asr", "ast"):
        texts = {
            split: {_source_text(s) for s in _load(corpus, task, split)[1]} for split in SPLITS
        }
        paths = text_only_paths(corpus, task)
        source_lang = "zh" if task == "asr" else "es"
        text_only = set(paths[source_lang].read_text(encoding="utf-8").splitlines())
        assert len(text_only) == PROFILES["tiny"].text_only
        seen_in_training = texts["train_sup"] | texts["unsup_wild"] | text_only
        for held_out in ("dev", "test_clean", "test_wild"):
            assert not texts[held_out] & seen_in_training, (task, held_out)
        assert not texts["dev"] & (texts["test_clean"] | texts["test_wild"])
        if task == "ast":
            english = paths["en"].read_text(encoding="utf-8").splitlines()
            assert len(english) == len(text_only)
            test_english = {
                s.custom["translated_text"]["en"]
                for sp in ("test_clean", "test_wild")
                for s in _load(corpus, task, sp)[1]
            }
            assert not test_english & set(english)


def test_wild_audio_is_noisier_than_clean(corpus):
    for task in ("asr", "ast"):
        snr = {"clean": [], "wild": []}
        for split in ("train_sup", "test_clean", "test_wild", "dev"):
            recordings, supervisions = _load(corpus, task, split)
            for s in supervisions:
                audio = recordings[s.recording_id].load_audio()[0]
                snr[s.custom["condition"]].append(augment.estimate_snr_db(audio))
        assert np.median(snr["clean"]) > np.median(snr["wild"]) + 10.0, (task, snr)


def test_long_recordings_hold_several_separated_utterances(corpus):
    low, high = PROFILES["tiny"].utterances_per_recording
    for task in ("asr", "ast"):
        recordings, supervisions = _load(corpus, task, "unsup_wild")
        for recording in recordings:
            segments = sorted(
                (s for s in supervisions if s.recording_id == recording.id), key=lambda s: s.start
            )
            assert low <= len(segments) <= high
            assert segments[0].start > 0.3 and segments[-1].end < recording.duration
            for previous, current in zip(segments, segments[1:]):
                assert current.start - previous.end >= 0.29
            audio = recording.load_audio()[0]
            gap_start, gap_end = (
                segments[0].end + 0.35,
                segments[1].start,
            )  # skip the reverberant tail
            noise_floor = (
                np.mean(audio[int(gap_start * 16000) : int(gap_end * 16000)] ** 2)
                if gap_end > gap_start + 0.05
                else 0.0
            )
            in_speech = np.mean(
                audio[int(segments[0].start * 16000) : int(segments[0].end * 16000)] ** 2
            )
            assert (
                noise_floor > 0 or gap_end <= gap_start + 0.05
            )  # background noise runs through the pauses
            assert in_speech > noise_floor


def test_same_seed_same_corpus_other_seed_other_texts(corpus, tmp_path):
    prepare(tmp_path, profile="tiny", seed=SEED, tasks=("asr",), num_jobs=1)
    for split in SPLITS:
        rec_a, sup_a = _load(corpus, "asr", split)
        rec_b, sup_b = _load(tmp_path, "asr", split)
        assert [(s.id, _source_text(s), s.start, s.duration) for s in sup_a] == [
            (s.id, _source_text(s), s.start, s.duration) for s in sup_b
        ]
        for a, b in zip(rec_a, rec_b):
            digest_a = hashlib.sha256(Path(a.sources[0].source).read_bytes()).hexdigest()
            assert digest_a == hashlib.sha256(Path(b.sources[0].source).read_bytes()).hexdigest(), (
                a.id
            )
    sizes = PROFILES["tiny"]
    assert (
        plan_texts(SEED, "asr", sizes)["test_clean"]
        != plan_texts(SEED + 1, "asr", sizes)["test_clean"]
    )


def test_rerun_skips_existing_splits_and_refuses_another_seed(corpus):
    before = {p: p.stat().st_mtime_ns for p in (corpus / "manifests").glob("*.jsonl.gz")}
    summaries = prepare(corpus, profile="tiny", seed=SEED, tasks=("asr", "ast"), num_jobs=1)
    assert all(s.seconds is None for s in summaries) and len(summaries) == 2 * len(SPLITS)
    assert {p: p.stat().st_mtime_ns for p in (corpus / "manifests").glob("*.jsonl.gz")} == before
    with pytest.raises(RuntimeError, match="seed"):
        prepare(corpus, profile="tiny", seed=SEED + 1, tasks=("asr",), num_jobs=1)


def test_conditions_set_the_gap_between_supervised_and_wild_speech(tmp_path):
    """--conditions: default has more supervised voices and milder wild speech than hard."""
    from less.local.mini.plan import CONDITIONS, PROFILES, plan_split

    sizes = PROFILES["default"]
    plans = {}
    for name in ("default", "hard"):
        texts = plan_texts(SEED, "asr", sizes, CONDITIONS[name].sup_conversational)
        plans[name] = {
            split: plan_split(SEED, "asr", split, sizes, texts[split], tmp_path, CONDITIONS[name])
            for split in ("train_sup", "test_wild")
        }
    unseen = {}
    for name, plan in plans.items():
        conditions = CONDITIONS[name]
        supervised = [u for utts in plan["train_sup"].utterances for u in utts]
        assert all(u.wild is None for u in supervised)  # clean, whatever the grammar
        share = sum(u.sentence.domain == "conversational" for u in supervised) / len(supervised)
        assert abs(share - conditions.sup_conversational) < 0.01
        heard = {c for u in supervised for c in u.sentence.zh}
        wild_chars = [
            c for utts in plan["test_wild"].utterances for u in utts for c in u.sentence.zh
        ]
        unseen[name] = sum(c not in heard for c in wild_chars) / len(wild_chars)
        voices = [u.voice for u in supervised]
        assert {v.voice for v in voices} == set(conditions.clean_voices["asr"])
        assert all(conditions.clean_rate[0] <= v.rate <= conditions.clean_rate[1] for v in voices)
        wild = [u.wild for utts in plan["test_wild"].utterances for u in utts]
        snrs = [w.snr_db for w in wild]
        assert conditions.snr_db[0] <= min(snrs) and max(snrs) <= conditions.snr_db[1]
        low, high = conditions.utterance_padding_s
        for spec in plan["train_sup"].specs + plan["test_wild"].specs:
            assert low <= spec.lead_s <= high and low <= spec.tail_s <= high
        rooms = [w.room for w in wild if w.room is not None]
        assert all(conditions.rt60_s[0] <= r.rt60 <= conditions.rt60_s[1] for r in rooms)
        share = len(rooms) / len(wild)
        assert abs(share - conditions.reverb_probability) < 0.1, (name, share)
    assert len({v for v in CONDITIONS["default"].clean_voices["asr"]}) > len(
        CONDITIONS["hard"].clean_voices["asr"]
    )
    mean_snr = {
        n: np.mean([u.wild.snr_db for utts in p["test_wild"].utterances for u in utts])
        for n, p in plans.items()
    }
    assert mean_snr["default"] > mean_snr["hard"] + 5
    # the supervised speech covers the wild speech's characters, not only its sounds
    assert unseen["default"] < 0.03 and unseen["hard"] > 0.2, unseen
    # the same texts either way: only how they are spoken differs
    assert [u.sentence for u in plans["default"]["test_wild"].utterances[0]] == [
        u.sentence for u in plans["hard"]["test_wild"].utterances[0]
    ]


def test_a_corpus_refuses_other_conditions(corpus):
    with pytest.raises(RuntimeError, match="conditions"):
        prepare(corpus, profile="tiny", seed=SEED, tasks=("asr",), num_jobs=1, conditions="hard")
    with pytest.raises(ValueError, match="conditions"):
        prepare(corpus, profile="tiny", seed=SEED, tasks=("asr",), num_jobs=1, conditions="loud")


def test_utterances_have_silence_around_the_speech(tmp_path):
    """lead_s / tail_s: silence before and after a clean utterance, noise there for a wild one."""
    from less.local.mini.synthesis import (
        SAMPLE_RATE,
        UtteranceSpec,
        VoiceSettings,
        WildCondition,
        render,
    )

    voice = VoiceSettings("cmn", 170, 50)
    text = "明天我们去北京吧"
    tight = render(UtteranceSpec(str(tmp_path / "tight.flac"), text, voice, 1))
    padded = render(
        UtteranceSpec(str(tmp_path / "padded.flac"), text, voice, 1, lead_s=0.3, tail_s=0.2)
    )
    assert padded.num_samples == tight.num_samples + int(0.5 * SAMPLE_RATE)
    import soundfile

    audio, _ = soundfile.read(tmp_path / "padded.flac")
    lead, speech = audio[: int(0.3 * SAMPLE_RATE)], audio[int(0.3 * SAMPLE_RATE) :]
    assert np.abs(lead).max() < 1e-3 < np.abs(speech[: int(0.2 * SAMPLE_RATE)]).max()
    assert np.abs(audio[-int(0.2 * SAMPLE_RATE) :]).max() < 1e-3
    noisy = render(
        UtteranceSpec(
            str(tmp_path / "noisy.flac"),
            text,
            voice,
            1,
            WildCondition("pink", 10.0, 0.0, None),
            lead_s=0.3,
            tail_s=0.2,
        )
    )
    audio, _ = soundfile.read(noisy.audio_path)
    assert (
        np.sqrt(np.mean(audio[: int(0.3 * SAMPLE_RATE)] ** 2)) > 1e-3
    )  # the noise runs under the silence


def test_english_asr_task_speaks_the_english_side_and_hides_wild_transcripts(tmp_path):
    """asr_en: English speech of the grammar's English side; held-out sentences nowhere else; the
    wild transcripts hidden in ref_text; Mandarin and Spanish corpora unchanged by its presence
    (each task draws from its own seeds)."""

    prepare(tmp_path, profile="tiny", seed=SEED, tasks=("asr_en",), num_jobs=1)
    texts = {
        split: {_source_text(s) for s in _load(tmp_path, "asr_en", split)[1]} for split in SPLITS
    }
    for split, sentences in texts.items():
        assert sentences and all(t == normalize(t, "en") and t.isascii() for t in sentences), split
    text_only = set(
        text_only_paths(tmp_path, "asr_en")["en"].read_text(encoding="utf-8").splitlines()
    )
    assert len(text_only) == PROFILES["tiny"].text_only
    for held_out in ("dev", "test_clean", "test_wild"):
        assert not texts[held_out] & (texts["train_sup"] | texts["unsup_wild"] | text_only), (
            held_out
        )
    for sup in _load(tmp_path, "asr_en", "unsup_wild")[1]:
        assert sup.text is None and sup.custom["ref_text"] and sup.language == "en"
    train = _load(tmp_path, "asr_en", "train_sup")[1]
    assert all(s.language == "en" and s.text for s in train)
