"""less.bin.report: rows per task x system x iteration x test, pseudo-label columns, plots."""

import json
from pathlib import Path

import pytest

from less.bin import report
from tests.helpers import flags


def result(
    exp: Path,
    rel: str,
    test: str,
    metric: str,
    value: float,
    command: str = "cmd",
    settings: dict[str, float] | None = None,
) -> None:
    path = exp / rel / f"results-{test}-epoch-3_avg-2.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    best = ""
    if settings:
        best = (max if metric == "BLEU" else min)(settings, key=settings.get)
        value = settings[best]
    path.write_text(
        json.dumps(
            {
                "test": test,
                "metric": metric,
                "value": value,
                "best_setting": best,
                "command": command,
                "settings": settings,
            }
        )
    )


def test_report_rows_pl_columns_and_plot(tmp_path: Path):
    exp, pl = tmp_path / "exp", tmp_path / "pl"
    result(exp, "asr/iter0/attention-decoder-rescoring", "test_wild", "CER", 40.0, "decode S")
    result(exp, "asr/iter0/ctc-greedy-search", "test_wild", "CER", 45.0)
    result(exp, "asr/N/iter1/attention-decoder-rescoring", "test_wild", "CER", 38.5)
    result(exp, "asr/L/iter1/attention-decoder-rescoring", "test_wild", "CER", 36.25)
    result(exp, "ast/iter0/attention-beam-search", "test_wild", "BLEU", 20.0)
    (pl / "asr" / "L" / "iter1").mkdir(parents=True)
    (pl / "asr" / "L" / "iter1" / "unsup_wild_cuts_kept.report.json").write_text(
        json.dumps(
            {
                "hours_kept": 0.5,
                "hours_in": 1.25,
                "label_error": {
                    "teacher label error, all cuts": 0.30,
                    "LLM label error, all cuts": 0.25,
                    "training label error, kept cuts": 0.125,
                },
            }
        )
    )
    report.main(["--exp-dir", str(exp), "--pl-dir", str(pl)])
    text = (exp / "RESULTS.md").read_text()
    lines = text.splitlines()
    main_rows = [line for line in lines if line.startswith("| asr |") and "test_wild | CER" in line]
    # primary method only in the main table, S before N before L
    assert [row.split("|")[2].strip() for row in main_rows] == ["S", "N", "L"]
    assert (
        "| asr | L | 1 | test_wild | CER | 36.25 | - | 0.50 / 1.25 | 30.00 | 25.00 | 12.50 |"
        in lines
    )
    assert "| ast | S | 0 | test_wild | BLEU | 20.00 |" in text
    assert (
        "| asr | S | 0 | test_wild | ctc-greedy-search | CER | 45.00 | - |" in text
    )  # other methods
    assert "`decode S`" in text  # the command behind the number
    assert (exp / "RESULTS-asr.png").read_bytes()[:4] == b"\x89PNG"


