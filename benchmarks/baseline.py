"""The same step written the plain way: nn.Linear critic, autograd (double backward for the
penalty), torch.optim.SGD, torch.randn minibatches; one simulation at a time. The yardstick
for the engine's closed-form, batched step."""
from __future__ import annotations

import math

import torch
from torch import nn


class PlainSim:
    def __init__(self, N=256, M=256, H=128, K=8, R=2.0, std=0.05, ratio=0.1, gamma=0.2, lr_d=0.01, lr_g=0.1,
                 seed=0, dtype=torch.float32, device="cpu"):
        self.g = torch.Generator(device=device).manual_seed(seed)
        self.N, self.M, self.std, self.ratio, self.gamma, self.lr_g = N, M, std, ratio, gamma, lr_g
        th = 2 * math.pi * torch.arange(K) / K
        self.centers = torch.stack([R * th.cos(), R * th.sin()], 1).to(device=device, dtype=dtype)
        self.D = nn.Sequential(nn.Linear(2, H), nn.ReLU(), nn.Linear(H, 1)).to(device=device, dtype=dtype)
        self.opt = torch.optim.SGD(self.D.parameters(), lr=lr_d, maximize=True)
        self.x = 0.1 * torch.randn(N, 2, generator=self.g, dtype=dtype, device=device)

    def step(self):
        idx = torch.randint(0, self.centers.shape[0], (self.M,), generator=self.g, device=self.x.device)
        y = self.centers[idx] + self.std * torch.randn(self.M, 2, generator=self.g, dtype=self.x.dtype,
                                                       device=self.x.device)
        z = torch.cat([y, self.x]).requires_grad_(True)
        out = self.D(z).squeeze(1)
        J = out[: self.M].mean() - out[self.M:].mean()
        g = torch.autograd.grad(out.sum(), z, create_graph=True)[0]
        J = J - 0.5 * self.gamma * (g * g).sum(1).mean()
        self.opt.zero_grad()
        J.backward()
        self.opt.step()
        x = self.x.clone().requires_grad_(True)
        F = torch.autograd.grad(self.D(x).sum(), x)[0]
        g1, g2 = 1.0, self.ratio
        self.x = self.x + self.lr_g / self.N * ((g1 - g2) * F + g2 * F.sum(0, keepdim=True))
