"""Channels-last convolution weights: a speed layout that must not change what the unit computes."""

import torch

from durr.control import DURR, DURRConfig, FixedDepthCNN, UnitConfig
from durr.control.unit import RestorationUnit
from durr.infer import load_model, save_model


def conv_weights(module):
    return [m.weight for m in module.modules() if isinstance(m, torch.nn.Conv2d)]


def test_unit_and_baseline_weights_are_channels_last():
    for module in (RestorationUnit(), FixedDepthCNN()):
        weights = conv_weights(module)
        assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)


def test_channels_last_unit_computes_what_the_nchw_unit_computes():
    torch.manual_seed(0)
    fast = RestorationUnit(UnitConfig(last_layer_gain=1.0))
    plain = RestorationUnit(UnitConfig(last_layer_gain=1.0))
    plain.load_state_dict(fast.state_dict())
    plain.net.to(memory_format=torch.contiguous_format)
    assert not conv_weights(plain)[1].is_contiguous(memory_format=torch.channels_last)
    x, y = torch.randn(2, 1, 40, 36), torch.randn(2, 1, 40, 36)
    with torch.no_grad():
        a, b = fast(x, y), plain(x, y)
    assert a.abs().max() > 1e-3  # a non-trivial update
    assert torch.allclose(a, b, atol=1e-6)
    # gradients agree too (training uses the same layout)
    for unit in (fast, plain):
        unit.zero_grad()
        unit(x, y).pow(2).sum().backward()
    for g_fast, g_plain in zip(conv_weights(fast), conv_weights(plain)):
        assert torch.allclose(g_fast.grad, g_plain.grad, rtol=1e-4, atol=1e-5)


def test_saved_model_reloads_channels_last_with_the_same_values(tmp_path):
    torch.manual_seed(1)
    model = DURR(DURRConfig(modality="CT", family="ct-lowdose"))
    loaded = load_model(save_model(tmp_path / "m", model, FixedDepthCNN()))
    for a, b in zip(conv_weights(model.unit), conv_weights(loaded.unit)):
        assert torch.equal(a, b) and b.is_contiguous(memory_format=torch.channels_last)
