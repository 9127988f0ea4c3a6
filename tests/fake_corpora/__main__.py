"""``python -m tests.fake_corpora CORPUS OUT_DIR``: build a fake corpus, print its paths as JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tests.fake_corpora import make_aishell, make_fisher_callhome, make_wenetspeech


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Build a tiny fake corpus in its real on-disk layout."
    )
    parser.add_argument("corpus", choices=("aishell", "wenetspeech", "fisher-callhome"))
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    if args.corpus == "aishell":
        built = make_aishell(args.out_dir)
        paths = {"corpus_dir": built.corpus_dir}
    elif args.corpus == "wenetspeech":
        built = make_wenetspeech(args.out_dir)
        paths = {"corpus_dir": built.corpus_dir}
    else:
        built = make_fisher_callhome(args.out_dir)
        paths = {
            name: getattr(built, name)
            for name in (
                "fisher_speech_dir",
                "fisher_transcript_dir",
                "callhome_speech_dir",
                "callhome_transcript_dir",
                "translation_dir",
            )
        }
    print(json.dumps({name: str(path) for name, path in paths.items()}, indent=2))


if __name__ == "__main__":
    main()
