"""The seed projects' networks and recipes against their own text, value by value: each value is read
from a quote of its file, and each quote is checked to be in the file where the seed texts are found
(``$CIFARCONV_SEEDS``; without it that one test is skipped, unless ``CIFARCONV_REQUIRE_DATA=1``, as
CI sets: then it fails). Then what the sources share and our trainer had to match: torch's mean
cross-entropy, and Adam's L2 weight decay (not AdamW's); the plateau schedule; the x / 255 input of
004; and the networks running on every backend through ``convert``."""

from __future__ import annotations

import ast
import copy
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import cifarconv
from cifarconv.train.data.splits import splits
from cifarconv.train.loop import loss_reduction, make_loaders, total_steps, train_step
from cifarconv.train.models import MODELS
from cifarconv.train.optim import Schedule, make_optimizer
from cifarconv.train.recipes import RECIPES, check, recipe
from cifarconv.train.source_recipes import SOURCE_RECIPES

REPO = Path(__file__).resolve().parents[1]
SEEDS = os.environ.get("CIFARCONV_SEEDS")
FILES = {"001": "001_cd0e10538b5c8d41.txt", "003": "003_cc1b8323fc3dc935.txt", "004": "004_f66964e7168fcf9d.txt"}

# --- quotes, as the files print them ----------------------------------------------------------------

CNN3_TABLE = [  # 003, "Basic CNN Architecture": its layer table, row by row
    "| nn.Conv2d | In Channels: 3 <br> Out Channels: 8 <br> Kernel Size: 5 <br> Stride: 1 <br> Padding: 2 |",
    "| nn.MaxPool2d | Kernel Size: 2 <br> Stride: 2 |",
    "| nn.Conv2d | In Channels: 8 <br> Out Channels: 16 <br> Kernel Size: 5 <br> Stride: 1 <br> Padding: 2 |",
    "| nn.MaxPool2d | Kernel Size: 2 <br> Stride: 2 |",
    "| nn.Conv2d | In Channels: 16 <br> Out Channels: 32 <br> Kernel Size: 5 <br> Stride: 1 <br> Padding: 2 |",
    "| nn.MaxPool2d | Kernel Size: 2 <br> Stride: 2 |",
    "| nn.Linear | In Channels: 512 <br> Out Channels: 64 |",
    "| nn.Linear | In Channels: 64 <br> Out Channels: 32 |",
    "| nn.Linear | In Channels: 32 <br> Out Channels: 10 |",
]
CNN3_BLOCK = "3 convolutional layers (conv + relu + max pool) and a fully connected network"

CNN5_004_LAYERS = [  # 004's ConvNet.__init__
    "self.conv1 = nn.Conv2d(in_channels = 3, out_channels = 8, kernel_size = (3, 3), padding = 1, stride = 1)",
    "self.conv2 = nn.Conv2d(in_channels = 8, out_channels = 32, kernel_size = (3, 3), padding = 1, stride = 1)",
    "self.conv3 = nn.Conv2d(in_channels = 32, out_channels = 64, kernel_size = (3, 3), padding = 1, stride = 1)",
    "self.conv4 = nn.Conv2d(in_channels = 64, out_channels = 128, kernel_size = (3, 3), padding = 1, stride = 1)",
    "self.conv5 = nn.Conv2d(in_channels = 128, out_channels = 256, kernel_size = (3, 3), padding = 1, stride = 1)",
    "self.fc1 = nn.Linear(in_features = 8 * 8 * 256, out_features = 256)",
    "self.fc2 = nn.Linear(in_features = 256, out_features = 128)",
    "self.fc3 = nn.Linear(in_features = 128, out_features = 64)",
    "self.fc4 = nn.Linear(in_features = 64, out_features = 10)",
    "self.max_pool = nn.MaxPool2d(kernel_size = (2, 2), stride = 2)",
    "self.dropout = nn.Dropout2d(p = 0.5)",
]
CNN5_001_LAYERS = [  # 001: the same, but conv5 unpadded and fc1 6 * 6 * 256
    "self.conv1 = nn.Conv2d(in_channels=3,out_channels=8,stride=1,kernel_size=(3,3),padding=1)",
    "self.conv2 = nn.Conv2d(in_channels=8,out_channels=32,kernel_size=(3,3),padding=1,stride=1)",
    "self.conv3 = nn.Conv2d(in_channels=32,out_channels=64,kernel_size=(3,3),padding=1,stride=1)",
    "self.conv4 = nn.Conv2d(in_channels=64,out_channels=128,kernel_size=(3,3),padding=1,stride=1)",
    "self.conv5 = nn.Conv2d(in_channels=128,out_channels=256,kernel_size=(3,3),stride=1)",
    "self.fc1 = nn.Linear(in_features=6*6*256,out_features=256)",
    "self.fc2 = nn.Linear(in_features=256,out_features=128)",
    "self.fc3 = nn.Linear(in_features=128,out_features=64)",
    "self.fc4 = nn.Linear(in_features=64,out_features=10)",
    "self.max_pool = nn.MaxPool2d(kernel_size=(2,2),stride=2)",
    "self.dropout = nn.Dropout2d(p=0.5)",
]
CNN5_FORWARD = [  # 004's ConvNet.forward, in order (001 publishes no forward)
    "x = self.conv1(x)", "x = F.relu(x)", "x = self.conv2(x)", "x = F.relu(x)", "x = self.max_pool(x)",
    "x = self.conv3(x)", "x = F.relu(x)", "x = self.dropout(x)", "x = self.conv4(x)", "x = F.relu(x)",
    "x = self.max_pool(x)", "x = self.conv5(x)", "x = F.relu(x)", "x = self.dropout(x)", "x = x.view(-1, 8 * 8 * 256)",
    "x = self.fc1(x)", "x = F.relu(x)", "x = self.fc2(x)", "x = F.relu(x)", "x = self.fc3(x)", "x = F.relu(x)",
    "logits = self.fc4(x)",
]

