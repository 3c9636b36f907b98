"""A real OTLP/gRPC receiver for the telemetry test: accepts trace and metric exports and
appends each request, as JSON, to OUT_FILE (one line each: {"signal": ..., "body": ...}).
Prints `listening PORT` once it serves; runs until killed.

Usage: otlp_receiver.py OUT_FILE
"""
import json
import sys
import threading
from concurrent import futures

import grpc
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

lock = threading.Lock()
out = open(sys.argv[1], "a", encoding="utf-8")


def keep(signal, request):
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
server.wait_for_termination()
