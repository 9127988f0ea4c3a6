"""Fake AISHELL-1: ``data_aishell/{wav/<split>/<speaker>/<id>.wav, transcript/...}``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from tests.fake_corpora.audio import noise


@dataclass
class FakeAishell:
    corpus_dir: Path
    # split -> utterance id -> normalised text expected in the manifests
    texts: dict[str, dict[str, str]]
    num_samples: dict[str, int]  # utterance id -> samples of its wav (16 kHz, mono)
    dropped: dict[str, str]  # utterance id -> why the preparer drops it
    untranscribed: list[str]  # wav files without a transcript line
    missing_audio: tuple[int, str] | None = None  # (transcript line number, utterance id) if asked


# (split, speaker, utterance id, seconds, transcript words or None for no transcript line)
_AISHELL_UTTERANCES = [
    ("train", "S0002", "BAC009S0002W0122", 1.5, "而 对 楼市 成交 抑制 作用 最 大 的 限 购"),
    ("train", "S0002", "BAC009S0002W0123", 1.4, "我 买 了 3 个 ａ 型 号"),
    ("train", "S0002", "BAC009S0002W0124", 1.2, ""),
    ("train", "S0002", "BAC009S0002W0125", 0.6, "太 短"),
    ("train", "S0002", "BAC009S0002W0126", 1.3, None),
    ("train", "S0003", "BAC009S0003W0121", 1.3, "今天 天气 很 好"),
    ("dev", "S0724", "BAC009S0724W0121", 1.2, "你好 世界"),
    ("test", "S0764", "BAC009S0764W0121", 0.7, "测试 一下"),
    ("test", "S0764", "BAC009S0764W0122", 1.1, "ＯＫ 谷歌 打开 灯"),
]
_AISHELL_EXPECTED = {
    "BAC009S0002W0122": "而对楼市成交抑制作用最大的限购",
    "BAC009S0002W0123": "我买了三个A型号",
    "BAC009S0003W0121": "今天天气很好",
    "BAC009S0724W0121": "你好世界",
    "BAC009S0764W0121": "测试一下",  # 0.7 s, but test sets are not duration-filtered
    "BAC009S0764W0122": "OK谷歌打开灯",
}
_AISHELL_DROPPED = {
    "BAC009S0002W0124": "empty transcript after normalisation",
    "BAC009S0002W0125": "shorter than 1.0 s",
}


def make_aishell(root: str | Path, missing_audio: bool = False) -> FakeAishell:
    """``root/data_aishell/{wav/<split>/<speaker>/<id>.wav, transcript/aishell_transcript_v0.8.txt}``.

    ``missing_audio`` appends a transcript line whose wav file does not exist.
    """
    root = Path(root)
    base = root / "data_aishell"
    transcript_lines = []
    num_samples = {}
    texts: dict[str, dict[str, str]] = {"train": {}, "dev": {}, "test": {}}
    for seed, (split, speaker, utt_id, seconds, words) in enumerate(_AISHELL_UTTERANCES):
        wav = base / "wav" / split / speaker / f"{utt_id}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        samples = noise(seconds, 16000, seed)
        sf.write(wav, samples, 16000, subtype="PCM_16")
        num_samples[utt_id] = samples.shape[0]
        if words is not None:
            transcript_lines.append(f"{utt_id} {words}".rstrip())
        if utt_id in _AISHELL_EXPECTED:
            texts[split][utt_id] = _AISHELL_EXPECTED[utt_id]
    missing = None
    if missing_audio:
        transcript_lines.append("BAC009S0002W0999 不 存在 的 音频")
        missing = (len(transcript_lines), "BAC009S0002W0999")
    transcript = base / "transcript" / "aishell_transcript_v0.8.txt"
    transcript.parent.mkdir(parents=True, exist_ok=True)
    transcript.write_text("\n".join(transcript_lines) + "\n", encoding="utf-8")
    return FakeAishell(
        corpus_dir=root,
        texts=texts,
        num_samples=num_samples,
        dropped=dict(_AISHELL_DROPPED),
        untranscribed=[u for _, _, u, _, w in _AISHELL_UTTERANCES if w is None],
        missing_audio=missing,
    )
