"""The drive video's frame: camera with the segmentation overlay and boxes, the policy's view, a HUD.

``DriveVideo(path, agent)`` writes through ``runtime.sinks.VideoSink`` (codec by extension); ``write(tick)`` composes one
tick: left the camera image (perception overlay when bundles ran), right the policy's input view
(road grey, lane lines white, vehicles blue, other obstacles orange; the strongest channel per
cell), below a HUD line with speed, steer, pedal, route completion (and EMERGENCY BRAKE while the
guard of ``sim.agent.safety`` holds the pedal) and the tick's per-stage latency. ``close()`` releases the writer (also on errors: use it as a context manager).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgepilot.runtime.draw import Annotator
from edgepilot.runtime.sinks import VideoSink
from edgepilot.sim.agent.env import VIEW_RGB
from edgepilot.sim.agent.episode import Agent, Tick

HUD_H = 44


def view_image(view: np.ndarray, channels: int, height: int) -> np.ndarray:
    """(C*F, h, w) uint8 view -> (height, ~2h, 3) BGR picture of its newest frame."""
    newest = view[-channels:]
    strongest = newest.argmax(axis=0)
    share = newest.max(axis=0, keepdims=True).transpose(1, 2, 0) / 255.0
    rgb = (VIEW_RGB[strongest % len(VIEW_RGB)] * share).astype(np.uint8)
    width = int(round(height * view.shape[2] / view.shape[1]))
    return cv2.resize(np.ascontiguousarray(rgb[..., ::-1]), (width, height), interpolation=cv2.INTER_NEAREST)


class DriveVideo:
    def __init__(self, path: str | Path, agent: Agent, fps: float = 20.0) -> None:
        self.path, self.agent, self.fps = Path(path), agent, fps
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._sink = VideoSink(self.path, fps)
        self._annotators = {p.name: Annotator(p.bundle.classes, p.bundle.palette) for p in agent.perception}
        config = getattr(agent.policy, "config", None)
        self._channels = len(config.channels) if config is not None else 4
        self._last_view: np.ndarray | None = None
        self._last_stages: dict[str, float] = {}

    def __enter__(self) -> DriveVideo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def compose(self, tick: Tick, label: str = "") -> np.ndarray:
        obs = tick.observation
        camera = cv2.cvtColor(obs.image, cv2.COLOR_RGB2BGR)
        for name in ("seg", "det"):
            if name in tick.outputs:
                camera = self._annotators[name](camera, tick.outputs[name])
        h, w = camera.shape[:2]
        if tick.view is not None:
            self._last_view = tick.view
        if tick.stages_ms:
            self._last_stages = tick.stages_ms
        view = (view_image(self._last_view, self._channels, h) if self._last_view is not None
                else np.zeros((h, 2 * h, 3), np.uint8))
        cv2.putText(view, "policy input", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        top = np.concatenate([camera, view], axis=1)
        hud = np.zeros((HUD_H, top.shape[1], 3), np.uint8)
        c = tick.control
        line1 = (f"{label}  t={tick.index / 20:5.1f}s  speed {obs.ego.speed_mps * 3.6:5.1f} km/h  steer {c.steer:+.2f}  "
                 f"throttle {c.throttle:.2f}  brake {c.brake:.2f}  route {100 * float(obs.info.get('route_completion', 0)):5.1f}%"
                 + ("" if tick.action is not None else "  (frame skipped: agent busy)")
                 + ("  EMERGENCY BRAKE" if self.agent.brake is not None and self.agent.brake.engaged else ""))
        s = self._last_stages
        parts = [f"tick {s['tick']:.1f}" if "tick" in s else ""]
        parts += [f"{n} {s[f'{n}.total']:.1f}" for n in ("seg", "det") if f"{n}.total" in s]
        parts += [f"obs {s['observation']:.2f}", f"policy {s['policy']:.2f}"] if "policy" in s else []
        parts += [f"aeb {s['brake']:.2f}"] if "brake" in s else []
        line2 = "latency ms: " + "  ".join(p for p in parts if p)
        for i, text in enumerate((line1, line2)):
            cv2.putText(hud, text, (6, 17 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (230, 230, 230), 1, cv2.LINE_AA)
        return np.concatenate([top, hud], axis=0)

    def write(self, tick: Tick, label: str = "") -> None:
        self._sink.write_image(self.compose(tick, label))

    @property
    def frames(self) -> int:
        return self._sink.frames

    def close(self) -> None:
        self._sink.close()
