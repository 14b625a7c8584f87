"""triton backend: the bundle's model served by a Triton Inference Server, over KServe v2 gRPC.

The frame is preprocessed and decoded here, exactly as for a local engine;
only the tensor travels: ``infer`` sends the preprocessed input with
``tritonclient.grpc`` (ModelInfer, raw tensor contents) and returns the
outputs as host arrays keyed by name, so the same decoder reads them. The
server's repository comes from ``edgepilot export triton BUNDLE --out REPO``;
pass that BUNDLE (or the repository's ``REPO/<name>/1``, which holds a copy of
its ``meta.json``) as ``--model``.

Options (``TritonEngine.OPTIONS``): ``url`` (``host:port`` of the gRPC
endpoint, or ``$EDGEPILOT_TRITON_URL``), ``model`` (default: the bundle's
name as ``export triton`` writes it, or the repository folder's name),
``version`` (default: the server's choice), ``timeout_s`` (per request).

At load the engine checks, in order: the server answers (ServerLive), the
model is ready (ModelReady; the error lists what the server serves), its
inputs and outputs have the bundle's names, data types and shapes
(ModelMetadata; ``-1`` dims match any), and the precision ``export triton``
recorded in its config (ModelConfig parameter ``edgepilot_precision``) is
the one asked for. Each failure is one line saying what to do.

``--device`` stays ``cpu``: that is where this client preprocesses; where the
model runs is the server's ``instance_group`` (``export triton --kind``).
``--backend auto`` never chooses this backend (it needs a server).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.engines.base import Engine, check_feeds
from edgepilot.runtime.engines.options import Option
from edgepilot.runtime.errors import EngineError, require

DEFAULT_URL = "localhost:8001"
CONFIG = "config.pbtxt"
# The ModelConfig parameter in which ``export triton`` records the precision of the served graph.
PRECISION_PARAMETER = "edgepilot_precision"
# numpy dtype name -> KServe v2 / Triton data type (model_config.proto's TYPE_<name> without the prefix).
TRITON_DTYPES = {"float32": "FP32", "float16": "FP16", "float64": "FP64", "uint8": "UINT8", "int8": "INT8",
                 "int16": "INT16", "int32": "INT32", "int64": "INT64", "bool": "BOOL", "uint16": "UINT16",
                 "uint32": "UINT32", "uint64": "UINT64"}
_URL = re.compile(r"^(?:grpc://)?([A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$")


def triton_model_name(name: str) -> str:
    """A Triton model (folder) name for a bundle name: letters, digits, ``_ . -``; others become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name).strip(".") or "model"


def parse_url(text: str) -> str:
    """``host:port`` (an optional ``grpc://`` dropped); EngineError (exit 2) for anything else."""
    m = _URL.match(text.strip())
    if not m or not 0 < int(m.group(2)) < 65536:
        hint = " (an http:// URL is Triton's HTTP port; this backend speaks gRPC, default port 8001)" \
            if text.strip().startswith("http") else ""
        raise EngineError(f"engine option url={text!r} for the triton backend: expected HOST:PORT of the "
                          f"server's gRPC endpoint, e.g. localhost:8001{hint}", exit_code=2)
    return f"{m.group(1)}:{m.group(2)}"


def served_name(bundle: Bundle) -> tuple[str, int | None]:
    """The model name (and version) a bundle is served under: the repository's own for ``REPO/<name>/<v>``."""
    folder = bundle.path
    if folder.name.isdigit() and (folder.parent / CONFIG).is_file():
        return folder.parent.name, int(folder.name)
    return triton_model_name(bundle.name), None


