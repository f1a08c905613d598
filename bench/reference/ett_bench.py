"""PyTorch reference for bench/run.mjs: the reference tiny-ETT models and workloads of ETT.js.

The same models as ETT.js's quickstart (QUICKSTART_CONFIG / buildModel in
packages/ettjs/src/experiment.ts), written in plain PyTorch from the ETT.js sources:

  tokenizer  VQ_TOKENIZER_TINY: VQGAN conv encoder/decoder (ch 16, mult [1, 2, 2], 1 ResNet block,
             GroupNorm 8 groups eps 1e-6, no attention), 1x1 quant_conv / post_quant_conv, IBQ with
             K 256, D 16, l2-normalised codes, tau 0.1, beta 0.25 (on the codebook term, IBQ's code),
             entropy penalty (T 0.1, weight 0.05), dead-code restart after 20 unused updates
  adapter    CodebookProjector: Linear(16, 128), exact GELU, Linear(128, 128)
  lm         Qwen2-style LM: d 128, 2 layers, 4 query / 2 KV heads, SwiGLU 256, RMSNorm eps 1e-6,
             RoPE theta 1e6, q/k/v biases, tied embeddings, byte vocabulary 261
  critic     PatchGAN (ndf 16, 2 layers, batch-statistics BatchNorm) with hinge + LeCAM 0.05 (EMA 0.999)

with the same shapes, parameter counts and initialisation schemes (PyTorch-default uniform for the
tokenizer convs and the projector, N(0, 1) codebook, N(0, 0.02) for the LM and the critic's convs,
N(1, 0.02) BatchNorm scales, zero biases), the same losses (L_vq = L1 + structural perceptual +
0.1 GAN + quant + 0.05 entropy; L_cap; L = L_cap + 0.25 L_vq) and the same optimizer steps as
@ettjs/trainer (AdamW with weight decay 0 = the recipes' Adam; IBQ betas (0.5, 0.9) for stage 0 and
every critic; warmup-cosine and global-norm clip 1.0 for the LM stages; one host read of the loss
terms and the gradient norm per step, the update only when they are finite).

Workloads (names as in bench/run.mjs): tokenizer, lm, ett, caption, visual-gen. Each runs in its
own process per torch.set_num_threads value (--threads "1,2" tries both; MEASUREMENTS.md found 1 ATen
thread best for transformer blocks and 2 for convolutions; "auto" tries both for the tokenizer and
ETT steps, which have convolutions, and uses 1 for the rest), W warm-up runs then N timed runs;
median and best ms. Prints one JSON object on the last stdout line.

    /usr/bin/python3 bench/reference/ett_bench.py [--only lm,ett] [--reps 5] [--warmup 2]
        [--threads 1,2] [--batch batch.json] [--device cpu|cuda]

--batch is the batch bench/run.mjs writes (its images, caption ids, prompts); without it a
synthetic batch of the same shapes is used. --device cuda runs every workload on the GPU in full
float32 (TF32 off for matmuls and cuDNN convolutions, as WebGPU computes), with a
torch.cuda.synchronize() closing each timed run; the peak GPU memory is reported as maxGpuMB.
"""

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

WORKLOADS = ['tokenizer', 'lm', 'ett', 'caption', 'visual-gen']

# QUICKSTART_CONFIG
BATCH, IMAGE = 8, 32
TOK = dict(ch=16, ch_mult=[1, 2, 2], num_res_blocks=1, z_channels=16, code_dim=16, codebook_size=256, norm_groups=8, norm_eps=1e-6,
           temperature=0.1, beta=0.25, entropy_temperature=0.1, entropy_weight=0.05, restart_after=20, usage_window=100)
LM = dict(vocab=261, d=128, ff=256, layers=2, heads=4, kv_heads=2, max_pos=160, eps=1e-6, theta=1e6, std=0.02)
GAN = dict(ndf=16, layers=2, eps=1e-5, slope=0.2, std=0.02, lecam_weight=0.05, lecam_decay=0.999)
LR = dict(text=2e-3, tokenizer=2e-3, semantic=1e-3)
ALPHA = 0.25
IBQ_BETAS = (0.5, 0.9)
IGNORE = -100
CAPTION_TOKENS = 48
# MEASUREMENTS.md §3-5: 1 ATen thread (PyTorch's default here; matrix products still use 2 OpenBLAS
# threads) is best for transformer blocks, set_num_threads(2) for convolutions. "auto" keeps 1 for
# the transformer-only workloads and tries both for the two with convolutions; on a loaded 2-core
# machine 2 ATen threads can be many times slower (OpenMP barriers on an oversubscribed CPU).
AUTO_THREADS = {'tokenizer': [1, 2], 'lm': [1], 'ett': [1, 2], 'caption': [1], 'visual-gen': [1]}

