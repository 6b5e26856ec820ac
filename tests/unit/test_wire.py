"""The wire schema shared by agent and collector."""

from __future__ import annotations

import msgspec
import pytest

from centerwatch.wire import (
    ACK_DECODER,
    BATCH_DECODER,
    SCHEMA_VERSION,
    SUPPORTED_VERSIONS,
    Ack,
    Batch,
    Event,
    Part,
    Sample,
    check_series_names,
    encode,
)

TS = 1_700_000_000_000


def batch() -> Batch:
    return Batch(
        v=SCHEMA_VERSION,
        agent_id="agent-1",
        sent_ms=TS + 50,
        parts=[
            Part(
                seq=1024,
                check="host",
                started_ms=TS,
                duration_s=0.12,
                ok=True,
                samples=[
                    Sample("host_cpu_usage_ratio", {"cpu": "total"}, 0.25, TS),
                    Sample("host_memory_total_bytes", {}, 8.0e9, TS),
                ],
                facts={"hostname": "pc01", "disks": [{"mountpoint": "C:\\", "size_bytes": 1}]},
                events=[Event("check.partial", TS, {"section": "sensors"}, "sensors failed", "warning")],
            ),
            Part(seq=1025, check="dns", started_ms=TS, duration_s=2.0, ok=False, error="timeout after 2 s"),
            Part(seq=1026, check="snmp", started_ms=TS, duration_s=0.5, ok=True, subject="an-hai-sw01"),
        ],
    )


def test_current_version_is_supported() -> None:
    assert SCHEMA_VERSION in SUPPORTED_VERSIONS


def test_batch_round_trip() -> None:
    original = batch()
    raw = encode(original)
    assert BATCH_DECODER.decode(raw) == original
    assert msgspec.json.decode(raw) == msgspec.to_builtins(original)


def test_defaults_are_omitted_on_the_wire() -> None:
    part = msgspec.json.decode(encode(batch()))["parts"][1]
    assert part == {
        "seq": 1025,
        "check": "dns",
        "started_ms": TS,
        "duration_s": 2.0,
        "ok": False,
        "error": "timeout after 2 s",
    }


def test_sample_encodes_as_a_four_element_array() -> None:
    sample = Sample("host_load1", {"k": "v"}, 0.5, TS)
    assert encode(sample) == b'["host_load1",{"k":"v"},0.5,%d]' % TS
    assert msgspec.json.decode(encode(batch()))["parts"][0]["samples"][1] == ["host_memory_total_bytes", {}, 8.0e9, TS]
    assert msgspec.json.decode(b'["m",{},1,2]', type=Sample) == Sample("m", {}, 1.0, 2)


def test_sample_with_wrong_arity_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'["m",{},1]', type=Sample)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'["m",{},1,2,3]', type=Sample)


def test_unknown_field_is_refused() -> None:
    doc = msgspec.to_builtins(batch())
    with pytest.raises(msgspec.ValidationError, match="unknown field `extra`"):
        BATCH_DECODER.decode(msgspec.json.encode({**doc, "extra": 1}))
    doc["parts"][0]["colour"] = "red"
    with pytest.raises(msgspec.ValidationError, match=r"unknown field `colour`.*\$\.parts\[0\]"):
        BATCH_DECODER.decode(msgspec.json.encode(doc))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("parts",), []),
        (("agent_id",), ""),
        (("sent_ms",), -1),
        (("parts", 0, "seq"), 0),
        (("parts", 0, "check"), "Host"),
        (("parts", 0, "duration_s"), -0.1),
        (("parts", 0, "events", 0, "severity"), "fatal"),
        (("parts", 0, "events", 0, "kind"), "Check Partial"),
    ],
)
def test_out_of_range_values_are_refused(path: tuple[str | int, ...], value: object) -> None:
    doc = msgspec.to_builtins(batch())
    node = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    with pytest.raises(msgspec.ValidationError):
        BATCH_DECODER.decode(msgspec.json.encode(doc))


def test_ack_tolerates_fields_added_by_a_newer_collector() -> None:
    ack = ACK_DECODER.decode(b'{"v":1,"seqs":[1,2],"stored":2,"duplicates":0,"samples":9,"new":true}')
    assert ack == Ack(1, [1, 2], 2, 0, 9)


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("host_cpu_usage_ratio", {"cpu": "0"}),
        ("host_cpu_usage_ratio", {"cpu": "total"}),
        ("host_memory_total_bytes", {}),
        ("ns:rule_name", {"_private": "x", "mode2": "y"}),
    ],
)
def test_check_series_names_accepts_prometheus_names(name: str, labels: dict[str, str]) -> None:
    assert check_series_names(name, labels) is None


@pytest.mark.parametrize("name", ["", "1host", "host-cpu", "host cpu", "hôst_cpu", "host.cpu"])
def test_check_series_names_refuses_bad_metric_names(name: str) -> None:
    problem = check_series_names(name, {})
    assert problem is not None
    assert f"metric name {name!r}" in problem


@pytest.mark.parametrize("label", ["my-label", "__name__", "__x", "0cpu", "a:b", "", "nhãn"])
def test_check_series_names_refuses_bad_label_names(label: str) -> None:
    problem = check_series_names("host_load1", {label: "v"})
    assert problem is not None
    assert f"label name {label!r}" in problem


@pytest.mark.parametrize("label", ["center", "host"])
def test_check_series_names_refuses_reserved_labels(label: str) -> None:
    problem = check_series_names("host_load1", {"cpu": "0", label: "an-hai"})
    assert problem == f"label {label!r} is reserved: the collector sets it from the agent's enrollment"
