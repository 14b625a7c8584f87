"""README.md of a Jetson deploy folder: what is in it, JetPack set-up, and the two steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# NVIDIA's pip index of Jetson wheels (torch, onnxruntime-gpu) for JetPack 6 with CUDA 12.6
JETSON_INDEX = "https://pypi.jetson-ai-lab.io/jp6/cu126"
JETSON_ZOO = "https://elinux.org/Jetson_Zoo#ONNX_Runtime"

_TEMPLATE = """\
# {bundle} on a Jetson: TensorRT {precision}, CSI camera

Written by `edgepilot deploy jetson` from `{source}`. Copy this folder to the
Jetson (e.g. `scp -r {folder} jetson:`), set the Jetson up once (below), then:

```bash
./build_engine.sh   # builds the TensorRT {precision} engine on the Jetson (minutes, once per JetPack upgrade)
./run.sh            # edgepilot run on CSI camera {sensor_id}: {width}x{height} at {fps} FPS
```

`run.sh` runs exactly:

```bash
{run}
```

Arguments after `./run.sh` go to `edgepilot run`: `./run.sh --show` (needs a display),
`./run.sh --out annotated.mp4 --max-frames 300`, `./run.sh --report report.json`.

| file | holds |
| --- | --- |
| `model/` | the bundle: {files} |
| `build_engine.sh` | the engine build (below) |
| `run.sh` | the camera loop above |
| `deploy.json` | what was written and from what |

## JetPack set-up (once)

1. **JetPack 6.1 or later** (TensorRT 10), or JetPack 7. TensorRT comes with JetPack:
   do not pip-install it. `sudo apt install nvidia-jetpack` installs it all, or just the
   TensorRT parts: `sudo apt install tensorrt python3-libnvinfer` (the Python bindings are
   `python3-libnvinfer`; `trtexec` is `/usr/src/tensorrt/bin/trtexec`). `dpkg -l | grep nvinfer`
   shows the version. JetPack 5 and 6.0 ship TensorRT 8, which has no strongly typed networks:
   `build_engine.sh` refuses it; upgrade JetPack.
2. **A Python environment that sees JetPack's TensorRT and OpenCV** (system packages):

   ```bash
   python3 -m venv --system-site-packages ~/edgepilot && source ~/edgepilot/bin/activate
   pip install edgepilot                  # or: pip install path/to/edgepilot.whl
   pip uninstall -y opencv-python-headless
   python3 -c "import cv2; print(cv2.getBuildInformation())" | grep -i gstreamer   # must say YES
   ```

   The uninstall matters: PyPI's OpenCV wheels are built without GStreamer, and the CSI
   camera pipeline needs JetPack's own OpenCV (`sudo apt install python3-opencv` if the check
   finds none).
3. **torch with CUDA**, which the `trt` backend uses for its GPU buffers. PyPI has no CUDA
   build of torch for the Jetson: install NVIDIA's from the Jetson AI Lab pip index,
   `pip install torch --index-url {index}` (that folder is JetPack 6 with CUDA 12.6;
   pick the one of your JetPack).
4. **onnxruntime-gpu** (optional, only for `--backend ort --device cuda`, whose provider
   `auto` takes TensorRT's execution provider, then CUDA): not on PyPI for the Jetson either;
   take it from the same Jetson AI Lab index (`pip install onnxruntime-gpu --index-url {index}`)
   or from the wheels listed in the Jetson Zoo ({zoo}).
5. For latency numbers, the maximum power mode and clocks: `sudo nvpmodel -m 0 && sudo jetson_clocks`.

## What build_engine.sh does

- Where `edgepilot` and TensorRT's Python bindings import (steps 1 to 3 done), it runs
  `{build}`: the engine lands in `model/engines/` with its
  fingerprint (ONNX hash, TensorRT version, GPU, precision, shapes), which is the engine
  `run.sh` loads without building.
- Otherwise, or as `./build_engine.sh --trtexec`, it runs trtexec: a strongly typed build of
  `{onnx}` (the precision comes from that graph: no `--fp16`/`--int8`, no calibrator) with a
  {workspace_mb} MB workspace and a timing cache, into `{engine}`. It finds the TensorRT version
  from trtexec's banner (else dpkg, else Python) and passes `--stronglyTyped` on TensorRT 10;
  TensorRT 11 builds every network strongly typed and has no such flag. `TRTEXEC=/path/to/trtexec`
  and `TRT_VERSION=10.3` override what it finds. That engine has no fingerprint, so `run.sh`
  does not load it (its first start builds one); use it with
  `trtexec --loadEngine={engine}` to benchmark the model.

An engine is valid only for the GPU and TensorRT version it was built with, which is why it
is built here and not copied.

## Not verified yet

These files were generated and checked (`bash -n`, `shellcheck`, a stand-in trtexec) on a
machine without a GPU, TensorRT or a Jetson. They have not run on a Jetson.
"""


def jetson_readme(info: Mapping[str, Any], folder: str = ".") -> str:
    """The README of the deploy folder named ``folder`` that ``deploy.json`` contents ``info`` describe."""
    camera = info["camera"]
    files = [f.split("/", 1)[1] for f in info["files"]]
    return _TEMPLATE.format(
        bundle=info["bundle"], precision=info["precision"], source=info["source"], folder=folder,
        sensor_id=camera["sensor_id"], width=camera["width"], height=camera["height"], fps=camera["fps"],
        run=info["run"] + " [ARGS...]", files=", ".join(f"`{f}`" for f in files), index=JETSON_INDEX,
        zoo=JETSON_ZOO, build=info["build"], onnx=info["trtexec"]["onnx"], engine=info["trtexec"]["engine"],
        workspace_mb=info["workspace_mb"])