# (model, recipe key, file, quote, the value's text in the quote)
QUOTED = [
    ("cnn3", "epochs", "003", "| EPOCHS | 20 |", "20"),
    ("cnn3", "batch_size", "003", "| BATCH_SIZE | 128 |", "128"),
    ("cnn3", "lr", "003", "| LEARNING_RATE | 1e-4 |", "1e-4"),
    ("cnn3", "optimizer", "003", "| Adam | Weight Decay: 0.01 |", "Adam"),
    ("cnn3", "weight_decay", "003", "| Adam | Weight Decay: 0.01 |", "0.01"),
    ("cnn3", "val_images", "003", "a validation set with 5,000 images", "5,000"),
    ("cnn5-padded", "lr", "004", "config = TrainingConfig(lr = 3e-4, batch_size = 1024, steps = 21000, eval_step = 100, "
                                 "resume = True)", "3e-4"),
    ("cnn5-padded", "batch_size", "004", "config = TrainingConfig(lr = 3e-4, batch_size = 1024, steps = 21000, "
                                         "eval_step = 100, resume = True)", "1024"),
    ("cnn5-padded", "betas", "004", "betas = (0.9, 0.995)", "(0.9, 0.995)"),
    ("cnn5-padded", "weight_decay", "004", "weight_decay = 5e-4", "5e-4"),
    ("cnn5-padded", "optimizer", "004", "optimizer = optim.Adam(net.parameters(), lr = config.lr, betas = config.betas, "
                                        "weight_decay = config.weight_decay)", "Adam"),
    ("cnn5-padded", "convention", "004", "loss = F.cross_entropy(logits, targets)", "F.cross_entropy(logits, targets)"),
    ("cnn5-padded", "normalize", "004", "return torch.tensor(image, dtype = torch.float32) / 255, target", "/ 255"),
    ("cnn5-padded", "flip", "004", "train_set = CIFAR10(root = \"./cifar-10-batches-py\", train = True)", "train = True)"),
    ("resnet18", "epochs", "003", "| EPOCHS | 50 |", "50"),
    ("resnet18", "batch_size", "003", "| BATCH_SIZE | 128 |", "128"),
    ("resnet18", "lr", "003", "| LEARNING_RATE | 0.1 |", "0.1"),
    ("resnet18", "optimizer", "003", "| SGD | Momentum: 0.9 <br> Weight Decay: 5e-4 <br> Nesterov: True |", "Nesterov: True"),
    ("resnet18", "momentum", "003", "| SGD | Momentum: 0.9 <br> Weight Decay: 5e-4 <br> Nesterov: True |", "0.9"),
    ("resnet18", "weight_decay", "003", "| SGD | Momentum: 0.9 <br> Weight Decay: 5e-4 <br> Nesterov: True |", "5e-4"),
    ("resnet18", "plateau_factor", "003", "| ReduceLROnPlateau | Mode: max <br> Factor: 0.1 <br> Patience: 3 <br> "
                                          "Threshold: 1e-3 |", "0.1"),
    ("resnet18", "plateau_patience", "003", "| ReduceLROnPlateau | Mode: max <br> Factor: 0.1 <br> Patience: 3 <br> "
                                            "Threshold: 1e-3 |", "3"),
    ("resnet18", "plateau_threshold", "003", "| ReduceLROnPlateau | Mode: max <br> Factor: 0.1 <br> Patience: 3 <br> "
                                             "Threshold: 1e-3 |", "1e-3"),
    ("resnet18", "val_images", "003", "a validation set with 5,000 images", "5,000"),
]
STEPS_004 = ("004", "config = TrainingConfig(lr = 3e-4, batch_size = 1024, steps = 21000, eval_step = 100, resume = True)")