# ---------------------------------------------------------------- FLOP counting (as bench/flops.mjs)

FLOPS = {'on': False, 'n': 0}


def count(n):
    if FLOPS['on']:
        FLOPS['n'] += n


def counted(fn, *args):
    """Forward FLOPs of fn(*args) (convs, linears, attention products, quantizer logits), no grad."""
    FLOPS['on'], FLOPS['n'] = True, 0
    try:
        with torch.no_grad():
            fn(*args)
        return FLOPS['n']
    finally:
        FLOPS['on'] = False


class Conv2d(nn.Conv2d):
    """nn.Conv2d (PyTorch's default init, U(+-1/sqrt(fan_in)), as ETT.js's tokenizer convs) with a FLOP count."""

    def forward(self, x):
        y = super().forward(x)
        count(2 * y.numel() * self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        return y


class Linear(nn.Linear):
    def __init__(self, i, o, bias=True, std=None):
        super().__init__(i, o, bias=bias)
        if std is not None:  # HF _init_weights: N(0, std), zero bias
            nn.init.normal_(self.weight, 0.0, std)
            if bias:
                nn.init.zeros_(self.bias)

    def forward(self, x):
        y = super().forward(x)
        count(2 * y.numel() * self.in_features)
        return y


# ---------------------------------------------------------------- tokenizer (VQGAN + IBQ)

def silu(x):
    return F.silu(x)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        g, eps = TOK['norm_groups'], TOK['norm_eps']
        self.norm1 = nn.GroupNorm(g, cin, eps=eps)
        self.conv1 = Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(g, cout, eps=eps)
        self.conv2 = Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(silu(self.norm1(x)))
        h = self.conv2(silu(self.norm2(h)))
        return (self.nin_shortcut(x) if self.nin_shortcut is not None else x) + h


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = Conv2d(c, c, 3, stride=2)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        ch, mult, n = TOK['ch'], TOK['ch_mult'], TOK['num_res_blocks']
        self.conv_in = Conv2d(3, ch, 3, padding=1)
        self.down = nn.ModuleList()
        block_in = ch
        for level, m in enumerate(mult):
            lv = nn.Module()
            lv.block = nn.ModuleList()
            for _ in range(n):
                lv.block.append(ResnetBlock(block_in, ch * m))
                block_in = ch * m
            lv.downsample = Downsample(block_in) if level != len(mult) - 1 else None
            self.down.append(lv)
        self.mid = nn.ModuleList([ResnetBlock(block_in, block_in), ResnetBlock(block_in, block_in)])
        self.norm_out = nn.GroupNorm(TOK['norm_groups'], block_in, eps=TOK['norm_eps'])
        self.conv_out = Conv2d(block_in, TOK['z_channels'], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for lv in self.down:
            for b in lv.block:
                h = b(h)
            if lv.downsample is not None:
                h = lv.downsample(h)
        for b in self.mid:
            h = b(h)
        return self.conv_out(silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        ch, mult, n = TOK['ch'], TOK['ch_mult'], TOK['num_res_blocks']
        block_in = ch * mult[-1]
        self.conv_in = Conv2d(TOK['z_channels'], block_in, 3, padding=1)
        self.mid = nn.ModuleList([ResnetBlock(block_in, block_in), ResnetBlock(block_in, block_in)])
        self.up = nn.ModuleList()  # deepest level first, as it runs
        for level in reversed(range(len(mult))):
            lv = nn.Module()
            lv.block = nn.ModuleList()
            for _ in range(n + 1):
                lv.block.append(ResnetBlock(block_in, ch * mult[level]))
                block_in = ch * mult[level]
            lv.upsample = Upsample(block_in) if level != 0 else None
            self.up.append(lv)
        self.norm_out = nn.GroupNorm(TOK['norm_groups'], block_in, eps=TOK['norm_eps'])
        self.conv_out = Conv2d(block_in, 3, 3, padding=1)

    def forward(self, z):
        h = self.conv_in(z)
        for b in self.mid:
            h = b(h)
        for lv in self.up:
            for b in lv.block:
                h = b(h)
            if lv.upsample is not None:
                h = lv.upsample(h)
        return self.conv_out(silu(self.norm_out(h)))


class IBQ(nn.Module):
    """IBQ (TencentARC/SEED-Voken IndexPropagationQuantize) with ETT.js's tiny options, and the
    quantizer's host-side bookkeeping (usage window, perplexity, dead-code restart) as ETT.js has it."""

    def __init__(self):
        super().__init__()
        k, d = TOK['codebook_size'], TOK['code_dim']
        self.embedding = nn.Embedding(k, d)  # N(0, 1)
        self.training_mode = True
        self.pending = []
        self.since_used = [0] * k
        self.window = []
        self.rng = random.Random(0)

    def codebook(self):
        return F.normalize(self.embedding.weight, dim=1)

    def forward(self, z):  # z [B, D, h, w] -> quantized [B, D, h, w], indices [B, h*w]
        b, d, h, w = z.shape
        k = TOK['codebook_size']
        zs = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, d), dim=1)  # [N, D], raster order
        e = self.codebook()
        with torch.no_grad():
            ind = (zs @ e.t()).argmax(1)
        count(2 * zs.shape[0] * k * d)
        soft = F.softmax(zs @ e.t() / TOK['temperature'], dim=1)
        hard = F.one_hot(ind, k).to(soft.dtype)
        zq = (hard - soft.detach() + soft) @ e  # IBQ's straight-through on the whole distribution
        zq2 = F.embedding(ind, e)
        quant = F.mse_loss(zq, zs) + F.mse_loss(zq2.detach(), zs) + TOK['beta'] * F.mse_loss(zq2, zs.detach())
        logits = zs @ e.t() / TOK['entropy_temperature']
        p, logp = F.softmax(logits, 1), F.log_softmax(logits, 1)
        avg = p.mean(0)
        entropy = -(p * logp).sum(1).mean() + (avg * torch.log(avg + 1e-5)).sum()
        stats = self.observe(ind, zs)
        quantized = zq.reshape(b, h, w, d).permute(0, 3, 1, 2)
        return quantized, ind.reshape(b, -1), {'quant': quant, 'entropy': entropy}, stats

    def observe(self, ind, zs):
        idx = ind.cpu().numpy()  # the one host read of the indices ETT.js does too
        k = TOK['codebook_size']
        counts = torch.bincount(ind, minlength=k).double()
        p = counts / counts.sum()
        perplexity = math.exp(-(p[p > 0] * p[p > 0].log()).sum().item())
        if not self.training_mode:
            return {'usage': float((counts > 0).sum()) / k, 'perplexity': perplexity}
        self.window.append(set(idx.tolist()))
        if len(self.window) > TOK['usage_window']:
            self.window.pop(0)
        self.pending.append((idx.copy(), zs.detach().cpu().numpy().copy()))
        return {'usage': len(set().union(*self.window)) / k, 'perplexity': perplexity}

    @torch.no_grad()
    def update(self):
        """Dead-code restart after the optimizer step (codes unused for restart_after updates)."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        k = TOK['codebook_size']
        used = [False] * k
        for idx, _ in pending:
            for i in idx:
                used[i] = True
        dead = []
        for c in range(k):
            self.since_used[c] = 0 if used[c] else self.since_used[c] + 1
            if self.since_used[c] >= TOK['restart_after']:
                dead.append(c)
        if dead:
            latents = pending[-1][1]
            rows = [latents[int(self.rng.random() * len(latents))] for _ in dead]
            self.embedding.weight[dead] = torch.tensor(rows)
            for c in dead:
                self.since_used[c] = 0


class VQTokenizer(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.quant_conv = Conv2d(TOK['z_channels'], TOK['code_dim'], 1)
        self.quantize = IBQ()
        self.post_quant_conv = Conv2d(TOK['code_dim'], TOK['z_channels'], 1)
        self.decoder = Decoder()

    def encode(self, images):
        # ETT.js checks range and NaNs with one small host read per encode.
        lo, hi, nan = torch.stack([images.min(), images.max(), torch.isnan(images).sum().float()]).tolist()
        assert nan == 0 and lo >= -1.001 and hi <= 1.001
        return self.quantize(self.quant_conv(self.encoder(images)))

    def decode(self, quantized):
        return self.decoder(self.post_quant_conv(quantized))

    def embed_indices(self, indices):  # [B, n] -> [B, n, D], l2-normalised rows
        return F.embedding(indices, self.quantize.codebook())


# ---------------------------------------------------------------- projector, LM

class CodebookProjector(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.layers = nn.Sequential(Linear(d_in, d_out), nn.GELU(), Linear(d_out, d_out))

    def forward(self, x):
        return self.layers(x)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        d, h, kv, std = LM['d'], LM['heads'], LM['kv_heads'], LM['std']
        self.hd = d // h
        self.q_proj = Linear(d, h * self.hd, bias=True, std=std)
        self.k_proj = Linear(d, kv * self.hd, bias=True, std=std)
        self.v_proj = Linear(d, kv * self.hd, bias=True, std=std)
        self.o_proj = Linear(h * self.hd, d, bias=False, std=std)

    def forward(self, x, cos, sin, bias, cache, layer):
        b, t, _ = x.shape
        h, kvh, hd = LM['heads'], LM['kv_heads'], self.hd
        q = self.q_proj(x).view(b, t, h, hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, kvh, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, kvh, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            if layer in cache:
                k = torch.cat([cache[layer][0], k], 2)
                v = torch.cat([cache[layer][1], v], 2)
            cache[layer] = (k, v)
        k = k.repeat_interleave(h // kvh, dim=1)  # HF repeat_kv
        v = v.repeat_interleave(h // kvh, dim=1)
        s = k.shape[2]
        count(2 * 2 * b * h * t * s * hd)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + bias, dim=-1)
        out = (att @ v).transpose(1, 2).reshape(b, t, h * hd)
        return self.o_proj(out)


class DecoderLayer(nn.Module):
    def __init__(self):
        super().__init__()
        d, ff, std = LM['d'], LM['ff'], LM['std']
        self.self_attn = Attention()
        self.gate_proj = Linear(d, ff, bias=False, std=std)
        self.up_proj = Linear(d, ff, bias=False, std=std)
        self.down_proj = Linear(ff, d, bias=False, std=std)
        self.input_layernorm = RMSNorm(d, LM['eps'])
        self.post_attention_layernorm = RMSNorm(d, LM['eps'])

    def forward(self, x, cos, sin, bias, cache, layer):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, bias, cache, layer)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class CausalLM(nn.Module):
    def __init__(self, visual_vocab=0):
        super().__init__()
        self.embed_tokens = nn.Embedding(LM['vocab'], LM['d'])
        nn.init.normal_(self.embed_tokens.weight, 0.0, LM['std'])
        self.layers = nn.ModuleList([DecoderLayer() for _ in range(LM['layers'])])
        self.norm = RMSNorm(LM['d'], LM['eps'])
        self.visual_head = Linear(LM['d'], visual_vocab, bias=False, std=LM['std']) if visual_vocab else None
        hd = LM['d'] // LM['heads']
        self.inv_freq = 1.0 / (LM['theta'] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))

    def embed(self, ids):
        return self.embed_tokens(ids)

    def forward(self, x, mask=None, cache=None, last_only=False):
        """x [B, T, C]; mask [B, S] (1 attend, 0 pad) over past + new; cache: dict per layer."""
        b, t, _ = x.shape
        past = cache[0][0].shape[2] if cache else 0
        s = past + t
        pos = torch.arange(past, s, dtype=torch.float64)
        ang = torch.outer(pos, self.inv_freq)
        ang = torch.cat([ang, ang], -1)
        cos, sin = ang.cos().float()[None, None], ang.sin().float()[None, None]
        allowed = torch.ones(t, s).tril(past)[None, None]
        if mask is not None:
            allowed = allowed * mask[:, None, None, :].float()
        bias = (1 - allowed) * -1e9
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, bias, cache, i)
        hidden = self.norm(x)
        head_in = hidden[:, -1:] if last_only else hidden
        count(2 * head_in.shape[0] * head_in.shape[1] * LM['d'] * LM['vocab'])
        return head_in @ self.embed_tokens.weight.t(), hidden  # tied head

    def visual_logits(self, hidden):
        return self.visual_head(hidden)


# ---------------------------------------------------------------- critic and losses

class PatchDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        ndf, n = GAN['ndf'], GAN['layers']

        def conv(cin, cout, stride, bias):
            c = Conv2d(cin, cout, 4, stride=stride, padding=1, bias=bias)
            nn.init.normal_(c.weight, 0.0, GAN['std'])
            if bias:
                nn.init.zeros_(c.bias)
            return c

        self.convs = nn.ModuleList([conv(3, ndf, 2, True)])
        self.norm_w = nn.ParameterList()
        self.norm_b = nn.ParameterList()
        mult = 1
        for i in range(1, n + 1):
            prev, mult = mult, min(2 ** i, 8)
            self.convs.append(conv(ndf * prev, ndf * mult, 2 if i < n else 1, False))
            self.norm_w.append(nn.Parameter(torch.randn(ndf * mult) * GAN['std'] + 1))
            self.norm_b.append(nn.Parameter(torch.zeros(ndf * mult)))
        self.convs.append(conv(ndf * mult, 1, 1, True))

    def forward(self, x):
        x = F.leaky_relu(self.convs[0](x), GAN['slope'])
        for i in range(len(self.norm_w)):
            # BatchNorm with the statistics of each batch (ETT.js's BatchStatNorm: no running stats).
            x = F.batch_norm(self.convs[i + 1](x), None, None, self.norm_w[i], self.norm_b[i], training=True, eps=GAN['eps'])
            x = F.leaky_relu(x, GAN['slope'])
        return self.convs[-1](x)


class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.disc = PatchDiscriminator()
        self.register_buffer('lecam_real', torch.zeros(()))
        self.register_buffer('lecam_fake', torch.zeros(()))

    def lecam_next(self, real_mean, fake_mean):
        d = GAN['lecam_decay']
        return self.lecam_real * d + real_mean.detach() * (1 - d), self.lecam_fake * d + fake_mean.detach() * (1 - d)

    def loss(self, real, fake):
        lr_, lf = self.disc(real), self.disc(fake)
        mr, mf = lr_.mean(), lf.mean()
        hinge = 0.5 * (F.relu(1 - lr_).mean() + F.relu(1 + lf).mean())
        er, ef = self.lecam_next(mr, mf)
        lecam = F.relu(lr_ - ef).pow(2).mean() + F.relu(er - lf).pow(2).mean()
        return hinge + GAN['lecam_weight'] * lecam, {'hinge': hinge, 'lecam': lecam, 'logitsReal': mr.detach(), 'logitsFake': mf.detach()}

    @torch.no_grad()
    def commit(self, real_mean, fake_mean):
        self.lecam_real, self.lecam_fake = self.lecam_next(real_mean, fake_mean)


def structural_loss(x, y, scales=3, data_range=2.0):
    """ETT.js's weight-free perceptual stand-in: image-gradient L1 + (1 - SSIM 3x3) over 3 scales."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    total = 0.0
    a, b = x, y
    for s in range(scales):
        if s > 0:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        grad = ((a[:, :, 1:] - a[:, :, :-1]) - (b[:, :, 1:] - b[:, :, :-1])).abs().mean() + \
               ((a[..., 1:] - a[..., :-1]) - (b[..., 1:] - b[..., :-1])).abs().mean()

        def box(t):
            return F.avg_pool2d(t, 3, 1)
        mx, my = box(a), box(b)
        vx, vy, cxy = box(a * a) - mx * mx, box(b * b) - my * my, box(a * b) - mx * my
        ssim = ((2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))).mean()
        total = total + grad + (1 - ssim)
    return total / scales


