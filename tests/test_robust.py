"""PGD-k and YOPO-m-n: the attack's constraints, YOPO's gradients, a tiny digits run."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from durr.robust import (AdvConfig, accuracy, classification_loss, load_digits_tensors, pgd_attack,
                         restoration_attack, robust_accuracy, train_classifier, yopo_step)
from durr.schemes import build_backbone


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits_small():
    x_tr, y_tr, x_te, y_te = load_digits_tensors()
    return x_tr[:400], y_tr[:400], x_te[:200], y_te[:200]


def test_pgd_stays_in_ball_and_raises_loss(digits_small):
    x_tr, y_tr, x_te, y_te = digits_small
    torch.manual_seed(0)
    model = build_backbone("euler", channels=8, depth=2, num_classes=10, pool=4)
    train_classifier(model, x_tr, y_tr, AdvConfig(method="natural", epochs=4, lr=5e-3, batch_size=32))
    model.eval()
    x, y = x_te[:64], y_te[:64]
    x_adv = pgd_attack(model, x, classification_loss(y), eps=0.1, step=0.025, k=10, clamp=(0.0, 1.0),
                       generator=torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)
    assert torch.equal(pgd_attack(model, x, classification_loss(y), 0.1, 0.01, 0, random_start=False), x)
    assert robust_accuracy(model, x, y, eps=0.1, k=5) <= accuracy(model, x, y)


def test_restoration_attack_raises_error():
    torch.manual_seed(0)
    clean = torch.rand(2, 1, 16, 16)
    degraded = clean + 0.05 * torch.randn_like(clean)
    smooth = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        smooth.weight.fill_(1 / 9)
    adv = restoration_attack(smooth, degraded, clean, eps=0.02, k=5)
    assert (adv - degraded).abs().max() <= 0.02 + 1e-6
    with torch.no_grad():
        assert ((smooth(adv) - clean) ** 2).mean() > ((smooth(degraded) - clean) ** 2).mean()


def test_yopo_m1_n0_gradients_equal_plain_gradients():
    # with one pass and no inner update, the Hamiltonian gradient of the first layer is the
    # exact loss gradient, and the rest's gradients are the ordinary ones at x + eta
    torch.manual_seed(0)
    model = build_backbone("euler", channels=8, depth=2, num_classes=10, pool=4)
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 10, (6,))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    yopo_step(model.first_layer, model.rest, opt, x, y, eps=0.1, step=0.05, m=1, n=0, clamp=None,
              generator=torch.Generator().manual_seed(3))
    yopo_grads = [p.grad.clone() for p in model.parameters()]
    eta = (torch.rand(x.shape, generator=torch.Generator().manual_seed(3)) * 2 - 1) * 0.1
    model.zero_grad()
    F.cross_entropy(model(x + eta), y).backward()
    for g_yopo, p in zip(yopo_grads, model.parameters()):
        assert torch.allclose(g_yopo, p.grad, atol=1e-6)


def test_yopo_perturbation_and_update():
    torch.manual_seed(0)
    model = build_backbone("euler", channels=8, depth=2, num_classes=10, pool=4)
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 10, (6,))
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = yopo_step(model.first_layer, model.rest, opt, x, y, eps=0.1, step=0.05, m=3, n=2)
    assert loss > 0
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_tiny_adversarial_training_runs(digits_small):
    x_tr, y_tr, x_te, y_te = digits_small
    results = {}
    for method in ("natural", "pgd", "yopo"):
        torch.manual_seed(0)
        model = build_backbone("euler", channels=8, depth=2, num_classes=10, pool=4)
        info = train_classifier(model, x_tr, y_tr, AdvConfig(method=method, epochs=4, lr=5e-3, batch_size=32,
                                                              pgd_k=3, yopo_m=2, yopo_n=2))
        model.eval()
        results[method] = (accuracy(model, x_te, y_te), info)
        assert info["seconds"] > 0 and len(info["losses"]) == 4
    assert results["natural"][0] > 0.5  # well above chance after 4 tiny epochs
    assert results["yopo"][0] > 0.2 and results["pgd"][0] > 0.2
    with pytest.raises(ValueError):
        train_classifier(model, x_tr, y_tr, AdvConfig(method="fgsm"))
