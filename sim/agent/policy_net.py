"""The driving policy's network, in plain torch: a small CNN over the semantic view plus the vector.

``ViewVectorExtractor`` is a stable-baselines3 features extractor (``features_extractor_class``
of a ``MultiInputPolicy``): the ``(C, 48, 96)`` view (SB3 scales the uint8 view to [0, 1]) goes
through four stride-2 convolutions to a 128-vector, concatenated with the observation's
vector. ``DeterministicActor`` wraps a trained SB3 policy as the graph that is exported:
uint8 view and float vector in, the Gaussian's mean clipped to [-1, 1] out (the deterministic
action head), so every backend runs the same arithmetic as ``policy.predict(deterministic=True)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgepilot.runtime.errors import require

_sb3: Any = require("stable_baselines3", "train", "the driving policy")
BaseFeaturesExtractor: Any = _sb3.common.torch_layers.BaseFeaturesExtractor

VIEW_FEATURES = 128
INPUT_NAMES = ("view", "vector")  # the policy bundle's inputs, in this order
OUTPUT_NAMES = ("action",)


class ViewVectorExtractor(BaseFeaturesExtractor):
    """``{"view": (B, C, h, w) in [0, 1], "vector": (B, D)}`` -> ``(B, 128 + D)`` features."""

    def __init__(self, observation_space: Any, view_features: int = VIEW_FEATURES) -> None:
        view_space, vector_space = observation_space["view"], observation_space["vector"]
        channels, height, width = view_space.shape
        super().__init__(observation_space, features_dim=view_features + int(vector_space.shape[0]))
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 16, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.cnn(torch.zeros(1, channels, height, width)).shape[1]
        self.linear = nn.Sequential(nn.Linear(flat, view_features), nn.ReLU())

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        view = self.linear(self.cnn(observations["view"]))
        return torch.cat([view, observations["vector"]], dim=1)


class DeterministicActor(nn.Module):
    """An SB3 ``ActorCriticPolicy``'s deterministic action: uint8 view, float vector -> (B, 2)."""

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.features = policy.pi_features_extractor  # the actor's (SB3 aliases it when shared)
        self.mlp = policy.mlp_extractor.policy_net
        self.head = policy.action_net

    def forward(self, view: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        features = self.features({"view": view.float() / 255.0, "vector": vector})
        return torch.clamp(self.head(self.mlp(features)), -1.0, 1.0)