def vq_loss(tok, critic, images, quantized, qlosses):
    """L_vq [P Eq. 1] as ETT.js's vqObjective with the recipes' defaults."""
    rec = tok.decode(quantized)
    comps = {
        'reconstruction': (rec - images).abs().mean(),
        'perceptual': structural_loss(images, rec),
        'gan': F.softplus(-critic.disc(rec).flatten(1).mean(1)).mean(),  # IBQ's non-saturating loss
        'quant': qlosses['quant'],
        'entropy': qlosses['entropy'],
    }
    weights = {'reconstruction': 1.0, 'perceptual': 1.0, 'gan': 0.1, 'quant': 1.0, 'entropy': TOK['entropy_weight']}
    return sum(weights[k] * v for k, v in comps.items()), comps


def masked_ce(logits, targets):
    """Mean cross-entropy over targets != -100, and the token accuracy (no gradient)."""
    v = logits.shape[-1]
    flat, y = logits.reshape(-1, v), targets.reshape(-1)
    loss = F.cross_entropy(flat, y, ignore_index=IGNORE)
    with torch.no_grad():
        keep = y != IGNORE
        acc = ((flat.argmax(1) == y) & keep).sum().float() / keep.sum().clamp(min=1)
    return loss, acc


# ---------------------------------------------------------------- the ETT model and sequences

