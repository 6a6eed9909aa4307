"""The moving-endpoint decision as a gymnasium environment: ``durr/MovingEndpoint-v0``.

Observation: ``{"estimate": x_n, "degraded": y, "step": n}`` (images (1, P, P) float32 in the
working domain). Action: ``Discrete(2)``, 0 = continue, 1 = stop. Continuing advances the
frozen restorer one step and earns the PSNR gain (dB) minus ``step_cost``; stopping ends the
episode with reward 0; reaching ``max_steps`` truncates it. The return therefore equals
``durr.train.reinforce.episode_return`` for the same trajectory.

For batches use ``gymnasium.make_vec("durr/MovingEndpoint-v0", num_envs=B)``.

The episodes are the unscaled dynamic, as stage 2's rollouts: the level scale
(``durr.control.level_scale``) and the stopping wrappers act at inference only.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from durr.control.restorer import DURR
from durr.control.reward import working_psnr

CONTINUE, STOP = 0, 1


def _default_sampler(patch: int):
    """Gaussian noise on smooth random images: enough to exercise the environment."""
    from durr.data.sampling import PairSampler
    from durr.degrade import get_degradation

    rng = np.random.default_rng(0)
    from scipy import ndimage

    clean = [np.clip(0.5 + ndimage.gaussian_filter(rng.standard_normal((2 * patch, 2 * patch)), 3) * 4, 0, 1)
             .astype(np.float32) for _ in range(8)]
    return PairSampler(clean, get_degradation("gaussian"), "OT", patch=patch)


class MovingEndpointEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, model: DURR | None = None, sampler=None, patch: int = 32, max_steps: int = 16,
                 step_cost: float = 0.0):
        self.model = (model or DURR()).eval()
        self.sampler = sampler or _default_sampler(patch)
        self.patch = self.sampler.patch
        self.max_steps = max_steps
        self.step_cost = step_cost
        image = spaces.Box(-np.inf, np.inf, shape=(1, self.patch, self.patch), dtype=np.float32)
        self.observation_space = spaces.Dict({"estimate": image, "degraded": image,
                                              "step": spaces.Discrete(max_steps + 1)})
        self.action_space = spaces.Discrete(2)
        self._generator = torch.Generator()

    def _obs(self) -> dict:
        return {"estimate": self._x[0].numpy().astype(np.float32), "degraded": self._y[0].numpy().astype(np.float32),
                "step": self._n}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._generator.manual_seed(int(self.np_random.integers(0, 2**62)))
        pairs = self.sampler.sample(1, self._generator)
        self._y, self._clean, self.level = pairs.degraded, pairs.clean, float(pairs.level[0])
        self._x, self._n, self._state = self._y, 0, self.model.init_state(self._y)
        self._psnr = float(working_psnr(self._x, self._clean, self.model.config.modality)[0])
        return self._obs(), {"psnr": self._psnr, "level": self.level}

    @torch.no_grad()
    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be 0 (continue) or 1 (stop), got {action!r}")
        if int(action) == STOP:
            return self._obs(), 0.0, True, False, {"psnr": self._psnr, "level": self.level}
        self._x, self._state = self.model.step(self._x, self._y, self._state, self._n)
        self._n += 1
        psnr = float(working_psnr(self._x, self._clean, self.model.config.modality)[0])
        reward, self._psnr = psnr - self._psnr - self.step_cost, psnr
        truncated = self._n >= self.max_steps
        return self._obs(), float(reward), False, truncated, {"psnr": psnr, "level": self.level}
