"""Reference numbers for @ettjs/projector from PyTorch.

Builds LLaVA's projector exactly as llava/model/multimodal_projector/builder.py does
(`mlp{N}x_gelu`: Linear(D->C), then (GELU, Linear(C->C)) x (N-1)) plus a variant with a hidden
width and the tanh GELU, and an nn.Embedding for the index baseline. Writes weights (in PyTorch
state-dict names and layout), inputs, outputs and the gradients of sum(y * r) to
test/fixtures/projector-reference.json. Run: /usr/bin/python3 bench/reference/projector.py
"""
import json
import os

import torch
from torch import nn

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)


def tolist(t):
    return t.detach().tolist()


def mlp_case(name, d, c, depth, hidden, approximate):
    widths = [d] + [hidden] * (depth - 1) + [c]
    mods = []
    for i in range(depth):
        if i > 0:
            mods.append(nn.GELU(approximate=approximate))
        mods.append(nn.Linear(widths[i], widths[i + 1]))
    net = nn.Sequential(*mods)
    x = torch.randn(2, 3, d, requires_grad=True) * 1.5
    x.retain_grad()
    r = torch.randn(2, 3, c)
    y = net(x)
    (y * r).sum().backward()
    return {
        "name": name,
        "config": {"inputDim": d, "outputDim": c, "depth": depth, "hiddenDim": hidden,
                   "activation": "gelu" if approximate == "none" else "gelu-tanh"},
        # nn.Sequential keys: Linear layers sit at even indices, GELU at odd ones.
        "state": {k: {"shape": list(v.shape), "data": tolist(v.flatten())} for k, v in net.state_dict().items()},
        "x": {"shape": list(x.shape), "data": tolist(x.flatten())},
        "r": {"shape": list(r.shape), "data": tolist(r.flatten())},
        "y": {"shape": list(y.shape), "data": tolist(y.flatten())},
        "gradX": tolist(x.grad.flatten()),
        "grads": {k: tolist(p.grad.flatten()) for k, p in net.named_parameters()},
    }


def embedding_case():
    k, c = 7, 5
    emb = nn.Embedding(k, c)
    idx = torch.tensor([[0, 3, 3, 6], [1, 3, 0, 0]])
    r = torch.randn(2, 4, c)
    y = emb(idx)
    (y * r).sum().backward()
    return {
        "config": {"codebookSize": k, "outputDim": c},
        "weight": {"shape": [k, c], "data": tolist(emb.weight.flatten())},
        "indices": tolist(idx),
        "r": {"shape": list(r.shape), "data": tolist(r.flatten())},
        "y": tolist(y.flatten()),
        "grad": tolist(emb.weight.grad.flatten()),
    }


out = {
    "torch": torch.__version__,
    "mlp": [
        mlp_case("mlp2x_gelu", 4, 6, 2, 6, "none"),
        mlp_case("mlp3x_gelu_hidden5_tanh", 4, 6, 3, 5, "tanh"),
        mlp_case("linear", 4, 6, 1, 6, "none"),
    ],
    "embedding": embedding_case(),
}
here = os.path.dirname(os.path.abspath(__file__))
path = os.path.join(here, "..", "..", "test", "fixtures", "projector-reference.json")
with open(path, "w") as f:
    json.dump(out, f)
print("wrote", os.path.normpath(path))