class ETTModel(nn.Module):
    def __init__(self, visual_vocab=0):
        super().__init__()
        self.tokenizer = VQTokenizer()
        self.adapter = CodebookProjector(TOK['code_dim'], LM['d'])
        self.lm = CausalLM(visual_vocab)
        self.discriminator = Critic()

    def visual(self, quantized):  # [B, D, h, w] -> [B, h*w, C], raster order
        b, d = quantized.shape[:2]
        return self.adapter(quantized.permute(0, 2, 3, 1).reshape(b, -1, d))


def caption_layout(captions, ids, n_visual):
    """buildCaptionSequences: [BOS] <boi> v_1..v_N <eoi> caption [EOS] pad..., shifted targets."""
    b = len(captions)
    suffix_len = max(len(c) for c in captions) + 2
    t = 2 + n_visual + suffix_len
    suffix = torch.full((b, suffix_len), ids['pad'], dtype=torch.long)
    targets = torch.full((b, t), IGNORE, dtype=torch.long)
    mask = torch.zeros(b, t, dtype=torch.long)
    for i, c in enumerate(captions):
        s = [ids['eoi'], *c, ids['eos']]
        suffix[i, :len(s)] = torch.tensor(s)
        mask[i, :2 + n_visual + len(s)] = 1
        eoi = 2 + n_visual
        targets[i, eoi:eoi + len(s) - 1] = torch.tensor(s[1:])
    prefix = torch.tensor([[ids['bos'], ids['boi']]] * b)
    return prefix, suffix, targets, mask


