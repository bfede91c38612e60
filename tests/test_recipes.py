"""Each component of the recipes (airbench94 for fastnet, Page's ResNet-9 for resnet9) against
values worked out by hand in the test: the step count, the lr factor, the optimiser groups and
their decay, Page's SGD step, the lookahead, the flip pattern, the crop range, the TTA views,
the whitening filters, the nets' BatchNorm and init, and the summed, smoothed loss.

A CPU run cannot reach the recipes' accuracy, so these are where a wrong detail gets caught."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from cifarconv.train.data.gpu_loader import GpuLoader, epoch_draws
from cifarconv.train.evaluate import tta_views
from cifarconv.train.loop import total_steps, train_step
from cifarconv.train.models import MODELS, FastNet, Mul
from cifarconv.train.optim import Lookahead, PageSGD, lr_factor, make_optimizer, parameter_groups
from cifarconv.train.recipes import RECIPES, check

AIRBENCH, PAGE = RECIPES["fastnet"], RECIPES["resnet9"]


def test_every_recipe_passes_its_checks():
    for recipe in RECIPES.values():
        check(recipe)
    with pytest.raises(ValueError, match="tta=3"):
        check({**AIRBENCH, "tta": 3})
    with pytest.raises(ValueError, match="differ in length"):
        check({**AIRBENCH, "lr_values": (0.2, 1.0)})


def test_fractional_epochs_end_mid_epoch():
    assert total_steps(AIRBENCH, 48) == 476 == 9 * 48 + 44  # 50000 // 1024 = 48 batches; ceil(475.2)
    assert total_steps(PAGE, 97) == 2328 == 24 * 97         # 50000 // 512 = 97 batches
    assert total_steps({"epochs": 1.5}, 2) == 3


def test_airbench_lr_factor():
    factor = lr_factor(AIRBENCH, 476)  # warm-up: int(0.23 * 476) = int(109.48) = 109 steps
    assert factor(0) == 0.2
    assert factor(50) == pytest.approx(0.2 + 0.8 * 50 / 109)
    assert factor(109) == 1.0
    assert factor(300) == pytest.approx(1 - 0.93 * (300 - 109) / 367)
    assert factor(475) == pytest.approx(1 - 0.93 * 366 / 367)  # the last step
    assert factor(476) == pytest.approx(0.07)


def test_page_lr_factor():
    factor = lr_factor(PAGE, 2328)  # peak at epoch 5 = step 485; step k runs at (k + 1) / 97 epochs
    assert factor(0) == pytest.approx(1 / 485)
    assert factor(484) == 1.0
    assert factor(1000) == pytest.approx((2328 - 1001) / (2328 - 485))
    assert factor(2327) == 0.0  # the last step at lr 0


def groups_by_size(groups):
    return [sorted(p.numel() for p in g["params"]) for g in groups]


def test_airbench_optimiser_groups():
    model = MODELS["fastnet"]()
    bn_biases, other = parameter_groups(model, AIRBENCH)
    # 1 + 1 / (1 - 0.85) = 23 / 3, so torch's lr is 11.5 / (1024 * 23 / 3) = 1.5 / 1024.
    assert other["lr"] == pytest.approx(1.5 / 1024)
    assert bn_biases["lr"] == pytest.approx(64 * 1.5 / 1024)
    # weight_decay passed as wd / lr: 0.0153 * 1024 / 11.5, and that / 64 for the BN biases.
    assert other["weight_decay"] == pytest.approx(1.3623652173913043)
    assert bn_biases["weight_decay"] == pytest.approx(1.3623652173913043 / 64)
    # BN biases of widths 64, 64, 256, 256, 256, 256; the rest: whitening bias, 6 convs, linear.
    assert groups_by_size([bn_biases]) == [[64, 64, 256, 256, 256, 256]]
    assert groups_by_size([other]) == [sorted([24, 24 * 64 * 9, 64 * 64 * 9, 64 * 256 * 9, 256 * 256 * 9,
                                               256 * 256 * 9, 256 * 256 * 9, 256 * 10])]
    in_groups = {id(p) for g in (bn_biases, other) for p in g["params"]}
    frozen = [model.whiten.weight] + [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert not any(id(p) in in_groups for p in frozen) and not any(p.requires_grad for p in frozen)


def test_airbench_weight_decay_is_the_same_per_step_in_both_groups():
    model = MODELS["fastnet"]()
    optimizer = make_optimizer(model, AIRBENCH)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["nesterov"]
    bias, conv = model[4].bias, model[2].weight  # a BatchNorm bias (64x the lr) and a conv weight
    with torch.no_grad():
        bias.fill_(1.0)
    before = conv.detach().clone()
    for p in optimizer.param_groups[0]["params"] + optimizer.param_groups[1]["params"]:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    # No gradient, empty momentum: w <- w - lr * (1 + m) * (wd / lr) * w, wd = 0.0153 * 1024 / (1024 * 23 / 3).
    shrink = 1 - 1.85 * 0.0153 * 3 / 23
    assert torch.allclose(bias, torch.full_like(bias, shrink))
    assert torch.allclose(conv, before * shrink)


def test_page_optimiser_groups():
    model = MODELS["resnet9"]()
    groups = parameter_groups(model, PAGE)
    assert [g["lr"] for g in groups] == pytest.approx([0.4 / 512] * 2)
    assert [g["weight_decay"] for g in groups] == pytest.approx([5e-4 * 512] * 2)
    bn = groups_by_size(groups)[0]
    assert len(bn) == 16 and len(groups[1]["params"]) == 9  # 8 BatchNorms' weight and bias; 8 convs and the linear
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))  # everything trains
    assert isinstance(make_optimizer(model, PAGE), PageSGD)


def test_page_sgd_step_by_hand():
    w = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = PageSGD([w], lr=0.1, momentum=0.9, weight_decay=0.01)
    w.grad = torch.tensor([0.5], dtype=torch.float64)
    optimizer.step()
    # step = -0.1 * (0.5 + 0.01 * 1) = -0.051; v = -0.051; w = 1 - 0.051 + 0.9 * -0.051
    assert w.item() == pytest.approx(0.9031)
    optimizer.param_groups[0]["lr"] = 0.2
    w.grad = torch.tensor([-0.25], dtype=torch.float64)
    optimizer.step()
    # step = -0.2 * (-0.25 + 0.01 * 0.9031) = 0.0481938; v = 0.9 * -0.051 + 0.0481938 = 0.0022938
    assert w.item() == pytest.approx(0.9031 + 0.0481938 + 0.9 * 0.0022938)
    # torch's SGD scales its buffer by the new lr instead: 0.9031 - 0.2 * (-0.240969 + 0.9 * 0.218031)
    assert w.item() != pytest.approx(0.9031 - 0.2 * (-0.240969 + 0.9 * 0.218031), abs=1e-3)


def test_lookahead_by_hand():
    bn = nn.BatchNorm1d(1)  # weight 1, bias 0, running stats, and an integer batch count
    lookahead = Lookahead(bn, every=5, decay=0.95 ** 5, power=3)
    with torch.no_grad():
        bn.weight.fill_(2.0)
        bn.running_mean.fill_(4.0)
    for step in range(1, 5):
        lookahead.after_step(bn, step, total_steps=10)
    assert bn.weight.item() == 2.0  # no update before step 5
    lookahead.after_step(bn, 5, total_steps=10)
    # d = 0.95^5 * (5/10)^3 = 0.0967226171875: ema = 1 + (1 - d) * (2 - 1), and net <- ema
    assert bn.weight.item() == pytest.approx(1.9032773828125)
    assert bn.running_mean.item() == pytest.approx(4 * (1 - 0.0967226171875))
    with torch.no_grad():
        bn.weight.fill_(3.0)
        bn.num_batches_tracked.fill_(7)
    lookahead.after_step(bn, 10, total_steps=10)
    # d = 0.95^5 = 0.7737809375: ema = 1.9032773828125 + (1 - d) * (3 - 1.9032773828125); the final
    # update (d = 1) then keeps the ema and sets the net to it.
    assert bn.weight.item() == pytest.approx(2.151376945095203)
    assert lookahead.ema["weight"].item() == pytest.approx(2.151376945095203)
    assert bn.num_batches_tracked.item() == 7  # integer state is not averaged


def flipped_per_image(loader, epoch):
    """For each image (labels are indices): whether the epoch served it mirrored."""
    out = {}
    for x, y in loader.epoch(seed=3, epoch=epoch):
        for image, i in zip(x, y.tolist()):
            plain = loader.normalized(torch.tensor([i]))[0]
            assert torch.equal(image, plain) or torch.equal(image, plain.flip(-1))
            out[i] = torch.equal(image, plain.flip(-1))
    return [out[i] for i in range(len(out))]


def asymmetric_images(n):
    return np.random.default_rng(0).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)


def test_alternating_flip_pattern():
    n = 40
    loader = GpuLoader(asymmetric_images(n), np.arange(n), 8, torch.device("cpu"), [0.0] * 3, [1.0] * 3, train=True,
                       flip="alternating")
    first = flipped_per_image(loader, 0)
    assert 0 < sum(first) < n  # epoch 0: each image flipped or not at random
    for epoch in range(1, 5):  # then the whole set flipped on every odd epoch
        assert flipped_per_image(loader, epoch) == [f ^ (epoch % 2 == 1) for f in first]
    random = GpuLoader(asymmetric_images(n), np.arange(n), 8, torch.device("cpu"), [0.0] * 3, [1.0] * 3, train=True,
                       flip="random")
    assert flipped_per_image(random, 0) == first  # same draws at epoch 0
    assert flipped_per_image(random, 1) != [not f for f in first]
    none = GpuLoader(asymmetric_images(n), np.arange(n), 8, torch.device("cpu"), [0.0] * 3, [1.0] * 3, train=True)
    assert not any(flipped_per_image(none, 1))


def test_crop_range():
    offsets = epoch_draws(0, 0, 5000, (32, 32), crop_pad=2, cutout=0, flip="random").crop
    assert set(offsets.flatten().tolist()) == {0, 1, 2, 3, 4}  # shifts of -2 .. 2 pixels
    assert set(epoch_draws(0, 0, 5000, (32, 32), 4, 8, "random").crop.flatten().tolist()) == set(range(9))
    corners = epoch_draws(0, 0, 5000, (32, 32), 4, 8, "random").cutout
    assert corners.min() == 0 and corners.max() == 24  # the 8x8 square stays inside the image

    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    image = np.stack([rows, cols, np.zeros_like(rows)], -1).astype(np.uint8)  # channel 0: row, 1: column
    images = np.repeat(image[None], 4, 0)
    loader = GpuLoader(images, np.arange(4), 4, torch.device("cpu"), [0.0] * 3, [1.0] * 3, train=True, crop_pad=2)
    draws = loader.draws(seed=0, epoch=0)
    x, y = next(loader.epoch(seed=0, epoch=0))
    reflect = [2, 1] + list(range(32)) + [30, 29]  # the rows (and columns) of the image reflect-padded by 2
    for out, i in zip(x, y.tolist()):
        r, c = draws.crop[i].tolist()
        assert out[0, :, 0].tolist() == reflect[r:r + 32] and out[1, 0, :].tolist() == reflect[c:c + 32]


def test_tta_views_and_weights():
    x = torch.tensor([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]]).view(1, 1, 3, 3)
    assert [(w, v.tolist()) for w, v in tta_views(x, 0)] == [(1.0, x.tolist())]
    assert [w for w, _ in tta_views(x, 1)] == [0.5, 0.5]
    assert torch.equal(tta_views(x, 1)[1][1], x.flip(-1))
    views = tta_views(x, 2)
    assert [w for w, _ in views] == [0.25, 0.25, 0.125, 0.125, 0.125, 0.125]
    # Reflect-padded by 1: [[5,4,5,6,5],[2,1,2,3,2],[5,4,5,6,5],[8,7,8,9,8],[5,4,5,6,5]]
    up_left = [[5.0, 4, 5], [2, 1, 2], [5, 4, 5]]
    down_right = [[5.0, 6, 5], [8, 9, 8], [5, 6, 5]]
    expected = [x[0, 0].tolist(), x[0, 0].flip(-1).tolist(), up_left, [r[::-1] for r in up_left],
                down_right, [r[::-1] for r in down_right]]
    assert [v[0, 0].tolist() for _, v in views] == expected


def whitening_filters(images, eps=5e-4):
    net = FastNet(**RECIPES["fastnet"]["net"])
    net.init_whitening(images, eps)
    return net.whiten.weight.detach().double().reshape(24, 12), net.whiten.bias


def test_whitening_filters_on_a_tiny_patch_set():
    # 24 images of 2x2 pixels, one patch each: +-(i+1) along axis i of the 12 patch values, so the
    # second-moment matrix is diag((i+1)^2 / 12): eigenvalue (12-k)^2 / 12 for the k-th largest.
    eye = torch.eye(12, dtype=torch.float64)
    images = torch.cat([s * (i + 1) * eye[i].view(1, 3, 2, 2) for i in range(12) for s in (1, -1)]).float()
    filters, bias = whitening_filters(images)
    for k in range(12):
        want = eye[11 - k] / math.sqrt((12 - k) ** 2 / 12 + 5e-4)
        assert torch.allclose(filters[k].abs(), want, atol=1e-6)  # an eigenvector's sign is free
        assert torch.equal(filters[12 + k], -filters[k])
    assert (bias == 0).all()


def test_whitening_uses_the_patches_second_moment_not_their_covariance():
    v = torch.arange(1, 13, dtype=torch.float64) / 10  # |v|^2 = 650 / 100 = 6.5
    images = v.view(1, 3, 2, 2).repeat(5, 1, 1, 1).float()  # 5 identical patches: no variance at all
    filters, _ = whitening_filters(images)
    want = v / math.sqrt(6.5) / math.sqrt(6.5 + 5e-4)
    assert torch.allclose(filters[0] * torch.sign(filters[0] @ v), want, atol=1e-5)


def test_fastnet_batchnorm_and_dirac_init():
    torch.manual_seed(0)
    net = MODELS["fastnet"]()
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6
    for bn in norms:
        assert (bn.eps, bn.momentum) == (1e-12, 0.4)  # airbench's "momentum 0.6" = torch's 1 - 0.6
        assert not bn.weight.requires_grad and (bn.weight == 1).all() and bn.bias.requires_grad
    assert not net.whiten.weight.requires_grad and net.whiten.bias.requires_grad and (net.whiten.bias == 0).all()
    conv = net[2]  # 24 -> 64: its first 24 filters pass their input channel through
    x = torch.randn(2, 24, 5, 5)
    assert torch.allclose(conv(x)[:, :24], x, atol=1e-6)
    assert not torch.allclose(conv(x)[:, 24:], torch.zeros(2, 40, 5, 5))  # the rest: torch's default init
    assert isinstance(net[-1], Mul) and net[-1].scale == pytest.approx(1 / 9)


def test_resnet9_batchnorm_and_scale():
    net = MODELS["resnet9"]()
    for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
        assert (bn.eps, bn.momentum) == (1e-5, 0.1) and bn.weight.requires_grad and bn.bias.requires_grad
    assert net[-1].scale == 0.125 and net[-2].bias is None
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


class FixedLogits(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(logits)

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def test_loss_is_summed_over_the_batch_with_label_smoothing():
    model = FixedLogits(torch.tensor([[math.log(2), 0.0, 0.0]]))  # probabilities 1/2, 1/4, 1/4
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loss, hits = train_step(model, optimizer, scaler, torch.zeros(2, 1), torch.tensor([0, 0]), "off", 0.2, 1)
    # per image: 0.8 * ln 2 + 0.2 * mean(ln 2, ln 4, ln 4) = ln 2 * (0.8 + 1/3); summed over 2 images
    assert loss.item() == pytest.approx(2 * math.log(2) * (0.8 + 1 / 3))
    assert hits.item() == 2
