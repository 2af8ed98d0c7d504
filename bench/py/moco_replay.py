"""PyTorch replay of a moco-ts run: the same initial weights and queue, the same batches of views and the same
key permutations, through a MoCo step written as moco/builder.py and main_moco.py's SGD. bench/learning dumps
what moco-ts saw and compares the two loss curves: where they agree, the step, optimiser and SplitBN are
exonerated and a learning gap lies in what feeds them (initialisation, views, sampling).

usage: moco_replay.py DIR STEPS STEPS_PER_EPOCH EPOCHS WIDTH K M T LR WD BN_SPLITS THREADS BATCH SIZE
DIR holds init.safetensors (moco-ts state dict) and <step>.bin (xq, xk float32 N×3×S×S, then the int64 key
permutation). Prints one JSON line: {"losses": [...]}.
"""
import json, math, os, sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "py"))
from st import load  # noqa: E402

d = sys.argv[1]
steps, spe, epochs, width = (int(x) for x in sys.argv[2:6])
K, M, T, LR, WD = int(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8]), float(sys.argv[9]), float(sys.argv[10])
splits, threads, n, size = (int(x) for x in sys.argv[11:15])
torch.set_num_threads(threads)


class SplitBN(nn.BatchNorm2d):
    """The official CIFAR demo's SplitBatchNorm."""

    def __init__(self, c, splits):
        super().__init__(c)
        self.splits = splits

    def forward(self, x):
        if not self.training or self.splits == 1:
            return super().forward(x)
        n, c, h, w = x.shape
        rm, rv = self.running_mean.repeat(self.splits), self.running_var.repeat(self.splits)
        y = F.batch_norm(x.view(-1, c * self.splits, h, w), rm, rv, self.weight.repeat(self.splits),
                         self.bias.repeat(self.splits), True, self.momentum, self.eps).view(n, c, h, w)
        self.running_mean.copy_(rm.view(self.splits, c).mean(0))
        self.running_var.copy_(rv.view(self.splits, c).mean(0))
        return y


def norm(c):
    return SplitBN(c, splits)


class Block(nn.Module):
    """torchvision's BasicBlock, any width."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = norm(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = norm(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), norm(cout))

    def forward(self, x):
        idn = self.downsample(x) if self.downsample is not None else x
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + idn)


class ResNet18(nn.Module):
    """torchvision's resnet18 names with the CIFAR stem, so moco-ts's state dict loads as is."""

    def __init__(self, w, dim):
        super().__init__()
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False)
        self.bn1 = norm(w)
        self.relu = nn.ReLU(inplace=True)
        cin = w
        for i, cout in enumerate([w, 2 * w, 4 * w, 8 * w]):
            setattr(self, "layer%d" % (i + 1), nn.Sequential(Block(cin, cout, 1 if i == 0 else 2), Block(cout, cout, 1)))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, dim)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


init, _ = load(os.path.join(d, "init.safetensors"))
queue = init["queue"].clone()
dim = queue.shape[0]
q_enc, k_enc = ResNet18(width, dim), ResNet18(width, dim)
q_enc.load_state_dict({k[len("encoder_q."):]: v for k, v in init.items() if k.startswith("encoder_q.")})
k_enc.load_state_dict({k[len("encoder_k."):]: v for k, v in init.items() if k.startswith("encoder_k.")})
for p in k_enc.parameters():
    p.requires_grad = False
ptr = 0
opt = torch.optim.SGD(q_enc.parameters(), lr=LR, momentum=0.9, weight_decay=WD)
losses = []
for s in range(steps):
    if s % spe == 0:
        for g in opt.param_groups:
            g["lr"] = LR * 0.5 * (1 + math.cos(math.pi * (s // spe) / epochs))
    raw = np.fromfile(os.path.join(d, "%d.bin" % s), dtype=np.uint8)
    nv = n * 3 * size * size
    views = raw[: 8 * nv].view(np.float32)
    xq = torch.from_numpy(views[:nv].copy()).view(n, 3, size, size)
    xk = torch.from_numpy(views[nv:].copy()).view(n, 3, size, size)
    perm = torch.from_numpy(raw[8 * nv:].view(np.int64).copy())
    with torch.no_grad():
        for pq, pk in zip(q_enc.parameters(), k_enc.parameters()):
            pk.mul_(M).add_(pq, alpha=1 - M)
        k = F.normalize(k_enc(xk[perm]), dim=1)[torch.argsort(perm)]
    q = F.normalize(q_enc(xq), dim=1)
    l_pos = (q * k).sum(1, keepdim=True)
    l_neg = q @ queue
    logits = torch.cat([l_pos, l_neg], 1) / T
    loss = F.cross_entropy(logits, torch.zeros(n, dtype=torch.long))
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        queue[:, ptr:ptr + n] = k.t()
        ptr = (ptr + n) % K
    losses.append(loss.item())
print(json.dumps({"losses": losses}))