def caption_forward(model, images, captions, ids):
    quantized, _, qlosses, _ = model.tokenizer.encode(images)
    prefix, suffix, targets, mask = caption_layout(captions, ids, quantized.shape[2] * quantized.shape[3])
    embeds = torch.cat([model.lm.embed(prefix), model.visual(quantized), model.lm.embed(suffix)], 1)
    logits, _ = model.lm(embeds, mask)
    return logits, targets, quantized, qlosses


# ---------------------------------------------------------------- steps (as @ettjs/trainer runs a stage)

def lr_factor(kind, step, total):
    """@ettjs/trainer learningRateFactor: constant, or 3 % linear warmup then cosine to 0."""
    if kind == 'constant':
        return 1.0
    warm = math.ceil(0.03 * total)
    if step < warm:
        return step / max(1, warm)
    return max(0.0, 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm))))


def optimize(opt, params, loss_fn, clip, factor):
    """One Trainer #optimize: gradients, one host read of the terms and the norm, update if finite."""
    opt.zero_grad(set_to_none=True)
    total, comps = loss_fn()
    total.backward()
    grads = [p.grad for p in params if p.grad is not None]
    if clip is not None:
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
    else:
        norm = torch.sqrt(sum((g * g).sum() for g in grads))
    values = torch.stack([total.detach(), *[c.detach().float() for c in comps.values()], norm]).tolist()
    if all(math.isfinite(v) for v in values):
        for g in opt.param_groups:
            g['lr'] = g['initial_lr'] * factor
        opt.step()


