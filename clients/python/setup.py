"""Build of the moerec Python client.

The gRPC stubs are generated from the repository's proto/ folder by
grpc_tools.protoc while the package is built (build_py), into
moerec_client/_proto/ of the build tree; nothing generated is committed.
The proto folder is found at ../../proto from this file (the checkout's
layout) or named by the environment variable MOEREC_PROTO_DIR.
"""
import os
import re

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOS = ("health.proto", "moerec.proto")


def proto_dir():
    d = os.environ.get("MOEREC_PROTO_DIR") or os.path.join(HERE, "..", "..", "proto")
    d = os.path.abspath(d)
    for name in PROTOS:
        if not os.path.isfile(os.path.join(d, name)):
            raise SystemExit("moerec_client: %s not found in %s (set MOEREC_PROTO_DIR to the "
                             "checkout's proto/ folder)" % (name, d))
    return d


def generate(src, out):
    """protoc every proto into out/, with package-relative imports."""
    from grpc_tools import protoc
    os.makedirs(out, exist_ok=True)
    for name in PROTOS:
        if protoc.main(["protoc", "-I" + src, "--python_out=" + out, "--grpc_python_out=" + out,
                        os.path.join(src, name)]):
            raise SystemExit("moerec_client: protoc failed on " + name)
    # grpc_tools writes `import moerec_pb2 as ...` (top-level); inside the
    # package the import must be relative.
    for name in PROTOS:
        path = os.path.join(out, name.replace(".proto", "_pb2_grpc.py"))
        with open(path) as f:
            text = f.read()
        text = re.sub(r"^import (\w+_pb2) as", r"from . import \1 as", text, flags=re.M)
        with open(path, "w") as f:
            f.write(text)
    with open(os.path.join(out, "__init__.py"), "w") as f:
        f.write('"""Generated from proto/ at build time by grpc_tools.protoc."""\n')


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        generate(proto_dir(), os.path.join(self.build_lib, "moerec_client", "_proto"))


def version():
    with open(os.path.join(HERE, "moerec_client", "__init__.py")) as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


setup(
    name="moerec-client",
    version=version(),
    description="Python client for the moerec recommendation service (gRPC)",
    packages=["moerec_client"],
    python_requires=">=3.9",
    install_requires=["grpcio", "protobuf"],
    cmdclass={"build_py": BuildPyWithStubs},
)
