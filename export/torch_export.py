"""torch module -> model bundle: ``model.onnx``, ``model.pt2`` and ``meta.json``.

The minimal exporter the torch backend and the tests need; the full export
pipeline (parity checks, graph clean-up, INT8 Q/DQ) builds on it later.
ONNX goes through the TorchScript exporter (``dynamo=False``) because the
dynamo exporter needs onnxscript, which is not a dependency.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgepilot.runtime.bundle import write_meta
from edgepilot.runtime.errors import require

DTYPE_NAMES = {"torch.float32": "float32", "torch.float16": "float16", "torch.uint8": "uint8",
               "torch.int8": "int8", "torch.int32": "int32", "torch.int64": "int64", "torch.bool": "bool"}


def state_dict_sha256(module: Any) -> str:
    """SHA-256 over (name, dtype, shape, bytes) of every state-dict tensor, in name order."""
    torch: Any = require("torch", "torch", "hashing a state dict")
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}|".encode())
        # viewing as bytes covers dtypes numpy lacks (bfloat16)
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _with_argmax(torch: Any, module: Any) -> Any:
    class ArgmaxHead(torch.nn.Module):  # type: ignore[name-defined,misc]
        """logits [1, C, H, W] -> uint8 class ids [1, H, W], so argmax runs in the graph."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return torch.argmax(self.inner(x), dim=1).to(torch.uint8)

    return ArgmaxHead(module).eval()


def _spec(name: str, tensor: Any, dynamic_hw: bool) -> dict[str, Any]:
    shape: list[int | None] = list(tensor.shape)
    if dynamic_hw and len(shape) >= 3:
        shape[-2] = shape[-1] = None
    return {"name": name, "shape": shape, "dtype": DTYPE_NAMES[str(tensor.dtype)]}


def _names(meta: Mapping[str, Any], key: str, n: int, default: list[str]) -> list[str]:
    given = [str(s["name"]) for s in meta.get(key, [])]
    if given:
        return given
    return default if len(default) == n else [f"output{i}" for i in range(n)]


def export_bundle(module: Any, example_input: Any, folder: str | Path, meta: Mapping[str, Any], *,
                  argmax: bool = False, dynamic_hw: bool = False, opset: int = 17) -> Path:
    """Export ``module`` (one image input ``[1, 3, H, W]``) into a bundle folder.

    ``meta`` carries what only the caller knows (name, task, decoder, classes,
    palette, preprocess); inputs/outputs (names from ``meta`` or defaults,
    shapes and dtypes from running ``example_input``), opset, files and the
    checkpoint hash are filled in here. With ``argmax`` the graph ends in an
    argmax to uint8 class ids; with ``dynamic_hw`` H and W are dynamic in both
    the ONNX graph and the torch program. Returns the folder.
    """
    torch: Any = require("torch", "torch", "exporting torch models")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    checkpoint = state_dict_sha256(module)
    net = _with_argmax(torch, module) if argmax else module
    with torch.inference_mode():
        outs = net(example_input)
    outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
    in_name = _names(meta, "inputs", 1, ["image"])[0]
    out_names = _names(meta, "outputs", len(outs), ["class_ids" if argmax else "logits"])
    axes = {n: {len(t.shape) - 2: f"h_{n}", len(t.shape) - 1: f"w_{n}"} for n, t in zip(out_names, outs, strict=True)}
    torch.onnx.export(net, (example_input,), str(folder / "model.onnx"), dynamo=False,
                      input_names=[in_name], output_names=out_names, opset_version=opset,
                      dynamic_axes={in_name: {2: "height", 3: "width"}, **axes} if dynamic_hw else None)
    dims = ({2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO},) if dynamic_hw else None
    program = torch.export.export(net, (example_input,), dynamic_shapes=dims)
    torch.export.save(program, str(folder / "model.pt2"))
    full = {**meta, "opset": opset,
            "inputs": [_spec(in_name, example_input, dynamic_hw)],
            "outputs": [_spec(n, t, dynamic_hw) for n, t in zip(out_names, outs, strict=True)],
            "files": {**meta.get("files", {}), "fp32": "model.onnx", "torch": "model.pt2"},
            "source": {**meta.get("source", {}), "checkpoint_sha256": checkpoint}}
    write_meta(folder, full)
    return folder