# What each quoted text means as a recipe value (the rest are numbers as written).
MEANING = {"Adam": "adam", "Nesterov: True": "sgd", "F.cross_entropy(logits, targets)": "torch", "/ 255": "unit",
           "train = True)": "none", "5,000": 5000, "(0.9, 0.995)": (0.9, 0.995)}

# Values the source does not give: our choices, each said so ("silent") in source_recipes.py.
SILENT = {
    "cnn3": {"convention", "betas", "label_smoothing", "lr_knots", "lr_values", "normalize", "flip", "crop_pad"},
    "cnn5-padded": set(),
    "resnet18": {"net", "convention", "label_smoothing", "normalize", "flip", "crop_pad"},
}
# Values a source's pipeline has no use for (another optimiser's, or parts of airbench94's): off.
UNUSED = {"momentum": None, "betas": None, "bn_lr_scale": 1.0, "lr_step_offset": 0, "whiten_images": 0,
          "whiten_eps": 0.0, "whiten_bias_epochs": 0, "lookahead_every": 0, "lookahead_decay": 0.0,
          "lookahead_power": 0, "cutout": 0, "tta": 0, "plateau_factor": 0.0, "plateau_patience": 0,
          "plateau_threshold": 0.0, "val_images": 0, "label_smoothing": 0.0, "crop_pad": 0}
# Values read off the quotes with a line of arithmetic, checked in their own tests below.
DERIVED = {"cnn3": {"net"}, "cnn5-padded": {"net", "epochs", "lr_knots", "lr_values", "label_smoothing", "crop_pad"},
           "resnet18": {"lr_knots", "lr_values"}}


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def all_quotes() -> list[tuple[str, str]]:
    quotes = [("003", q) for q in CNN3_TABLE + [CNN3_BLOCK]] + [("004", q) for q in CNN5_004_LAYERS + CNN5_FORWARD]
    quotes += [("001", q) for q in CNN5_001_LAYERS] + [(f, q) for _, _, f, q, _ in QUOTED] + [STEPS_004]
    return quotes


def test_every_quote_is_in_its_seed_file():
    if not (SEEDS and Path(SEEDS).is_dir()):
        why_not = (f"CIFARCONV_SEEDS={SEEDS} is not a folder" if SEEDS
                   else "no seed texts: set CIFARCONV_SEEDS to their folder")
        (pytest.fail if os.environ.get("CIFARCONV_REQUIRE_DATA") == "1" else pytest.skip)(why_not)
    texts = {key: _squeeze((Path(SEEDS) / name).read_text()) for key, name in FILES.items()}
    missing = [(f, q) for f, q in all_quotes() if _squeeze(q) not in texts[f]]
    assert not missing, missing


def value_in(quote: str, text: str):
    assert text in quote
    return MEANING.get(text, ast.literal_eval(text) if text[0] in "0123456789(" else text)


@pytest.mark.parametrize("model, key, file, quote, text", QUOTED, ids=[f"{m}-{k}" for m, k, *_ in QUOTED])
def test_source_recipe_value_from_its_quote(model, key, file, quote, text):
    assert SOURCE_RECIPES[model][key] == value_in(quote, text)


