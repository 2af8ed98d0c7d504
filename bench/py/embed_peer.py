#!/usr/bin/python3
"""The PyTorch loop `moco index` is compared with: torchvision ImageFolder + DataLoader + the same CIFAR-stem
ResNet-18 (weights from a safetensors file in torchvision names), eval mode, L2-normalised pooled features.
Prints one JSON line: images/s of the whole loop (decode included): timed from just before the DataLoader is
iterated (so its workers' start is inside, as our decode workers' start is inside `moco index`'s embedMs) to the
last batch's features; interpreter start, imports, the model build and the ImageFolder scan are outside. With
--out, the features as safetensors (to compare with ours row by row).
Run with /usr/bin/python3 (Debian's python3-torch 1.13, python3-torchvision 0.14)."""
import argparse, json, os, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock

p = argparse.ArgumentParser()
p.add_argument("data")
p.add_argument("weights")
p.add_argument("--batch-size", type=int, default=64)
p.add_argument("--workers", type=int, default=2)
p.add_argument("--threads", type=int, default=os.cpu_count())
p.add_argument("--out")
a = p.parse_args()
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "py"))
from st import load, save  # noqa: E402

torch.set_num_threads(a.threads)
sd, _ = load(a.weights)
w = sd["conv1.weight"].shape[0]


class Net(nn.Module):
    """torchvision's ResNet-18 layout with a CIFAR stem (3×3 s1 conv, no max-pool) and first-stage width w."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        cin, layers = w, []
        for i, cout in enumerate([w, 2 * w, 4 * w, 8 * w]):
            s = 1 if i == 0 else 2
            down = nn.Sequential(nn.Conv2d(cin, cout, 1, s, bias=False), nn.BatchNorm2d(cout)) if s != 1 or cin != cout else None
            layers.append(nn.Sequential(BasicBlock(cin, cout, s, down), BasicBlock(cout, cout)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


net = Net()
missing, unexpected = net.load_state_dict({k: v for k, v in sd.items() if not k.startswith("fc.")}, strict=False)
missing = [k for k in missing if not k.endswith("num_batches_tracked")]
assert not missing and not unexpected, (missing, unexpected)
net.eval()
tf = torchvision.transforms.Compose([
    torchvision.transforms.ToTensor(),
    torchvision.transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
])
ds = torchvision.datasets.ImageFolder(a.data, transform=tf)
dl = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, num_workers=a.workers, shuffle=False)
t0 = time.perf_counter()
feats = []
with torch.no_grad():
    for x, _ in dl:
        feats.append(F.normalize(net(x), dim=1))
dt = time.perf_counter() - t0
f = torch.cat(feats)
if a.out:
    save({"features": f.contiguous()}, a.out)
print(json.dumps({"images": len(ds), "seconds": dt, "imagesPerS": len(ds) / dt}))
