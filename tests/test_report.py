"""less.bin.report: rows per task x system x iteration x test, pseudo-label columns, plots."""

import json
from pathlib import Path

from less.bin import report


def result(exp: Path, rel: str, test: str, metric: str, value: float, command: str = "cmd") -> None:
    path = exp / rel / f"results-{test}-epoch-3_avg-2.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"test": test, "metric": metric, "value": value, "best_setting": "",
                                "command": command}))


def test_report_rows_pl_columns_and_plot(tmp_path: Path):
    exp, pl = tmp_path / "exp", tmp_path / "pl"
    result(exp, "asr/iter0/attention-decoder-rescoring", "test_wild", "CER", 40.0, "decode S")
    result(exp, "asr/iter0/ctc-greedy-search", "test_wild", "CER", 45.0)
    result(exp, "asr/N/iter1/attention-decoder-rescoring", "test_wild", "CER", 38.5)
    result(exp, "asr/L/iter1/attention-decoder-rescoring", "test_wild", "CER", 36.25)
    result(exp, "ast/iter0/attention-beam-search", "test_wild", "BLEU", 20.0)
    (pl / "asr" / "L" / "iter1").mkdir(parents=True)
    (pl / "asr" / "L" / "iter1" / "unsup_wild_cuts_kept.report.json").write_text(json.dumps({
        "hours_kept": 0.5, "hours_in": 1.25,
        "label_error": {"teacher label error, all cuts": 0.30, "LLM label error, all cuts": 0.25,
                        "training label error, kept cuts": 0.125}}))
    report.main(["--exp-dir", str(exp), "--pl-dir", str(pl)])
    text = (exp / "RESULTS.md").read_text()
    lines = text.splitlines()
    main_rows = [line for line in lines if line.startswith("| asr |") and "test_wild | CER" in line]
    # primary method only in the main table, S before N before L
    assert [row.split("|")[2].strip() for row in main_rows] == ["S", "N", "L"]
    assert "| asr | L | 1 | test_wild | CER | 36.25 | 0.50 / 1.25 | 30.00 | 25.00 | 12.50 |" in lines
    assert "| ast | S | 0 | test_wild | BLEU | 20.00 |" in text
    assert "| asr | S | 0 | test_wild | ctc-greedy-search | CER | 45.00 |" in text  # other methods
    assert "`decode S`" in text  # the command behind the number
    assert (exp / "RESULTS-asr.png").read_bytes()[:4] == b"\x89PNG"
