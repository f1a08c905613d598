"""Golden fixtures for @ettjs/autoregressive-lm: tiny random LLaMA and Qwen2 checkpoints in HF format
plus the logits an independent PyTorch implementation of the HF modelling equations computes for them.

Run with Debian's torch (transformers is not installed, so the equations of HF's modeling_llama.py /
modeling_qwen2.py are written out here):

    /usr/bin/python3 bench/reference/lm_golden.py

Writes packages/autoregressive-lm/test/fixtures/{llama-tiny,qwen2-tiny}/ with config.json, safetensors
(llama: one file, embed_tokens stored as F16, the rest F32; qwen2: two BF16 shards + index JSON) and
expected.json (input ids, attention mask, logits, last hidden state, greedy continuation). The
reference runs in float64 on the exact (rounded) weights that are written, so the expected values are
the truth the float32 TS implementation must match to ~1e-4.
"""

import json
import math
import os
import struct

import torch

ROOT = os.path.join(os.path.dirname(__file__), '..', '..', 'packages', 'autoregressive-lm', 'test', 'fixtures')


# ---------------------------------------------------------------- safetensors writer (by hand)

def st_bytes(tensors):
    """tensors: list of (name, dtype_str, shape, raw bytes). Header sorted by name, 8-byte aligned."""
    header = {}
    data = b''
    for name, dtype, shape, raw in sorted(tensors, key=lambda t: t[0]):
        header[name] = {'dtype': dtype, 'shape': list(shape), 'data_offsets': [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(',', ':')).encode('utf-8')
    h += b' ' * ((8 - len(h) % 8) % 8)
    return struct.pack('<Q', len(h)) + h + data


def encode(t, dtype):
    """Rounds t to dtype and returns (rounded float64 tensor, raw little-endian bytes)."""
    if dtype == 'F32':
        r = t.to(torch.float32)
        raw = r.numpy().astype('<f4').tobytes()
    elif dtype == 'F16':
        r = t.to(torch.float16)
        raw = r.numpy().astype('<f2').tobytes()
    elif dtype == 'BF16':
        r = t.to(torch.bfloat16)
        raw = r.view(torch.int16).numpy().astype('<i2').tobytes()
    else:
        raise ValueError(dtype)
    return r.to(torch.float64), raw


# ---------------------------------------------------------------- the HF equations

def rms_norm(x, w, eps):
    # LlamaRMSNorm / Qwen2RMSNorm: x * rsqrt(mean(x^2) + eps), then weight.
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def inv_freq(cfg, head_dim):
    # Default RoPE: inv_freq_i = 1 / theta^(2i/d), i = 0..d/2-1.
    base = cfg['rope_theta']
    f = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    rs = cfg.get('rope_scaling')
    if rs is None:
        return f
    kind = rs.get('rope_type', rs.get('type'))
    if kind == 'linear':
        return f / rs['factor']
    if kind == 'llama3':
        # _compute_llama3_parameters: low frequencies divided by factor, high kept, medium smoothed.
        factor, lo, hi, old = rs['factor'], rs['low_freq_factor'], rs['high_freq_factor'], rs['original_max_position_embeddings']
        lo_wl, hi_wl = old / lo, old / hi
        wl = 2 * math.pi / f
        out = torch.where(wl > lo_wl, f / factor, f)
        smooth = (old / wl - lo) / (hi - lo)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = ~(wl < hi_wl) & ~(wl > lo_wl)
        return torch.where(medium, smoothed, out)
    raise ValueError(kind)


def rotate_half(x):
    d = x.shape[-1] // 2
    return torch.cat((-x[..., d:], x[..., :d]), dim=-1)


def forward(cfg, w, ids, mask):
    """ids, mask: [B, T] long. Returns (logits [B,T,V], last hidden [B,T,C]) in float64."""
    B, T = ids.shape
    C = cfg['hidden_size']
    H = cfg['num_attention_heads']
    KV = cfg['num_key_value_heads']
    D = C // H
    eps = cfg['rms_norm_eps']
    qwen = cfg['model_type'] == 'qwen2'
    attn_bias = qwen or cfg.get('attention_bias', False)

    x = w['model.embed_tokens.weight'][ids]  # [B, T, C]
    pos = torch.arange(T, dtype=torch.float64)
    freqs = torch.outer(pos, inv_freq(cfg, D))  # [T, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)  # [T, D]
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]

    # Causal + key padding mask as an additive bias (HF uses the dtype's min value).
    allowed = torch.tril(torch.ones(T, T, dtype=torch.bool))[None, None] & mask.bool()[:, None, None, :]
    bias = torch.zeros(B, 1, T, T, dtype=torch.float64).masked_fill(~allowed, torch.finfo(torch.float64).min)

    def lin(name, h, bias_on):
        y = h @ w[name + '.weight'].T
        return y + w[name + '.bias'] if bias_on else y

    for i in range(cfg['num_hidden_layers']):
        p = f'model.layers.{i}.'
        h = rms_norm(x, w[p + 'input_layernorm.weight'], eps)
        q = lin(p + 'self_attn.q_proj', h, attn_bias).view(B, T, H, D).transpose(1, 2)
        k = lin(p + 'self_attn.k_proj', h, attn_bias).view(B, T, KV, D).transpose(1, 2)
        v = lin(p + 'self_attn.v_proj', h, attn_bias).view(B, T, KV, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # repeat_kv: kv head j serves query heads j*G .. j*G+G-1.
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        s = q @ k.transpose(-1, -2) / math.sqrt(D) + bias
        a = torch.softmax(s, dim=-1) @ v  # [B, H, T, D]
        a = a.transpose(1, 2).reshape(B, T, C)
        x = x + lin(p + 'self_attn.o_proj', a, (not qwen) and attn_bias)
        h = rms_norm(x, w[p + 'post_attention_layernorm.weight'], eps)
        mb = cfg.get('mlp_bias', False)
        g = lin(p + 'mlp.gate_proj', h, mb)
        u = lin(p + 'mlp.up_proj', h, mb)
        x = x + lin(p + 'mlp.down_proj', torch.nn.functional.silu(g) * u, mb)
    hidden = rms_norm(x, w['model.norm.weight'], eps)
    head = w['model.embed_tokens.weight'] if cfg['tie_word_embeddings'] else w['lm_head.weight']
    return hidden @ head.T, hidden


def greedy(cfg, w, prompt, n):
    ids = list(prompt)
    gaps = []
    for _ in range(n):
        t = torch.tensor([ids])
        logits, _ = forward(cfg, w, t, torch.ones_like(t))
        last = logits[0, -1]
        top = torch.topk(last, 2).values
        gaps.append(float(top[0] - top[1]))
        ids.append(int(last.argmax()))
    return ids[len(prompt):], min(gaps)


# ---------------------------------------------------------------- fixtures

def make_weights(cfg, gen, dtype_of):
    C, I, V = cfg['hidden_size'], cfg['intermediate_size'], cfg['vocab_size']
    H, KV = cfg['num_attention_heads'], cfg['num_key_value_heads']
    D = C // H
    qwen = cfg['model_type'] == 'qwen2'
    attn_bias = qwen or cfg.get('attention_bias', False)
    shapes = {'model.embed_tokens.weight': (V, C), 'model.norm.weight': (C,)}
    if not cfg['tie_word_embeddings']:
        shapes['lm_head.weight'] = (V, C)
    for i in range(cfg['num_hidden_layers']):
        p = f'model.layers.{i}.'
        shapes[p + 'input_layernorm.weight'] = (C,)
        shapes[p + 'post_attention_layernorm.weight'] = (C,)
        for n, out in (('q', H * D), ('k', KV * D), ('v', KV * D)):
            shapes[p + f'self_attn.{n}_proj.weight'] = (out, C)
            if attn_bias:
                shapes[p + f'self_attn.{n}_proj.bias'] = (out,)
        shapes[p + 'self_attn.o_proj.weight'] = (C, H * D)
        if attn_bias and not qwen:
            shapes[p + 'self_attn.o_proj.bias'] = (C,)
        shapes[p + 'mlp.gate_proj.weight'] = (I, C)
        shapes[p + 'mlp.up_proj.weight'] = (I, C)
        shapes[p + 'mlp.down_proj.weight'] = (C, I)
    values, raws = {}, {}
    for name, shape in shapes.items():
        if name.endswith('norm.weight') or name.endswith('layernorm.weight'):
            t = 1 + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif name.endswith('.bias'):
            t = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif name == 'model.embed_tokens.weight':
            t = torch.randn(shape, generator=gen, dtype=torch.float64)
        else:
            t = torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(shape[1])
        dtype = dtype_of(name)
        values[name], raw = encode(t, dtype)
        raws[name] = (name, dtype, shape, raw)
    return values, raws


def write_fixture(name, cfg, dtype_of, shards, gen):
    out = os.path.join(ROOT, name)
    os.makedirs(out, exist_ok=True)
    w, raws = make_weights(cfg, gen, dtype_of)
    with open(os.path.join(out, 'config.json'), 'w') as f:
        json.dump(cfg, f, indent=2)
    names = sorted(raws)
    if shards == 1:
        with open(os.path.join(out, 'model.safetensors'), 'wb') as f:
            f.write(st_bytes([raws[n] for n in names]))
    else:
        per = math.ceil(len(names) / shards)
        weight_map, total = {}, 0
        for s in range(shards):
            fname = f'model-{s + 1:05d}-of-{shards:05d}.safetensors'
            part = names[s * per:(s + 1) * per]
            with open(os.path.join(out, fname), 'wb') as f:
                f.write(st_bytes([raws[n] for n in part]))
            for n in part:
                weight_map[n] = fname
                total += len(raws[n][3])
        with open(os.path.join(out, 'model.safetensors.index.json'), 'w') as f:
            json.dump({'metadata': {'total_size': total}, 'weight_map': weight_map}, f, indent=2)

    V = cfg['vocab_size']
    T = 8
    ids = torch.randint(1, V, (2, T), generator=gen)
    mask = torch.ones(2, T, dtype=torch.long)
    pad = 3  # row 1 is left padded: 3 pad tokens (id 0), then the first 5 tokens of row 0
    ids[1, pad:] = ids[0, :T - pad]
    ids[1, :pad] = 0
    mask[1, :pad] = 0
    logits, hidden = forward(cfg, w, ids, mask)
    prompt = ids[0, :5].tolist()
    new_tokens, min_gap = greedy(cfg, w, prompt, 10)
    print(f'{name}: logits |max| {logits.abs().max():.3f}, greedy min top1-top2 gap {min_gap:.4f}')
    r = lambda t: [round(float(v), 7) for v in t.flatten()]  # noqa: E731
    expected = {
        'about': 'Produced by bench/reference/lm_golden.py (float64 PyTorch implementation of the HF LLaMA/Qwen2 equations).',
        'input_ids': ids.tolist(),
        'attention_mask': mask.tolist(),
        'logits_shape': list(logits.shape),
        'logits': r(logits),
        'hidden_shape': list(hidden.shape),
        'hidden': r(hidden),
        'greedy': {'prompt': prompt, 'new_tokens': new_tokens, 'min_top_gap': min_gap},
    }
    with open(os.path.join(out, 'expected.json'), 'w') as f:
        json.dump(expected, f)


def main():
    gen = torch.Generator().manual_seed(20250515)
    llama = {
        'architectures': ['LlamaForCausalLM'],
        'model_type': 'llama',
        'vocab_size': 100,
        'hidden_size': 32,
        'intermediate_size': 64,
        'num_hidden_layers': 2,
        'num_attention_heads': 4,
        'num_key_value_heads': 2,
        'max_position_embeddings': 64,
        'rms_norm_eps': 1e-5,
        'rope_theta': 10000.0,
        # llama3 scaling with a short original context so that all three frequency bands occur at head_dim 8.
        'rope_scaling': {'rope_type': 'llama3', 'factor': 4.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
                         'original_max_position_embeddings': 16},
        'attention_bias': False,
        'mlp_bias': False,
        'tie_word_embeddings': False,
        'hidden_act': 'silu',
        'bos_token_id': 1,
        'eos_token_id': 2,
        'torch_dtype': 'float32',
    }
    write_fixture('llama-tiny', llama, lambda n: 'F16' if n == 'model.embed_tokens.weight' else 'F32', 1, gen)
    qwen2 = {
        'architectures': ['Qwen2ForCausalLM'],
        'model_type': 'qwen2',
        'vocab_size': 96,
        'hidden_size': 32,
        'intermediate_size': 48,
        'num_hidden_layers': 2,
        'num_attention_heads': 4,
        'num_key_value_heads': 2,
        'max_position_embeddings': 128,
        'rms_norm_eps': 1e-6,
        'rope_theta': 1000000.0,
        'rope_scaling': None,
        'tie_word_embeddings': True,
        'use_sliding_window': False,
        'hidden_act': 'silu',
        'bos_token_id': 1,
        'eos_token_id': 2,
        'torch_dtype': 'bfloat16',
    }
    write_fixture('qwen2-tiny', qwen2, lambda n: 'BF16', 2, gen)


if __name__ == '__main__':
    main()
