"""The agent's bootstrap config: defaults, the schedule/check split, and every invalid file's exact error."""

from __future__ import annotations

import importlib
from pathlib import Path

import msgspec
import pytest

from agent.checks import host
from agent.config import (
    CHECK_MODULES,
    AgentConfig,
    CheckSchedule,
    CheckSpec,
    SpoolConfig,
    UploadConfig,
    check_specs,
    load_config,
    parse_config,
)
from agent.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
INVALID = ROOT / "tests" / "data" / "agent_config_invalid"
EXAMPLE = ROOT / "agent" / "agent.example.yaml"
MINIMAL = {"collector_url": "http://127.0.0.1:8080", "data_dir": "/var/lib/cw"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# -- valid configs ---------------------------------------------------------------------------------


def test_minimal_config_gets_every_default(tmp_path: Path) -> None:
    path = write(tmp_path, "collector_url: http://127.0.0.1:8080\ndata_dir: /var/lib/cw\n")
    config = load_config(path)
    assert config.collector_url == "http://127.0.0.1:8080"
    assert config.data_dir == "/var/lib/cw"
    assert config.enrollment_token == ""
    assert config.metrics_listen == "127.0.0.1:9464"
    assert config.spool == SpoolConfig()
    assert config.spool.max_bytes == 256 * 1024 * 1024
    assert config.spool.max_age_days == 30.0
    assert config.upload == UploadConfig()
    assert (config.upload.interval_s, config.upload.timeout_s) == (5.0, 30.0)
    assert (config.upload.backoff_min_s, config.upload.backoff_max_s) == (1.0, 300.0)
    assert config.upload.gzip is True
    assert config.upload.fresh_share == 0.25
    assert config.upload.max_batch_bytes == 1024 * 1024
    assert config.checks == {"host": {}}


def test_default_checks_resolve_to_host_with_defaults() -> None:
    specs = check_specs(parse_config(dict(MINIMAL), "agent.yaml"))
    assert specs == [CheckSpec("host", CheckSchedule(15.0, 10.0, True), host.Config())]


def test_config_is_frozen() -> None:
    config = parse_config(dict(MINIMAL), "agent.yaml")
    with pytest.raises(AttributeError):
        config.data_dir = "/elsewhere"  # type: ignore[misc]


def test_example_config_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert config.collector_url.startswith("https://")
    assert config.enrollment_token  # a sample, present so the file shows where it goes
    specs = check_specs(config, str(EXAMPLE))
    assert [s.name for s in specs] == ["host"]
    assert specs[0].schedule == CheckSchedule(interval_s=15, timeout_s=10, enabled=True)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "https://cw.example.gov.vn", "https://h:443/base/path"])
def test_collector_url_accepted(url: str) -> None:
    assert parse_config({**MINIMAL, "collector_url": url}, "agent.yaml").collector_url == url


@pytest.mark.parametrize("url", ["cw.example.gov.vn", "ftp://cw", "http://", "http://a b", ""])
def test_collector_url_refused(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, "collector_url": url}, "agent.yaml")
    assert info.value.file == "agent.yaml"
    assert info.value.key == "collector_url"


def test_check_specs_split_schedule_keys_from_the_checks_own_keys() -> None:
    raw = {
        "interval_s": 30,
        "timeout_s": 5,
        "enabled": True,
        "per_cpu": False,
        "nic_exclude": ["lo", "docker*"],
        "facts_interval_s": 600,
    }
    [spec] = check_specs(parse_config({**MINIMAL, "checks": {"host": raw}}, "agent.yaml"))
    assert spec.name == "host"
    assert spec.schedule == CheckSchedule(interval_s=30.0, timeout_s=5.0, enabled=True)
    assert isinstance(spec.config, host.Config)
    assert spec.config == host.Config(per_cpu=False, nic_exclude=("lo", "docker*"), facts_interval_s=600.0)
    # the schedule keys are not passed to the check, and the check's keys not to the schedule
    assert set(CheckSchedule.__struct_fields__).isdisjoint(host.Config.__struct_fields__)


