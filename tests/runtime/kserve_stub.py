"""A stand-in for Triton Inference Server in tests: the real KServe v2 gRPC protocol, ONNX Runtime behind it.

This is NOT Triton. It is an in-process ``grpc.server`` implementing the
``GRPCInferenceService`` servicer generated from Triton's own protos
(``tritonclient.grpc.service_pb2_grpc``), so the triton backend's requests
and the responses it decodes are the real wire protocol, byte for byte:
ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata,
ModelConfig, RepositoryIndex and ModelInfer (raw_input_contents /
raw_output_contents). Behind it, each model folder of a repository that
``edgepilot export triton`` wrote is read as Triton would read it (its
``config.pbtxt`` parsed into ``model_config_pb2.ModelConfig``, the highest
numeric version folder's ``model.onnx``) and run with ONNX Runtime on the CPU.

What it leaves out: scheduling (no dynamic batcher: each request runs as it
comes), instance groups, the TensorRT accelerator, the HTTP endpoint, shared
memory and streaming. Shapes are checked against the config as Triton does
(``max_batch_size`` > 0 puts a batch dim of at most that in front of the dims).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from edgepilot.runtime.engines.ops_triton import CONFIG, TRITON_DTYPES

NUMPY = {v: k for k, v in TRITON_DTYPES.items()}  # Triton data type -> numpy dtype name


@dataclass
class Served:
    """One loaded model: its config, version and ONNX Runtime session."""

    config: Any
    version: str
    session: Any

    def datatype(self, tensor: Any) -> str:
        return str(mc.DataType.Name(tensor.data_type)).removeprefix("TYPE_")

    def shape(self, tensor: Any) -> list[int]:
        return ([-1] if self.config.max_batch_size > 0 else []) + list(tensor.dims)


def load_repository(repo: Path) -> dict[str, Served]:
    """Every model folder of ``repo`` with a config.pbtxt and a numeric version folder holding model.onnx."""
    models = {}
    for folder in sorted(p for p in repo.iterdir() if (p / CONFIG).is_file()):
        config = text_format.Parse((folder / CONFIG).read_text(), mc.ModelConfig())
        versions = sorted((p for p in folder.iterdir() if p.name.isdigit() and (p / "model.onnx").is_file()),
                          key=lambda p: int(p.name))
        if versions:
            session = ort.InferenceSession(str(versions[-1] / "model.onnx"), providers=["CPUExecutionProvider"])
            models[config.name or folder.name] = Served(config, versions[-1].name, session)
    return models


class KServeStub(pb_grpc.GRPCInferenceServiceServicer):
    """The servicer: answers from the loaded models; ``delay_s`` slows ModelInfer (to test timeouts)."""

    def __init__(self, repo: Path, delay_s: float = 0.0) -> None:
        self.models = load_repository(repo)
        self.delay_s = delay_s
        self.infer_calls = 0

    def _model(self, name: str, version: str, context: grpc.ServicerContext) -> Served:
        served = self.models.get(name)
        if served is None or version not in ("", served.version):
            context.abort(grpc.StatusCode.NOT_FOUND, f"Request for unknown model: '{name}' version {version!r} is not found")
        assert served is not None
        return served

    def ServerLive(self, request: Any, context: grpc.ServicerContext) -> Any:
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: grpc.ServicerContext) -> Any:
        return pb.ServerReadyResponse(ready=True)

    def ServerMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        return pb.ServerMetadataResponse(name="kserve-stub (not Triton)", version="0")

    def ModelReady(self, request: Any, context: grpc.ServicerContext) -> Any:
        served = self.models.get(request.name)
        return pb.ModelReadyResponse(ready=served is not None and request.version in ("", served.version))

    def RepositoryIndex(self, request: Any, context: grpc.ServicerContext) -> Any:
        return pb.RepositoryIndexResponse(models=[
            pb.RepositoryIndexResponse.ModelIndex(name=n, version=s.version, state="READY")
            for n, s in self.models.items()])

    def ModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        served = self._model(request.name, request.version, context)

        def meta(tensor: Any) -> Any:
            return pb.ModelMetadataResponse.TensorMetadata(name=tensor.name, datatype=served.datatype(tensor),
                                                           shape=served.shape(tensor))

        return pb.ModelMetadataResponse(name=request.name, versions=[served.version], platform=served.config.platform,
                                        inputs=[meta(t) for t in served.config.input],
                                        outputs=[meta(t) for t in served.config.output])

    def ModelConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        return pb.ModelConfigResponse(config=self._model(request.name, request.version, context).config)

    def ModelInfer(self, request: Any, context: grpc.ServicerContext) -> Any:
        served = self._model(request.model_name, request.model_version, context)
        self.infer_calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        declared = {t.name: t for t in served.config.input}
        if len(request.raw_input_contents) != len(request.inputs):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "this stand-in reads raw_input_contents only")
        feeds = {}
        for tensor, raw in zip(request.inputs, request.raw_input_contents, strict=True):
            self._check_input(served, declared.get(tensor.name), tensor, context)
            feeds[tensor.name] = np.frombuffer(raw, NUMPY[tensor.datatype]).reshape(list(tensor.shape))
        names = [o.name for o in request.outputs] or [o.name for o in served.config.output]
        arrays = served.session.run(names, feeds)
        response = pb.ModelInferResponse(model_name=request.model_name, model_version=served.version, id=request.id)
        for name, arr in zip(names, arrays, strict=True):
            response.outputs.add(name=name, datatype=TRITON_DTYPES[arr.dtype.name], shape=list(arr.shape))
            response.raw_output_contents.append(np.ascontiguousarray(arr).tobytes())
        return response

    @staticmethod
    def _check_input(served: Served, declared: Any, tensor: Any, context: grpc.ServicerContext) -> None:
        """Name, data type and shape as Triton checks them against the config."""
        name = served.config.name
        if declared is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unexpected inference input '{tensor.name}' for model '{name}'")
        expected = served.shape(declared)
        got = list(tensor.shape)
        batch_ok = served.config.max_batch_size == 0 or (got and 0 < got[0] <= served.config.max_batch_size)
        fits = len(got) == len(expected) and all(e < 0 or e == g for e, g in zip(expected, got, strict=False))
        if tensor.datatype != served.datatype(declared) or not (fits and batch_ok):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"unexpected shape or datatype for input '{tensor.name}' for model '{name}'. Expected "
                          f"{expected} {served.datatype(declared)}, got {got} {tensor.datatype}")


@contextlib.contextmanager
def serve(repo: Path, delay_s: float = 0.0) -> Iterator[tuple[str, KServeStub]]:
    """Serve ``repo`` on 127.0.0.1 at a free port for the ``with`` block; yields (``host:port``, the servicer)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.max_receive_message_length", 64 << 20),
                                  ("grpc.max_send_message_length", 64 << 20)])
    stub = KServeStub(repo, delay_s)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(stub, server)
    port = server.add_insecure_port("127.0.0.1:0")  # 0: the OS picks a free port
    server.start()
    try:
        yield f"127.0.0.1:{port}", stub
    finally:
        server.stop(grace=None).wait()