def test_settings_are_chosen_on_dev_not_on_each_test_set(tmp_path: Path):
    exp = tmp_path / "exp"
    method = "asr/iter0/attention-decoder-rescoring"
    result(
        exp,
        method,
        "dev",
        "CER",
        0,
        settings={"scale_0.5": 20.0, "scale_1.0": 18.0, "scale_2.0": 19.0},
    )
    result(
        exp,
        method,
        "test_wild",
        "CER",
        0,
        settings={"scale_0.5": 50.0, "scale_1.0": 48.0, "scale_2.0": 45.0},
    )
    result(
        exp, "ast/iter0/attention-beam-search", "dev", "BLEU", 0, settings={"a": 10.0, "b": 12.0}
    )
    result(
        exp,
        "ast/iter0/attention-beam-search",
        "test_wild",
        "BLEU",
        0,
        settings={"a": 9.0, "b": 7.0},
    )
    # no dev result: the set's own best, marked as such
    result(
        exp,
        "asr/N/iter1/attention-decoder-rescoring",
        "test_wild",
        "CER",
        0,
        settings={"x": 30.0, "y": 31.0},
    )
    report.main(["--exp-dir", str(exp), "--pl-dir", str(tmp_path / "none")])
    text = (exp / "RESULTS.md").read_text()
    assert "| asr | S | 0 | test_wild | CER | 48.00 | scale_1.0 (on dev) |" in text  # not 45.00
    assert "| asr | S | 0 | dev | CER | 18.00 | scale_1.0 (on dev) |" in text
    assert (
        "| ast | S | 0 | test_wild | BLEU | 7.00 | b (on dev) |" in text
    )  # BLEU: higher is better on dev
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
            result(
                run,
                method,
                "test_wild",
                "CER",
                0,
                settings={"scale_0.5": value - 5, "scale_1.0": value},
            )
            result(run, "asr/iter0/ctc-greedy-search", "test_wild", "CER", 99.0)
            if name == "birq":
                abx = run / "asr" / "ssl_birq" / "abx_test_wild.json"
                abx.parent.mkdir(parents=True)
                abx.write_text(
                    json.dumps(
                        {
                            "layers": {
                                "2": {"within": 0.1 + i / 10, "across": 0.2},
                                "fbank": {"within": 0.3, "across": 0.4},
                            }
                        }
                    )
                )
    out = tmp_path / "cmp.md"
    report.main(
        [
            *flags(
                task="asr",
                out=str(out),
                group=[
                    "scratch=" + ",".join(map(str, runs["scratch"])),
                    "birq=" + ",".join(map(str, runs["birq"])),
                ],
            ),
        ]
    )
    text = out.read_text()
    assert "| scratch | S | 0 | test_wild | CER | 32.00 | 2.00 | 3 | 30.00, 34.00, 32.00 |" in text
    assert "| birq | S | 0 | test_wild | CER | 26.50 | 0.71 | 2 | 26.00, 27.00 |" in text
    assert "99.00" not in text  # only the primary method
    assert "| birq | test_wild | 2 | 15.00 | 7.07 | 20.00 | 0.00 | 2 |" in text
    lines = text.splitlines()
    assert lines.index(next(x for x in lines if "| birq | test_wild | fbank |" in x)) < lines.index(
        next(x for x in lines if "| birq | test_wild | 2 |" in x)
    )


# --- --paired: system A against system B over seeds, from the per-utterance recogs ------------

ZH_REFS = [
    "今天天气很好",
    "我们去公园",
    "他在北京工作",
    "你好朋友",
    "明天下雨吗",
    "这本书很有意思",
    "我喜欢喝茶",
    "火车晚点了",
]


def decoded(exp: Path, rel: str, test: str, items_by_setting: dict, task: str = "asr") -> None:
    """What less.bin.decode writes: recogs/errs per setting and the results JSON."""
    from less.decode.results import save_asr_results, save_bleu_results

    res_dir = exp / rel
    if task == "asr":
        scores = {
            k: v.percent
            for k, v in save_asr_results(
                res_dir, test, "epoch-3_avg-2", items_by_setting, "zh"
            ).items()
        }
        metric, pick = "CER", min
    else:
        scores = {
            k: v.score
            for k, v in save_bleu_results(res_dir, test, "epoch-3_avg-2", items_by_setting).items()
        }
        metric, pick = "BLEU", max
    best = pick(scores, key=scores.get)
    (res_dir / f"results-{test}-epoch-3_avg-2.json").write_text(
        json.dumps(
            {
                "test": test,
                "metric": metric,
                "value": scores[best],
                "best_setting": best,
                "command": "decode",
                "settings": scores,
            }
        )
    )


def drop_chars(text: str, count: int) -> str:
    return text[count:]


def make_seeds(
    tmp_path: Path, name: str, n_errors: tuple[int, ...], l_errors: tuple[int, ...]
) -> list[Path]:
    """One run per seed with S, N and L; N's and L's hypotheses drop n/l leading characters."""
    runs = []
    for seed, (n_err, l_err) in enumerate(zip(n_errors, l_errors)):
        run = tmp_path / f"{name}_s{seed}"
        runs.append(run)

        def items(k):
            return [
                (f"utt{i}", ref, drop_chars(ref, k if i % 2 else 0))
                for i, ref in enumerate(ZH_REFS)
            ]

        decoded(run, "asr/iter0/attention-decoder-rescoring", "test_wild", {"": items(3)})
        # two attention scales; dev picks scale_1.0, whose recogs must be the ones read
        decoded(
            run,
            "asr/N/iter1/attention-decoder-rescoring",
            "dev",
            {"scale_0.5": items(2), "scale_1.0": items(1)},
        )
        decoded(
            run,
            "asr/N/iter1/attention-decoder-rescoring",
            "test_wild",
            {"scale_0.5": items(0), "scale_1.0": items(n_err)},
        )
        decoded(run, "asr/L/iter1/attention-decoder-rescoring", "test_wild", {"": items(l_err)})
    return runs


