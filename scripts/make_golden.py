#!/usr/bin/python3
"""Golden values for longhaul's GPT-2 model, from an independent PyTorch float64 implementation.

Why: the C model is float32 and written llm.c-style; this script re-implements the same GPT-2 (learned
position embeddings, pre-LayerNorm, tanh-GELU MLP, causal attention, tied embeddings with a padded vocabulary)
with torch.nn.functional in float64 and records, for one small random model and batch:

  tests/train/golden/tiny_gpt2.bin   the parameters, as an llm.c fp32 checkpoint (version 3 header)
  tests/train/golden/tiny_golden.bin the batch, the mean loss, every parameter gradient, and the parameters after
                                     one torch.optim.AdamW step (weight decay on matrices/embeddings only)

tiny_golden.bin layout (little-endian):
  int32[8]  magic 20251122, version 1, B, T, param_count, lr_e6 (lr * 1e6), wd_e6, 0
  int32[B*T] tokens, int32[B*T] targets
  float64   mean loss
  float32[param_count] gradients          in llm.c tensor order (wte, wpe, ln1w, ... lnfb)
  float32[param_count] params after AdamW in the same order (betas 0.9, 0.95, eps 1e-8, step 1)

The C test (tests/train/test_model.c) needs only these files, not Python.  Run once, with Debian's
python3-torch:  /usr/bin/python3 scripts/make_golden.py
"""
import math
import os
import struct

import torch
import torch.nn.functional as F

L, C, NH, V, VP, MAXT = 2, 16, 2, 50, 64, 8
B, T = 2, 7
LR, WD = 1e-2, 0.1

NAMES = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb", "ln2w", "ln2b",
         "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]
SHAPES = {"wte": (VP, C), "wpe": (MAXT, C), "ln1w": (L, C), "ln1b": (L, C), "qkvw": (L, 3 * C, C),
          "qkvb": (L, 3 * C), "attprojw": (L, C, C), "attprojb": (L, C), "ln2w": (L, C), "ln2b": (L, C),
          "fcw": (L, 4 * C, C), "fcb": (L, 4 * C), "fcprojw": (L, C, 4 * C), "fcprojb": (L, C),
          "lnfw": (C,), "lnfb": (C,)}
DECAY = {"wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw"}


def make_params(gen):
    """Weights larger than GPT-2's 0.02 init so every gradient is well above float32 noise."""
    p = {}
    for name in NAMES:
        shape = SHAPES[name]
        if name in ("ln1w", "ln2w", "lnfw"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif name.endswith("b"):
            t = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        else:
            t = 0.2 * torch.randn(shape, generator=gen, dtype=torch.float64)
        # round to float32 so C and torch start from the identical values
        p[name] = t.float().double().requires_grad_(True)
    return p


def forward(p, tokens, targets):
    b, t = tokens.shape
    hs = C // NH
    x = p["wte"][tokens] + p["wpe"][:t]
    mask = torch.tril(torch.ones(t, t, dtype=torch.bool))
    for l in range(L):
        h = F.layer_norm(x, (C,), p["ln1w"][l], p["ln1b"][l], eps=1e-5)
        qkv = h @ p["qkvw"][l].T + p["qkvb"][l]
        q, k, v = qkv.split(C, dim=-1)
        q = q.view(b, t, NH, hs).transpose(1, 2)
        k = k.view(b, t, NH, hs).transpose(1, 2)
        v = v.view(b, t, NH, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, C)
        x = x + y @ p["attprojw"][l].T + p["attprojb"][l]
        h = F.layer_norm(x, (C,), p["ln2w"][l], p["ln2b"][l], eps=1e-5)
        h = F.gelu(h @ p["fcw"][l].T + p["fcb"][l], approximate="tanh")
        x = x + h @ p["fcprojw"][l].T + p["fcprojb"][l]
    x = F.layer_norm(x, (C,), p["lnfw"], p["lnfb"], eps=1e-5)
    logits = x @ p["wte"].T  # (B, T, VP): padded columns are computed but excluded from the softmax
    return F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1))


def flat(tensors):
    return torch.cat([t.detach().reshape(-1) for t in tensors]).float()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = os.path.join(here, "..", "tests", "train", "golden")
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(20251122)
    p = make_params(gen)
    tokens = torch.randint(0, V, (B, T), generator=gen)
    targets = torch.randint(0, V, (B, T), generator=gen)

    loss = forward(p, tokens, targets)
    loss.backward()
    grads = flat([p[n].grad for n in NAMES])
    params0 = flat([p[n] for n in NAMES])

    decay = [p[n] for n in NAMES if n in DECAY]
    no_decay = [p[n] for n in NAMES if n not in DECAY]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.95), eps=1e-8)
    opt.step()
    params1 = flat([p[n] for n in NAMES])

    header = [20240326, 3, MAXT, V, L, NH, C, VP] + [0] * 248
    with open(os.path.join(out_dir, "tiny_gpt2.bin"), "wb") as f:
        f.write(struct.pack("<256i", *header))
        f.write(struct.pack("<%df" % params0.numel(), *params0.tolist()))

    n = params0.numel()
    with open(os.path.join(out_dir, "tiny_golden.bin"), "wb") as f:
        f.write(struct.pack("<8i", 20251122, 1, B, T, n, int(LR * 1e6), int(WD * 1e6), 0))
        f.write(struct.pack("<%di" % (B * T), *tokens.reshape(-1).tolist()))
        f.write(struct.pack("<%di" % (B * T), *targets.reshape(-1).tolist()))
        f.write(struct.pack("<d", loss.item()))
        f.write(struct.pack("<%df" % n, *grads.tolist()))
        f.write(struct.pack("<%df" % n, *params1.tolist()))
    print("loss %.10f, %d parameters, files in %s" % (loss.item(), n, os.path.normpath(out_dir)))


if __name__ == "__main__":
    main()