def test_every_source_value_is_quoted_derived_silent_or_unused():
    quoted = {(m, k) for m, k, *_ in QUOTED}
    for model, chosen in SOURCE_RECIPES.items():
        check(chosen)
        assert set(chosen) == set(RECIPES[model])  # the same keys as every recipe
        for key, value in chosen.items():
            if (model, key) in quoted or key in DERIVED[model] or key in SILENT[model]:
                continue
            assert key in UNUSED and value == UNUSED[key], (model, key, value)


def test_silent_values_say_so_in_their_comment():
    source = (REPO / "cifarconv" / "train" / "source_recipes.py").read_text()
    for model, keys in SILENT.items():
        block = source[source.index(f'    "{model}": {{'):]
        block = block[: block.index("\n    },")]
        lines = block.splitlines()
        for key in keys:
            (i,) = [i for i, line in enumerate(lines) if line.strip().startswith(f'"{key}":')]
            nearby = " ".join(lines[max(i - 2, 0):i + 2])  # its comment, or the one it continues
            assert "silent" in nearby, (model, key, lines[i])


def test_004_steps_become_epochs():
    _, quote = STEPS_004
    steps = value_in(quote, "21000")
    batches = 50_000 // SOURCE_RECIPES["cnn5-padded"]["batch_size"]  # 48: the last partial batch dropped
    assert total_steps(SOURCE_RECIPES["cnn5-padded"], batches) == steps == 21000
    source = SOURCE_RECIPES["cnn5-padded"]
    # "lr = config.lr" every step, F.cross_entropy's default smoothing (none), and no transforms
    assert (source["lr_knots"], source["lr_values"], source["label_smoothing"], source["crop_pad"]) == \
        ((0.0, 1.0), (1.0, 1.0), 0.0, 0)
    assert SOURCE_RECIPES["resnet18"]["lr_values"] == (1.0, 1.0)  # only the plateau moves its lr


# --- the networks, from the quotes --------------------------------------------------------------------

def table_row(quote: str) -> tuple[str, dict]:
    """``| nn.Conv2d | In Channels: 3 <br> ... |`` -> ("Conv2d", {"In Channels": 3, ...})."""
    _, kind, fields, _ = quote.split("|")
    return kind.strip().removeprefix("nn."), {k.strip(): int(v) for k, v in
                                              (f.split(":") for f in fields.split("<br>"))}


def constructor(line: str) -> tuple[str, str, dict]:
    """``self.conv1 = nn.Conv2d(in_channels = 3, ...)`` -> ("conv1", "Conv2d", {"in_channels": 3, ...})."""
    assign = ast.parse(line).body[0]
    call = assign.value
    arguments = {kw.arg: eval(compile(ast.Expression(kw.value), "<quote>", "eval"), {"__builtins__": {}})
                 for kw in call.keywords}  # numbers, tuples and products such as 8 * 8 * 256
    return assign.targets[0].attr, call.func.attr, arguments


def pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def test_cnn3_is_003s_table():
    net = MODELS["cnn3"]()
    rows = [table_row(q) for q in CNN3_TABLE]
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    pools = [m for m in net if isinstance(m, nn.MaxPool2d)]
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == \
        [(f["In Channels"], f["Out Channels"], pair(f["Kernel Size"]), pair(f["Stride"]), pair(f["Padding"]))
         for kind, f in rows if kind == "Conv2d"]
    assert [(p.kernel_size, p.stride) for p in pools] == [(f["Kernel Size"], f["Stride"]) for k, f in rows if k == "MaxPool2d"]
    assert [(l.in_features, l.out_features) for l in linears] == \
        [(f["In Channels"], f["Out Channels"]) for kind, f in rows if kind == "Linear"]
    # "conv + relu + max pool" three times, then the linears with ReLUs between them
    assert [type(m).__name__ for m in net] == ["Conv2d", "ReLU", "MaxPool2d"] * 3 + \
        ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def forward_layers(made: dict) -> list[tuple[str, str | None]]:
    """(layer type, its name in the constructor or None) for each line of 004's forward."""
    layers = []
    for line in CNN5_FORWARD:
        called = re.search(r"self\.(\w+)\(", line)
        if called:
            layers.append((made[called[1]][0], called[1]))
        elif "F.relu" in line:
            layers.append(("ReLU", None))
        else:
            assert ".view(-1," in line
            layers.append(("Flatten", None))
    return layers