def paired_row(text: str, start: str) -> list[str]:
    row = next(line for line in text.splitlines() if line.startswith(start))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_paired_l_against_n_over_seeds(tmp_path: Path):
    runs = make_seeds(tmp_path, "exp", n_errors=(2, 3, 2), l_errors=(1, 1, 0))
    out = tmp_path / "seeds.md"
    report.main(
        [
            *flags(
                task="asr",
                out=str(out),
                group="seeds=" + ",".join(map(str, runs)),
                paired=["L,N", "L,S"],
                bootstrap="500",
            ),
        ]
    )
    text = out.read_text()
    assert "| seeds | N | 1 | test_wild | CER |" in text  # the --group table is still there
    units = sum(len(ref) for ref in ZH_REFS)  # 4 odd utterances lose k characters each
    n_cer = [100 * 4 * k / units for k in (2, 3, 2)]
    l_cer = [100 * 4 * k / units for k in (1, 1, 0)]
    cells = paired_row(text, "| L - N | test_wild |")
    assert cells[:4] == ["L - N", "test_wild", "1", "CER"]
    assert cells[6] == ", ".join(f"{v:.2f}" for v in l_cer)
    assert cells[7] == ", ".join(
        f"{v:.2f}" for v in n_cer
    )  # scale_1.0 (chosen on dev), not scale_0.5
    diff = sum(l_cer) / 3 - sum(n_cer) / 3
    assert cells[8] == f"{diff:+.2f}"
    low, high = (float(x) for x in cells[9].strip("[]").split(","))
    assert low <= diff <= high < 0  # L always better: the interval excludes 0
    # the difference is 0 only when a resample draws none of the 4 odd utterances: p = 2 / 2^8
    assert 0 < float(cells[10]) < 0.03
    assert cells[11] == "3/0/0 (p 0.25)"  # three seeds can do no better
    assert cells[12] == "4/0/4 (p 0.125)"  # summed over seeds: 4 utterances better, 4 tied (exact)
    assert cells[13] == "8 x 3 seeds, shared"
    # L against the seed S (iteration 0 only): every iteration of L against it
    assert paired_row(text, "| L - S | test_wild |")[2] == "1 vs 0"


def test_paired_groups_by_position_and_identical_systems(tmp_path: Path):
    first = make_seeds(tmp_path, "a", n_errors=(2, 2), l_errors=(1, 1))
    second = make_seeds(tmp_path, "b", n_errors=(2, 2), l_errors=(2, 2))
    out = tmp_path / "cmp.md"
    report.main(
        [
            *flags(
                task="asr",
                out=str(out),
                group=["a=" + ",".join(map(str, first)), "b=" + ",".join(map(str, second))],
                paired=["a:N,b:N", "L,N"],
            ),
        ]
    )
    text = out.read_text()
    same = paired_row(text, "| a:N - b:N | test_wild |")
    assert (same[8], same[9], same[10], same[11]) == ("+0.00", "[+0.00, +0.00]", "1", "0/0/2 (p 1)")
    assert paired_row(text, "| a:L - a:N | test_wild |")[11] == "2/0/0 (p 0.5)"  # within each group
    assert paired_row(text, "| b:L - b:N | test_wild |")[8] == "+0.00"
    with pytest.raises(SystemExit, match="paired by position"):
        report.main(
            [
                *flags(
                    task="asr",
                    out=str(out),
                    group=["a=" + str(first[0]), "b=" + ",".join(map(str, second))],
                    paired="a:N,b:N",
                ),
            ]
        )
    with pytest.raises(SystemExit):
        report.main(
            ["--task", "asr", "--out", str(out), "--group", "a=" + str(first[0]), "--paired", "L"]
        )


def test_paired_refuses_recogs_that_disagree_with_the_json(tmp_path: Path):
    runs = make_seeds(tmp_path, "exp", n_errors=(2,), l_errors=(1,))
    path = runs[0] / "asr/L/iter1/attention-decoder-rescoring/results-test_wild-epoch-3_avg-2.json"
    data = json.loads(path.read_text())
    data["value"] = data["settings"][""] = data["value"] + 1.0
    path.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match="recomputed from the recogs"):
        report.main(
            [
                *flags(task="asr", out=str(tmp_path / "x.md"), group=f"g={runs[0]}", paired="L,N"),
            ]
        )


