"""PyTorch reference numbers for @ettjs/losses.

Writes packages/losses/test/fixtures/losses_reference.json. Run with Debian's torch:

    /usr/bin/python3 bench/reference/losses.py

Every number here comes from PyTorch ops written from the formulas in /work/shared/PAPER.md
section 2 (and the IBQ / taming / pix2pix definitions they cite), never from our TypeScript.
Tensors are stored as nested lists; images in NHWC (our layout), conv weights in PyTorch's OIHW
layout (the test transposes them), so the layout conversion itself is under test.
"""

import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)  # reference in float64; tests compare float32 to tolerance

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'packages', 'losses', 'test', 'fixtures', 'losses_reference.json')


def L(t):
    return t.detach().tolist()


fixture = {}

# ---------------------------------------------------------------- cross-entropy (caption / visual code)
B, T, V = 2, 6, 7
logits = torch.randn(B, T, V) * 2
labels = torch.randint(0, V, (B, T))
labels[0, 0] = -100
labels[0, 3] = -100
labels[1, 0] = -100
ce = {'logits': L(logits), 'labels': L(labels), 'cases': []}
for smoothing in [0.0, 0.1]:
    for shift in [False, True]:
        lg = logits.clone().requires_grad_(True)
        if shift:
            lgs, lb = lg[:, :-1, :], labels[:, 1:]
        else:
            lgs, lb = lg, labels
        loss = F.cross_entropy(lgs.reshape(-1, V), lb.reshape(-1), ignore_index=-100, label_smoothing=smoothing)
        loss.backward()
        valid = lb != -100
        pred = lgs.detach().argmax(-1)
        acc = ((pred == lb) & valid).sum().item() / valid.sum().item()
        ce['cases'].append({
            'labelSmoothing': smoothing, 'shift': shift, 'loss': loss.item(), 'grad': L(lg.grad),
            'accuracy': acc, 'tokens': int(valid.sum().item()),
        })
fixture['crossEntropy'] = ce

# ---------------------------------------------------------------- IBQ quant loss and entropy loss
N, K, D = 5, 6, 4
z = torch.randn(N, D)
E = torch.randn(K, D)
beta = 0.25


def ibq(z, E, beta_on):
    logits = z @ E.t()
    soft = logits.softmax(-1)
    ind = soft.argmax(-1)
    hard = F.one_hot(ind, K).to(z.dtype)
    onehot = hard - soft.detach() + soft
    zq = onehot @ E
    zq2 = hard @ E
    if beta_on == 'codebook':  # IBQ code (quantize.py IndexPropagationQuantize)
        loss = ((zq - z) ** 2).mean() + ((zq2.detach() - z) ** 2).mean() + beta * ((zq2 - z.detach()) ** 2).mean()
    else:  # IBQ paper Eq. 10 / taming legacy=False
        loss = ((zq - z) ** 2).mean() + beta * ((zq2.detach() - z) ** 2).mean() + ((zq2 - z.detach()) ** 2).mean()
    return loss, zq, zq2, logits


quant = {'z': L(z), 'codebook': L(E), 'beta': beta, 'cases': []}
for beta_on in ['codebook', 'commitment']:
    zz = z.clone().requires_grad_(True)
    EE = E.clone().requires_grad_(True)
    loss, zq, zq2, _ = ibq(zz, EE, beta_on)
    loss.backward()
    quant['cases'].append({'betaOn': beta_on, 'loss': loss.item(), 'gradZ': L(zz.grad), 'gradCodebook': L(EE.grad)})
fixture['ibqQuant'] = quant


def entropy_loss(logits, temperature=0.01, eps=1e-5):
    # compute_entropy_loss in IBQ quantize.py
    probs = F.softmax(logits / temperature, -1)
    log_probs = F.log_softmax(logits / temperature + eps, -1)
    avg_probs = probs.reshape(-1, probs.shape[-1]).mean(0)
    avg_entropy = -torch.sum(avg_probs * torch.log(avg_probs + eps))
    sample_entropy = torch.mean(-torch.sum(probs * log_probs, -1))
    return sample_entropy, avg_entropy, sample_entropy - avg_entropy


ent_logits = torch.randn(2, 3, K) * 0.02  # small logits so that /0.01 is not one-hot
el = ent_logits.clone().requires_grad_(True)
se, ae, loss = entropy_loss(el)
loss.backward()
fixture['entropy'] = {
    'logits': L(ent_logits), 'temperature': 0.01, 'sampleEntropy': se.item(), 'avgEntropy': ae.item(),
    'loss': loss.item(), 'grad': L(el.grad),
}

# ---------------------------------------------------------------- PatchGAN discriminator (pix2pix NLayerDiscriminator)


