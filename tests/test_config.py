"""Config loading: defaults < YAML < --set, every problem listed at once, resolved config saved."""

import pytest
import yaml
from pydantic import Field

from raftkit import config
from raftkit.config import Section
from raftkit.errors import ConfigError, RaftkitError
from raftkit.retrieval.config import RaftkitConfig


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_yaml_and_overrides_in_that_order(tmp_path):
    p = write(tmp_path, "retrieval:\n  top_k: 3\n  chunking:\n    size: 128\n")
    cfg = config.load(RaftkitConfig, p, ["retrieval.top_k=7", "generation.temperature=0.5"])
    assert cfg.retrieval.top_k == 7  # --set wins over YAML
    assert cfg.retrieval.chunking.size == 128  # YAML wins over defaults
    assert cfg.retrieval.chunking.overlap == 32  # default kept
    assert cfg.generation.temperature == 0.5


def test_every_problem_is_listed_at_once(tmp_path):
    p = write(
        tmp_path,
        "retrieval:\n  chunking:\n    size: 100\n    overlap: 600\n  colour: red\n"
        "generation:\n  backend: openai\n  batch_size: many\n",
    )
    with pytest.raises(ConfigError) as e:
        config.load(RaftkitConfig, p)
    msg = str(e.value)
    assert "unknown key 'retrieval.colour'" in msg
    assert "generation.batch_size: expected int, got 'many'" in msg
    # cross-field checks run only once the types are right, so fix the type error and look again
    p = write(
        tmp_path,
        "retrieval:\n  chunking:\n    size: 100\n    overlap: 600\ngeneration:\n"
        "  backend: openai\n",
    )
    with pytest.raises(ConfigError) as e:
        config.load(RaftkitConfig, p)
    assert e.value.problems == [
        "retrieval.chunking.overlap (600) must be smaller than size (100)",
        "generation.backend 'openai' needs base_url (e.g. http://localhost:8000/v1)",
    ]


def test_literal_and_section_types_are_checked():
    with pytest.raises(ConfigError) as e:
        config.load(
            RaftkitConfig, data={"retrieval": {"index": {"kind": "annoy"}}, "generation": 3}
        )
    assert e.value.problems == [
        "retrieval.index.kind: 'annoy' is not one of 'flat', 'hnsw', 'ivfpq'",
        "generation: expected a section (mapping), got 3",
    ]


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(RaftkitError, match=r"--set expects section.key=value, got 'top_k'"):
        config.load(RaftkitConfig, overrides=["top_k"])
    with pytest.raises(RaftkitError, match=r"^config file not found: .*nope.yaml$"):
        config.load(RaftkitConfig, tmp_path / "nope.yaml")
    bad = write(tmp_path, "retrieval: [unclosed\n")
    with pytest.raises(RaftkitError, match=r"not valid YAML at line"):
        config.load(RaftkitConfig, bad)


def test_resolved_config_round_trips(tmp_path):
    cfg = config.load(RaftkitConfig, overrides=["retrieval.index.kind=hnsw"])
    path = config.save_resolved(cfg, tmp_path)
    again = config.load(RaftkitConfig, path)
    assert again == cfg
    assert yaml.safe_load(path.read_text())["retrieval"]["index"]["kind"] == "hnsw"


class Inner(Section):
    names: list[str] = Field(default_factory=list)
    rate: float = 0.1
    steps: int = Field(0, ge=0)
    rank: int = Field(1, ge=1)
    share: float = Field(0.5, ge=0, lt=1)
    level: float = Field(0.5, gt=0, le=1)
    lr: float = Field(0.1, gt=0)
    flag: bool = False


class Top(Section):
    s: Inner = Field(default_factory=Inner)


def test_lists_and_floats_accept_yaml_forms():
    cfg = config.load(Top, overrides=["s.names=[a, b]", "s.rate=1"])
    assert cfg.s.names == ["a", "b"] and cfg.s.rate == 1.0 and isinstance(cfg.s.rate, float)
    assert (
        config.load(Top, overrides=["s.rate=1e-3"]).s.rate == 0.001
    )  # YAML 1.1 reads this as a string
    with pytest.raises(ConfigError, match=r"s.rate: expected float, got 'fast'"):
        config.load(Top, overrides=["s.rate=fast"])
    with pytest.raises(ConfigError, match=r"s.names\[1\]: expected str, got 3"):
        config.load(Top, overrides=["s.names=[a, 3]"])


def test_values_keep_their_types():
    with pytest.raises(ConfigError) as e:
        config.load(Top, overrides=["s.steps='5'", "s.flag=1", "s.rank=true"])
    assert e.value.problems == [
        "s.steps: expected int, got '5'",
        "s.rank: expected int, got True",
        "s.flag: expected bool, got 1",
    ]


def test_bounds_name_the_field_value_and_interval():
    with pytest.raises(ConfigError) as e:
        config.load(Top, overrides=["s.steps=-1", "s.rank=0", "s.share=1", "s.level=0", "s.lr=-1"])
    assert e.value.problems == [
        "s.steps (-1) must not be negative",
        "s.rank (0) must be at least 1",
        "s.share (1.0) must be in [0, 1)",
        "s.level (0.0) must be in (0, 1]",
        "s.lr (-1.0) must be positive",
    ]
    # the bounds themselves: closed ends are allowed
    assert (
        config.load(Top, overrides=["s.steps=0", "s.rank=1", "s.share=0", "s.level=1"]).s.level
        == 1.0
    )