@pytest.mark.parametrize("model, layers", [("cnn5-padded", CNN5_004_LAYERS), ("cnn5-unpadded", CNN5_001_LAYERS)])
def test_cnn5_is_the_sources_code(model, layers):
    net = MODELS[model]()
    made = {name: (kind, kw) for name, kind, kw in map(constructor, layers)}
    expected = forward_layers(made)
    assert [type(m).__name__ for m in net] == [kind for kind, _ in expected]
    for module, (kind, name) in zip(net, expected):
        if name is None:
            continue
        _, kw = made[name]
        if kind == "Conv2d":
            assert (module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding) == \
                (kw["in_channels"], kw["out_channels"], pair(kw["kernel_size"]), pair(kw.get("stride", 1)),
                 pair(kw.get("padding", 0)))  # 001's conv5 names no padding: torch's default 0
        elif kind == "Linear":
            assert (module.in_features, module.out_features) == (kw["in_features"], kw["out_features"])
        elif kind == "MaxPool2d":
            assert (pair(module.kernel_size), module.stride) == (kw["kernel_size"], kw["stride"])
        elif kind == "Dropout2d":
            assert module.p == kw["p"]
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_vit_has_a_conv_stem_and_the_stated_size():
    net = MODELS["vit"]()
    convs = [m for m in net.stem if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == \
        [(3, 48, (3, 3), (2, 2)), (48, 96, (3, 3), (2, 2)), (96, 192, (1, 1), (1, 1))]
    assert [type(m).__name__ for m in net.stem] == ["Conv2d", "BatchNorm2d", "ReLU"] * 2 + ["Conv2d"]
    assert len(net.encoder.layers) == 6 and net.encoder.layers[0].self_attn.num_heads == 3
    assert net.position.shape == (1, 65, 192)  # 8x8 tokens and the class token
    assert 1.8e6 < sum(p.numel() for p in net.parameters()) < 1.9e6  # "about 1.9 M" (vit.py)


@pytest.mark.backends("custom", "cpp", "cuda")  # (backend, device) pairs from conftest.py
@pytest.mark.parametrize("model", ["cnn3", "cnn5-padded", "cnn5-unpadded", "vit"])
def test_every_backend_runs_the_new_networks(model, backend, device):
    torch.manual_seed(0)
    reference = MODELS[model]().double().eval().to(device)
    converted = cifarconv.convert(copy.deepcopy(reference), backend)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, device=device)
    for net in (reference, converted):
        net.zero_grad()
        net(x).square().sum().backward()
    assert torch.allclose(converted(x), reference(x), atol=1e-9)
    for (name, a), b in zip(converted.named_parameters(), reference.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-8), name


# --- what the sources share: the mean loss and Adam's L2 weight decay --------------------------------

def test_seed_recipes_average_the_loss_and_the_fast_ones_sum_it():
    for model in ("cnn3", "cnn5-padded", "cnn5-unpadded", "vit"):
        assert loss_reduction(RECIPES[model]) == "mean"
    for chosen in SOURCE_RECIPES.values():
        assert loss_reduction(chosen) == "mean"
    assert loss_reduction(RECIPES["fastnet"]) == loss_reduction(RECIPES["resnet9"]) == "sum"


class Logits(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([[0.5, -0.25, 0.0]], dtype=torch.float64))

    def forward(self, x):
        return self.w.expand(len(x), -1) * x


def test_mean_loss_gradient_is_the_average_over_the_batch():
    model = Logits()
    x, y = torch.tensor([[1.0], [2.0]], dtype=torch.float64), torch.tensor([0, 2])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    summed, _ = train_step(model, optimizer, scaler, x, y, "off", 0.0, 1, "mean")
    per_image = nn.functional.cross_entropy(model(x), y, reduction="none")
    assert summed.item() == pytest.approx(per_image.sum().item())  # reported summed, for the epoch's mean
    grads = [torch.autograd.grad(l, model.w, retain_graph=True)[0] for l in per_image]
    assert torch.allclose(model.w.grad, (grads[0] + grads[1]) / 2)


