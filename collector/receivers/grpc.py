"""OTLP/gRPC receiver: TraceService and LogsService on one grpc server.

Requests arrive as raw bytes (no stub deserializer), so the same `decode` as HTTP checks them and
undecodable bodies get INVALID_ARGUMENT. MetricsService is not registered: clients get
UNIMPLEMENTED, honestly. Overload answers UNAVAILABLE with google.rpc.RetryInfo.
"""

from __future__ import annotations

import hmac
from concurrent import futures

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from llmloop.collector.attributes import DEFAULT_LIMITS, AttributeLimits
from llmloop.collector.decode import LOGS, TRACES, Signal, decode
from llmloop.collector.errors import CollectorError, Overloaded
from llmloop.collector.limits import InflightBudget
from llmloop.collector.writer import Writer

_SERVICES = {
    TRACES.name: "opentelemetry.proto.collector.trace.v1.TraceService",
    LOGS.name: "opentelemetry.proto.collector.logs.v1.LogsService",
}


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str,
           retry_after: float | None = None) -> None:
    status = status_pb2.Status(code=code.value[0], message=message)
    if retry_after is not None:
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=max(1, int(retry_after))))
        status.details.add().Pack(info)
    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    context.abort(code, message)


def _handler(signal: Signal, writer: Writer, budget: InflightBudget, token: str | None, limits: AttributeLimits):
    expected = f"Bearer {token}".encode() if token else None

    def export(body: bytes, context: grpc.ServicerContext) -> bytes:
        if expected is not None:
            given = dict(context.invocation_metadata()).get("authorization", "")
            if not hmac.compare_digest(str(given).encode(), expected):
                _abort(context, grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            with budget.hold(len(body)):
                decoded = decode(signal, body, False, limits)
                writer.submit(decoded.payload, decoded.accepted)
        except Overloaded as exc:
            _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc), exc.retry_after)
        except CollectorError as exc:
            _abort(context, getattr(grpc.StatusCode, exc.grpc_code), str(exc))
        return decoded.response(signal).SerializeToString()

    return grpc.method_handlers_generic_handler(
        _SERVICES[signal.name], {"Export": grpc.unary_unary_rpc_method_handler(export)}
    )


def create_grpc_server(writers: dict[str, Writer], budget: InflightBudget, address: str, token: str | None = None,
                       max_body_bytes: int = 64 * 1024 * 1024, threads: int = 8,
                       tls: tuple[bytes, bytes] | None = None,
                       limits: AttributeLimits = DEFAULT_LIMITS) -> grpc.Server:
    """A started-later grpc.Server bound to `address` (host:port) serving the OTLP services.

    `tls` is (certificate chain PEM, private key PEM); without it the port is plaintext.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="otlp-grpc"),
        options=[("grpc.max_receive_message_length", max_body_bytes),
                 ("grpc.max_send_message_length", 4 * 1024 * 1024)],
    )
    for signal in (TRACES, LOGS):
        server.add_generic_rpc_handlers((_handler(signal, writers[signal.name], budget, token, limits),))
    if tls is not None:
        bound = server.add_secure_port(address, grpc.ssl_server_credentials([(tls[1], tls[0])]))
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot bind the OTLP/gRPC port at {address}")
    return server
