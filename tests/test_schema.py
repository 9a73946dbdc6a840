"""Rendered DDL: the same migration files, with and without a cluster."""

from __future__ import annotations

import re

import pytest

from llmloop import queries
from llmloop.collector.protoschema import format_schema
from llmloop.queries import Layout


def all_statements(layout: Layout) -> list[str]:
    return [s for _, name in queries.migrations() for s in queries.render(queries.load(f"schema/{name}"), layout)]


def test_single_node_ddl_has_no_cluster_parts() -> None:
    text = "\n".join(all_statements(Layout()))
    assert "ON CLUSTER" not in text and "Replicated" not in text and "Distributed" not in text
    assert "{{" not in text and "-- if cluster" not in text
    assert "CREATE TABLE IF NOT EXISTS llmloop.spans (" in text
    assert "ENGINE = ReplacingMergeTree" in text and "ENGINE = MergeTree" in text


def test_cluster_ddl_uses_on_cluster_replicated_engines_and_distributed_tables() -> None:
    statements = all_statements(Layout(cluster="prod"))
    creates = [s for s in statements if s.startswith("CREATE")]
    assert all("ON CLUSTER 'prod'" in s for s in creates)
    text = "\n".join(statements)
    assert "CREATE TABLE IF NOT EXISTS llmloop.spans_local ON CLUSTER 'prod'" in text
    assert "ENGINE = ReplicatedReplacingMergeTree" in text and "ENGINE = MergeTree" not in text
    assert "ENGINE = Distributed('prod', llmloop, spans_local, cityHash64(TraceId))" in text
    assert "ENGINE = Distributed('prod', llmloop, logs_local, rand())" in text
    # Registry rows that fold or collapse together share a shard.
    assert "ENGINE = Distributed('prod', llmloop, configs_local, cityHash64(name))" in text
    assert "ENGINE = Distributed('prod', llmloop, rollout_events_local, cityHash64(rollout))" in text
    assert "ENGINE = Distributed('prod', llmloop, feedback_local, cityHash64(id))" in text
    # The ingest views write through the Distributed tables; table settings go to the local tables.
    assert "TO llmloop.spans AS" in text and "TO llmloop.logs AS" in text
    alters = [s for s in statements if s.startswith("ALTER TABLE") and "MODIFY SETTING" in s]
    assert alters and all(s.split()[2].endswith("_local") and "ON CLUSTER 'prod'" in s for s in alters)


def test_ttls_render_only_when_set() -> None:
    plain = "\n".join(all_statements(Layout(ttl_days=0, payload_ttl_days=0)))
    assert "TTL toDateTime" not in plain
    text = "\n".join(all_statements(Layout(ttl_days=90, payload_ttl_days=7)))
    assert "TTL toDateTime(Timestamp) + INTERVAL 90 DAY" in text
    assert "InputMessages String CODEC(ZSTD(3)) TTL toDateTime(Timestamp) + INTERVAL 7 DAY," in text


@pytest.mark.parametrize("bad", ["llm-loop", "x; DROP TABLE y", ""])
def test_layout_refuses_non_identifiers(bad: str) -> None:
    with pytest.raises(ValueError):
        Layout(database=bad)
    with pytest.raises(ValueError):
        Layout(cluster=bad or "a b")


def test_migrations_are_numbered_in_order() -> None:
    versions = [v for v, _ in queries.migrations()]
    assert versions == sorted(set(versions)) and versions[0] == 0


def test_protobuf_schema_unrolls_recursive_anyvalue() -> None:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    text, top = format_schema(trace_service_pb2.ExportTraceServiceRequest.DESCRIPTOR)
    assert top == "opentelemetry_proto_collector_trace_v1_ExportTraceServiceRequest"
    assert text.count("message opentelemetry_proto_common_v1_AnyValue") >= 2
    assert "repeated bytes values = 1;" in text  # the cut-off below the unrolled depth
    assert "fixed64 start_time_unix_nano = 7;" in text and "bytes trace_id = 1;" in text


def test_protobuf_schema_declares_raw_fields_as_bytes_only_on_their_path() -> None:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    root = trace_service_pb2.ExportTraceServiceRequest.DESCRIPTOR
    text, _ = format_schema(root, ("resource_spans.scope_spans.spans.attributes.value",))
    messages = dict(re.findall(r"message (\w+) \{\n(.*?)\n\}", text, flags=re.S))
    span = messages["opentelemetry_proto_trace_v1_Span"]
    span_kv = re.search(r"repeated (\w+) attributes = 9;", span).group(1)
    assert "  bytes value = 2;" in messages[span_kv].splitlines()
    resource = messages["opentelemetry_proto_resource_v1_Resource"]
    resource_kv = re.search(r"repeated (\w+) attributes = 1;", resource).group(1)
    assert resource_kv != span_kv and "AnyValue value = 2;" in messages[resource_kv]
    event = messages["opentelemetry_proto_trace_v1_Span_Event"]
    event_kv = re.search(r"repeated (\w+) attributes = 3;", event).group(1)
    assert event_kv == resource_kv
