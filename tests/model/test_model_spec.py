"""The model part of a training configuration (less.model.spec): read, checked, rebuilt."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from less.data.tokenizer import build_char_lang
from less.model import ModelSpec
from less.training import TrainConfig


@pytest.fixture()
def lang_dirs(tmp_path):
    build_char_lang(["你好世界", "明天见"], "zh", tmp_path / "zh")
    build_char_lang(["hola", "adios"], "es", tmp_path / "es")
    build_char_lang(["hello", "bye"], "en", tmp_path / "en")
    return tmp_path


def test_asr_spec_from_a_trainer_config_builds_the_model_the_trainer_builds(lang_dirs) -> None:
    config = asdict(
        TrainConfig(
            task="asr", model="xs", lang_dir=str(lang_dirs / "zh"), ctc_scale=0.3, aed_scale=0.7
        )
    )
    spec = ModelSpec.from_train_config(config)
    assert (spec.name, spec.task, spec.decoder_lang_dir, spec.ctc_scale) == ("xs", "asr", None, 0.3)
    ctc, dec = spec.tokenizers()
    assert ctc is dec  # asr: CTC and decoder share the tokens
    torch.manual_seed(0)
    a = spec.build(ctc, dec)
    torch.manual_seed(0)
    b = ModelSpec.from_train_config(config).build(*ModelSpec.from_train_config(config).tokenizers())
    assert a.ctc_output[1].out_features == ctc.vocab_size
    assert a.attention_decoder.sos_id == dec.sos_id
    assert a.config.ctc_scale == pytest.approx(0.3) and a.config.aed_scale == pytest.approx(0.7)
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_ast_spec_uses_the_target_tokens_for_the_decoder_and_overrides_apply(lang_dirs) -> None:
    config = {
        "model": "xs",
        "task": "ast",
        "lang_dir": str(lang_dirs / "es"),
        "decoder_lang_dir": str(lang_dirs / "en"),
        "model_overrides": {"decoder_vocab_size": None},
    }
    spec = ModelSpec.from_train_config(config)
    ctc, dec = spec.tokenizers()
    assert ctc.lang == "es" and dec.lang == "en"
    model = spec.build(ctc, dec)
    assert model.attention_decoder is None  # the override made it CTC-only


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"task": "asr", "lang_dir": "x"}, "without model"),
        ({"model": "xs", "task": "kws", "lang_dir": "x"}, "unknown task 'kws'"),
        ({"model": "xs", "task": "ast", "lang_dir": "x"}, "needs decoder_lang_dir"),
    ],
)
def test_bad_configurations_are_named(config, message) -> None:
    with pytest.raises(ValueError, match=message):
        ModelSpec.from_train_config(config)
