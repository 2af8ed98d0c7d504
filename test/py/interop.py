"""Checkpoint fixtures and reference features for the interoperability tests (torch.save, torchvision).

usage:
  interop.py save-tv ARCH OUT zip|legacy [cifar]   seeded torchvision ResNet with non-trivial BN statistics
  interop.py save-moco ARCH OUT [zip|legacy]       a checkpoint shaped like the official MoCo v2 ones
  interop.py save-mocov3 ARCH OUT                   a checkpoint shaped like the official MoCo v3 ones (builder.py names)
  interop.py features CKPT IN OUT [cifar] [mlp]    features of IN's 'x' from a state dict (strict load)
  interop.py evil OUT MARKER                       a torch zip whose pickle calls os.system (touch MARKER)
"""
import os
import pickle
import sys

import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from builder import mlp  # noqa: E402
from st import load, save  # noqa: E402

torch.set_num_threads(2)


def resnet(arch, cifar=False, num_classes=1000, mlp=False):
    m = getattr(torchvision.models, arch)(num_classes=num_classes)
    if cifar:
        m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        m.maxpool = nn.Identity()
    if mlp:
        d = m.fc.weight.shape[1]
        m.fc = nn.Sequential(nn.Linear(d, d), nn.ReLU(), m.fc)
    return m


def randomise(m, seed):
    # Fresh-init BN has mean 0 / var 1 / gamma 1: randomise so that eval-mode BN folding is really tested.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                mod.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                mod.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                mod.bias.copy_(torch.randn(n, generator=g) * 0.1)
                mod.num_batches_tracked.fill_(1234)
    return m


def main():
    cmd = sys.argv[1]
    if cmd == "save-tv":
        arch, out, fmt = sys.argv[2:5]
        torch.manual_seed(0)
        m = randomise(resnet(arch, cifar="cifar" in sys.argv[5:]), 1)
        torch.save(m.state_dict(), out, _use_new_zipfile_serialization=(fmt == "zip"))
    elif cmd == "save-moco":
        arch, out = sys.argv[2:4]
        fmt = sys.argv[4] if len(sys.argv) > 4 else "zip"
        torch.manual_seed(0)
        q = randomise(resnet(arch, num_classes=128, mlp=True), 2)
        k = randomise(resnet(arch, num_classes=128, mlp=True), 3)
        sd = {}
        for n, t in q.state_dict().items():
            sd["module.encoder_q." + n] = t
        for n, t in k.state_dict().items():
            sd["module.encoder_k." + n] = t
        sd["module.queue"] = nn.functional.normalize(torch.randn(128, 4096), dim=0)
        sd["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
        params = [p for p in q.parameters()]
        opt = torch.optim.SGD(params, lr=0.03, momentum=0.9, weight_decay=1e-4)
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        opt.step()
        ckpt = {"epoch": 200, "arch": arch, "state_dict": sd, "optimizer": opt.state_dict()}
        torch.save(ckpt, out, _use_new_zipfile_serialization=(fmt == "zip"))
    elif cmd == "save-mocov3":
        # builder.py's MoCo_ResNet: base_encoder = ResNet whose fc is the 2-layer projector (Linear without bias,
        # BN1d, ReLU, Linear without bias, BN1d without affine); momentum_encoder its copy; predictor on the query side.
        arch, out = sys.argv[2:4]
        torch.manual_seed(0)

        base = randomise(resnet(arch, num_classes=64), 4)
        d = base.fc.weight.shape[1]
        base.fc = mlp(2, d, 512, 64, True)
        momentum = randomise(resnet(arch, num_classes=64), 5)
        momentum.fc = mlp(2, d, 512, 64, True)
        predictor = mlp(2, 64, 512, 64, False)
        sd = {}
        for prefix, m in (("module.base_encoder.", base), ("module.momentum_encoder.", momentum), ("module.predictor.", predictor)):
            for n, t in m.state_dict().items():
                sd[prefix + n] = t
        torch.save({"epoch": 100, "arch": arch, "state_dict": sd, "optimizer": {}}, out)
    elif cmd == "features":
        ckpt, inp, out = sys.argv[2:5]
        flags = sys.argv[5:]
        sd = torch.load(ckpt, map_location="cpu")
        if "state_dict" in sd and any(k.startswith("module.base_encoder.") for k in sd["state_dict"]):
            # MoCo v3: the backbone of the base encoder; the projector is not part of the features.
            p = "module.base_encoder."
            sd = {k[len(p):]: v for k, v in sd["state_dict"].items() if k.startswith(p) and not k.startswith(p + "fc.")}
        elif "state_dict" in sd:
            sd = {k[len("module.encoder_q."):]: v for k, v in sd["state_dict"].items() if k.startswith("module.encoder_q.")}
        arch = next(a for a in flags if a.startswith("resnet"))
        fc = sd.get("fc.weight", sd.get("fc.2.weight"))
        m = resnet(arch, cifar="cifar" in flags, num_classes=fc.shape[0] if fc is not None else 1000, mlp="mlp" in flags)
        if fc is None:
            m.fc = nn.Identity()
        m.load_state_dict(sd, strict=True)
        m.eval()
        x = load(inp)[0]["x"]
        with torch.no_grad():
            head = m.fc
            m.fc = nn.Identity()
            feat = m(x)
            o = {"feat": feat}
            if fc is not None:
                o["head"] = nn.functional.normalize(head(feat), dim=1)
        save(o, out)
    elif cmd == "evil":
        class Evil:
            def __reduce__(self):
                return (os.system, ("touch " + sys.argv[3],))
        import zipfile
        with zipfile.ZipFile(sys.argv[2], "w") as z:
            z.writestr("archive/data.pkl", pickle.dumps({"state_dict": Evil()}, protocol=2))
            z.writestr("archive/version", "3\n")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
