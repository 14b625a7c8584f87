"""A bundle as a Triton model repository: ONNX Runtime backend, TensorRT accelerator on a GPU.

:func:`write_triton_model` writes, for ``edgepilot export triton BUNDLE --out REPO``::

    REPO/<name>/config.pbtxt      a ModelConfig (tritonclient's model_config.proto, protobuf text format)
    REPO/<name>/1/model.onnx      the bundle's graph for the precision and kind (table below)
    REPO/<name>/1/meta.json       the bundle's meta.json, so a client decodes as the bundle does
                                  (the folder is itself a bundle: --model REPO/<name>/1)

Which graph is served, and how:

=========  ===========================================  ======================================
precision  ``--kind cpu`` (ONNX Runtime CPU)            ``--kind gpu`` (+ TensorRT accelerator)
=========  ===========================================  ======================================
fp32       model.onnx                                   model.onnx, precision_mode FP32
fp16       model.fp16.onnx (float32 I/O)                model.onnx, precision_mode FP16
int8       model.int8.cpu.onnx, else model.int8.onnx    model.int8.onnx (Q/DQ), precision_mode
                                                        INT8, no calibration table
=========  ===========================================  ======================================

This is the same choice the ort backend makes for its CPU and TensorRT providers.
Inputs and outputs (names, data types, dims) are read from the served graph
and checked against meta.json. With ``max_batch`` > 1 the graph is made to
take a batch and checked with ONNX Runtime (:mod:`edgepilot.export.batching`;
a graph that still fixes its batch is refused), and the config gets
``max_batch_size``, dynamic batching and a queue delay; otherwise
``max_batch_size`` is 0 and the dims are the graph's own. The precision is recorded in the config's parameter
``edgepilot_precision`` (the triton backend checks it). Everything is
checked, then written to a staging folder beside REPO and renamed into
place, so bad input leaves nothing behind; other models in REPO are untouched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.export.batching import check_batching, make_batchable
from edgepilot.runtime.build.fp16 import fp16_model
from edgepilot.runtime.bundle import PRECISIONS, Bundle, load_bundle
from edgepilot.runtime.engines.ops_triton import (
    CONFIG,
    PRECISION_PARAMETER,
    TRITON_DTYPES,
    triton_model_name,
)
from edgepilot.runtime.errors import BundleError, EdgepilotError, require
from edgepilot.runtime.outputs import check_outputs

KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}
TRT_PRECISION = {"fp32": "FP32", "fp16": "FP16", "int8": "INT8"}
PLATFORM = "onnxruntime_onnx"
VERSION = "1"
MAX_BATCH = 4096
MAX_INSTANCES = 64
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True, slots=True)
class TritonModel:
    """What to serve: ``precision``, ``max_batch`` frames per batch (<= 1: no batching), ``instances`` of
    ``kind`` cpu|gpu, the model ``name`` (default: the bundle's), the dynamic batcher's queue delay in
    microseconds and the TensorRT workspace in MB."""

    precision: str = "fp32"
    max_batch: int = 1
    instances: int = 1
    kind: str = "cpu"
    name: str | None = None
    queue_delay_us: int = 100
    workspace_mb: int = 1024

    def check(self) -> None:
        """EdgepilotError (exit 2) naming the bad field and the allowed values."""
        bad = None
        if self.precision not in PRECISIONS:
            bad = f"--precision {self.precision!r}: use one of {', '.join(PRECISIONS)}"
        elif self.kind not in KINDS:
            bad = f"--kind {self.kind!r}: use cpu (ONNX Runtime on CPU) or gpu (ONNX Runtime + TensorRT)"
        elif not 0 <= self.max_batch <= MAX_BATCH:
            bad = f"--max-batch {self.max_batch}: give 0..{MAX_BATCH} (0 or 1: no batching)"
        elif not 1 <= self.instances <= MAX_INSTANCES:
            bad = f"--instances {self.instances}: give 1..{MAX_INSTANCES}"
        elif self.queue_delay_us < 0 or self.workspace_mb < 1:
            bad = "the queue delay must be >= 0 us and the TensorRT workspace >= 1 MB"
        elif self.name is not None and not _NAME.match(self.name):
            bad = f"--name {self.name!r}: a Triton model name is letters, digits, '_', '.' and '-'"
        if bad:
            raise EdgepilotError(bad, exit_code=2)


@dataclass(frozen=True, slots=True)
class GraphTensor:
    """A graph input or output: name, numpy dtype name, dims (-1: dynamic)."""

    name: str
    dtype: str
    dims: tuple[int, ...]


def source_graph(bundle: Bundle, model: TritonModel) -> Path:
    """The bundle's ONNX graph to serve (see the module table); BundleError when the bundle lacks it."""
    if model.precision == "int8":
        cpu = bundle.path_of("int8_cpu")
        return cpu if model.kind == "cpu" and cpu.is_file() else bundle.file("int8")
    if model.precision == "fp16" and model.kind == "cpu":
        return fp16_model(bundle)
    return bundle.file("fp32")


def _load(path: Path) -> Any:
    onnx = require("onnx", "onnx", "export triton")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise BundleError(f"{path} is not a valid ONNX model ({type(exc).__name__}); re-export the bundle") from exc


def graph_io(model: Any) -> tuple[list[GraphTensor], list[GraphTensor]]:
    """The graph's inputs (initialisers excluded) and outputs as GraphTensors."""
    onnx = require("onnx", "onnx", "export triton")
    inits = {i.name for i in model.graph.initializer}

    def tensor(value: Any) -> GraphTensor:
        t = value.type.tensor_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)).name
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in t.shape.dim)
        return GraphTensor(value.name, dtype, dims)

    return ([tensor(v) for v in model.graph.input if v.name not in inits], [tensor(v) for v in model.graph.output])