def adam(params, lr, betas=(0.9, 0.999)):
    opt = torch.optim.AdamW(params, lr=lr, betas=betas, eps=1e-8, weight_decay=0.0)  # the recipes' 'adam'
    for g in opt.param_groups:
        g['initial_lr'] = lr
    return opt


def set_requires_grad(module, flag):
    for p in module.parameters():
        p.requires_grad_(flag)


def critic_step(model, batch, opt, clip, factor):
    critic, tok = model.discriminator, model.tokenizer
    with torch.no_grad():  # the generator's output is data here
        quantized, _, _, _ = tok.encode(batch['images'])
        fake = tok.decode(quantized)
    pending = {}

    def loss():
        total, comps = critic.loss(batch['images'], fake)
        pending.update(comps)
        return total, comps
    optimize(opt, list(critic.disc.parameters()), loss, clip, factor)
    return lambda: critic.commit(pending['logitsReal'], pending['logitsFake'])


def make_step(name, model, batch, total_steps):
    """A closure running one optimizer step of the workload's stage (critic first where it has one)."""
    tok, critic, ids = model.tokenizer, model.discriminator, batch['ids']
    state = {'step': 0}
    if name == 'tokenizer':
        gen_params = list(tok.parameters())
        gen, disc = adam(gen_params, LR['tokenizer'], IBQ_BETAS), adam(list(critic.disc.parameters()), LR['tokenizer'], IBQ_BETAS)
        clip, schedule = None, 'constant'
    elif name == 'lm':
        gen_params = list(model.lm.parameters())
        gen, disc, clip, schedule = adam(gen_params, LR['text']), None, 1.0, 'warmup-cosine'
    else:
        gen_params = list(tok.parameters()) + list(model.adapter.parameters()) + list(model.lm.parameters())
        gen, disc = adam(gen_params, LR['semantic']), adam(list(critic.disc.parameters()), LR['semantic'], IBQ_BETAS)
        clip, schedule = 1.0, 'warmup-cosine'

    def text_loss():
        caps = batch['captions']
        t = max(len(c) for c in caps) + 2
        rows = [[ids['bos'], *c, ids['eos']] + [ids['pad']] * (t - len(c) - 2) for c in caps]
        labels = [[ids['bos'], *c, ids['eos']] + [IGNORE] * (t - len(c) - 2) for c in caps]
        mask = torch.tensor([[1 if j < len(c) + 2 else 0 for j in range(t)] for c in caps])
        logits, _ = model.lm(model.lm.embed(torch.tensor(rows)), mask)
        loss, acc = masked_ce(logits[:, :-1], torch.tensor(labels)[:, 1:])  # HF-aligned labels: shifted
        return loss, {'text': loss, 'accuracy': acc}

    def tokenizer_loss():
        tok.quantize.training_mode = True
        quantized, _, qlosses, _ = tok.encode(batch['images'])
        total, comps = vq_loss(tok, critic, batch['images'], quantized, qlosses)
        return total, comps

    def ett_loss():
        tok.quantize.training_mode = True
        logits, targets, quantized, qlosses = caption_forward(model, batch['images'], batch['captions'], ids)
        cap, acc = masked_ce(logits, targets)
        vq, comps = vq_loss(tok, critic, batch['images'], quantized, qlosses)
        return cap + ALPHA * vq, {'caption': cap, 'vq': vq, **{f'vq.{k}': v for k, v in comps.items()}, 'accuracy': acc}

    loss_fn = {'tokenizer': tokenizer_loss, 'lm': text_loss, 'ett': ett_loss}[name]

    def step():
        factor = lr_factor(schedule, state['step'], total_steps)
        commit = None
        if disc is not None:
            set_requires_grad(critic.disc, True)
            commit = critic_step(model, batch, disc, clip, factor)
            set_requires_grad(critic.disc, False)  # the generator's GAN term: gradient through D, not into it
        optimize(gen, gen_params, loss_fn, clip, factor)
        if commit is not None:
            commit()
            tok.quantize.update()
        state['step'] += 1
    return step


