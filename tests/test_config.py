from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.errors import ConfigError


def test_defaults_are_corpus_and_index_in_the_working_directory():
    settings = Settings.from_env({})
    assert settings.corpus == Path("corpus") and settings.index == Path("index")
    assert settings.model == "all-MiniLM-L6-v2"


def test_environment_overrides_defaults_and_flags_override_environment():
    env = {"ASSISTANT_CORPUS": "/docs", "ASSISTANT_INDEX": "/idx", "ASSISTANT_MODEL": "/models/m", "ASSISTANT_CHUNK_TOKENS": "64"}
    settings = Settings.from_env(env, index=Path("/flag"), model=None)
    assert settings.corpus == Path("/docs")
    assert settings.index == Path("/flag")
    assert settings.model == "/models/m"
    assert settings.chunk_tokens == 64


def test_non_numeric_setting_names_the_variable():
    with pytest.raises(ConfigError, match="ASSISTANT_CHUNK_TOKENS='many' is not a valid int"):
        Settings.from_env({"ASSISTANT_CHUNK_TOKENS": "many"})


def test_overlap_must_be_smaller_than_chunk_size():
    with pytest.raises(ConfigError, match="ASSISTANT_CHUNK_OVERLAP must be .* less than ASSISTANT_CHUNK_TOKENS"):
        Settings(chunk_tokens=64, chunk_overlap=64)


def test_size_limit_must_be_positive():
    with pytest.raises(ConfigError, match="ASSISTANT_MAX_FILE_MB"):
        Settings.from_env({"ASSISTANT_MAX_FILE_MB": "0"})


def test_precision_comes_from_the_environment_and_defaults_to_auto():
    assert Settings.from_env({}).precision == "auto"
    assert Settings.from_env({"ASSISTANT_PRECISION": "bf16"}).precision == "bf16"
    assert Settings.from_env({"ASSISTANT_PRECISION": "bf16"}, precision="fp32").precision == "fp32"


def test_unknown_precision_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown precision 'fp16' \(ASSISTANT_PRECISION, --precision\) — valid precisions: auto, fp32, bf16"):
        Settings.from_env({"ASSISTANT_PRECISION": "fp16"})
