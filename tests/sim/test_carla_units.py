"""The CARLA backend's pure parts: decoding, sensor queues, versions, scenarios."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgepilot.runtime.errors import EdgepilotError, SimulatorError
from edgepilot.sim.carla.decode import (
    LEGACY_LUT,
    bgra_to_rgb,
    collision_kind,
    ego_state,
    parse_version,
    semantic_labels,
    uses_legacy_tags,
    vehicle_boxes,
)
from edgepilot.sim.carla.scenarios import load_scenarios, resolve_scenario
from edgepilot.sim.carla.sensors import SensorQueue
from edgepilot.sim.tags import TAG_IDS


def test_bgra_bytes_decode_to_rgb_and_red_channel_tags() -> None:
    bgra = np.zeros((2, 3, 4), dtype=np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 255
    bgra[1, 2, 2] = TAG_IDS["Car"]
    raw = bgra.tobytes()
    rgb = bgra_to_rgb(raw, 3, 2)
    assert rgb.shape == (2, 3, 3) and tuple(rgb[0, 0]) == (30, 20, 10)
    labels = semantic_labels(raw, 3, 2)
    assert labels.dtype == np.uint8 and labels[0, 0] == 30 and labels[1, 2] == TAG_IDS["Car"]
    with pytest.raises(ValueError, match="expected 4x2x4"):
        bgra_to_rgb(raw, 4, 2)


def test_legacy_tag_table() -> None:
    expected = {0: 0, 1: 3, 2: 5, 3: 22, 4: 12, 5: 6, 6: 24, 7: 1, 8: 2, 9: 9, 10: 14, 11: 4}
    expected |= {12: 8, 13: 11, 14: 25, 15: 26, 16: 27, 17: 28, 18: 7, 19: 20, 20: 21, 21: 23}
    expected |= {22: 10, 23: 0, 255: 0}
    assert {old: int(LEGACY_LUT[old]) for old in expected} == expected


@pytest.mark.parametrize(
    ("text", "version", "legacy"),
    [
        ("0.9.15", (0, 9, 15), False),
        ("0.9.13-1-g8854804f4", (0, 9, 13), True),
        ("0.9.16-dirty", (0, 9, 16), False),
        ("0.9.9", (0, 9, 9), True),
        ("unknown", (0, 0, 0), False),
    ],
)
def test_versions(text: str, version: tuple[int, int, int], legacy: bool) -> None:
    assert parse_version(text) == version
    assert uses_legacy_tags(text) is legacy


@settings(max_examples=30, deadline=None)
@given(x=st.floats(-1e3, 1e3), y=st.floats(-1e3, 1e3), yaw=st.floats(-720, 720))
def test_ego_state_mirrors_y_and_yaw(x: float, y: float, yaw: float) -> None:
    state = ego_state(x, y, yaw, (3.0, -4.0, 0.0))
    assert state.x_m == x and state.y_m == -y and state.speed_mps == pytest.approx(5.0)
    assert -math.pi <= state.heading_rad < math.pi
    # Forward unit vector agrees: CARLA (cos yaw, sin yaw) mirrored in y.
    assert math.cos(state.heading_rad) == pytest.approx(math.cos(math.radians(yaw)), abs=1e-9)
    assert math.sin(state.heading_rad) == pytest.approx(-math.sin(math.radians(yaw)), abs=1e-9)


def test_boxes_per_component_and_tag() -> None:
    labels = np.zeros((20, 30), dtype=np.uint8)
    labels[2:6, 3:9] = TAG_IDS["Car"]
    labels[10:18, 20:30] = TAG_IDS["Bus"]
    labels[12:14, 0:2] = TAG_IDS["Car"]  # 4 px: noise
    boxes = vehicle_boxes(labels, min_pixels=5)
    assert [(b.tag, b.x1, b.y1, b.x2, b.y2) for b in boxes] == [
        (TAG_IDS["Car"], 3.0, 2.0, 9.0, 6.0),
        (TAG_IDS["Bus"], 20.0, 10.0, 30.0, 18.0),
    ]
    assert vehicle_boxes(np.zeros((4, 4), dtype=np.uint8)) == ()


def test_collision_kind() -> None:
    assert collision_kind("vehicle.audi.a2") == "vehicle"
    assert collision_kind("walker.pedestrian.0004") == "pedestrian"
    assert collision_kind("static.prop.streetbarrier") == "static"
    assert collision_kind("traffic.traffic_light") == "static"


def item(frame: int) -> SimpleNamespace:
    return SimpleNamespace(frame=frame)


def test_sensor_queue_matches_frame_and_keeps_newer() -> None:
    q = SensorQueue("rgb")
    for f in (3, 4, 6, 5):
        q.put(item(f))
    assert q.get(5, timeout_s=0.1).frame == 5
    assert q.dropped == 2  # frames 3 and 4
    assert q.get(6, timeout_s=0.1).frame == 6  # was queued ahead of 5, not lost


def test_sensor_queue_waits_for_late_item_then_times_out() -> None:
    q = SensorQueue("semantic")
    threading.Timer(0.05, q.put, (item(9),)).start()
    assert q.get(9, timeout_s=1.0).frame == 9
    q.put(item(8))
    with pytest.raises(
        SimulatorError, match=r"'semantic' gave no data for frame 10 .*last frame it sent: 8"
    ):
        q.get(10, timeout_s=0.05)


def test_scenarios_from_yaml_and_town_names(tmp_path: Path) -> None:
    table = tmp_path / "carla.yaml"
    table.write_text("town01: {n_vehicles: 5}\nrain: {town: Town03, route_length_m: 90.0}\n")
    scenarios = load_scenarios(table)
    assert scenarios["town01"].town == "Town01" and scenarios["town01"].n_vehicles == 5
    assert scenarios["rain"].town == "Town03" and scenarios["rain"].route_length_m == 90.0
    assert resolve_scenario("Town07", table).town == "Town07"
    assert resolve_scenario("town10").town == "Town10HD_Opt"  # the shipped file
    table.write_text("bad: {colour: red}\n")
    with pytest.raises(EdgepilotError, match="bad CARLA scenario file") as info:
        load_scenarios(table)
    assert info.value.exit_code == 2


def test_scenario_names_with_capitals_can_be_chosen(tmp_path: Path) -> None:
    table = tmp_path / "carla.yaml"
    table.write_text("RainTown03: {town: Town03, route_length_m: 90.0}\nTown01: {n_vehicles: 5}\n")
    assert resolve_scenario("RainTown03", table).route_length_m == 90.0
    assert resolve_scenario("raintown03", table).town == "Town03"
    assert resolve_scenario("TOWN01", table).n_vehicles == 5  # merged with the default town01
    with pytest.raises(EdgepilotError, match="choose one of") as info:
        resolve_scenario("mars", table)
    listed = str(info.value).split("choose one of ")[1].split(" or a town name")[0].split(", ")
    assert "raintown03" in listed
    for name in listed:  # every name the error offers can be chosen
        assert resolve_scenario(name, table).town.startswith("Town")
    table.write_text("rain: {town: Town03}\nRain: {town: Town04}\n")
    with pytest.raises(EdgepilotError, match="'rain' and 'Rain' name one scenario"):
        load_scenarios(table)