def check_io(bundle: Bundle, path: Path, inputs: list[GraphTensor], outputs: list[GraphTensor]) -> None:
    """meta.json's inputs and outputs must be the graph's, with the same dtypes; every type must map to Triton."""
    for kind, specs, tensors in (("input", bundle.inputs, inputs), ("output", bundle.outputs, outputs)):
        graph = {t.name: t for t in tensors}
        for spec in specs:
            t = graph.get(spec.name)
            if t is None or t.dtype != spec.dtype:
                found = f"is {t.dtype}" if t is not None else f"is missing (the graph has {sorted(graph)})"
                raise BundleError(f"{path}: meta.json {kind} {spec.name!r} ({spec.dtype}) {found}; re-export the bundle")
        for t in tensors:
            if t.dtype not in TRITON_DTYPES:
                raise BundleError(f"{path}: {kind} {t.name!r} is {t.dtype}, which Triton has no data type for")


def _has_qdq(model: Any) -> bool:
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def _tensor_config(cls: Any, mc: Any, t: GraphTensor, batched: bool) -> Any:
    return cls(name=t.name, data_type=mc.DataType.Value(f"TYPE_{TRITON_DTYPES[t.dtype]}"),
               dims=list(t.dims[1:] if batched else t.dims))


def model_config(name: str, inputs: list[GraphTensor], outputs: list[GraphTensor], model: TritonModel) -> Any:
    """The ``tritonclient.grpc.model_config_pb2.ModelConfig`` for the served graph."""
    mc: Any = require("tritonclient.grpc.model_config_pb2", "triton", "export triton")
    batched = model.max_batch > 1
    config = mc.ModelConfig(name=name, platform=PLATFORM, max_batch_size=model.max_batch if batched else 0)
    config.input.extend(_tensor_config(mc.ModelInput, mc, t, batched) for t in inputs)
    config.output.extend(_tensor_config(mc.ModelOutput, mc, t, batched) for t in outputs)
    if batched:
        config.dynamic_batching.max_queue_delay_microseconds = model.queue_delay_us
    config.instance_group.add(count=model.instances, kind=mc.ModelInstanceGroup.Kind.Value(KINDS[model.kind]))
    if model.kind == "gpu":
        trt = config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
        trt.parameters["precision_mode"] = TRT_PRECISION[model.precision]
        trt.parameters["max_workspace_size_bytes"] = str(model.workspace_mb << 20)
    config.parameters[PRECISION_PARAMETER].string_value = model.precision
    return config


def _check_target(folder: Path, force: bool) -> None:
    """REPO/<name> must be new or empty, or (with ``force``) a model folder export triton wrote."""
    check_outputs({}, folders={"--out": folder.parent})
    if folder.exists() and not folder.is_dir():
        raise EdgepilotError(f"{folder} is a file, not a model folder; give another --name or --out", exit_code=2)
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    if not force:
        raise EdgepilotError(f"{folder} is not empty: pass --force to replace that model (other models in "
                             f"{folder.parent} are left alone)", exit_code=2)
    written = folder / CONFIG
    if not (written.is_file() and PRECISION_PARAMETER in written.read_text(errors="replace")):
        raise EdgepilotError(f"{folder} is not empty and has no {CONFIG} written by edgepilot export triton: "
                             "refusing to replace it; give another --name or --out", exit_code=2)