def patch_disc(in_ch, ndf, n_layers):
    seq = [nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
    mult = 1
    for n in range(1, n_layers):
        prev, mult = mult, min(2 ** n, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2)]
    prev, mult = mult, min(2 ** n_layers, 8)
    seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=False), nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2)]
    seq += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
    net = nn.Sequential(*seq)
    for m in net.modules():  # weights_init; biases random too so the test checks them
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.normal_(m.bias, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.normal_(m.bias, 0.0, 0.02)
    return net.train()  # IBQ's discriminator always runs in train mode: batch statistics


IN_CH, NDF, NL, HW = 3, 4, 2, 16
net = patch_disc(IN_CH, NDF, NL)
real = torch.rand(2, IN_CH, HW, HW) * 2 - 1
fake = torch.rand(2, IN_CH, HW, HW) * 2 - 1
state = {k: L(v) for k, v in net.state_dict().items() if 'running' not in k and 'num_batches' not in k}

ema_real0, ema_fake0, decay, lecam_w = 0.3, -0.2, 0.999, 0.05
r = real.clone().requires_grad_(True)
f = fake.clone().requires_grad_(True)
lr_ = net(r)
lf_ = net(f)
# IBQ LeCAM_EMA.update runs before lecam_reg, with the detached batch means
ema_real = ema_real0 * decay + lr_.mean().item() * (1 - decay)
ema_fake = ema_fake0 * decay + lf_.mean().item() * (1 - decay)
hinge = 0.5 * (F.relu(1 - lr_).mean() + F.relu(1 + lf_).mean())
lecam = F.relu(lr_ - ema_fake).pow(2).mean() + F.relu(ema_real - lf_).pow(2).mean()
d_loss = hinge + lecam_w * lecam
d_loss.backward()

f2 = fake.clone().requires_grad_(True)
lf2 = net(f2)
m = lf2.reshape(lf2.shape[0], -1).mean(-1)
g_loss = (F.relu(m) - m * 1.0 + torch.log1p(torch.exp(-m.abs()))).mean()  # IBQ non_saturate_gen_loss
g_loss.backward()

fixture['discriminator'] = {
    'config': {'inChannels': IN_CH, 'baseChannels': NDF, 'layers': NL},
    'stateDict': state,
    'real': L(real.permute(0, 2, 3, 1)),
    'fake': L(fake.permute(0, 2, 3, 1)),
    'logitsReal': L(lr_.permute(0, 2, 3, 1)),
    'logitsFake': L(lf_.permute(0, 2, 3, 1)),
    'lecam': {'emaReal': ema_real0, 'emaFake': ema_fake0, 'decay': decay, 'weight': lecam_w,
              'emaRealAfter': ema_real, 'emaFakeAfter': ema_fake},
    'hinge': hinge.item(), 'lecamReg': lecam.item(), 'dLoss': d_loss.item(),
    'dLossGradReal': L(r.grad.permute(0, 2, 3, 1)), 'dLossGradFake': L(f.grad.permute(0, 2, 3, 1)),
    'gLoss': g_loss.item(), 'gLossGradFake': L(f2.grad.permute(0, 2, 3, 1)),
}

# ---------------------------------------------------------------- weight-free structural perceptual loss


def structural(x, y, scales=3, gw=1.0, sw=1.0, data_range=2.0):
    # x, y NCHW. Same definition as packages/losses/src/structural.ts (its docs give the formula).
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    total = 0.0
    for s in range(scales):
        if s > 0:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        dh = (x[:, :, 1:, :] - x[:, :, :-1, :]) - (y[:, :, 1:, :] - y[:, :, :-1, :])
        dw = (x[:, :, :, 1:] - x[:, :, :, :-1]) - (y[:, :, :, 1:] - y[:, :, :, :-1])
        g = dh.abs().mean() + dw.abs().mean()
        mx, my = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
        vx = F.avg_pool2d(x * x, 3, 1) - mx * mx
        vy = F.avg_pool2d(y * y, 3, 1) - my * my
        cxy = F.avg_pool2d(x * y, 3, 1) - mx * my
        ssim = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        total = total + gw * g + sw * (1 - ssim.mean())
    return total / scales


sx = torch.rand(2, 3, 16, 16) * 2 - 1
sy = (sx + 0.3 * torch.randn(2, 3, 16, 16)).clamp(-1, 1)
syg = sy.clone().requires_grad_(True)
sl = structural(sx, syg)
sl.backward()
fixture['structural'] = {
    'x': L(sx.permute(0, 2, 3, 1)), 'y': L(sy.permute(0, 2, 3, 1)), 'loss': sl.item(),
    'gradY': L(syg.grad.permute(0, 2, 3, 1)),
}

# ---------------------------------------------------------------- LPIPS head on given features


def lpips_head(fx, fy, lins):
    # richzhang/PerceptualSimilarity: unit-normalise channels, squared diff, 1x1 lin, spatial mean, sum layers
    total = 0.0
    for a, b, w in zip(fx, fy, lins):
        na = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        d = ((na - nb) ** 2 * w.view(1, -1, 1, 1)).sum(1, keepdim=True)
        total = total + d.mean([2, 3], keepdim=True)
    return total.mean()


fx = [torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2)]
fy = [torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2)]
lins = [torch.rand(3), torch.rand(5)]
fixture['lpipsHead'] = {
    'featuresX': [L(t.permute(0, 2, 3, 1)) for t in fx],
    'featuresY': [L(t.permute(0, 2, 3, 1)) for t in fy],
    'lin': [L(w) for w in lins],
    'loss': lpips_head(fx, fy, lins).item(),
}

os.makedirs(os.path.dirname(OUT), exist_ok=True)


def rounded(x):
    # 9 significant digits: far below float32 resolution, and a third smaller file
    if isinstance(x, float):
        return float('%.9g' % x)
    if isinstance(x, list):
        return [rounded(v) for v in x]
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    return x


with open(OUT, 'w') as fh:
    json.dump(rounded(fixture), fh)
print('wrote', os.path.normpath(OUT), os.path.getsize(OUT), 'bytes')
