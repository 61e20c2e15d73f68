"""Build hook: generate the gRPC modules (src/tuijian/v1/*_pb2*) from proto/ with grpc_tools.

Everything else about the package is declared in pyproject.toml. The generated code is built,
never committed, so it always matches the .proto and the grpcio pinned in [build-system].
`build_py` runs for wheels and for editable installs (PEP 660) alike; `make proto` runs the
`build_proto` command alone for a source checkout used through PYTHONPATH.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import Command, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "src"


class BuildProto(Command):
    description = "generate tuijian.v1 gRPC modules from proto/"
    user_options: list[tuple[str, str | None, str]] = []

    def initialize_options(self) -> None:
        pass

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        from grpc_tools import protoc  # a build requirement (pyproject.toml [build-system])

        include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto
        protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
        args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={OUT}",
                f"--grpc_python_out={OUT}", f"--pyi_out={OUT}", *protos]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {', '.join(protos)}")


class BuildPy(build_py):
    def run(self) -> None:
        self.run_command("build_proto")
        super().run()


setup(cmdclass={"build_proto": BuildProto, "build_py": BuildPy})
