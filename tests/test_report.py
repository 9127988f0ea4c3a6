"""less.bin.report: rows per task x system x iteration x test, pseudo-label columns, plots."""

import json
from pathlib import Path

from less.bin import report


def result(exp: Path, rel: str, test: str, metric: str, value: float, command: str = "cmd",
           settings: dict[str, float] | None = None) -> None:
    path = exp / rel / f"results-{test}-epoch-3_avg-2.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    best = ""
    if settings:
        best = (max if metric == "BLEU" else min)(settings, key=settings.get)
        value = settings[best]
    path.write_text(json.dumps({"test": test, "metric": metric, "value": value, "best_setting": best,
                                "command": command, "settings": settings}))


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
    assert "| asr | L | 1 | test_wild | CER | 36.25 | - | 0.50 / 1.25 | 30.00 | 25.00 | 12.50 |" in lines
    assert "| ast | S | 0 | test_wild | BLEU | 20.00 |" in text
    assert "| asr | S | 0 | test_wild | ctc-greedy-search | CER | 45.00 | - |" in text  # other methods
    assert "`decode S`" in text  # the command behind the number
    assert (exp / "RESULTS-asr.png").read_bytes()[:4] == b"\x89PNG"


def test_settings_are_chosen_on_dev_not_on_each_test_set(tmp_path: Path):
    exp = tmp_path / "exp"
    method = "asr/iter0/attention-decoder-rescoring"
    result(exp, method, "dev", "CER", 0, settings={"scale_0.5": 20.0, "scale_1.0": 18.0, "scale_2.0": 19.0})
    result(exp, method, "test_wild", "CER", 0, settings={"scale_0.5": 50.0, "scale_1.0": 48.0, "scale_2.0": 45.0})
    result(exp, "ast/iter0/attention-beam-search", "dev", "BLEU", 0, settings={"a": 10.0, "b": 12.0})
    result(exp, "ast/iter0/attention-beam-search", "test_wild", "BLEU", 0, settings={"a": 9.0, "b": 7.0})
    # no dev result: the set's own best, marked as such
    result(exp, "asr/N/iter1/attention-decoder-rescoring", "test_wild", "CER", 0, settings={"x": 30.0, "y": 31.0})
    report.main(["--exp-dir", str(exp), "--pl-dir", str(tmp_path / "none")])
    text = (exp / "RESULTS.md").read_text()
    assert "| asr | S | 0 | test_wild | CER | 48.00 | scale_1.0 (on dev) |" in text  # not 45.00
    assert "| asr | S | 0 | dev | CER | 18.00 | scale_1.0 (on dev) |" in text
    assert "| ast | S | 0 | test_wild | BLEU | 7.00 | b (on dev) |" in text  # BLEU: higher is better on dev
    assert "| asr | N | 1 | test_wild | CER | 30.00 | x (best on this set) |" in text


def test_groups_of_runs_are_averaged_over_seeds(tmp_path: Path):
    method = "asr/iter0/attention-decoder-rescoring"
    runs = {"scratch": [], "birq": []}
    for name, values in (("scratch", (30.0, 34.0, 32.0)), ("birq", (26.0, 27.0))):
        for i, value in enumerate(values):
            run = tmp_path / f"{name}_s{i}"
            runs[name].append(run)
            # dev picks scale_1.0 in every run; the test value is read at that scale
            result(run, method, "dev", "CER", 0, settings={"scale_0.5": 50.0, "scale_1.0": 40.0})
            result(run, method, "test_wild", "CER", 0, settings={"scale_0.5": value - 5, "scale_1.0": value})
            result(run, "asr/iter0/ctc-greedy-search", "test_wild", "CER", 99.0)
            if name == "birq":
                abx = run / "asr" / "ssl_birq" / "abx_test_wild.json"
                abx.parent.mkdir(parents=True)
                abx.write_text(json.dumps({"layers": {"2": {"within": 0.1 + i / 10, "across": 0.2},
                                                      "fbank": {"within": 0.3, "across": 0.4}}}))
    out = tmp_path / "cmp.md"
    report.main(["--task", "asr", "--out", str(out),
                 "--group", "scratch=" + ",".join(map(str, runs["scratch"])),
                 "--group", "birq=" + ",".join(map(str, runs["birq"]))])
    text = out.read_text()
    assert "| scratch | S | 0 | test_wild | CER | 32.00 | 2.00 | 3 | 30.00, 34.00, 32.00 |" in text
    assert "| birq | S | 0 | test_wild | CER | 26.50 | 0.71 | 2 | 26.00, 27.00 |" in text
    assert "99.00" not in text  # only the primary method
    assert "| birq | test_wild | 2 | 15.00 | 7.07 | 20.00 | 0.00 | 2 |" in text
    lines = text.splitlines()
    assert lines.index(next(x for x in lines if "| birq | test_wild | fbank |" in x)) < lines.index(
        next(x for x in lines if "| birq | test_wild | 2 |" in x))
