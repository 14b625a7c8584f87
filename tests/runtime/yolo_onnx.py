"""A tiny YOLO-layout detection ONNX carrying metadata as Ultralytics' exporter writes it (str() of each value)."""

from __future__ import annotations

from pathlib import Path

NAMES = ["car", "truck", "pole"]
HW = (64, 128)
# What Ultralytics' Exporter puts in metadata_props for a detect model (values are str(python value)).
PROPS = {
    "description": "Ultralytics YOLOv8n model trained on coco.yaml",
    "author": "Ultralytics",
    "date": "2026-01-01T00:00:00.000000",
    "version": "8.3.0",
    "license": "AGPL-3.0 License (https://ultralytics.com/license)",
    "docs": "https://docs.ultralytics.com",
    "stride": "32",
    "task": "detect",
    "batch": "1",
    "imgsz": str(list(HW)),
    "names": str(dict(enumerate(NAMES))),
    "args": str({"batch": 1, "dynamic": False, "half": False, "opset": 17, "simplify": True, "nms": False}),
    "channels": "3",
}


def yolo_onnx(path: Path, props: dict[str, str] | None = PROPS, *, dynamic: bool = False) -> Path:
    """Write ``path``: image [1, 3, 64, 128] (or [batch, 3, height, width]) -> output0 [1, 4 + 3, N],
    with ``props`` as metadata_props (None: no metadata)."""
    import onnx

    from edgepilot.export import tiny

    src = tiny.yolo_bundle(path.parent / f".{path.stem}-src", hw=HW)
    model = onnx.load(str(src / "model.onnx"))
    if dynamic:
        for value, names in ((model.graph.input[0], {0: "batch", 2: "height", 3: "width"}),
                             (model.graph.output[0], {0: "batch", 2: "anchors"})):
            for i, name in names.items():
                value.type.tensor_type.shape.dim[i].dim_param = name
    for key, value in (props or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path
