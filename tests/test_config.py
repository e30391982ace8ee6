"""Config loading: defaults < YAML < --set, every problem listed at once, resolved config saved."""

from dataclasses import dataclass, field

import pytest
import yaml

from raftkit import config
from raftkit.config import RaftkitConfig
from raftkit.errors import ConfigError, RaftkitError


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
    p = write(tmp_path, "retrieval:\n  chunking:\n    size: 100\n    overlap: 600\n  colour: red\n"
                        "generation:\n  backend: openai\n  batch_size: many\n")
    with pytest.raises(ConfigError) as e:
        config.load(RaftkitConfig, p)
    msg = str(e.value)
    assert "unknown key 'retrieval.colour'" in msg
    assert "generation.batch_size: expected int, got 'many'" in msg
    # cross-field checks run only once the types are right, so fix the type error and look again
    p = write(tmp_path, "retrieval:\n  chunking:\n    size: 100\n    overlap: 600\ngeneration:\n  backend: openai\n")
    with pytest.raises(ConfigError) as e:
        config.load(RaftkitConfig, p)
    assert e.value.problems == [
        "retrieval.chunking.overlap (600) must be smaller than size (100)",
        "generation.backend 'openai' needs base_url (e.g. http://localhost:8000/v1)",
    ]


def test_literal_and_section_types_are_checked():
    with pytest.raises(ConfigError) as e:
        config.load(RaftkitConfig, data={"retrieval": {"index": {"kind": "annoy"}}, "generation": 3})
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


def test_lists_and_floats_accept_yaml_forms():
    @dataclass
    class Section:
        names: list[str] = field(default_factory=list)
        rate: float = 0.1

    @dataclass
    class Top:
        s: Section = field(default_factory=Section)

    cfg = config.load(Top, overrides=["s.names=[a, b]", "s.rate=1"])
    assert cfg.s.names == ["a", "b"] and cfg.s.rate == 1.0 and isinstance(cfg.s.rate, float)
    assert config.load(Top, overrides=["s.rate=1e-3"]).s.rate == 0.001  # YAML 1.1 reads this as a string
    with pytest.raises(ConfigError, match=r"s.rate: expected float, got 'fast'"):
        config.load(Top, overrides=["s.rate=fast"])
    with pytest.raises(ConfigError, match=r"s.names\[1\]: expected str, got 3"):
        config.load(Top, overrides=["s.names=[a, 3]"])


def test_check_min_and_check_interval_name_the_field_value_and_bound():
    @dataclass
    class Section:
        steps: int = 0
        rank: int = 0
        share: float = 1.0
        level: float = 0.0

    s = Section(steps=-1, rank=0, share=1.0, level=0.0)
    assert config.check_min(s, steps=0, rank=1) == ["steps (-1) must not be negative", "rank (0) must be at least 1"]
    assert config.check_min(Section(steps=0, rank=1), steps=0, rank=1) == []  # the minimum itself is allowed
    # closed ends include the bound, open ends exclude it
    assert config.check_interval(s, share="[0, 1]", level="[0, 1)") == []
    assert config.check_interval(s, share="[0, 1)", level="(0, 1]") == ["share (1.0) must be in [0, 1)",
                                                                         "level (0.0) must be in (0, 1]"]