def _swap(staging: Path, folder: Path) -> None:
    """Put ``staging`` where ``folder`` is; a previous ``folder`` is moved aside first and deleted after."""
    if not folder.exists():
        os.replace(staging, folder)
        return
    old = folder.with_name(f".{folder.name}.old{os.getpid()}")
    os.replace(folder, old)
    os.replace(staging, folder)
    shutil.rmtree(old)


def _fill(staging: Path, bundle: Bundle, src: Path, graph: Any, model: TritonModel, name: str) -> None:
    """Write config.pbtxt, 1/model.onnx (batched when asked, then tried) and 1/meta.json into ``staging``."""
    text_format: Any = require("google.protobuf.text_format", "triton", "export triton")
    version = staging / VERSION
    version.mkdir()
    if model.max_batch > 1:
        onnx = require("onnx", "onnx", "export triton")
        make_batchable(graph, src)
        onnx.save(graph, str(version / "model.onnx"))
        check_batching(version / "model.onnx", src, model.precision)
    else:
        shutil.copy2(src, version / "model.onnx")
    inputs, outputs = graph_io(graph)
    config = model_config(name, inputs, outputs, model)
    (staging / CONFIG).write_text(text_format.MessageToString(config))
    meta = {k: v for k, v in bundle.meta.items() if k != "files"}  # the folder holds model.onnx only
    (version / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def write_triton_model(bundle_path: str | Path, repo: str | Path, model: TritonModel | None = None, *,
                       force: bool = False) -> Path:
    """Write the Triton model folder ``repo/<name>`` for the bundle at ``bundle_path``; return that folder.

    Raises EdgepilotError/BundleError (exit 2) for bad input (no bundle, a precision the bundle lacks,
    an int8 graph without Q/DQ nodes for TensorRT, a graph that cannot batch, a non-empty target
    without ``force``) before anything is written.
    """
    model = model or TritonModel()
    model.check()
    repo = Path(repo)
    if repo.exists() and not repo.is_dir():
        raise EdgepilotError(f"--out {repo} is a file, not a model repository folder; give a folder", exit_code=2)
    if not Path(bundle_path).exists():
        raise BundleError(f"bundle {bundle_path} does not exist; give a bundle folder (meta.json + model.onnx)")
    bundle = load_bundle(bundle_path)
    name = model.name or triton_model_name(bundle.name)
    src = source_graph(bundle, model)
    graph = _load(src)
    check_io(bundle, src, *graph_io(graph))
    if model.kind == "gpu" and model.precision == "int8" and not _has_qdq(graph):
        raise BundleError(f"{src} has no QuantizeLinear/DequantizeLinear nodes: TensorRT INT8 without a "
                          "calibration table needs a Q/DQ graph (edgepilot export --int8 writes one)")
    created = not repo.exists()
    try:
        repo.mkdir(parents=True, exist_ok=True)
        folder = repo / name
        _check_target(folder, force)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=repo.parent))
    except OSError as exc:
        raise EdgepilotError(f"--out {repo}: cannot write there ({exc.strerror or exc})", exit_code=2) from exc
    try:
        _fill(staging, bundle, src, graph, model, name)
        _swap(staging, folder)
    except BaseException:
        if created and not any(repo.iterdir()):
            repo.rmdir()  # a failed export leaves no empty repository behind
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def summary(folder: Path, model: TritonModel) -> str:
    """The line ``export triton`` prints: what was written and the next two steps."""
    kind = "ONNX Runtime + TensorRT on GPU" if model.kind == "gpu" else "ONNX Runtime on CPU"
    batch = f"dynamic batching up to {model.max_batch}" if model.max_batch > 1 else "no batching"
    return (f"wrote {folder} (Triton model {folder.name!r}, {model.precision}, {kind}, {model.instances} "
            f"instance(s), {batch}); serve it with tritonserver --model-repository={folder.parent}, then "
            f"edgepilot run SOURCE --model {folder / VERSION} --backend triton --precision {model.precision} "
            "--engine-opt url=localhost:8001")
