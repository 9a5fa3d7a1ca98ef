"""indexer.settings: one table of settings, read from the environment, documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from indexer.settings import SETTINGS, load_config, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def configuration_section(text: str) -> str:
    """The README's section whose heading mentions configuration, up to the next heading of its level."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"(#{1,6})\s+.*\bconfiguration\b", line, re.I)
        if m:
            level = len(m.group(1))
            end = next((j for j in range(i + 1, len(lines))
                        if re.match(rf"#{{1,{level}}}\s", lines[j])), len(lines))
            return "\n".join(lines[i:end])
    raise AssertionError("README.md has no section whose heading mentions 'Configuration'")


def test_readme_configuration_section_contains_the_settings_table_verbatim():
    assert README.is_file(), "README.md is missing: its configuration section must hold markdown_table()"
    section = configuration_section(README.read_text(encoding="utf-8"))
    assert markdown_table() in section, "README's configuration table is stale: paste `make settings-doc` output"


def test_markdown_table_has_one_row_per_setting():
    rows = markdown_table().splitlines()
    assert rows[:2] == ["| variable | default | type and range | what it does |", "| --- | --- | --- | --- |"]
    assert len(rows) == 2 + len(SETTINGS)
    for setting, row in zip(SETTINGS, rows[2:], strict=True):
        assert row.startswith(f"| `{setting.env}` |")


def test_defaults_apply_when_the_environment_is_empty():
    config = load_config(env={})
    assert config.corpus_dir == Path("corpus")
    assert config.index_dir == Path("var/index")
    assert config.content_selector is None
    assert config.max_section_loss == pytest.approx(0.10)
    assert config.keep_generations == 3
    assert config.reindex_token is None
    assert config.cors_origins == ()


def test_load_config_reads_environment_variables():
    config = load_config(env={
        "FAQ_CORPUS_DIR": "/srv/site",
        "FAQ_KEEP_GENERATIONS": "5",
        "FAQ_MAX_SECTION_LOSS": "0.25",
        "FAQ_CORS_ORIGINS": "https://a.example, https://b.example,",
        "FAQ_CONTENT_SELECTOR": ".entry-content",
        "WEB_CONCURRENCY": "4",
    })
    assert config.corpus_dir == Path("/srv/site")
    assert config.keep_generations == 5
    assert config.max_section_loss == pytest.approx(0.25)
    assert config.cors_origins == ("https://a.example", "https://b.example")
    assert config.content_selector == ".entry-content"
    assert config.workers == 4


def test_load_config_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("FAQ_MAX_FILE_BYTES", "1234")
    assert load_config().max_file_bytes == 1234


@pytest.mark.parametrize(("variable", "value"), [("FAQ_KEEP_GENERATIONS", "three"), ("PORT", "80.5"),
                                                 ("FAQ_MAX_SECTION_LOSS", "ten percent")])
def test_a_bad_value_names_its_variable_in_the_error(variable, value):
    with pytest.raises(ValueError, match=rf"^{variable}='{re.escape(value)}' is not valid"):
        load_config(env={variable: value})


def test_explicit_overrides_win_over_the_environment():
    config = load_config(env={"FAQ_INDEX_DIR": "/from/env"}, index_dir=Path("/explicit"))
    assert config.index_dir == Path("/explicit")


def test_unknown_overrides_and_attributes_are_errors():
    with pytest.raises(TypeError, match="unknown settings: nope"):
        load_config(env={}, nope=1)
    with pytest.raises(AttributeError):
        _ = load_config(env={}).nope


def test_replace_returns_a_new_config_and_leaves_the_old_one():
    config = load_config(env={})
    other = config.replace(keep_generations=7)
    assert (config.keep_generations, other.keep_generations) == (3, 7)
    assert other.as_dict()["keep_generations"] == 7


# --------------------------------------------------------------------------- types and ranges


def test_every_setting_declares_a_type():
    assert all(s.type in ("path", "str", "int", "float", "bool", "csv") for s in SETTINGS)


def test_markdown_table_has_a_type_and_range_column():
    rows = markdown_table().splitlines()
    assert rows[0] == "| variable | default | type and range | what it does |"
    by_env = {row.split(" | ")[0].strip("| `"): row for row in rows[2:]}
    assert "| float in [0, 1] |" in by_env["FAQ_MAX_SECTION_LOSS"]
    assert "| int in [1, 65535] |" in by_env["PORT"]
    assert "debug, info, warning, error, critical" in by_env["FAQ_LOG_LEVEL"]


