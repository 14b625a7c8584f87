"""How late the emergency brake (``sim.agent.safety``) comes on for a car standing in the lane,
per class-id map size and ego speed, on synthetic maps (the test scene: a car's rear face from
0.2 to 1.4 m above a flat road, drawn through the pinhole camera).

  PYTHONPATH=. python benchmarks/brake_reach.py [--out benchmarks/results/brake_reach.json]

For each map size (96 x 192: the privileged drive's labels; 128 x 256: the segmentation bundle's
prediction; 256 x 512: the camera) and speed, the ego drives at that speed towards the car from
far enough away; the row gives the range (ego centre to the car's rear) at which the brake came
on and the range it needs to stop at the builtin world's 6 m/s^2 with the 2.5 m to its bumper
(``stops``: it came on with room to stop). The guard is judged on the worst case here: the
policy is not braking at all.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from edgepilot.sim.agent.action import Action
from edgepilot.sim.agent.safety import EmergencyBrake
from edgepilot.sim.types import CameraConfig, EgoState
from tests.sim.test_agent_safety import CAMERA, scene

SHAPES = ((96, 192), (128, 256), (256, 512))
SPEEDS_MPS = (8.0, 12.0, 16.0, 20.0, 24.0)
MAX_DECEL_MPS2 = 6.0


def first_brake_m(shape: tuple[int, int], speed_mps: float, camera: CameraConfig = CAMERA) -> float | None:
    brake = EmergencyBrake(camera)
    start = 80.0
    for t in range(400):
        rear = start - speed_mps * t * brake.config.dt_s
        if rear < 3.0:
            return None
        if brake.filter(scene(rear, shape=shape), EgoState(0.0, 0.0, 0.0, speed_mps), Action(), t).pedal == -1.0:
            return rear
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    rows = []
    print("map        speed m/s  brakes at m  needs m  stops")
    for shape in SHAPES:
        for v in SPEEDS_MPS:
            at = first_brake_m(shape, v)
            needs = v * v / (2 * MAX_DECEL_MPS2) + EmergencyBrake(CAMERA).config.front_m
            rows.append({"map_hw": list(shape), "speed_mps": v, "brakes_at_m": at, "needs_m": needs,
                         "stops": at is not None and at >= needs})
            print(f"{shape[0]:>3} x {shape[1]:<4} {v:9.0f} {at if at is not None else float('nan'):12.1f} "
                  f"{needs:8.1f}  {rows[-1]['stops']}")
    if args.out is not None:
        report = {"benchmark": "brake_reach", "camera": dataclasses.asdict(CAMERA),
                  "brake": dataclasses.asdict(EmergencyBrake(CAMERA).config), "rows": rows}
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
