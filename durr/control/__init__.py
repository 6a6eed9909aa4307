"""The moving-endpoint restorer: restoration unit, stopping policy, rollout, gymnasium env."""

import gymnasium

from durr.control.baseline import FixedCNNConfig, FixedDepthCNN
from durr.control.policy import PolicyConfig, StopPolicy
from durr.control.restorer import DURR, DURRConfig, Rollout
from durr.control.unit import RestorationUnit, UnitConfig

ENV_ID = "durr/MovingEndpoint-v0"
if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="durr.control.env:MovingEndpointEnv")

__all__ = ["DURR", "DURRConfig", "Rollout", "RestorationUnit", "UnitConfig", "StopPolicy", "PolicyConfig",
           "FixedDepthCNN", "FixedCNNConfig", "ENV_ID"]
