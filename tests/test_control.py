"""The DURR restorer: rollout modes, batch invariance, the gym environment, training resume."""

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from durr.control import ENV_ID, DURR, DURRConfig, FixedDepthCNN, UnitConfig
from durr.control.env import CONTINUE, STOP, MovingEndpointEnv
from durr.control.reward import working_psnr
from durr.data.sampling import PairSampler
from durr.degrade import get_degradation
from durr.infer import restore_slices
from durr.train.reinforce import episode_return
from durr.train.stage1 import Stage1Config, train_stage1


def smooth_images(n=4, size=48, seed=0):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    return [np.clip(0.5 + 4 * ndimage.gaussian_filter(rng.standard_normal((size, size)), 3), 0, 1).astype(np.float32)
            for _ in range(n)]


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    return DURR(DURRConfig(modality="OT", family="gaussian", max_steps=12, unit=UnitConfig(channels=8, depth=3), **kw))


def test_batches_of_1_and_8_give_the_same_restoration():
    model = tiny_model()
    with torch.no_grad():  # make the policy stop at different steps for different slices
        model.policy.net[-1].bias.fill_(-1.0)
    slices = np.stack(smooth_images(8, 64)) + np.random.default_rng(1).normal(0, 0.1, (8, 64, 64)).astype(np.float32)
    a, info_a = restore_slices(model, slices, batch_size=8)
    b, info_b = restore_slices(model, slices, batch_size=1)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_array_equal(info_a.steps, info_b.steps)


def test_fixed_and_oracle_modes():
    model = tiny_model()
    y = torch.from_numpy(np.stack(smooth_images(3)))[:, None] + 0.1
    fixed = model.rollout(y, mode="fixed", steps=4, record=True)
    assert fixed.steps.tolist() == [4, 4, 4] and len(fixed.trajectory) == 5
    clean = y - 0.1
    oracle = model.rollout(y, mode="oracle", max_steps=6, score=lambda x: working_psnr(x, clean, "OT"), record=True)
    scores = torch.stack([working_psnr(x, clean, "OT") for x in oracle.trajectory], 1)
    assert torch.equal(oracle.steps, scores.argmax(1))
    with pytest.raises(ValueError, match="score"):
        model.rollout(y, mode="oracle")
    with pytest.raises(ValueError, match="unknown mode"):
        model.rollout(y, mode="sometimes")


def test_env_passes_gymnasium_checker_and_is_registered():
    env = gymnasium.make(ENV_ID, max_steps=4)
    check_env(env.unwrapped, skip_render_check=True)
    vec = gymnasium.make_vec(ENV_ID, num_envs=3, vectorization_mode="sync", max_steps=4)
    obs, _ = vec.reset(seed=0)
    assert obs["estimate"].shape == (3, 1, 32, 32)
    vec.close()


def test_env_is_reproducible_for_a_seed():
    runs = []
    for _ in range(2):
        env = MovingEndpointEnv(model=tiny_model(), max_steps=5)
        obs, _ = env.reset(seed=123)
        rewards = [env.step(CONTINUE)[1] for _ in range(3)]
        runs.append((obs["degraded"].copy(), rewards))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


def test_env_return_equals_trainer_return():
    model = tiny_model()
    env = MovingEndpointEnv(model=model, max_steps=8, step_cost=0.05)
    obs, _ = env.reset(seed=7)
    total = 0.0
    for _ in range(5):
        total += env.step(CONTINUE)[1]
    _, reward, terminated, truncated, _ = env.step(STOP)
    total += reward
    assert terminated and not truncated
    y, clean = torch.from_numpy(obs["degraded"])[None], env._clean
    with torch.no_grad():
        psnr = torch.stack([working_psnr(x, clean, "OT") for x in model.unroll(y, 8)], 1).double()
    expected = episode_return(psnr, torch.tensor([5]), 0.05).item()
    assert total == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("kind", ["durr", "fixed"])
def test_killed_and_resumed_training_equals_uninterrupted(tmp_path, kind):
    sampler = PairSampler(smooth_images(4, 48), get_degradation("gaussian"), "OT", patch=32)
    cfg = Stage1Config(iterations=6, batch=4, patch=32, checkpoint_every=1, log_every=1, n_min=1, n_max=3)

    def fresh():
        torch.manual_seed(0)
        return tiny_model() if kind == "durr" else FixedDepthCNN()

    whole = fresh()
    train_stage1(whole, sampler, cfg, tmp_path / "whole", progress=False)
    killed = fresh()
    train_stage1(killed, sampler, cfg, tmp_path / "resumed", progress=False, stop_after=3)
    resumed = fresh()  # a new process: fresh weights, everything comes from the checkpoint
    train_stage1(resumed, sampler, cfg, tmp_path / "resumed", progress=False)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    log = (tmp_path / "resumed" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == [str(i) for i in range(1, 7)]


def test_mr_restoration_is_non_negative_and_ct_is_not_clamped(tiny_durr):
    gen = torch.Generator().manual_seed(0)
    mr = tiny_durr("MR", "mr-rician", max_steps=4)
    with torch.no_grad():   # push the unit's output negative so that clamping has work to do
        next(p for n, p in mr.unit.named_parameters() if n.endswith("bias")).fill_(-1.0)
    image = torch.rand(2, 1, 32, 32, generator=gen) * 100
    image[..., :8, :] = 0.0
    out = mr.restore(image, mode="fixed", steps=3, record=True)
    assert out.output.min() >= 0 and all(t.min() >= 0 for t in out.trajectory)
    assert (out.output == 0).any()   # something was clamped
    ct = tiny_durr("CT", "ct-lowdose", max_steps=4)
    hu = torch.full((1, 1, 32, 32), -1000.0)
    assert ct.restore(hu, mode="fixed", steps=2).output.max() < 0
