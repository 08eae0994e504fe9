from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.errors import ConfigError


def test_defaults_are_corpus_and_index_in_the_working_directory():
    settings = Settings.from_env({})
    assert settings.corpus == Path("corpus") and settings.index == Path("index")
    assert settings.model == "all-MiniLM-L6-v2"


def test_environment_overrides_defaults_and_flags_override_environment():
    env = {
        "ASSISTANT_CORPUS": "/docs",
        "ASSISTANT_INDEX": "/idx",
        "ASSISTANT_MODEL": "/models/m",
        "ASSISTANT_CHUNK_TOKENS": "64",
    }
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


def test_time_limit_per_file_is_read_from_the_environment_and_must_be_positive():
    assert Settings.from_env({"ASSISTANT_MAX_FILE_SECONDS": "45"}).max_file_seconds == 45.0
    with pytest.raises(ConfigError, match="ASSISTANT_MAX_FILE_SECONDS must be positive"):
        Settings.from_env({"ASSISTANT_MAX_FILE_SECONDS": "0"})


def test_relevance_floor_is_automatic_unless_a_number_is_given():
    assert Settings.from_env({}).min_score is None
    assert Settings.from_env({"ASSISTANT_MIN_SCORE": "auto"}).min_score is None
    assert Settings.from_env({"ASSISTANT_MIN_SCORE": "0.3"}).min_score == 0.3
    with pytest.raises(ConfigError, match="ASSISTANT_MIN_SCORE='high' is not a valid number or auto"):
        Settings.from_env({"ASSISTANT_MIN_SCORE": "high"})


def test_question_logging_is_a_switch_that_is_off_by_default():
    assert Settings.from_env({}).log_questions is False
    assert Settings.from_env({"ASSISTANT_LOG_QUESTIONS": "1"}).log_questions is True
    assert Settings.from_env({"ASSISTANT_LOG_QUESTIONS": "0"}).log_questions is False
    with pytest.raises(ConfigError, match="ASSISTANT_LOG_QUESTIONS='maybe' is not a valid switch — use 1 or 0"):
        Settings.from_env({"ASSISTANT_LOG_QUESTIONS": "maybe"})


def test_bad_ann_threshold_or_nprobe_names_the_variable():
    assert Settings.from_env({"ASSISTANT_ANN_THRESHOLD": "500", "ASSISTANT_ANN_NPROBE": "8"}).ann_threshold == 500
    with pytest.raises(ConfigError, match="ASSISTANT_ANN_THRESHOLD='lots' is not a valid int"):
        Settings.from_env({"ASSISTANT_ANN_THRESHOLD": "lots"})
    with pytest.raises(ConfigError, match=r"ASSISTANT_ANN_THRESHOLD must be a chunk count, 0 or more \(got -1\)"):
        Settings.from_env({"ASSISTANT_ANN_THRESHOLD": "-1"})
    with pytest.raises(ConfigError, match=r"ASSISTANT_ANN_NPROBE must be at least 1 \(got 0\)"):
        Settings.from_env({"ASSISTANT_ANN_NPROBE": "0"})


def test_precision_comes_from_the_environment_and_defaults_to_auto():
    assert Settings.from_env({}).precision == "auto"
    assert Settings.from_env({"ASSISTANT_PRECISION": "bf16"}).precision == "bf16"
    assert Settings.from_env({"ASSISTANT_PRECISION": "bf16"}, precision="fp32").precision == "fp32"


def test_unknown_precision_names_the_valid_ones():
    with pytest.raises(
        ConfigError,
        match=r"unknown precision 'fp16' \(ASSISTANT_PRECISION, --precision\) — valid precisions: auto, fp32, bf16",
    ):
        Settings.from_env({"ASSISTANT_PRECISION": "fp16"})


def test_ocr_is_automatic_by_default_and_takes_on_or_off():
    assert Settings.from_env({}).ocr == "auto" and Settings.from_env({}).ocr_langs == "eng"
    assert Settings.from_env({"ASSISTANT_OCR": "off", "ASSISTANT_OCR_LANGS": "deu+fra"}).ocr == "off"
    with pytest.raises(ConfigError, match=r"unknown OCR mode 'maybe' \(ASSISTANT_OCR\) — valid modes: auto, on, off"):
        Settings.from_env({"ASSISTANT_OCR": "maybe"})


