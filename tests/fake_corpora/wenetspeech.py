"""Fake WenetSpeech: ``WenetSpeech.json`` + 16 kHz mono Ogg Opus files below ``audio/``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from tests.fake_corpora.audio import noise


@dataclass
class FakeWenetSpeech:
    corpus_dir: Path
    # split -> sid -> normalised text (the training subsets hold it as custom["ref_text"])
    texts: dict[str, dict[str, str]]
    audio_seconds: dict[str, float]  # aid -> duration of its opus file
    dropped: dict[str, str]  # sid -> reason
    sampling_rate: int = 16000


# aid, path, seconds, [(sid suffix, begin, end, subsets, text)]
_WENET_AUDIOS = [
    (
        "Y0000000000_--5llN02F84",
        "audio/train/youtube/B00000/Y0000000000_--5llN02F84.opus",
        8.0,
        [
            ("S00000", 0.20, 2.40, ["L", "M", "S"], "怎么样这些日子住得还习惯吧"),
            ("S00001", 2.50, 3.30, ["L", "M", "S"], "<SIL>"),
            ("S00002", 3.40, 5.60, ["L", "M"], "挺好的"),
            ("S00003", 5.70, 7.90, ["L", "M", "S"], "我买了3斤苹果<COMMA>很便宜"),
        ],
    ),
    (
        "X0000000001_podcast",
        "audio/train/podcast/B00001/X0000000001_podcast.opus",
        6.0,
        [
            ("S00000", 0.00, 0.60, ["L", "M", "S"], "对"),
            ("S00001", 0.80, 3.00, ["L", "M", "S"], "<MUSIC>"),
            ("S00002", 3.10, 5.90, ["L", "M", "S"], "OK那我们开始吧"),
        ],
    ),
    (
        "X0000000002_l_only",
        "audio/train/podcast/B00001/X0000000002_l_only.opus",
        3.0,
        [
            ("S00000", 0.50, 2.50, ["L"], "只在L里面"),
        ],
    ),
    (
        "DEV_0000000001",
        "audio/dev/podcast/B00000/DEV_0000000001.opus",
        4.0,
        [
            ("S00000", 0.30, 1.90, ["DEV"], "开发集第一句"),
            ("S00001", 2.00, 2.50, ["DEV"], "好"),
            ("S00002", 2.60, 3.90, ["DEV"], "<NOISE>"),
        ],
    ),
    (
        "TEST_NET_0000000001",
        "audio/test_net/youtube/B00000/TEST_NET_0000000001.opus",
        3.0,
        [
            ("S00000", 0.10, 2.80, ["TEST_NET"], "网络测试"),
        ],
    ),
    (
        "TEST_MEETING_0000000001",
        "audio/test_meeting/B00000/TEST_MEETING_0000000001.opus",
        4.0,
        [
            ("S00000", 0.50, 3.50, ["TEST_MEETING"], "会议测试的句子"),
            ("S00001", 3.60, 3.90, ["TEST_MEETING"], "<OTHER>"),
        ],
    ),
]
_WENET_EXPECTED = {
    "S": {
        "Y0000000000_--5llN02F84_S00000": "怎么样这些日子住得还习惯吧",
        "Y0000000000_--5llN02F84_S00003": "我买了三斤苹果很便宜",
        "X0000000001_podcast_S00002": "OK那我们开始吧",
    },
    "DEV": {"DEV_0000000001_S00000": "开发集第一句", "DEV_0000000001_S00001": "好"},
    "TEST_NET": {"TEST_NET_0000000001_S00000": "网络测试"},
    "TEST_MEETING": {"TEST_MEETING_0000000001_S00000": "会议测试的句子"},
}
_WENET_EXPECTED["M"] = {**_WENET_EXPECTED["S"], "Y0000000000_--5llN02F84_S00002": "挺好的"}
_WENET_EXPECTED["L"] = {**_WENET_EXPECTED["M"], "X0000000002_l_only_S00000": "只在L里面"}
_WENET_DROPPED = {
    "Y0000000000_--5llN02F84_S00001": "text tagged <SIL>",
    "X0000000001_podcast_S00000": "shorter than 1.0 s",
    "X0000000001_podcast_S00001": "text tagged <MUSIC>",
    "DEV_0000000001_S00002": "text tagged <NOISE>",
    "TEST_MEETING_0000000001_S00001": "text tagged <OTHER>",
}


def make_wenetspeech(
    root: str | Path, missing_audio: bool = False, braces: bool = False
) -> FakeWenetSpeech:
    """``root/WenetSpeech.json`` + ``root/audio/.../<aid>.opus`` (16 kHz mono Ogg Opus).

    ``missing_audio`` leaves out the opus file of the first training audio;
    ``braces`` spells subset labels GigaSpeech-style (``{S}``).
    """
    root = Path(root)
    audios = []
    seconds = {}
    for seed, (aid, rel_path, duration, segments) in enumerate(_WENET_AUDIOS):
        path = root / rel_path
        if not (missing_audio and seed == 0):
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, noise(duration, 16000, seed)[:, 0], 16000, format="OGG", subtype="OPUS")
        seconds[aid] = duration
        audios.append(
            {
                "aid": aid,
                "duration": duration,
                "md5": "0" * 32,
                "path": rel_path,
                "source": "youtube" if aid.startswith("Y") else "podcast",
                "tags": ["drama"],
                "url": f"https://example.invalid/{aid}",
                "segments": [
                    {
                        "sid": f"{aid}_{suffix}",
                        "confidence": 1.0,
                        "begin_time": begin,
                        "end_time": end,
                        "subsets": [f"{{{s}}}" if braces else s for s in subsets],
                        "text": text,
                    }
                    for suffix, begin, end, subsets, text in segments
                ],
            }
        )
    root.mkdir(parents=True, exist_ok=True)
    (root / "WenetSpeech.json").write_text(
        json.dumps(
            {"dataset": "WenetSpeech", "version": "v1.0", "audios": audios},
            ensure_ascii=False,
            indent=4,
        ),
        encoding="utf-8",
    )
    return FakeWenetSpeech(
        corpus_dir=root,
        texts={split: dict(texts) for split, texts in _WENET_EXPECTED.items()},
        audio_seconds=seconds,
        dropped=dict(_WENET_DROPPED),
    )
