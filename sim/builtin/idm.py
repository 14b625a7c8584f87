"""highway-env's IDM/MOBIL traffic vehicle with its scalar clamps in plain Python.

``IDMVehicle.act``, ``steering_control`` and ``acceleration`` clamp Python floats
with ``np.clip``: about a microsecond of numpy dispatch each, and every vehicle
made a dozen of them a tick, a tenth of the highway scenario's step. Here the same
clamps are ``min(max(x, lo), hi)``, which give the same float; every other
operation, numpy's trigonometry included, is highway-env's own, in its order, so
the traffic moves bit for bit as highway-env's (``tests/sim/test_agent_world.py``
compares whole trajectories in every scenario that uses it). It is a subclass
because highway-env builds its traffic from the class path in the env config's
``other_vehicles_type`` (``scenario.make_env`` sets it); racetrack builds its
vehicles from ``IDMVehicle`` directly and keeps them. Imported only with the
``sim`` extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from highway_env import utils
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle


def _clamp(x: Any, lo: float, hi: float) -> Any:
    return min(max(x, lo), hi)


class FastIDMVehicle(IDMVehicle):
    """``IDMVehicle`` with ``np.clip`` on scalars replaced by ``_clamp``; the same decisions."""

    def act(self, action: dict | str | None = None) -> None:
        if self.crashed:
            return
        # Lateral: MOBIL
        self.follow_road()
        if self.enable_lane_change:
            self.change_lane_policy()
        steering = _clamp(self.steering_control(self.target_lane_index),
                          -self.MAX_STEERING_ANGLE, self.MAX_STEERING_ANGLE)
        # Longitudinal: IDM, on the current lane and, while changing lanes, the target lane too
        front, rear = self.road.neighbour_vehicles(self, self.lane_index)
        acceleration = self.acceleration(ego_vehicle=self, front_vehicle=front, rear_vehicle=rear)
        if self.lane_index != self.target_lane_index:
            front, rear = self.road.neighbour_vehicles(self, self.target_lane_index)
            acceleration = min(acceleration, self.acceleration(ego_vehicle=self, front_vehicle=front,
                                                               rear_vehicle=rear))
        acceleration = _clamp(acceleration, -self.ACC_MAX, self.ACC_MAX)
        Vehicle.act(self, {"steering": steering, "acceleration": acceleration})  # as IDMVehicle: not ControlledVehicle.act

    def steering_control(self, target_lane_index: Any) -> float:
        target_lane = self.road.network.get_lane(target_lane_index)
        lane_coords = target_lane.local_coordinates(self.position)
        lane_next_coords = lane_coords[0] + self.speed * self.TAU_PURSUIT
        lane_future_heading = target_lane.heading_at(lane_next_coords)
        lateral_speed_command = -self.KP_LATERAL * lane_coords[1]
        heading_command = np.arcsin(_clamp(lateral_speed_command / utils.not_zero(self.speed), -1, 1))
        heading_ref = lane_future_heading + _clamp(heading_command, -np.pi / 4, np.pi / 4)
        heading_rate_command = self.KP_HEADING * utils.wrap_to_pi(heading_ref - self.heading)
        slip_angle = np.arcsin(_clamp(self.LENGTH / 2 / utils.not_zero(self.speed) * heading_rate_command, -1, 1))
        steering_angle = np.arctan(2 * np.tan(slip_angle))
        return float(_clamp(steering_angle, -self.MAX_STEERING_ANGLE, self.MAX_STEERING_ANGLE))

    def acceleration(self, ego_vehicle: Any, front_vehicle: Any = None, rear_vehicle: Any = None) -> float:
        if not ego_vehicle or not isinstance(ego_vehicle, Vehicle):
            return 0
        ego_target_speed = getattr(ego_vehicle, "target_speed", 0)
        if ego_vehicle.lane and ego_vehicle.lane.speed_limit is not None:
            ego_target_speed = _clamp(ego_target_speed, 0, ego_vehicle.lane.speed_limit)
        acceleration = self.COMFORT_ACC_MAX * (
            1 - np.power(max(ego_vehicle.speed, 0) / abs(utils.not_zero(ego_target_speed)), self.DELTA))
        if front_vehicle:
            d = ego_vehicle.lane_distance_to(front_vehicle)
            acceleration -= self.COMFORT_ACC_MAX * np.power(
                self.desired_gap(ego_vehicle, front_vehicle) / utils.not_zero(d), 2)
        return acceleration