def _status(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    return str(status() or "") if callable(status) else ""


def _message(exc: Exception) -> str:
    message = getattr(exc, "message", None)
    text = (message() if callable(message) else None) or str(exc) or type(exc).__name__
    return str(text).splitlines()[0][:200]


def _dims(shape: Any) -> list[int]:
    return [int(d) for d in shape]


def _fits(served: list[int], wanted: tuple[int | None, ...]) -> bool:
    """Whether a served shape (-1: any) and a wanted one (None: any) can be the same tensor."""
    return len(served) == len(wanted) and all(s < 0 or w is None or s == w for s, w in zip(served, wanted, strict=True))


class TritonEngine(Engine):
    backend = "triton"
    devices = ("cpu",)
    precisions = ("fp32", "fp16", "int8")
    OPTIONS = (
        Option("url", "str", "HOST:PORT of the Triton server's gRPC endpoint", default=DEFAULT_URL,
               env="EDGEPILOT_TRITON_URL"),
        Option("model", "str", "model name on the server", default_text="the bundle's name as export triton "
               "writes it (REPO/<name>/1 as --model: <name>)"),
        Option("version", "int", "model version on the server", min=1,
               default_text="the server's choice (its version policy)"),
        Option("timeout_s", "float", "seconds each request may take, connecting included", default=10.0,
               min=0.01, max=3600),
    )

    def __init__(self, bundle: Bundle, precision: str = "fp32", device: str = "cpu",
                 hw: tuple[int, int] | None = None, **options: Any) -> None:
        super().__init__(bundle, precision, device, hw, **options)
        self.url = parse_url(self.options["url"])
        name, version = served_name(bundle)
        self.model = self.options["model"] or name
        chosen = self.options["version"] if self.options["version"] is not None else version
        self.version = "" if chosen is None else str(chosen)
        self.timeout_s = float(self.options["timeout_s"])
        self._expected = {s.name: (shape, s.dtype) for s, shape in zip(self.inputs, self.input_shapes().values(),
                                                                      strict=True)}
        grpc: Any = require("tritonclient.grpc", "triton", "the triton backend")
        self.client = grpc.InferenceServerClient(self.url)
        try:
            self._check_server()
            self.metadata = self._call("read the metadata of", self.client.get_model_metadata, self.model,
                                       self.version)
            self._check_io()
            self._check_precision()
        except Exception:
            self.close()
            raise
        self._inputs = [grpc.InferInput(name, list(shape), TRITON_DTYPES[dtype])
                        for name, (shape, dtype) in self._expected.items()]
        self._outputs = [grpc.InferRequestedOutput(s.name) for s in self.outputs]

    def _where(self) -> str:
        version = f" version {self.version}" if self.version else ""
        return f"model {self.model!r}{version} on the Triton server at {self.url}"

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` with the timeout; a server error becomes one EngineError line."""
        try:
            return fn(*args, client_timeout=self.timeout_s)
        except Exception as exc:  # tritonclient raises InferenceServerException; the channel its own
            raise self._error(f"could not {what} {self._where()}", exc) from exc

    def _error(self, what: str, exc: Exception) -> EngineError:
        """The EngineError for a failed call: the server unreachable, too slow, or refusing the request."""
        status = _status(exc)
        if status == "StatusCode.UNAVAILABLE":
            return EngineError(f"cannot reach a Triton server at {self.url} ({_message(exc)}): start one on the "
                               "repository `edgepilot export triton` wrote (README, 'Serving with Triton'), or "
                               "point --engine-opt url=HOST:PORT at its gRPC port")
        if status == "StatusCode.DEADLINE_EXCEEDED":
            return EngineError(f"{what}: no answer within timeout_s={self.timeout_s:g} s; is {self.url} a Triton "
                               "gRPC port? (raise --engine-opt timeout_s=S for a slow server)")
        return EngineError(f"{what}: {_message(exc)}")

    def _check_server(self) -> None:
        if not self._call("ask for", self.client.is_server_live):
            raise EngineError(f"the Triton server at {self.url} says it is not live; check its log")
        try:
            ready = self.client.is_model_ready(self.model, self.version, client_timeout=self.timeout_s)
        except Exception as exc:  # a server may answer an unknown model with an error instead of False
            if _status(exc) in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED"):
                raise self._error(f"could not ask for {self._where()}", exc) from exc
            ready = False
        if ready:
            return
        try:
            index = self.client.get_model_repository_index(client_timeout=self.timeout_s)
            served = sorted({m.name for m in index.models if not m.state or m.state == "READY"})
            have = f"it serves {', '.join(served)}" if served else "it serves no model"
        except Exception:  # the index is only for the message
            have = "see its log for what it serves"
        raise EngineError(f"the Triton server at {self.url} has no ready model {self.model!r}"
                          f"{' version ' + self.version if self.version else ''} ({have}): pass "
                          "--engine-opt model=NAME, or export this bundle into its repository with "
                          "`edgepilot export triton BUNDLE --out REPO` and let the server load it", exit_code=2)

    def _check_io(self) -> None:
        """The served tensors must be the bundle's: names, data types and shapes (-1 matches any)."""
        served = {"input": {t.name: t for t in self.metadata.inputs},
                  "output": {t.name: t for t in self.metadata.outputs}}
        wanted: list[tuple[str, str, tuple[int | None, ...], str]] = [
            ("input", name, shape, dtype) for name, (shape, dtype) in self._expected.items()]
        wanted += [("output", s.name, s.shape, s.dtype) for s in self.outputs]
        for kind, name, shape, dtype in wanted:
            tensor = served[kind].get(name)
            if tensor is None:
                raise EngineError(f"{self._where()} has no {kind} {name!r} (its {kind}s: {sorted(served[kind])}); "
                                  "it was not exported from this bundle: pass the bundle it came from as --model, "
                                  "or export this one with `edgepilot export triton`", exit_code=2)
            dims = _dims(tensor.shape)
            if tensor.datatype != TRITON_DTYPES.get(dtype) or not _fits(dims, tuple(shape)):
                shown = ["?" if d is None else d for d in shape]
                raise EngineError(f"{kind} {name!r}: {self._where()} takes {dims} {tensor.datatype}, the bundle "
                                  f"gives {shown} {TRITON_DTYPES.get(dtype, dtype)}; export the repository "
                                  "from this bundle again, or pass the bundle it came from",
                                  exit_code=2)

    def _check_precision(self) -> None:
        config = self._call("read the config of", self.client.get_model_config, self.model, self.version).config
        param = config.parameters.get(PRECISION_PARAMETER)
        self.served_precision = param.string_value if param is not None else None
        if self.served_precision and self.served_precision != self.precision:
            raise EngineError(f"{self._where()} serves the {self.served_precision} graph (its config's "
                              f"{PRECISION_PARAMETER}), not {self.precision}: run with --precision "
                              f"{self.served_precision}, or export the repository again with --precision "
                              f"{self.precision}", exit_code=2)

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feeds(self._expected, feeds)
        for tensor in self._inputs:
            tensor.set_data_from_numpy(np.ascontiguousarray(feeds[tensor.name()]))
        try:
            result = self.client.infer(self.model, self._inputs, model_version=self.version,
                                       outputs=self._outputs, client_timeout=self.timeout_s)
        except Exception as exc:  # InferenceServerException: keep its status and first line
            raise self._error(f"Triton inference failed on {self._where()}", exc) from exc
        out = {}
        for spec in self.outputs:
            arr = result.as_numpy(spec.name)
            if arr is None:
                raise EngineError(f"{self._where()} returned no output {spec.name!r}")
            out[spec.name] = arr
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "url": self.url, "model": self.model,
                "version": self.version or "server's choice", "versions": list(self.metadata.versions),
                "platform": self.metadata.platform, "served_precision": self.served_precision or "not recorded",
                "timeout_s": self.timeout_s}

    def close(self) -> None:
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.close()
