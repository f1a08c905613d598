"""Reference numbers for @ettjs/core's AdamW and clipByGlobalNorm, from PyTorch itself.

Runs torch.optim.AdamW (single-tensor CPU path, float32) for a few steps on small fixed tensors
with fixed gradients:
  - group "a": two parameters, lr 1e-2, weight decay 0.1, betas (0.9, 0.999), eps 1e-8;
  - group "b": one parameter, lr 5e-3, no weight decay, betas (0.5, 0.9) as IBQ, eps 1e-6
    (plain Adam); its parameter "b.tiny" gets gradients ~1e-6, so sqrt(v) is comparable to eps and
    where eps is added matters;
  - in step 3 parameter "a.bias" gets no gradient (PyTorch skips it and does not advance its
    step), and before step 4 the learning rate of group "a" is halved (a schedule);
and torch.nn.utils.clip_grad_norm_ on two cases (one clipped, one under the limit).

Writes packages/core/test/fixtures/adamw.json. Run from the repo root:
    /usr/bin/python3 bench/reference/adamw.py
"""

import json
import math
import os

import torch

torch.manual_seed(0)


def fixed(shape, phase):
    """Deterministic float32 values without any RNG: a sine pattern with a varied scale."""
    n = math.prod(shape)
    vals = [math.sin(1.7 * i + phase) * (1 + 0.5 * ((i + int(phase * 10)) % 3)) for i in range(n)]
    return torch.tensor(vals, dtype=torch.float32).reshape(shape)


def to_list(t):
    return t.detach().reshape(-1).tolist()


names = ["a.weight", "a.bias", "b.codebook", "b.tiny"]
shapes = {"a.weight": [2, 3], "a.bias": [4], "b.codebook": [3], "b.tiny": [2]}
params = {n: torch.nn.Parameter(fixed(shapes[n], 0.3 * k)) for k, n in enumerate(names)}
initial = {n: to_list(p) for n, p in params.items()}

groups = [
    {"name": "a", "params": [params["a.weight"], params["a.bias"]], "lr": 1e-2, "weight_decay": 0.1, "betas": (0.9, 0.999), "eps": 1e-8},
    {"name": "b", "params": [params["b.codebook"], params["b.tiny"]], "lr": 5e-3, "weight_decay": 0.0, "betas": (0.5, 0.9), "eps": 1e-6},
]
opt = torch.optim.AdamW([{k: v for k, v in g.items() if k != "name"} for g in groups], foreach=False)

steps = []
for step in range(1, 6):
    if step == 4:
        opt.param_groups[0]["lr"] = 5e-3
    grads = {}
    for k, n in enumerate(names):
        if step == 3 and n == "a.bias":
            params[n].grad = None
            continue
        scale = {"b.codebook": 0.1, "b.tiny": 1e-6}.get(n, 1.0)
        g = fixed(shapes[n], 1.1 * step + 0.7 * k) * scale
        if step == 2 and n == "a.weight":
            g[0, 1] = 0.0  # a zero gradient entry: v stays tiny, eps matters
        params[n].grad = g
        grads[n] = to_list(g)
    opt.step()
    steps.append(
        {
            "lr": [g["lr"] for g in opt.param_groups],
            "grads": grads,
            "params": {n: to_list(p) for n, p in params.items()},
        }
    )

state = {}
for n in names:
    s = opt.state[params[n]]
    state[n] = {"exp_avg": to_list(s["exp_avg"]), "exp_avg_sq": to_list(s["exp_avg_sq"]), "step": float(s["step"])}

clip = []
for max_norm, phase in [(1.0, 0.0), (100.0, 2.0)]:
    gs = {n: fixed(shapes[n], phase + k) for k, n in enumerate(names)}
    tensors = [torch.nn.Parameter(torch.zeros(shapes[n])) for n in names]
    for t, n in zip(tensors, names):
        t.grad = gs[n].clone()
    norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    clip.append(
        {
            "maxNorm": max_norm,
            "grads": {n: to_list(gs[n]) for n in names},
            "norm": float(norm),
            "clipped": {n: to_list(t.grad) for t, n in zip(tensors, names)},
        }
    )

out = {
    "source": "bench/reference/adamw.py, torch " + torch.__version__,
    "shapes": shapes,
    "groups": [{"name": g["name"], "params": [n for n in names if any(p is params[n] for p in g["params"])], "lr": g["lr"], "weightDecay": g["weight_decay"], "betas": list(g["betas"]), "eps": g["eps"]} for g in groups],
    "initial": initial,
    "steps": steps,
    "state": state,
    "clip": clip,
}
path = os.path.join(os.path.dirname(__file__), "..", "..", "packages", "core", "test", "fixtures", "adamw.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print("wrote", os.path.normpath(path))