@pytest.mark.parametrize(("variable", "value", "allowed"), [
    ("FAQ_MAX_SECTION_LOSS", "nan", r"a finite number in \[0, 1\]"),
    ("FAQ_MAX_SECTION_LOSS", "inf", r"a finite number in \[0, 1\]"),
    ("FAQ_MAX_SECTION_LOSS", "-0.1", r"in \[0, 1\]"),
    ("FAQ_MAX_SECTION_LOSS", "1.5", r"in \[0, 1\]"),
    ("FAQ_ANSWER_THRESHOLD", "NaN", r"in \[0, 1\]"),
    ("FAQ_ANSWER_THRESHOLD", "2", r"in \[0, 1\]"),
    ("FAQ_MAX_QUERY_CHARS", "0", r"in \[1, 10000\]"),
    ("FAQ_MAX_QUERY_CHARS", "10000000", r"in \[1, 10000\]"),
    ("FAQ_LOG_LEVEL", "verbose", "one of debug, info, warning, error, critical"),
    ("PORT", "0", r"in \[1, 65535\]"),
    ("PORT", "70000", r"in \[1, 65535\]"),
    ("WEB_CONCURRENCY", "0", r"in \[1, "),
    ("FAQ_THREADS", "-1", r"in \[1, "),
    ("FAQ_CACHE_SIZE", "-5", r"in \[0, "),
    ("FAQ_CACHE_MAX_AGE", "-1", r"in \[0, "),
    ("FAQ_MAX_FILE_BYTES", "0", r"in \[1, "),
    ("FAQ_KEEP_GENERATIONS", "0", r"in \[1, "),
    ("FAQ_MAX_SECTIONS_PER_ARTICLE", "0", r"in \[1, 100000\]"),
    ("FAQ_MAX_SECTIONS_PER_ARTICLE", "100001", r"in \[1, 100000\]"),
    ("FAQ_SITE_URL", "javascript:alert(1)", "an http:// or https:// URL with a host"),
    ("FAQ_SITE_URL", "ftp://example.org", "an http:// or https:// URL with a host"),
    ("FAQ_SITE_URL", "https://", "an http:// or https:// URL with a host"),
    ("FAQ_SITE_URL", "//evil.example", "an http:// or https:// URL with a host"),
    ("FAQ_CORS_ORIGINS", "https://a.example,not an origin", "origin"),
    ("FAQ_CORS_ORIGINS", "https://a.example/path", "origin"),
    ("FAQ_CACHE_PUBLIC", "maybe", "true or false"),
])
def test_an_out_of_range_value_is_rejected_naming_the_variable_and_the_allowed_range(variable, value, allowed):
    with pytest.raises(ValueError, match=rf"^{variable}='{re.escape(value)}' is not valid: .*{allowed}"):
        load_config(env={variable: value})


@pytest.mark.parametrize(("variable", "value", "attr", "expected"), [
    ("FAQ_MAX_SECTION_LOSS", "0", "max_section_loss", 0.0),
    ("FAQ_MAX_SECTION_LOSS", "1", "max_section_loss", 1.0),
    ("FAQ_LOG_LEVEL", "WARNING", "log_level", "warning"),
    ("FAQ_SITE_URL", "https://example.org", "site_url", "https://example.org"),
    ("FAQ_CORS_ORIGINS", "*", "cors_origins", ("*",)),
    ("FAQ_CORS_ORIGINS", "http://localhost:8080", "cors_origins", ("http://localhost:8080",)),
    ("FAQ_CACHE_PUBLIC", "1", "cache_public", True),
    ("FAQ_CACHE_PUBLIC", "false", "cache_public", False),
    ("FAQ_MAX_SECTIONS_PER_ARTICLE", "5", "max_sections_per_article", 5),
])
def test_values_at_the_edges_of_their_range_are_accepted(variable, value, attr, expected):
    assert getattr(load_config(env={variable: value}), attr) == expected


def test_new_settings_default_to_private_caching_and_a_thousand_sections():
    config = load_config(env={})
    assert config.cache_public is False
    assert config.max_sections_per_article == 1000


def test_an_index_dir_that_is_an_existing_file_is_rejected_naming_it(tmp_path):
    path = tmp_path / "index"
    path.write_text("not a folder")
    with pytest.raises(ValueError, match=rf"^FAQ_INDEX_DIR='{re.escape(str(path))}' is not valid: .*is a file"):
        load_config(env={"FAQ_INDEX_DIR": str(path)})
    with pytest.raises(ValueError, match="is a file"):
        load_config(env={}, index_dir=path)


def test_explicit_overrides_are_range_checked_too():
    with pytest.raises(ValueError, match=r"FAQ_MAX_SECTION_LOSS=.*in \[0, 1\]"):
        load_config(env={}, max_section_loss=float("nan"))