def test_paired_bleu_from_recogs_matches_the_decoded_bleu(tmp_path: Path):
    refs = [
        ["The cat sat on the mat.", "A cat is on the mat"],
        ["There are 2 dogs here."],
        ["Hello, world!"],
        ["I like green tea very much"],
        ["We will meet at the station tomorrow"],
    ]
    worse = ["the cat on mat", "two dog", "hello", "i like tea", "we meet at station"]
    better = [
        "the cat sat on the mat",
        "there are two dogs",
        "hello world",
        "i like green tea",
        "we will meet",
    ]
    runs = []
    for seed in range(2):
        run = tmp_path / f"ast_s{seed}"
        runs.append(run)
        for system, hyps in (("N", worse), ("L", better)):
            decoded(
                run,
                f"ast/{system}/iter1/attention-beam-search",
                "test_wild",
                {"": [(f"utt{i}", r, h) for i, (r, h) in enumerate(zip(refs, hyps))]},
                task="ast",
            )
    out = tmp_path / "ast.md"
    # the recomputed BLEU must equal the decoded one (normalised text read back from recogs)
    report.main(
        [
            *flags(task="ast", out=str(out), group="g=" + ",".join(map(str, runs)), paired="L,N"),
        ]
    )
    cells = paired_row(out.read_text(), "| L - N | test_wild |")
    assert cells[3] == "BLEU" and float(cells[8]) > 0
    assert cells[11] == "2/0/0 (p 0.5)"  # BLEU: higher is better, so L is better on both seeds
    assert cells[12].startswith("5/0/0")


def test_read_recogs_inverts_format_recogs_and_names_bad_lines(tmp_path: Path):
    from less.decode.results import format_recogs, read_recogs

    path = tmp_path / "recogs-test-epoch-3_avg-2.txt"
    refs = [[["a", "b"], ["a", "c"]], [["x:y", "'q'"]], [[]]]
    path.write_text(format_recogs(["c2", "spk:1", "a0"], refs, [["a"], ["x:y"], []]))
    assert read_recogs(path) == [
        ("a0", [[]], []),
        ("c2", [["a", "b"], ["a", "c"]], ["a"]),
        ("spk:1", [["x:y", "'q'"]], ["x:y"]),
    ]
    path.write_text("u1:\tref=['a']\nu2:\thyp=['a']\n")
    with pytest.raises(
        ValueError, match=r"recogs-test-epoch-3_avg-2.txt:2: cut 'u1' has references"
    ):
        read_recogs(path)
    path.write_text("u1:\thyp=['a']\n")
    with pytest.raises(ValueError, match="without a reference"):
        read_recogs(path)
    path.write_text("u1:\tref=__import__('os')\n")
    with pytest.raises(ValueError, match=":1: expected"):
        read_recogs(path)


def test_seed_report_lists_each_runs_pseudo_label_errors_and_their_mean(tmp_path: Path):
    runs = make_seeds(tmp_path, "exp", n_errors=(2, 3), l_errors=(1, 1))
    for seed, run in enumerate(runs):  # the --seeds layout: pseudo-labels in <run>/pl
        for system, kept, errors in (
            ("N", 1.0, (0.5, None, 0.5, None)),
            ("L", 0.1 * (seed + 1), (0.5, 0.4, 0.1, 0.6)),
        ):
            d = run / "pl" / "asr" / system / "iter1"
            d.mkdir(parents=True)
            names = (
                "teacher label error, all cuts",
                "LLM label error, all cuts",
                "training label error, kept cuts",
                "teacher label error, dropped cuts",
            )
            (d / "unsup_wild_cuts_kept.report.json").write_text(
                json.dumps(
                    {
                        "hours_kept": kept,
                        "hours_in": 1.0,
                        "label_error": {
                            n: e + 0.1 * seed for n, e in zip(names, errors) if e is not None
                        },
                    }
                )
            )
    out = tmp_path / "seeds.md"
    report.main(
        ["--task", "asr", "--out", str(out), "--group", "seeds=" + ",".join(map(str, runs))]
    )
    text = out.read_text()
    assert "## Pseudo-labels per run (unsup_wild" in text
    assert paired_row(text, "| seeds | exp_s1 | L | 1 |") == [
        "seeds",
        "exp_s1",
        "L",
        "1",
        "0.20 / 1.00",
        "60.00",
        "50.00",
        "20.00",
        "70.00",
    ]
    # the mean over the two runs; N has no LLM labels and dropped nothing
    assert paired_row(text, "| seeds | mean | L | 1 |")[4:] == [
        "0.15 / 1.00",
        "55.00",
        "45.00",
        "15.00",
        "65.00",
    ]
    assert paired_row(text, "| seeds | mean | N | 1 |")[4:] == [
        "1.00 / 1.00",
        "55.00",
        "-",
        "55.00",
        "-",
    ]
    assert "| seeds | exp_s0 | S |" not in text  # the seed has no pseudo-labels