def test_adam_weight_decay_is_l2_not_decoupled():
    w = nn.Parameter(torch.ones(1, 1))
    net = nn.Sequential(nn.Linear(1, 1, bias=False))
    net[0].weight = w
    chosen = SOURCE_RECIPES["cnn3"]  # Adam, lr 1e-4, weight decay 0.01
    optimizer = make_optimizer(net, chosen)
    assert type(optimizer) is torch.optim.Adam and not optimizer.defaults.get("decoupled_weight_decay", False)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01]
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.999) and optimizer.param_groups[0]["lr"] == 1e-4
    w.grad = torch.zeros(1, 1)
    optimizer.step()
    # L2: the gradient becomes 0 + 0.01 * w = 0.01; Adam's first step moves by lr * m / (sqrt(v) + eps) = lr.
    assert w.item() == pytest.approx(1 - 1e-4 * 0.01 / (0.01 + 1e-8))
    # AdamW would only shrink w by lr * weight_decay = 1e-6 on a zero gradient.
    decoupled = nn.Parameter(torch.ones(1, 1))
    adamw = torch.optim.AdamW([decoupled], lr=1e-4, weight_decay=0.01)
    decoupled.grad = torch.zeros(1, 1)
    adamw.step()
    assert decoupled.item() == pytest.approx(1 - 1e-6) and abs(w.item() - decoupled.item()) > 9e-5
    assert type(make_optimizer(net, RECIPES["vit"])) is torch.optim.AdamW  # our ViT recipe asks for AdamW


def adam_steps(images, labels, reduction, steps=5):
    torch.manual_seed(0)
    net = nn.Linear(3, 3)
    optimizer = make_optimizer(net, {**SOURCE_RECIPES["cnn3"], "lr": 0.1, "weight_decay": 0.5})
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    for _ in range(steps):
        train_step(net, optimizer, scaler, images, labels, "off", 0.0, 1, reduction)
    return net.weight.detach().clone()


def test_with_the_mean_loss_l2_does_not_depend_on_the_batch_size():
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    twice = (torch.cat([x, x]), torch.cat([y, y]))  # the same images twice: the same mean, twice the sum
    assert torch.allclose(adam_steps(x, y, "mean"), adam_steps(*twice, "mean"))
    # Summed, the loss's gradient doubles and the L2 term's does not: Adam's steps change.
    assert (adam_steps(x, y, "sum") - adam_steps(*twice, "sum")).abs().max() > 1e-3


def test_plateau_schedule_by_hand():
    w = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([w], lr=0.1)
    schedule = Schedule(optimizer, SOURCE_RECIPES["resnet18"], total_steps=100)  # factor 0.1, patience 3, 1e-3
    lrs = []
    for accuracy in (0.5, 0.6, 0.6005, 0.6, 0.59, 0.6, 0.61, 0.6, 0.6, 0.6, 0.6):
        for _ in range(3):
            schedule.after_step()  # the per-step factor does not move the lr under a plateau schedule
        schedule.after_epoch(accuracy)
        lrs.append(optimizer.param_groups[0]["lr"])
    # 0.6005 is not 0.1 % better than 0.6: epochs 3-6 do not improve; the 4th bad epoch (patience 3) cuts the lr.
    assert lrs == pytest.approx([0.1] * 5 + [0.01] * 5 + [0.001])
    state = schedule.state_dict()
    restored = Schedule(optimizer, SOURCE_RECIPES["resnet18"], total_steps=100)
    restored.load_state_dict(state)
    assert (restored.plateau.best, restored.plateau.num_bad_epochs) == (0.61, 0)  # reset by the cut after epoch 11


def test_004_feeds_x_over_255():
    labels = np.repeat(np.arange(10), 3)
    images = np.random.default_rng(0).integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    data = SimpleNamespace(train_images=images, train_labels=labels, test_images=images, test_labels=labels)
    args = SimpleNamespace(recipe=recipe("cnn5-padded", "source"), limit_test=None, torch_device=torch.device("cpu"),
                           channels_last=False)
    loaders = make_loaders(args, data, splits(labels, 0, None, None)[0], 0, 1)
    x, _ = next(loaders.test.epoch(0, 0))
    assert torch.allclose(x, torch.from_numpy(images).permute(0, 3, 1, 2) / 255)
    assert (loaders.mean, loaders.std) == ([0.0] * 3, [255.0] * 3)
    args.recipe = RECIPES["cnn5-padded"]  # our recipe: per-channel mean and std of the training images
    x, _ = next(make_loaders(args, data, splits(labels, 0, None, None)[0], 0, 1).test.epoch(0, 0))
    assert torch.allclose(x.mean((0, 2, 3)), torch.zeros(3), atol=1e-5) and torch.allclose(x.std((0, 2, 3)),
                                                                                          torch.ones(3), atol=1e-3)
