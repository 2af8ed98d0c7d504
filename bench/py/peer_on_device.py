"""Runs ../shared/peer/torch_moco.py on a CUDA device: the same script, with its tensors placed on the device by
the substitutions below (each must apply, so a changed peer fails loudly instead of silently running on the CPU),
and with --amp bf16 its step under torch.autocast (fp32 master weights, as ours).

    python bench/py/peer_on_device.py PEER --device cuda [--amp bf16] -- <torch_moco.py arguments>
"""
import argparse
import sys

import torch

p = argparse.ArgumentParser()
p.add_argument("peer")
p.add_argument("--device", default="cuda")
p.add_argument("--amp", choices=["off", "bf16"], default="off")
a, rest = p.parse_known_args()
if rest and rest[0] == "--":
    rest = rest[1:]

SUBSTITUTIONS = [
    ("q_enc, k_enc = encoder(), encoder()", "q_enc, k_enc = encoder().to(DEV), encoder().to(DEV)"),
    ("queue = F.normalize(torch.randn(a.dim, a.K), dim=0)", "queue = F.normalize(torch.randn(a.dim, a.K), dim=0).to(DEV)"),
    ("torch.zeros(q.shape[0], dtype=torch.long)", "torch.zeros(q.shape[0], dtype=torch.long, device=DEV)"),
    # main_moco.py draws the permutation on the CPU and moves it: torch.randperm(n).cuda()
    ("perm = torch.randperm(x2.shape[0])", "perm = torch.randperm(x2.shape[0]).to(DEV)"),
    ("losses.append(step(x1, x2))", "losses.append(step(x1.to(DEV, non_blocking=True), x2.to(DEV, non_blocking=True)))"),
    ("def step(x1, x2):", "def step(x1, x2):\n    with torch.autocast(DEV.type, dtype=torch.bfloat16, enabled=AMP):\n        return _step(x1, x2)\n\n\ndef _step(x1, x2):"),
]
src = open(a.peer).read()
for old, new in SUBSTITUTIONS:
    if src.count(old) != 1:
        sys.exit(f"peer_on_device: {a.peer} no longer contains exactly one `{old}`; update bench/py/peer_on_device.py")
    src = src.replace(old, new)
sys.argv = [a.peer] + rest
env = {"__name__": "__main__", "__file__": a.peer, "DEV": torch.device(a.device), "AMP": a.amp == "bf16"}
exec(compile(src, a.peer, "exec"), env)
