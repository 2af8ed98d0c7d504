"""torchvision's side of bench/learning --augment-stats: the CIFAR demo's transforms stage by stage on the images
moco-ts decoded (N×3×32×32 uint8, raw), two views each; and the distributions of the random parameters that
RandomResizedCrop and ColorJitter draw. Prints one JSON line of the same statistics bench/learning computes
for moco-ts.

usage: augment_stats.py IMAGES.u8 N SIZE DRAWS SEED
"""
import json, math, sys

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

path, n, size, draws, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.manual_seed(seed)
imgs = np.fromfile(path, dtype=np.uint8).reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)
pil = [Image.fromarray(np.ascontiguousarray(x)) for x in imgs]

crop = T.RandomResizedCrop(size, scale=(0.08, 1.0))
jitter = T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)
STAGES = {
    "crop": T.Compose([crop, T.RandomHorizontalFlip(), T.ToTensor()]),
    "crop+jitter": T.Compose([crop, jitter, T.RandomHorizontalFlip(), T.ToTensor()]),
    "full": T.Compose([crop, jitter, T.RandomGrayscale(p=0.2), T.RandomHorizontalFlip(), T.ToTensor()]),
}


def pixel_stats(a, b):
    """a, b: N×3×S×S in [0, 1], the two views."""
    x = torch.cat([a, b])
    flat_a, flat_b = a.flatten(1), b.flatten(1)
    ca = flat_a - flat_a.mean(1, keepdim=True)
    cb = flat_b - flat_b.mean(1, keepdim=True)
    corr = (ca * cb).sum(1) / (ca.norm(dim=1) * cb.norm(dim=1)).clamp_min(1e-12)
    return {
        "mean": [round(v, 4) for v in x.mean((0, 2, 3)).tolist()],
        "std": [round(v, 4) for v in x.std((0, 2, 3)).tolist()],
        "at_0": round((x <= 0.5 / 255).float().mean().item(), 4),
        "at_1": round((x >= 1 - 0.5 / 255).float().mean().item(), 4),
        "hist16": [round(v, 4) for v in (torch.histc(x, 16, 0, 1) / x.numel()).tolist()],
        "view_corr": round(corr.mean().item(), 4),
    }


out = {"stages": {}}
for name, t in STAGES.items():
    a = torch.stack([t(p) for p in pil])
    b = torch.stack([t(p) for p in pil])
    out["stages"][name] = pixel_stats(a, b)

probe = Image.new("RGB", (32, 32))
areas, aspects = [], []
for _ in range(draws):
    i, j, h, w = T.RandomResizedCrop.get_params(probe, (0.08, 1.0), (3 / 4, 4 / 3))
    areas.append(h * w / 1024)
    aspects.append(math.log(w / h))
cj = T.ColorJitter(0.4, 0.4, 0.4, 0.1)
fac = {"brightness": [], "contrast": [], "saturation": [], "hue": []}
for _ in range(draws):
    _, b, c, s, h = T.ColorJitter.get_params(cj.brightness, cj.contrast, cj.saturation, cj.hue)
    for k, v in zip(fac, (b, c, s, h)):
        fac[k].append(v)


def dist(v):
    v = np.asarray(v)
    return {"mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4),
            "q10": round(float(np.quantile(v, 0.1)), 4), "q50": round(float(np.quantile(v, 0.5)), 4), "q90": round(float(np.quantile(v, 0.9)), 4)}


out["crop_area"] = dist(areas)
out["crop_log_aspect"] = dist(aspects)
out["jitter"] = {k: dist(v) for k, v in fac.items()}
print(json.dumps(out))
