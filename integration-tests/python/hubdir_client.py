"""Shared helpers of the Python black-box checks: stubs generated from proto/ at run time
with grpcio-tools, and a failure that names what went wrong."""

import importlib
import subprocess
import sys

FILES = ("site", "registry", "discovery", "coverage", "connectivity", "federation")


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def load_stubs(proto_root, out_dir):
    """Compiles hubdir.v1 with grpc_tools.protoc into out_dir and imports the modules."""
    files = [f"hubdir/v1/{name}.proto" for name in FILES]
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_root}", f"--python_out={out_dir}",
         f"--grpc_python_out={out_dir}", *files],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        fail(f"protoc could not compile the contract: {result.stderr}")
    sys.path.insert(0, out_dir)
    modules = {}
    for name in FILES:
        modules[name] = importlib.import_module(f"hubdir.v1.{name}_pb2")
        modules[f"{name}_grpc"] = importlib.import_module(f"hubdir.v1.{name}_pb2_grpc")
    return modules


def bearer(token):
    return [("authorization", f"Bearer {token}")] if token else []
