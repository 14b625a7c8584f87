"""onnxruntime backend: CPU, CUDA and TensorRT execution providers.

Options (``OrtEngine.OPTIONS``):

- ``provider``: ``auto`` (default) prefers TensorRT, then CUDA, then CPU among
  the providers this onnxruntime build offers (CPU only when the device is
  cpu); ``cpu``, ``cuda`` or ``tensorrt`` ask for one explicitly.
  ``describe()`` reports the provider that was actually chosen.
- ``threads``: intra-op threads (or ``$EDGEPILOT_ORT_THREADS``, checked the
  same way), 1 to 4 x the machine's cores (at most 256).
- ``spin``: whether idle intra-op threads spin-wait (onnxruntime's default, kept; ``drive``
  turns it off when it runs several engines one after another each tick).
- ``hint``: ``latency`` (default: one run at a time on all intra-op threads) or
  ``throughput`` (CPU provider: ``streams`` runs in flight at once, each on
  ``threads`` intra-op threads, by default one run per core up to 4 and the
  cores shared among them, so consecutive frames of a file overlap in the
  threaded loop, as OpenVINO's throughput hint does). One session serves every
  run (onnxruntime's ``Run`` is thread-safe). It pays because one run cannot
  keep two cores busy: on the YOLOv8n-class detector here two 1-thread runs in
  flight gave 1.18x (fp32) and 1.21x (int8) the frames/s of one 2-thread run
  back to back (``benchmarks/results/cpu_compare.json``: the ort
  ``throughput+overlap`` rows' ``engine_async_fps`` over 1000 / the ``default``
  rows' ``engine_round_p50s_ms``, paired per round; 1.11x and 1.54x in its
  repeat ``cpu_compare_repeat.json``; 1.04x / 1.32x and 1.51x / 1.47x in the cpu_compare files of
  commits 1c80af3 and 801141c). ``edgepilot run`` on a file uses it; on CUDA
  and TensorRT providers the device serialises the runs, so it is one stream there.
- ``streams``: runs in flight with ``hint=throughput`` (1 to 4 x the cores).
- ``preprocess``: ``host`` (the float input made on the host, as every backend does),
  ``graph`` (the host resizes and orders the frame's channels but hands over uint8 pixels;
  a second session runs the bundle's graph with the normalisation ``x * a + b`` as its
  first ops, built in memory by ``runtime.build.normalise``: the same arithmetic, so the
  same outputs, tested equal) or ``auto`` (default): ``graph`` with ``hint=throughput`` on
  the CPU provider, where both cores run frames and the loop's own CPU time comes out of
  theirs: on the YOLOv8n-class model at 384x640 the preprocess thread took 0.66-0.84 ms of
  CPU a frame with the float pass on the host and 0.26-0.36 ms handing over uint8
  (``benchmarks/results/cpu_compare_amx.json``, the ort ``throughput+overlap`` rows with and
  without ``preprocess=host``, ``cpu_ms_per_frame``). ``host`` with ``hint=latency``, where the next
  frame's preprocessing hides behind the current run and the graph's ops would lengthen it.
  The engine's own ``infer`` keeps the bundle's float input (engine-only benchmarks time the
  bundle's graph as exported); ``infer_frame`` takes the uint8 tensor.

Session options were checked against onnxruntime's performance-tuning advice
for low-latency CPU inference on this repository's graphs (engine p50, 2
threads, ``benchmarks/profile_cpu.py`` -> ``benchmarks/results/cpu_profile.json``):
``ORT_ENABLE_ALL`` graph optimisation (kept) measured 1.2x EXTENDED on the
YOLOv8n-class detector and 1.6-3.7x on the trained bundles; spinning off, the
memory arena off and memory patterns off each moved the p50 by less than the
machine's run-to-run noise, in both directions, so onnxruntime's defaults stay
(``spin`` is an option to try on a busy host).

Precisions: ``fp32`` runs ``model.onnx``; ``int8`` runs the bundle's Q/DQ
``model.int8.onnx``, or on the CPU provider ``model.int8.cpu.onnx`` where the
bundle has it (the same calibration with uint8 activations: U8S8, onnxruntime's
fast CPU kernels; the signed symmetric graph runs slower than fp32 there);
``fp16`` asks the TensorRT provider for FP16 kernels when
it leads, and otherwise runs ``model.fp16.onnx``, the graph converted by
onnxruntime's own ``convert_float_to_float16(keep_io_types=True)`` (inputs and
outputs stay float32), cached next to the model and regenerated when the
source graph's SHA-256 recorded in ``model.fp16.json`` no longer matches.

On CUDA the session runs through IO binding: outputs are allocated on the
device and copied to the host once per call.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.runtime.build.fp16 import fp16_model
from edgepilot.runtime.build.normalise import normalising_model
from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.engines.base import Engine, check_feeds
from edgepilot.runtime.engines.options import Option, max_threads, threads_option
from edgepilot.runtime.errors import BundleError, DeviceError, EngineError, require
from edgepilot.runtime.frame import PREPROCESS, Frame
from edgepilot.runtime.host import usable_cores
from edgepilot.runtime.processor import PIPELINE_BUFFERS, HostProcessor, Prepared, Processor

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
# onnxruntime error classes that mean "the file is not a usable ONNX model" (bad input, exit 2).
_BAD_MODEL = ("InvalidProtobuf", "InvalidGraph", "NoModel", "NoSuchFile")
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8",
               "tensor(int8)": "int8", "tensor(int32)": "int32", "tensor(int64)": "int64",
               "tensor(bool)": "bool", "tensor(double)": "float64"}


def choose_providers(available: list[str], device_kind: str, wanted: str = "auto") -> list[str]:
    """Ordered provider list for a session; raises DeviceError if the request cannot be met.

    ``auto`` on cpu gives CPU only; on cuda, TensorRT then CUDA (whichever this
    build has) with CPU last for unsupported nodes. An explicit GPU provider on
    a cpu device is a contradiction and is refused.
    """
    if wanted != "auto":
        if wanted not in PROVIDERS:
            raise EngineError(f"unknown ort provider {wanted!r}: use auto, {', '.join(PROVIDERS)}", exit_code=2)
        name = PROVIDERS[wanted]
        if device_kind == "cpu" and wanted != "cpu":
            raise DeviceError(f"provider {wanted} needs --device cuda; on cpu use provider cpu or auto")
        if name not in available:
            raise DeviceError(
                f"onnxruntime here has no {name} (it has {', '.join(available)}); "
                "install 'edgepilot[gpu]' on a CUDA machine or use --device cpu")
        return [name] if name == PROVIDERS["cpu"] else [name, PROVIDERS["cpu"]]
    if device_kind == "cpu":
        return [PROVIDERS["cpu"]]
    gpu = [PROVIDERS[k] for k in ("tensorrt", "cuda") if PROVIDERS[k] in available]
    if not gpu:
        raise DeviceError(
            f"onnxruntime here has no GPU provider (it has {', '.join(available)}); "
            "install 'edgepilot[gpu]' or use --device cpu")
    return [*gpu, PROVIDERS["cpu"]]


class OrtEngine(Engine):
    backend = "ort"
    devices = ("cpu", "cuda")
    precisions = ("fp32", "fp16", "int8")
    OPTIONS = (
        Option("provider", "choice", "onnxruntime execution provider; auto takes TensorRT, then CUDA, "
               "on a cuda device and CPU on cpu", default="auto", choices=("auto", "cpu", "cuda", "tensorrt")),
        threads_option("intra-op threads", "onnxruntime's", env="EDGEPILOT_ORT_THREADS"),
        Option("spin", "bool", "intra-op threads spin-wait between calls (session.intra_op.allow_spinning): "
               "lowest back-to-back latency; false frees the cores for the loop's own threads", default=True),
        Option("hint", "choice", "latency (one run at a time on all threads) or throughput (CPU: several "
               "runs in flight, the cores shared among them; frames overlap in the threaded loop)",
               default="latency", choices=("latency", "throughput")),
        Option("streams", "int", "runs in flight with hint=throughput", min=1, max=max_threads(),
               default_text="one per core, at most 4"),
        Option("preprocess", "choice", "where a frame is normalised: host (numpy, into the float input) or "
               "graph (the frame goes in as uint8 and the model's first ops normalise it, in onnxruntime's "
               "threads; CPU provider); auto: graph with hint=throughput, host otherwise",
               default="auto", choices=("auto", "host", "graph")),
    )

    def __init__(self, bundle: Bundle, precision: str = "fp32", device: str = "cpu",
                 hw: tuple[int, int] | None = None, **options: Any) -> None:
        super().__init__(bundle, precision, device, hw, **options)
        ort: Any = require("onnxruntime", "onnx", "the ort backend")
        self._ort = ort
        providers = choose_providers(ort.get_available_providers(), self.device.kind, self.options["provider"])
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.streams = self._streams(providers[0])
        threads = self.options["threads"]
        if threads is None and self.streams > 1:  # the cores shared among the runs in flight
            threads = max(1, usable_cores() // self.streams)
        if threads is not None:
            opts.intra_op_num_threads = threads
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.options["spin"] else "0")
        self.model_path = self._model_path(providers[0])
        try:
            self.session = ort.InferenceSession(str(self.model_path), sess_options=opts,
                                                providers=self._provider_options(providers))
        except Exception as exc:  # ort raises its own exception class per failure
            msg = str(exc).splitlines()[0][:200]
            if type(exc).__name__ in _BAD_MODEL:
                raise BundleError(f"{self.model_path} is not a valid ONNX model ({msg}); "
                                  "re-export the bundle") from exc
            raise EngineError(f"onnxruntime could not load {self.model_path}: {msg}") from exc
        self._out_names = [o.name for o in self.session.get_outputs()]
        self._graph_inputs = {i.name: (tuple(d if isinstance(d, int) else None for d in i.shape),
                                       _ORT_DTYPES.get(i.type, i.type)) for i in self.session.get_inputs()}
        self._check_io()
        self._binding = self.session.io_binding() if self.device.kind == "cuda" else None
        self.preprocess, self.preprocess_reason = self._where_to_preprocess(providers[0])
        self._frame_session: Any = None
        self._opts = opts

    def _streams(self, first_provider: str) -> int:
        if self.options["streams"] is not None and self.options["hint"] != "throughput":
            raise EngineError(f"engine option streams={self.options['streams']} for the ort backend needs "
                              "hint=throughput (with hint=latency one run is in flight)", exit_code=2)
        if self.options["hint"] != "throughput" or first_provider != PROVIDERS["cpu"]:
            return 1  # a GPU provider serialises the runs itself
        return int(self.options["streams"] or min(usable_cores(), 4))

    def _where_to_preprocess(self, first_provider: str) -> tuple[str, str]:
        """(``host`` or ``graph``, why). EngineError (exit 2) when ``preprocess=graph`` cannot serve."""
        wanted = self.options["preprocess"]
        if wanted == "host":
            return "host", "preprocess=host"
        blocker = None
        if first_provider != PROVIDERS["cpu"]:
            blocker = f"it runs on the CPU provider only, this engine runs {first_provider}"
        elif len(self.inputs) != 1:
            blocker = f"the bundle has {len(self.inputs)} inputs; it serves a single image input"
        elif self.inputs[0].dtype != "float32" or len(self.inputs[0].shape) != 4:
            spec = self.inputs[0]
            blocker = f"input {spec.name!r} is {spec.dtype} of rank {len(spec.shape)}, not a float32 image"
        if wanted == "graph":
            if blocker:
                raise EngineError(f"engine option preprocess=graph for the ort backend: {blocker}; "
                                  "use preprocess=host", exit_code=2)
            return "graph", "preprocess=graph"
        if blocker:
            return "host", f"auto: {blocker}"
        if self.streams > 1:
            return "graph", ("auto: hint=throughput, where the cores are all busy running frames and the host's "
                             "float pass over each frame comes out of their time")
        return "host", "auto: hint=latency, where host preprocessing of the next frame hides behind this run"

    def frame_session(self) -> Any:
        """The session that takes the uint8 frame (``preprocess=graph``), built on first use."""
        if self._frame_session is None:
            from edgepilot.runtime.preprocess import Preprocessor

            spec = self.inputs[0]
            pre = Preprocessor(spec, self.bundle.preprocess, self.hw)  # the host path's constants and layout
            model = normalising_model(self.model_path, spec.name, pre.a, pre.b, pre.layout)
            try:
                self._frame_session = self._ort.InferenceSession(model, sess_options=self._opts,
                                                                 providers=[PROVIDERS["cpu"]])
            except Exception as exc:  # ort's own exception classes; keep the first line
                raise EngineError(f"onnxruntime could not load the preprocess=graph model of {self.model_path}: "
                                  f"{str(exc).splitlines()[0][:200]}; use preprocess=host") from exc
        return self._frame_session

    def infer_frame(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """The outputs for a uint8 frame tensor (the host-preprocessed input's shape and layout, not
        normalised) through the ``preprocess=graph`` session."""
        session = self.frame_session()
        try:
            outs = session.run(self._out_names, {self.inputs[0].name: tensor})
        except Exception as exc:  # ort's own exception classes; keep the first line
            raise EngineError(f"onnxruntime failed: {str(exc).splitlines()[0][:200]}") from exc
        return dict(zip(self._out_names, outs, strict=True))

    def overlap(self) -> bool:
        """Whether the threaded loop keeps several runs in flight (``hint=throughput`` on the CPU)."""
        return self.streams > 1

    def pool(self) -> ThreadPoolExecutor:
        """The threads the overlapped runs execute on (one per stream), made on first use."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.streams, thread_name_prefix="ort-run")
        return self._pool

    def make_processor(self) -> Processor:
        if self.preprocess == "graph":
            self.frame_session()  # built now, at load, not on the first frame
        if self.overlap():
            return OrtOverlapProcessor(self)
        if self.preprocess == "graph":
            return HostProcessor(self.bundle, _FrameInference(self), self.hw, input_dtype="uint8")
        return super().make_processor()

    def throughput_fps(self, feeds: Mapping[str, np.ndarray], calls: int) -> float | None:
        if not self.overlap():
            return None
        pool, feeds = self.pool(), dict(feeds)
        for f in [pool.submit(self.infer, feeds) for _ in range(self.streams)]:  # warm every stream
            f.result()
        t0 = time.perf_counter()
        in_flight: list[Future[dict[str, np.ndarray]]] = []
        for _ in range(calls):  # as the loop does: at most PIPELINE_BUFFERS frames in flight
            if len(in_flight) == PIPELINE_BUFFERS:
                in_flight.pop(0).result()
            in_flight.append(pool.submit(self.infer, feeds))
        for f in in_flight:
            f.result()
        return calls / (time.perf_counter() - t0)

    def _model_path(self, first_provider: str) -> Path:
        if self.precision == "int8":
            cpu = self.bundle.path_of("int8_cpu")
            if first_provider == PROVIDERS["cpu"] and cpu.is_file():
                return cpu  # U8S8: onnxruntime's fast CPU int8 path (the signed graph is slower than fp32 here)
            return self.bundle.file("int8")
        if self.precision == "fp16" and first_provider != PROVIDERS["tensorrt"]:
            return fp16_model(self.bundle)
        return self.bundle.file("fp32")

    def _provider_options(self, providers: list[str]) -> list[Any]:
        out: list[Any] = []
        for name in providers:
            if name == PROVIDERS["cuda"]:
                out.append((name, {"device_id": self.device.index}))
            elif name == PROVIDERS["tensorrt"]:
                cache = self.bundle.path_of("engines") / "ort-trt"
                out.append((name, {"device_id": self.device.index, "trt_fp16_enable": self.precision == "fp16",
                                   "trt_int8_enable": self.precision == "int8",
                                   "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}))
            else:
                out.append(name)
        return out

    def _check_io(self) -> None:
        for name, shape in self.input_shapes().items():
            if name not in self._graph_inputs:
                raise BundleError(f"bundle input {name!r} is not an input of the model "
                                  f"(it has {sorted(self._graph_inputs)})")
            fixed = self._graph_inputs[name][0]
            if len(fixed) != len(shape) or any(a is not None and a != b for a, b in zip(fixed, shape, strict=True)):
                raise BundleError(f"input {name!r}: the model expects {list(fixed)}, "
                                  f"the bundle/shape gives {list(shape)}")

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feeds(self._graph_inputs, feeds)
        try:
            if self._binding is None:
                outs = self.session.run(self._out_names, dict(feeds))
            else:
                outs = self._run_bound(feeds)
        except Exception as exc:  # ort's own exception classes; keep the first line
            raise EngineError(f"onnxruntime failed: {str(exc).splitlines()[0][:200]}") from exc
        return dict(zip(self._out_names, outs, strict=True))

    def _run_bound(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        # Inputs are copied host->device by ORT; outputs live on the device until
        # copy_outputs_to_cpu, the single device->host copy of the call.
        binding = self._binding
        assert binding is not None
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in self._out_names:
            binding.bind_output(name, "cuda", self.device.index)
        self.session.run_with_iobinding(binding)
        return list(binding.copy_outputs_to_cpu())

    def describe(self) -> dict[str, Any]:
        providers = self.session.get_providers()
        return {**super().describe(), "provider": providers[0], "providers": providers,
                "model": self.model_path.name, "onnxruntime": self._ort.__version__,
                "threads": self._threads or "onnxruntime's default (one per physical core)",
                "spin": self.options["spin"], "hint": self.options["hint"], "streams": self.streams,
                "preprocess": self.preprocess, "preprocess_reason": self.preprocess_reason}

    def close(self) -> None:
        pool = self.__dict__.pop("_pool", None)
        if pool is not None:
            pool.shutdown(wait=True)
        self.__dict__.pop("_binding", None)
        self.__dict__.pop("session", None)
        self.__dict__.pop("_frame_session", None)


class OrtOverlapProcessor(HostProcessor):
    """Host pre/post-processing with the run started in ``prepare`` on the engine's pool.

    While the loop decodes frame N, frames N+1 and N+2 may already be running
    (as many at once as the engine has streams). The preprocessor's buffers
    rotate over ``PIPELINE_BUFFERS`` and the loop never holds more prepared
    frames than that, so a buffer's run has finished when the buffer comes
    round again. A run's error is raised by ``complete``.
    """

    def __init__(self, engine: OrtEngine) -> None:
        graph = engine.preprocess == "graph"
        super().__init__(engine.bundle, engine, engine.hw, input_dtype="uint8" if graph else None)
        self._pool = engine.pool()
        self._run = engine.infer_frame if graph else (lambda tensor: engine.infer({self.spec.name: tensor}))

    def prepare(self, frame: Frame) -> Prepared:
        tensor, transform = self.pre(frame.image)
        future = self._pool.submit(self._run, tensor)
        frame.timeline.stamp(PREPROCESS)  # with overlap this stamps the enqueueing; infer includes the wait
        return Prepared(frame, future, transform)

    def infer(self, prepared: Prepared) -> dict[str, np.ndarray]:
        return prepared.tensor.result()  # type: ignore[no-any-return]


class _FrameInference:
    """``HostProcessor``'s view of an engine with ``preprocess=graph``: ``infer`` takes the uint8 frame tensor."""

    def __init__(self, engine: OrtEngine) -> None:
        self._engine = engine

    @property
    def hw(self) -> tuple[int, int] | None:
        return self._engine.hw

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        (tensor,) = feeds.values()
        return self._engine.infer_frame(tensor)
