"""Prometheus metrics: the /metrics endpoint and a per-RPC counter and latency histogram."""

from __future__ import annotations

import time
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import Counter, Histogram, start_http_server

RPCS = Counter("crowdpack_grpc_requests_total", "gRPC requests handled", ["method", "code"])
LATENCY = Histogram("crowdpack_grpc_request_seconds", "gRPC request latency", ["method"])


def serve_metrics(host: str, port: int) -> WSGIServer:
    """Starts the /metrics endpoint in a thread; ``server.server_port`` is the bound port."""
    server, _thread = start_http_server(port, addr=host)
    return server


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or (handler.unary_unary is None and handler.stream_unary is None):
            return handler
        inner = handler.unary_unary or handler.stream_unary
        method = handler_call_details.method

        async def observed(request, context):
            start = time.perf_counter()
            try:
                return await inner(request, context)
            finally:
                code = context.code() or grpc.StatusCode.OK
                RPCS.labels(method, getattr(code, "name", str(code))).inc()
                LATENCY.labels(method).observe(time.perf_counter() - start)

        # Unary and client-streaming alike: the first argument is the request or the request iterator.
        make = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
        return make(
            observed, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
