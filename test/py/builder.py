"""The parts of MoCo v3's moco/builder.py that the tests' Python rebuilds (import from test/py)."""
import torch.nn as nn


def mlp(num_layers, input_dim, mlp_dim, output_dim, last_bn=True):
    """builder.py's MoCo._build_mlp: Linear without bias, then BN1d + ReLU between layers, a BN1d without affine last."""
    mods = []
    for i in range(num_layers):
        dim1 = input_dim if i == 0 else mlp_dim
        dim2 = output_dim if i == num_layers - 1 else mlp_dim
        mods.append(nn.Linear(dim1, dim2, bias=False))
        if i < num_layers - 1:
            mods.append(nn.BatchNorm1d(dim2))
            mods.append(nn.ReLU(inplace=True))
        elif last_bn:
            mods.append(nn.BatchNorm1d(dim2, affine=False))
    return nn.Sequential(*mods)
