"""A real OTLP/gRPC receiver for the telemetry test: accepts trace and metric exports and
appends each request, as JSON, to OUT_FILE (one line each: {"signal": ..., "body": ...}).
Prints `listening PORT` once it serves; runs until killed.

Usage: otlp_receiver.py OUT_FILE [--count-only]

With --count-only (for benchmarks) each request only adds to counts of spans and metric data
points, written to OUT_FILE when the receiver is stopped (SIGTERM).
"""
import json
import os
import signal
import sys
import threading
from concurrent import futures

import grpc
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

lock = threading.Lock()
out = open(sys.argv[1], "a", encoding="utf-8")
count_only = "--count-only" in sys.argv[2:]
counts = {"requests": 0, "spans": 0, "data_points": 0}


def keep(signal, request):
    if count_only:
        with lock:
            counts["requests"] += 1
            if signal == "traces":
                counts["spans"] += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
            else:
                counts["data_points"] += sum(
                    1 for r in request.resource_metrics for s in r.scope_metrics for m in s.metrics
                )
        return
    line = json.dumps({"signal": signal, "body": MessageToDict(request)})
    with lock:
        out.write(line + "\n")
        out.flush()


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        keep("traces", request)
        return trace_service_pb2.ExportTraceServiceResponse()


class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, request, context):
        keep("metrics", request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(f"listening {port}", flush=True)


def stop(*_):
    if count_only:
        with lock:
            out.write(json.dumps(counts) + "\n")
            out.flush()
    os._exit(0)


signal.signal(signal.SIGTERM, stop)
server.wait_for_termination()