# ---------------------------------------------------------------- generation

@torch.no_grad()
def caption(model, batch):
    """ETTModel.caption's prefix, then KV-cache greedy decoding of CAPTION_TOKENS tokens (no stop)."""
    ids, images = batch['ids'], batch['images']
    b = images.shape[0]
    quantized, _, _, _ = model.tokenizer.encode(images)
    prefix = torch.cat([model.lm.embed(torch.tensor([[ids['bos'], ids['boi']]] * b)), model.visual(quantized),
                        model.lm.embed(torch.tensor([[ids['eoi']]] * b))], 1)
    cache = {}
    x = prefix
    tokens = []
    for _ in range(CAPTION_TOKENS):
        logits, _ = model.lm(x, cache=cache, last_only=True)
        nxt = logits[:, -1].argmax(-1)
        tokens.append(nxt.tolist())  # the per-token host read generate() does too
        x = model.lm.embed(nxt[:, None])
    return b * CAPTION_TOKENS


@torch.no_grad()
def generate_images(model, batch):
    """ETTModel.generateImages: [BOS] prompt <boi>, then N codes by the visual head fed back through the adapter."""
    ids = batch['ids']
    rows = [[ids['bos'], *p, ids['boi']] for p in batch['prompt_ids']]
    b = len(rows)
    side = IMAGE // 2 ** (len(TOK['ch_mult']) - 1)
    cache = {}
    x = model.lm.embed(torch.tensor(rows))
    codes = []
    for _ in range(side * side):
        _, hidden = model.lm(x, cache=cache, last_only=True)
        nxt = model.lm.visual_logits(hidden[:, -1:]).argmax(-1)  # [B, 1]
        codes.append(nxt[:, 0].tolist())
        x = model.adapter(model.tokenizer.embed_indices(nxt))
    indices = torch.tensor(codes).t()
    quantized = model.tokenizer.embed_indices(indices).reshape(b, side, side, -1).permute(0, 3, 1, 2)
    model.tokenizer.decode(quantized)
    return b * side * side


# ---------------------------------------------------------------- one workload in this process

def load_batch(path):
    if path:
        with open(path) as f:
            j = json.load(f)
        b, h, w, c = j['shape']
        images = torch.tensor(j['images'], dtype=torch.float32).reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
        return {'images': images, 'captions': j['captions'], 'prompt_ids': j['promptIds'], 'ids': j['ids']}
    g = torch.Generator().manual_seed(0)
    lengths = [34, 37, 41, 36, 36, 39, 37, 34]  # the quickstart batch's caption lengths
    caps = [torch.randint(32, 127, (n,), generator=g, device='cpu').tolist() for n in lengths]
    prompts = [list(f'a red square at the top. text: Q{i}.'.encode()) for i in range(BATCH)]
    return {'images': (torch.rand(BATCH, 3, IMAGE, IMAGE, generator=g, device='cpu') * 2 - 1).to(DEVICE['name']), 'captions': caps, 'prompt_ids': prompts,
            'ids': {'bos': 257, 'eos': 258, 'pad': 256, 'boi': 259, 'eoi': 260}}


def workload_flops(name, model, batch):
    """Same rules as bench/flops.mjs, from forward FLOPs counted on the executed ops."""
    tok, critic = model.tokenizer, model.discriminator
    images = batch['images']
    enc = counted(lambda: tok.encode(images))
    with torch.no_grad():
        quantized = tok.encode(images)[0]
    dec = counted(lambda: tok.decode(quantized))
    disc = counted(lambda: critic.disc(images))
    crit = enc + dec + 2 * 3 * disc
    if name == 'tokenizer':
        return crit + 3 * (enc + dec) + 2 * disc
    if name == 'lm':
        caps = batch['captions']
        t = max(len(c) for c in caps) + 2
        return 3 * counted(lambda: model.lm(model.lm.embed(torch.zeros(len(caps), t, dtype=torch.long))))
    if name == 'ett':
        return crit + 3 * counted(lambda: caption_forward(model, images, batch['captions'], batch['ids'])) + 3 * dec + 2 * disc
    if name == 'caption':
        return counted(lambda: caption(model, batch))
    return counted(lambda: generate_images(model, batch))