def test_only_schedule_keys_leave_check_config_at_defaults() -> None:
    [spec] = check_specs(parse_config({**MINIMAL, "checks": {"host": {"interval_s": 60}}}, "agent.yaml"))
    assert spec.schedule == CheckSchedule(interval_s=60.0)
    assert spec.config == host.Config()


def test_disabled_check_is_validated_but_not_scheduled() -> None:
    config = parse_config({**MINIMAL, "checks": {"host": {"enabled": False, "per_cpu": False}}}, "agent.yaml")
    assert check_specs(config) == []
    bad = parse_config({**MINIMAL, "checks": {"host": {"enabled": False, "per_cpus": False}}}, "agent.yaml")
    with pytest.raises(ConfigError, match=r"checks\.host\.per_cpus: unknown key"):
        check_specs(bad, "agent.yaml")


def test_empty_checks_mapping_schedules_nothing() -> None:
    assert check_specs(parse_config({**MINIMAL, "checks": {}}, "agent.yaml")) == []


def test_every_known_check_module_has_config_and_collect() -> None:
    for name, module_name in CHECK_MODULES.items():
        module = importlib.import_module(module_name)
        assert issubclass(module.Config, msgspec.Struct), name
        module.Config()  # every field has a default: `checks: {name: {}}` enables it
        assert callable(module.collect), name


def test_check_with_empty_yaml_value_enables_it_with_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "collector_url: http://127.0.0.1:8080\ndata_dir: /d\nchecks:\n  host:\n")
    specs = check_specs(load_config(path), str(path))
    assert specs == [CheckSpec("host", CheckSchedule(), host.Config())]


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(info.value) == f"{missing}: cannot read: No such file or directory"


def test_empty_file_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: expected a mapping of settings at the top level"


def test_config_error_carries_file_key_and_message() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, "upload": {"fresh_share": 2}}, "a.yaml")
    assert (info.value.file, info.value.key, info.value.message) == (
        "a.yaml",
        "upload.fresh_share",
        "expected float <= 1.0",
    )
    assert str(info.value) == "a.yaml: upload.fresh_share: expected float <= 1.0"


def test_agent_config_type_is_what_load_returns(tmp_path: Path) -> None:
    assert isinstance(load_config(EXAMPLE), AgentConfig)


# -- invalid configs, each file paired with its exact error -----------------------------------------

CASES = sorted(p.stem for p in INVALID.glob("*.yaml"))
#: Cases whose expected error is what the code means to say but does not (yet).
KNOWN_BUGS: dict[str, str] = {}


def test_invalid_cases_are_paired() -> None:
    assert len(CASES) >= 9
    assert sorted(p.stem for p in INVALID.glob("*.error")) == CASES
    assert not [p.name for p in INVALID.iterdir() if p.suffix not in (".yaml", ".error")]


def load_and_resolve(path: Path) -> list[CheckSpec]:
    return check_specs(load_config(path), str(path))


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[c])) if c in KNOWN_BUGS else c
        for c in CASES
    ],
)
def test_invalid_config(case: str) -> None:
    path = INVALID / f"{case}.yaml"
    expected = (INVALID / f"{case}.error").read_text(encoding="utf-8").rstrip("\n")
    # {known_checks}: the list grows with every new check; the message must name them all, sorted
    expected = expected.replace("{file}", str(path)).replace("{known_checks}", ", ".join(sorted(CHECK_MODULES)))
    with pytest.raises(ConfigError) as info:
        load_and_resolve(path)
    assert str(info.value) == expected
    assert info.value.file == str(path)


@pytest.mark.parametrize("example", ["agent.example.yaml", "probe.example.yaml"])
def test_shipped_example_configs_are_valid(example: str) -> None:
    """The samples users copy must load and resolve every check they enable (parsed only, never probed)."""
    path = Path(__file__).resolve().parents[2] / "agent" / example
    specs = check_specs(load_config(path), str(path))
    assert specs and specs[0].name == "host"
