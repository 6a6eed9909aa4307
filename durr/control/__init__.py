"""The moving-endpoint restorer: restoration unit, stopping policy, rollout, gymnasium env."""

from durr.control.baseline import FixedCNNConfig, FixedDepthCNN
from durr.control.policy import PolicyConfig, StopPolicy
from durr.control.restorer import DURR, DURRConfig, Rollout
from durr.control.unit import RestorationUnit, UnitConfig

ENV_ID = "durr/MovingEndpoint-v0"


def _register_env() -> None:
    """Register the env when gymnasium is installed; the model itself needs only torch."""
    try:
        import gymnasium
    except ImportError:
        return
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="durr.control.env:MovingEndpointEnv")


_register_env()

__all__ = ["DURR", "DURRConfig", "Rollout", "RestorationUnit", "UnitConfig", "StopPolicy", "PolicyConfig",
           "FixedDepthCNN", "FixedCNNConfig", "ENV_ID"]