DEVICE = {'name': 'cpu'}


def set_device(device):
    """Every tensor on `device`. On CUDA, float32 matmuls and convolutions in full float32 (TF32 off), as
    WebGPU computes them, and each timed run ends with a synchronize."""
    DEVICE['name'] = device
    if device == 'cpu':
        return
    if not torch.cuda.is_available():
        sys.exit(f'--device {device}: torch {torch.__version__} sees no CUDA device')
    torch.set_default_device(device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def sync(device):
    if device != 'cpu':
        torch.cuda.synchronize()


def run_one(name, threads, reps, warmup, batch_path, device='cpu'):
    torch.set_num_threads(threads)
    set_device(device)
    torch.manual_seed(0)
    batch = load_batch(batch_path)
    model = ETTModel(visual_vocab=TOK['codebook_size'] if name == 'visual-gen' else 0)
    params = {k: sum(p.numel() for p in getattr(model, k).parameters()) for k in ['tokenizer', 'adapter', 'lm', 'discriminator']}
    model.tokenizer.quantize.training_mode = name in ('tokenizer', 'ett')
    flops = workload_flops(name, model, batch)
    model.tokenizer.quantize.pending = []
    if name in ('tokenizer', 'lm', 'ett'):
        run = make_step(name, model, batch, warmup + reps)
        items = BATCH * (max(len(c) for c in batch['captions']) + 1) if name == 'lm' else BATCH
    else:
        model.tokenizer.quantize.training_mode = False
        run = (lambda: caption(model, batch)) if name == 'caption' else (lambda: generate_images(model, batch))
        items = None
    for _ in range(warmup):
        run()
    sync(device)
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = run()
        sync(device)
        samples.append((time.perf_counter() - t0) * 1000)
        if items is None:
            items = out
    return {
        'name': name, 'threads': threads, 'ms': sorted(samples)[len(samples) // 2],  # as run.mjs
        'best': min(samples), 'samples': samples, 'items': items, 'flops': flops, 'params': params,
        'maxRssMB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'device': device_name(device),
        **({'maxGpuMB': torch.cuda.max_memory_allocated() / 2**20} if device != 'cpu' else {}),
    }


def device_name(device):
    return torch.cuda.get_device_name() if device != 'cpu' else 'cpu'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--only', default=','.join(WORKLOADS))
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--threads', default='auto',
                    help='torch.set_num_threads values to try, e.g. "1,2" (the fastest median is reported); '
                         '"auto": 1 and 2 for the tokenizer and ETT steps (convolutions), 1 (the default) for the rest')
    ap.add_argument('--batch', default=None)
    ap.add_argument('--device', default='cpu', help='torch device: cpu (default) or cuda (TF32 off, synchronized timing)')
    ap.add_argument('--child', default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    names = a.only.split(',')
    for n in names:
        if n not in WORKLOADS:
            sys.exit(f'unknown workload {n}; known: {", ".join(WORKLOADS)}')
    if a.child:
        name, threads = a.child.split(':')
        print(json.dumps(run_one(name, int(threads), a.reps, a.warmup, a.batch, a.device)))
        return
    results = []
    for name in names:
        tried = []
        plan = AUTO_THREADS[name] if a.threads == 'auto' else [int(t) for t in a.threads.split(',')]
        if a.device != 'cpu' and a.threads == 'auto':
            plan = [1]  # the host thread only launches kernels
        for threads in plan:
            cmd = [sys.executable, os.path.abspath(__file__), '--child', f'{name}:{threads}', '--only', name,
                   '--reps', str(a.reps), '--warmup', str(a.warmup), '--device', a.device]
            cmd += ['--batch', a.batch] if a.batch else []
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                sys.stderr.write(r.stderr)
                sys.exit(f'{name} with {threads} thread(s) failed')
            tried.append(json.loads(r.stdout.strip().splitlines()[-1]))
        best = min(tried, key=lambda x: x['ms'])
        best['byThreads'] = {str(t['threads']): t['ms'] for t in tried}
        results.append(best)
    print(json.dumps({'torch': torch.__version__, 'blas': blas_note(), 'workloads': results}))


def blas_note():
    cfg = torch.__config__.show()
    return 'openblas' if 'openblas' in cfg.lower() else 'see torch.__config__.show()'


if __name__ == '__main__':
    main()
