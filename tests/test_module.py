"""cifarconv.Conv2d and convert against torch.nn.Conv2d."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import cifarconv

PADDING_MODES = ["zeros", "reflect", "replicate", "circular"]


def twins(*args, backend="custom", **kwargs):
    """An nn.Conv2d and a cifarconv.Conv2d built from the same seed."""
    torch.manual_seed(0)
    ref = nn.Conv2d(*args, **kwargs)
    torch.manual_seed(0)
    ours = cifarconv.Conv2d(*args, backend=backend, **kwargs)
    return ref, ours


def test_subclass_init_repr_and_state_dict_keys():
    ref, ours = twins(4, 6, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), groups=2, bias=False)
    assert isinstance(ours, nn.Conv2d)
    assert repr(ours) == repr(ref)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for (name, p), (ref_name, ref_p) in zip(ours.named_parameters(), ref.named_parameters()):
        assert name == ref_name and torch.equal(p, ref_p)  # same init under the same seed


def test_state_dict_moves_both_ways():
    ref, ours = twins(3, 5, 3, padding=1)
    torch.manual_seed(1)
    other = nn.Conv2d(3, 5, 3, padding=1)
    ours.load_state_dict(other.state_dict())
    assert torch.equal(ours.weight, other.weight) and torch.equal(ours.bias, other.bias)
    ref.load_state_dict(ours.state_dict())
    assert torch.equal(ref.weight, other.weight)


@pytest.mark.parametrize("padding", [1, (2, 1), "same", "valid"], ids=str)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_every_padding_mode_matches(padding_mode, padding, backend, device):
    ref, ours = twins(4, 6, 3, padding=padding, padding_mode=padding_mode, groups=2, dtype=torch.float64)
    ref, ours = ref.to(device), ours.to(device)
    ours.backend = backend
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64, device=device)
    for inp in (x, x[0]):  # batched and unbatched
        x_ref, x_ours = inp.clone().requires_grad_(), inp.clone().requires_grad_()
        y_ref, y = ref(x_ref), ours(x_ours)
        torch.testing.assert_close(y, y_ref)
        g = torch.randn_like(y)
        grads = torch.autograd.grad(y, (x_ours, ours.weight, ours.bias), g)
        grads_ref = torch.autograd.grad(y_ref, (x_ref, ref.weight, ref.bias), g)
        for got, want in zip(grads, grads_ref):
            torch.testing.assert_close(got, want)


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.ModuleDict(
            {"a": nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2), "b": nn.Conv2d(8, 16, 1, padding_mode="zeros")}
        )
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.block["b"](self.block["a"](self.stem(x)))
        return self.head(x.mean((2, 3)))


def test_convert_small_net(backend, device):
    torch.manual_seed(0)
    net = SmallNet().double().to(device)
    ref = copy.deepcopy(net)
    params_before = {name: p for name, p in net.named_parameters()}
    out = cifarconv.convert(net, backend=backend)
    assert out is net
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 and all(isinstance(m, cifarconv.Conv2d) and m.backend == backend for m in convs)
    assert all(p is params_before[name] for name, p in net.named_parameters())  # weights kept, not copied
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64, device=device)
    torch.testing.assert_close(net(x), ref(x))
    net(x).sum().backward()
    ref(x).sum().backward()
    for (name, p), (_, p_ref) in zip(net.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, msg=name)
    assert net.state_dict().keys() == ref.state_dict().keys()
    cifarconv.convert(net, backend="torch")  # a second call just switches the backend
    assert all(m.backend == "torch" for m in convs)


def test_convert_leaves_conv2d_subclasses_alone():
    class Standardized(nn.Conv2d):
        def forward(self, x):
            w = self.weight - self.weight.mean((1, 2, 3), keepdim=True)
            return self._conv_forward(x, w, self.bias)

    net = nn.Sequential(Standardized(3, 4, 3), nn.Conv2d(4, 4, 3))
    cifarconv.convert(net, backend="custom")
    assert type(net[0]) is Standardized and type(net[1]) is cifarconv.Conv2d


def test_converted_conv_is_deepcopyable_and_picklable(tmp_path):
    net = cifarconv.convert(nn.Sequential(nn.Conv2d(3, 4, 3)), backend="custom")
    clone = copy.deepcopy(net)
    assert type(clone[0]) is cifarconv.Conv2d and clone[0].backend == "custom"
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)
    state = torch.load(path, weights_only=True)
    fresh = cifarconv.Conv2d(3, 4, 3)
    fresh.load_state_dict({k.removeprefix("0."): v for k, v in state.items()})
    assert torch.equal(fresh.weight, net[0].weight)


def test_backend_names_checked_at_construction_and_convert():
    with pytest.raises(ValueError, match="unknown conv backend 'cudnn'.*valid names"):
        cifarconv.Conv2d(3, 4, 3, backend="cudnn")
    with pytest.raises(ValueError, match="unknown conv backend"):
        cifarconv.convert(nn.Conv2d(3, 4, 3), backend="fast")
