"""OpenVINO backend (CPU): compiles the bundle's ONNX directly, no conversion step for the user.

Precisions:

- ``fp32`` compiles ``model.onnx`` with ``INFERENCE_PRECISION_HINT=f32``. The
  hint is set explicitly because OpenVINO's CPU default is bf16 on CPUs with
  AVX512-BF16 or AMX, a precision the bundle has no measured accuracy for.
- ``fp16`` is the CPU's 16-bit arithmetic: it compiles the FP32 graph saved
  as IR with FP16-compressed weights (``runtime.build.openvino.fp16_ir``,
  cached in ``engines/openvino/`` and keyed by the FP32 graph's SHA-256) and
  runs it in ``bf16`` where the device lists ``BF16`` in
  ``OPTIMIZATION_CAPABILITIES`` (AVX512-BF16 or AMX: Zen 4, Cooper Lake,
  Sapphire Rapids; OpenVINO's own default there), else in ``f16`` where it
  lists ``FP16`` (ARM with FP16), else in f32 with only the weights rounded
  (then fp16 costs what fp32 costs). An x86 CPU that lists FP16 (AVX512-FP16)
  lists BF16 too, and bf16 is the one to take there: on a Xeon with
  AVX512-FP16 and AMX-BF16 but no AMX-FP16 (2 cores, OpenVINO 2026.4, the
  YOLOv8n-class model of ``benchmarks/bench_cpu_compare.py`` at 384x640) f16
  ran at 32.9 ms, f32 21.4 ms, bf16 8.1 ms, and that model's INT8 graph with
  its float rest in f16 did not compile at all ("could not append an
  elementwise post-op"): ``benchmarks/openvino_precisions.py`` →
  ``benchmarks/results/openvino_precisions_amx.json``. If a 16-bit compile fails, the engine
  compiles in f32 instead and ``describe()`` says so
  (``inference_precision_fallback``): a plugin's fusion bug must not stop a run. bf16 keeps fp32's range with an
  8-bit mantissa; this is what OpenVINO itself (and so Ultralytics' OpenVINO
  export) runs by default on such CPUs, and where the 2x over f32 comes from
  (``benchmarks/results/cpu_compare.json``). Its accuracy on the shipped
  bundles is measured, not assumed: ``benchmarks/results/*_eval_openvino_fp16.json``.
  ``describe()`` reports ``inference_precision``.
- ``int8`` compiles the bundle's Q/DQ ``model.int8.onnx``; OpenVINO runs the
  quantised regions with INT8 kernels and, by default, the ops the graph leaves
  in float in the same 16-bit arithmetic as ``fp16`` (option ``int8_float=half``:
  bf16 on a BF16 CPU, which is what OpenVINO does by default with a Q/DQ model;
  ``int8_float=f32`` keeps them in f32). On the YOLOv8n-class model the f32 rest
  (SiLU, concatenations, the DFL head) cost as much as the INT8 convolutions
  saved: ``benchmarks/results/cpu_compare.json`` at commit c36cc8a (f32 rest)
  has openvino int8 at 21.39 ms against fp16 (bf16) 20.98 ms; the committed one
  (bf16 rest) 15.97 against 17.70 ms. Accuracy of the shipped bundles:
  ``benchmarks/results/*_eval_openvino_int8.json``. A bundle
  without ``model.int8.onnx`` is the same BundleError as for ort.

Options (``OpenVinoEngine.OPTIONS``): ``threads`` (INFERENCE_NUM_THREADS),
``streams`` (NUM_STREAMS), ``hint`` (latency or throughput), ``cache``
(compiled models kept in the bundle, see ``runtime.build.openvino``),
``preprocess`` (frames preprocessed in the compiled model or on the host),
``int8_float`` (above), ``overlap`` (start inference in ``prepare`` so
consecutive frames overlap) and ``argmax``: ``last`` runs a final argmax over the
channels (a segmentation bundle's class ids) over a channels-last transpose
(``runtime.build.openvino.argmax_channels_last`` says why), ``channels`` as exported;
by default ``last`` unless the whole model runs in 16-bit arithmetic (``fp16`` on a
CPU with FP16 or BF16), where the plugin's own layout already makes it fast. On
``models/seg`` at two threads (ad-hoc, interleaved, the earlier seg layout): fp32 5.47 -> 4.14 ms, int8
4.47 -> 3.53 ms, and fp16 (bf16) 3.15 ms as exported against 4.34 ms rewritten.

``make_processor`` returns :class:`OpenVinoProcessor`. With
``preprocess=graph`` the loop hands over the uint8 BGR camera frame as it is;
the compiled model resizes (bilinear, like cv2's INTER_LINEAR, within 1 LSB),
reorders colours, changes layout and normalises. Only stretch-resized float32
image bundles qualify (:func:`supports_in_graph`); letterbox stays on the
host. One model is compiled per source frame size, on the first frame of that
size (from the cache after the first run). Decoding is the host decoders
either way. It is not the default because it does not pay on the CPUs
measured: OpenVINO's resize, colour and layout steps cost more than cv2's
host preprocessing (``benchmarks/results/cpu_compare.json``, variant
``preprocess=graph``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgepilot.runtime.build.openvino import (
    Compiled,
    OvFingerprint,
    add_preprocessing,
    argmax_channels_last,
    compile_cached,
    first_line,
    fp16_ir,
    preprocess_steps,
    read_onnx,
    reshape_inputs,
)
from edgepilot.runtime.bundle import Bundle, file_sha256
from edgepilot.runtime.engines.base import Engine, check_feeds
from edgepilot.runtime.engines.options import Option, max_threads, threads_option
from edgepilot.runtime.errors import BundleError, EngineError, require
from edgepilot.runtime.frame import HANDOFF, INFER, POSTPROCESS, PREPROCESS, Frame, Output
from edgepilot.runtime.host import cpu_class
from edgepilot.runtime.postprocess import make_decoder
from edgepilot.runtime.preprocess import Preprocessor, Transform
from edgepilot.runtime.processor import PIPELINE_BUFFERS, Prepared, Processor

HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}


def in_graph_blocker(bundle: Bundle) -> str | None:
    """Why the compiled model cannot take the camera frame itself for this bundle (None: it can)."""
    pre, spec = bundle.preprocess, bundle.inputs[0]
    if bundle.task not in ("segmentation", "detection") or len(bundle.inputs) != 1:
        return f"a {bundle.task} bundle takes no camera frame"
    if pre.get("resize", "stretch") != "stretch":
        return f"its {pre.get('resize')} resize stays on the host"
    if spec.dtype != "float32" or len(spec.shape) != 4 or str(pre["layout"]).upper() not in ("NCHW", "NHWC"):
        return f"its input {spec.name!r} is not a float32 NCHW/NHWC image"
    return None


def supports_in_graph(bundle: Bundle) -> bool:
    """Whether ``preprocess=graph`` can serve this bundle."""
    return in_graph_blocker(bundle) is None


def half_precision(capabilities: list[str]) -> str:
    """The inference precision ``fp16`` runs in on a CPU with these OPTIMIZATION_CAPABILITIES."""
    return "bf16" if "BF16" in capabilities else "f16" if "FP16" in capabilities else "f32"


_CORE: list[Any] = []


def shared_core(ov: Any) -> Any:
    """One ``openvino.Core`` for the process, never released.

    A Core loads its device plugins and frontends as shared libraries and unloads
    them when the last Core goes; a library that installed a signal handler and is
    then unloaded leaves the process with a dangling handler, and the next Ctrl-C
    (SIGINT) crashes it (seen here: a segfault on SIGINT after an engine was
    garbage-collected). Keeping one Core alive keeps them loaded; it also makes
    the second engine faster to build. The ONNX is read into memory (no mmap), so
    a bundle re-exported in place cannot pull pages from under a running engine.
    """
    if not _CORE:
        core = ov.Core()
        core.set_property({ov.properties.enable_mmap(): False})
        _CORE.append(core)
    return _CORE[0]


class OpenVinoEngine(Engine):
    backend = "openvino"
    devices = ("cpu",)
    precisions = ("fp32", "fp16", "int8")
    OPTIONS = (
        threads_option("CPU inference threads (INFERENCE_NUM_THREADS)", "OpenVINO's: the cores"),
        Option("streams", "int", "inference streams that run requests in parallel (NUM_STREAMS)",
               min=1, max=max_threads(), default_text="the hint's"),
        Option("hint", "choice", "performance hint: latency (one stream) or throughput (a stream per "
               "few cores)", default="latency", choices=tuple(HINTS)),
        Option("cache", "bool", "keep compiled models in the bundle's engines/openvino, keyed by fingerprint",
               default=True),
        Option("preprocess", "choice", "where frames are preprocessed: host (cv2, as ort) or graph (in the "
               "compiled model; stretch-resize image bundles)", default="host", choices=("host", "graph")),
        Option("int8_float", "choice", "precision of the ops an int8 model leaves in float: half (the CPU's "
               "16-bit arithmetic, as fp16 runs) or f32", default="half", choices=("half", "f32")),
        Option("overlap", "bool", "start each frame's inference in prepare, so up to 3 frames are in "
               "flight in the threaded loop", default_text="true with hint=throughput, else false"),
        Option("argmax", "choice", "how a final argmax over the channels runs: last (over the channels-last "
               "transpose; faster where the model does not run in 16-bit) or channels (as exported)",
               choices=("last", "channels"), default_text="channels for fp16 in 16-bit arithmetic, else last"),
    )

    def __init__(self, bundle: Bundle, precision: str = "fp32", device: str = "cpu",
                 hw: tuple[int, int] | None = None, **options: Any) -> None:
        super().__init__(bundle, precision, device, hw, **options)
        blocker = in_graph_blocker(bundle) if self.options["preprocess"] == "graph" else None
        if blocker:
            raise EngineError(f"engine option preprocess=graph for the openvino backend: {blocker}; "
                              "use preprocess=host (the default)", exit_code=2)
        ov: Any = require("openvino", "openvino", "the openvino backend")
        self._ov, self.core = ov, shared_core(ov)
        self.source = bundle.file("int8" if precision == "int8" else "fp32")
        self.model_path = fp16_ir(ov, self.core, bundle) if precision == "fp16" else self.source
        self.source_sha256 = file_sha256(self.source)
        self.device_name = str(self.core.get_property("CPU", "FULL_DEVICE_NAME"))
        caps = self.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        half = precision == "fp16" or (precision == "int8" and self.options["int8_float"] == "half")
        self._use_precision(half_precision(caps) if half else "f32")
        self.precision_fallback: str | None = None
        try:
            self.compiled = self._compile({}, None)
        except EngineError as exc:
            if self.inference_precision == "f32":
                raise
            # OpenVINO's CPU plugin can fail to fuse a 16-bit graph it would run in f32
            # (module docstring): run in f32 rather than not at all, and say so
            self.precision_fallback = f"{self.inference_precision} did not compile ({exc}); compiled in f32"
            self._use_precision("f32")
            self.compiled = self._compile({}, None)
        self._request = self.compiled.model.create_infer_request()
        self._expected = {p.get_any_name(): (tuple(p.get_shape()), p.get_element_type().to_dtype().name)
                          for p in self.compiled.model.inputs}
        self._outputs = output_ports(self.compiled.model, bundle)

    def _use_precision(self, inference_precision: str) -> None:
        """Run in this arithmetic, with what follows from it: the argmax layout and the compile config."""
        self.inference_precision = inference_precision
        sixteen_bit = self.precision == "fp16" and inference_precision != "f32"
        self.argmax = self.options["argmax"] or ("channels" if sixteen_bit else "last")
        self.config = self._config()

    def _config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"PERFORMANCE_HINT": HINTS[self.options["hint"]],
                               "INFERENCE_PRECISION_HINT": self.inference_precision}
        if self.options["threads"] is not None:
            cfg["INFERENCE_NUM_THREADS"] = self.options["threads"]
        if self.options["streams"] is not None:
            cfg["NUM_STREAMS"] = self.options["streams"]
        return cfg

    def _compile(self, steps: Mapping[str, Any], frame_hw: tuple[int, int] | None) -> Compiled:
        """Read, reshape, optionally add in-graph preprocessing for ``frame_hw``, compile (cached)."""
        model = read_onnx(self.core, self.model_path)
        shapes = self.input_shapes()
        reshape_inputs(model, shapes, self.model_path)
        rewrites = {"argmax_channels_last": argmax_channels_last(self._ov, model)} if self.argmax == "last" else {}
        if frame_hw is not None:
            model = add_preprocessing(self._ov, model, steps)
        # the ISA goes in too: OpenVINO names a Zen 3 and a Zen 4 VM alike ("AMD EPYC"), not their kernels
        device = f"{self.device_name} | {cpu_class()}"
        fp = OvFingerprint.make(self.source_sha256, self._ov.get_version(), device, self.precision,
                                self.inference_precision, shapes, steps or None, self.config, rewrites)
        return compile_cached(self._ov, self.core, model, self.config, self.bundle, fp, self.options["cache"])

    def compile_for_frames(self, frame_hw: tuple[int, int]) -> Compiled:
        """A compiled model whose input is the ``[1, H, W, 3]`` uint8 BGR frame of size ``frame_hw``."""
        pre = Preprocessor(self.inputs[0], self.bundle.preprocess, self.hw)  # validates sizes, as on the host
        return self._compile(preprocess_steps(self.bundle.preprocess, frame_hw, pre.input_hw), frame_hw)

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feeds(self._expected, feeds)
        try:
            res = self._request.infer(dict(feeds), share_inputs=True, share_outputs=True)
        except RuntimeError as exc:
            raise EngineError(f"OpenVINO inference failed: {first_line(exc)}") from exc
        return {name: res[port] for name, port in self._outputs}

    def throughput_fps(self, feeds: Mapping[str, np.ndarray], calls: int) -> float | None:
        if not self.overlap():
            return None
        queue = self._ov.AsyncInferQueue(self.compiled.model, PIPELINE_BUFFERS)
        for _ in range(PIPELINE_BUFFERS):  # fill the pipeline first
            queue.start_async(dict(feeds))
        queue.wait_all()
        t0 = time.perf_counter()
        for _ in range(calls):
            queue.start_async(dict(feeds))
        queue.wait_all()
        return calls / (time.perf_counter() - t0)

    def in_graph(self) -> bool:
        return bool(self.options["preprocess"] == "graph")

    def overlap(self) -> bool:
        chosen = self.options["overlap"]
        return self.options["hint"] == "throughput" if chosen is None else bool(chosen)

    def make_processor(self) -> Processor:
        return OpenVinoProcessor(self, self.in_graph(), self.overlap())

    def describe(self) -> dict[str, Any]:
        model = self.compiled.model
        return {**super().describe(), "openvino": self._ov.get_version(), "model": self.model_path.name,
                "cpu": self.device_name, "inference_precision": self.inference_precision,
                "inference_precision_fallback": self.precision_fallback,
                "hint": self.options["hint"], "threads": int(model.get_property("INFERENCE_NUM_THREADS")),
                "streams": int(model.get_property("NUM_STREAMS")),
                "preprocess": "graph" if self.in_graph() else "host", "overlap": self.overlap(),
                "argmax": self.argmax,
                "cache": str(self.compiled.cache_dir) if self.compiled.cache_dir else None,
                "from_cache": self.compiled.from_cache, "fingerprint": self.compiled.fingerprint.key()}

    def close(self) -> None:
        for name in ("_request", "compiled", "core"):
            self.__dict__.pop(name, None)


def output_ports(compiled: Any, bundle: Bundle) -> list[tuple[str, Any]]:
    """(bundle output name, compiled-model port) pairs; BundleError when meta.json names a missing one."""
    out = []
    for spec in bundle.outputs:
        try:
            out.append((spec.name, compiled.output(spec.name)))
        except RuntimeError as exc:
            have = sorted(n for o in compiled.outputs for n in o.get_names())
            raise BundleError(f"meta.json output {spec.name!r} is not an output of the model (it has {have})") from exc
    return out


@dataclass(slots=True)
class _Requests:
    """One compiled model's infer requests, used in turn, and its output ports."""

    compiled: Compiled
    requests: list[Any]
    outputs: list[tuple[str, Any]]
    next: int = field(default=0)

    def take(self) -> Any:
        req, self.next = self.requests[self.next], (self.next + 1) % len(self.requests)
        return req


