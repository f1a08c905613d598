"""Independent PyTorch reference for @ettjs/vector-quantizer's IBQ, entropy and classic-VQ tests.

Written from the formulas of IBQ (arXiv 2412.02692, TencentARC/SEED-Voken
`IndexPropagationQuantize` / `compute_entropy_loss`) and VQ-VAE / taming `VectorQuantizer2`,
in float64 with PyTorch autograd. Writes
packages/vector-quantizer/test/fixtures/quantizer_reference.json.

Run: /usr/bin/python3 bench/reference/ibq_reference.py
"""
import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(1234)
DT = torch.float64


def ibq_case(n, d, k, temperature, placement, l2, beta=0.25):
    z = torch.randn(n, d, dtype=DT)
    e = torch.randn(k, d, dtype=DT)
    w = torch.randn(n, d, dtype=DT)  # stands in for the decoder: L = sum(z_q * w) + quant
    zz = z.clone().requires_grad_(True)
    ee = e.clone().requires_grad_(True)
    zs = F.normalize(zz, dim=1) if l2 else zz
    es = F.normalize(ee, dim=1) if l2 else ee
    logits = zs @ es.T / temperature
    soft = F.softmax(logits, dim=1)
    ind = soft.argmax(dim=1)
    hard = F.one_hot(ind, k).to(DT)
    onehot = hard - soft.detach() + soft
    zq = onehot @ es
    zq2 = hard @ es
    commit = torch.mean((zq2.detach() - zs) ** 2)
    book = torch.mean((zq2 - zs.detach()) ** 2)
    if placement == 'codebook':
        quant = torch.mean((zq - zs) ** 2) + commit + beta * book
    else:
        quant = torch.mean((zq - zs) ** 2) + beta * commit + book
    loss = (zq * w).sum() + quant
    gz, ge = torch.autograd.grad(loss, [zz, ee])
    # gradient of the straight-through output alone (no loss terms)
    zz2 = z.clone().requires_grad_(True)
    ee2 = e.clone().requires_grad_(True)
    zs2 = F.normalize(zz2, dim=1) if l2 else zz2
    es2 = F.normalize(ee2, dim=1) if l2 else ee2
    soft2 = F.softmax(zs2 @ es2.T / temperature, dim=1)
    zqo = (F.one_hot(soft2.argmax(1), k).to(DT) - soft2.detach() + soft2) @ es2
    gzo, geo = torch.autograd.grad((zqo * w).sum(), [zz2, ee2])
    return {
        'n': n, 'd': d, 'k': k, 'temperature': temperature, 'betaPlacement': placement, 'l2Normalize': l2, 'beta': beta,
        'z': z.flatten().tolist(), 'codebook': e.flatten().tolist(), 'w': w.flatten().tolist(),
        'indices': ind.tolist(), 'quantized': zq.detach().flatten().tolist(), 'quant': quant.item(),
        'gradZ': gz.flatten().tolist(), 'gradCodebook': ge.flatten().tolist(),
        'steGradZ': gzo.flatten().tolist(), 'steGradCodebook': geo.flatten().tolist(),
    }


def entropy_case(n, d, k, temperature, eps=1e-5):
    z = torch.randn(n, d, dtype=DT).requires_grad_(True)
    e = torch.randn(k, d, dtype=DT).requires_grad_(True)
    logits = z @ e.T
    probs = F.softmax(logits / temperature, -1)
    log_probs = F.log_softmax(logits / temperature + eps, -1)
    avg_probs = probs.mean(0)
    avg_entropy = -torch.sum(avg_probs * torch.log(avg_probs + eps))
    sample_entropy = torch.mean(-torch.sum(probs * log_probs, -1))
    loss = sample_entropy - avg_entropy
    gz, ge = torch.autograd.grad(loss, [z, e])
    return {
        'n': n, 'd': d, 'k': k, 'temperature': temperature,
        'z': z.detach().flatten().tolist(), 'codebook': e.detach().flatten().tolist(),
        'loss': loss.item(), 'gradZ': gz.flatten().tolist(), 'gradCodebook': ge.flatten().tolist(),
    }


def vq_case(n, d, k, beta=0.25):
    z = torch.randn(n, d, dtype=DT)
    e = torch.randn(k, d, dtype=DT)
    w = torch.randn(n, d, dtype=DT)
    zz = z.clone().requires_grad_(True)
    ee = e.clone().requires_grad_(True)
    dist = (zz ** 2).sum(1, keepdim=True) + (ee ** 2).sum(1) - 2 * zz @ ee.T
    ind = dist.argmin(1)
    zq = ee[ind]
    codebook = torch.mean((zq - zz.detach()) ** 2)
    commitment = torch.mean((zq.detach() - zz) ** 2)
    out = zz + (zq - zz).detach()
    loss = (out * w).sum() + codebook + beta * commitment
    gz, ge = torch.autograd.grad(loss, [zz, ee])
    return {
        'n': n, 'd': d, 'k': k, 'beta': beta,
        'z': z.flatten().tolist(), 'codebook': e.flatten().tolist(), 'w': w.flatten().tolist(),
        'indices': ind.tolist(), 'quantized': out.detach().flatten().tolist(),
        'codebookLoss': codebook.item(), 'commitmentLoss': commitment.item(),
        'gradZ': gz.flatten().tolist(), 'gradCodebook': ge.flatten().tolist(),
    }


fixture = {
    'source': 'bench/reference/ibq_reference.py (PyTorch %s, float64)' % torch.__version__,
    'ibq': [ibq_case(12, 4, 7, 1.0, 'codebook', False), ibq_case(10, 5, 9, 0.5, 'commitment', True)],
    'entropy': [entropy_case(12, 4, 7, 1.0), entropy_case(9, 3, 6, 0.3), entropy_case(8, 4, 5, 0.01)],
    'vq': [vq_case(12, 4, 7)],
}
out = os.path.join(os.path.dirname(__file__), '..', '..', 'packages', 'vector-quantizer', 'test', 'fixtures', 'quantizer_reference.json')
with open(out, 'w') as f:
    json.dump(fixture, f)
print('wrote', os.path.normpath(out))