def test_ocr_languages_must_be_codes_joined_by_plus():
    assert Settings(ocr_langs="chi_sim+eng").ocr_langs == "chi_sim+eng"
    for bad in ["eng,deu", "eng+", "eng deu", "../eng"]:
        with pytest.raises(ConfigError, match="ASSISTANT_OCR_LANGS must be Tesseract language codes joined by +"):
            Settings(ocr_langs=bad)


def test_examples_file_is_a_path_and_unset_means_the_default_examples():
    assert Settings.from_env({}).examples is None
    assert Settings.from_env({"ASSISTANT_EXAMPLES": "team/examples.txt"}).examples == Path("team/examples.txt")


def test_milvus_index_consistency_and_database_are_settings_with_defaults():
    settings = Settings.from_env({})
    assert (settings.milvus_index, settings.milvus_consistency, settings.milvus_db) == ("FLAT", "Strong", "")
    assert settings.milvus_dense_index() == ("FLAT", {}, {})
    ivf = Settings.from_env({"ASSISTANT_MILVUS_INDEX": "IVF_FLAT", "ASSISTANT_MILVUS_INDEX_PARAMS": '{"nprobe": 32}'})
    assert ivf.milvus_dense_index() == ("IVF_FLAT", {"nlist": 1024}, {"nprobe": 32})
    server = {"ASSISTANT_STORE": "milvus", "ASSISTANT_MILVUS_URI": "http://milvus:19530"}
    hnsw = Settings.from_env({**server, "ASSISTANT_MILVUS_INDEX": "HNSW", "ASSISTANT_MILVUS_DB": "qa"})
    assert hnsw.milvus_dense_index() == ("HNSW", {"M": 16, "efConstruction": 200}, {"ef": 128})
    assert Settings.from_env({"ASSISTANT_MILVUS_CONSISTENCY": "Bounded"}).milvus_consistency == "Bounded"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"ASSISTANT_MILVUS_INDEX": "DISKANN"}, "unknown Milvus index 'DISKANN' .* valid: FLAT, IVF_FLAT, HNSW"),
        ({"ASSISTANT_MILVUS_CONSISTENCY": "strong"}, "valid: Strong, Bounded, Session, Eventually"),
        ({"ASSISTANT_MILVUS_INDEX_PARAMS": "{nlist: 5}"}, "ASSISTANT_MILVUS_INDEX_PARAMS is not JSON"),
        ({"ASSISTANT_MILVUS_INDEX_PARAMS": '{"nlist": 5}'}, "does not fit FLAT: it takes a JSON object of no param"),
        ({"ASSISTANT_MILVUS_INDEX": "IVF_FLAT", "ASSISTANT_MILVUS_INDEX_PARAMS": '{"ef": 5}'}, "of nlist, nprobe"),
        ({"ASSISTANT_MILVUS_INDEX": "IVF_FLAT", "ASSISTANT_MILVUS_INDEX_PARAMS": '{"nlist": 0}'}, "whole numbers"),
        ({"ASSISTANT_STORE": "milvus", "ASSISTANT_MILVUS_INDEX": "HNSW"}, "Milvus Lite indexes with FLAT or IVF_FLAT"),
        ({"ASSISTANT_STORE": "milvus", "ASSISTANT_MILVUS_DB": "qa"}, "Milvus Lite has one database"),
        ({"ASSISTANT_STORE": "milvus", "ASSISTANT_MILVUS_URI": "/srv/my index.db"}, "Milvus Lite's file name must"),
    ],
)
def test_bad_milvus_index_settings_name_the_variable_and_the_valid_values(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_trusted_proxies_are_addresses_or_cidrs_and_default_to_loopback():
    assert Settings.from_env({}).trusted_proxies == "127.0.0.1,::1"
    given = Settings.from_env({"ASSISTANT_TRUSTED_PROXIES": "10.0.0.5, 192.168.0.0/16,::1"})
    assert given.trusted_proxies == "10.0.0.5, 192.168.0.0/16,::1"
    for bad in ("proxy.internal", "10.0.0.0/99", "127.0.0.1,,::1", "*"):
        with pytest.raises(ConfigError, match="ASSISTANT_TRUSTED_PROXIES must be addresses or CIDRs"):
            Settings.from_env({"ASSISTANT_TRUSTED_PROXIES": bad})