class OpenVinoProcessor:
    """Frame -> Output with OpenVINO infer requests; the frame itself is the input with in-graph preprocessing.

    With ``overlap`` the request is started in ``prepare`` (preprocess thread)
    and awaited in ``complete``, so while the loop decodes frame N, frames N+1
    and N+2 may already be inferring (as many at once as the engine has
    streams). Requests rotate over ``PIPELINE_BUFFERS``: the loop never holds
    more prepared frames than that, so a request is finished when it comes round.
    Without ``overlap`` ``complete`` runs the request synchronously.
    """

    def __init__(self, engine: OpenVinoEngine, in_graph: bool, overlap: bool) -> None:
        self.engine, self.in_graph, self.overlap = engine, in_graph, overlap
        bundle = engine.bundle
        self.spec = bundle.inputs[0]
        self.pre = Preprocessor(self.spec, bundle.preprocess, engine.hw, buffers=1 if in_graph else PIPELINE_BUFFERS)
        self.decode = make_decoder(bundle)
        self._depth = PIPELINE_BUFFERS if overlap else 1
        self._host = self._requests(engine.compiled) if not in_graph else None
        self._by_size: dict[tuple[int, int], _Requests] = {}

    def _requests(self, compiled: Compiled) -> _Requests:
        reqs = [compiled.model.create_infer_request() for _ in range(self._depth)]
        return _Requests(compiled, reqs, output_ports(compiled.model, self.engine.bundle))

    def _for_frame(self, image: np.ndarray) -> tuple[_Requests, np.ndarray, Transform]:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise BundleError(f"expected an HxWx3 uint8 BGR image, got {image.dtype} {image.shape}")
        src_h, src_w = image.shape[:2]
        reqs = self._by_size.get((src_h, src_w))
        if reqs is None:
            reqs = self._by_size[(src_h, src_w)] = self._requests(self.engine.compile_for_frames((src_h, src_w)))
        h, w = self.pre.input_hw
        return reqs, np.ascontiguousarray(image)[None], Transform(w / src_w, h / src_h, 0.0, 0.0)

    def prepare(self, frame: Frame) -> Prepared:
        if self._host is None:
            reqs, tensor, transform = self._for_frame(frame.image)
        else:
            reqs = self._host
            tensor, transform = self.pre(frame.image)
        req = reqs.take()
        if self.overlap:
            # A host tensor is one of the preprocessor's rotating buffers (safe to share until
            # the request is done); a camera frame is not ours, so OpenVINO copies it.
            try:
                req.start_async({0: tensor}, share_inputs=self._host is not None)
            except RuntimeError as exc:
                raise EngineError(f"OpenVINO inference failed: {first_line(exc)}") from exc
        # With overlap this stamps the enqueueing; the infer stamp includes the wait.
        frame.timeline.stamp(PREPROCESS)
        return Prepared(frame, (reqs, req, tensor), transform)

    def complete(self, prepared: Prepared) -> Output:
        frame = prepared.frame
        reqs, req, tensor = prepared.tensor
        frame.timeline.stamp(HANDOFF)
        try:
            if self.overlap:
                req.wait()
            else:
                req.infer({0: tensor}, share_inputs=True, share_outputs=True)
        except RuntimeError as exc:
            raise EngineError(f"OpenVINO inference failed: {first_line(exc)}") from exc
        outputs = {name: req.get_tensor(port).data for name, port in reqs.outputs}
        frame.timeline.stamp(INFER)
        assert prepared.transform is not None  # prepare always sets it
        result = self.decode(outputs, prepared.transform, frame.image.shape[:2])
        frame.timeline.stamp(POSTPROCESS)
        return result

    def __call__(self, frame: Frame) -> Output:
        return self.complete(self.prepare(frame))
