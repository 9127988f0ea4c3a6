"""``llm_correct --backend openai`` against a real OpenAI-compatible server no one here wrote:
``transformers serve`` (pip extra ``transformers[serving]``) on 127.0.0.1, on the CPU, serving
a tiny Llama made in the test (no download; the model directory is the served model name).

The model answers "home" to every prompt: its layers add nothing to the residual stream
(zero output projections), so each next token depends on the previous token only, and the
unembedding encodes the bigrams "]" -> "h" -> "o" -> "m" -> "e" -> end (the chat template
ends with "[assistant]"). An answer that cleaning accepts shows the whole path worked:
health check, chat request with a UUID request id, answer parsed and cleaned.

About 15-25 s on 2 busy cores (model ~4 s, server start ~5 s, the stage ~5 s): slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("openai")  # transformers' serving extra needs all three

from lhotse import CutSet  # noqa: E402

from less.llm.testing import make_pl_cuts, run_llm_correct  # noqa: E402
from tests.helpers import flags, free_port

CHAT_TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)
ANSWER = "home"
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "OMP_NUM_THREADS": "1",
}


def save_bigram_llama(directory: Path) -> None:
    """A character-level Llama whose greedy answer to any chat prompt is ANSWER."""
    import string

    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    chars = [ch for ch in string.printable if ch not in "\x0b\x0c"]
    vocab = {token: index for index, token in enumerate(specials + chars)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    hidden = 128
    assert len(vocab) <= hidden
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        pad_token_id=vocab["<pad>"],
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.fill_(1.0)
        model.model.embed_tokens.weight[:, :] = torch.eye(
            len(vocab), hidden
        )  # token i -> unit vector i
        chain = ["]", *ANSWER, "</s>"]
        for previous, following in zip(chain, chain[1:]):
            model.lm_head.weight[vocab[following], vocab[previous]] = 30.0
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def wait_until_up(port: int, server: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(
                f"transformers serve exited with {server.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    raise TimeoutError(
        f"transformers serve did not come up in {timeout} s:\n{log.read_text()[-3000:]}"
    )


@pytest.mark.slow
def test_five_cuts_answered_end_to_end_by_transformers_serve(tmp_path) -> None:
    model_dir = tmp_path / "bigram-llama"
    save_bigram_llama(model_dir)
    hypotheses = [
        "we goed home",
        "they is at home",
        "i has a dog at home",
        "she go home now",
        "you was home",
    ]
    in_cuts, out_cuts = tmp_path / "in.jsonl.gz", tmp_path / "out" / "cuts_llm.jsonl.gz"
    make_pl_cuts(hypotheses, prefix="serve", language="es").to_file(in_cuts)
    port = free_port()
    env = {**os.environ, **OFFLINE}
    server_log = tmp_path / "serve.log"
    transformers_cli = Path(sys.executable).parent / "transformers"
    with open(server_log, "w") as log:
        server = subprocess.Popen(
            [
                str(transformers_cli),
                "serve",
                str(model_dir),
                *flags(host="127.0.0.1", port=str(port), device="cpu", log_level="info"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_until_up(port, server, server_log)
        base_url = f"http://127.0.0.1:{port}/v1"
        options = "--task ast --backend openai --max-concurrency 2 --timeout 60"
        more = ("--base-url", base_url, "--model", model_dir)
        result = run_llm_correct(in_cuts, out_cuts, options, *more, env=env)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    served = server_log.read_text()
    assert result.returncode == 0, result.stderr[-3000:] + served[-2000:]
    assert f"LLM server {base_url} is up" in result.stderr  # GET /v1/models listed the model
    records = {
        cut.id: cut.supervisions[0].custom["pl"]["llm"] for cut in CutSet.from_file(out_cuts)
    }
    assert len(records) == 5
    assert all(
        record["status"] == "ok" and record["text"] == ANSWER for record in records.values()
    ), records
    report = json.loads((out_cuts.parent / "cuts_llm.report.json").read_text())
    assert report["answers_received"] == 5 and report["failures"] == 0 and report["retries"] == 0
    assert served.count('"POST /v1/chat/completions HTTP/1.1" 200') == 5
