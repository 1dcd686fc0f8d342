"""RPLE — Reinforced Pseudo-Label Exploration (docs/spec.md §5; paper §3.4, App. B.3).

One RL step is one unlabeled sample's visit. Sizes follow the paper's parameter count
(0.009539 M for actor + critic): actor 6→64→64→2, critic 8→64→64→1, ReLU, plus target copies.

* state (Eq. 7): ``s = [mean(P̃), std(P̃), r_fg, r_bg, r_ign, a]``, the r's being the shares of
  pixels the sample's *previous* thresholds put in foreground / background / ignored;
* action: ``(τ_fg, τ_bg)`` = actor output through a sigmoid mapped to [0.5, 0.99] × [0.01, 0.5]
  [ours]; the output bias starts the policy at (0.70, 0.20) [paper]; Gaussian exploration with
  std 0.1 in the pre-sigmoid space [ours];
* pseudo-label: foreground where ``P̃ ≥ τ_fg``, background where ``P̃ ≤ τ_bg``, ignored (255)
  otherwise, plus an ignored band around the boundaries between these three regions [paper: "a
  3-pixel-wide band around region boundaries"]: every pixel within ``band`` px (Chebyshev) of a
  pixel of another region (``band_regions="foreground"``: around the foreground region only, the
  layout before issue 33);
* scores with the weak prediction ``p_w`` [ours]: separability (Eq. 9) ``σ((μ_fg − μ_bg)/T)``,
  consistency (Eq. 10) ``1 − mean_S |p_w − P̃|``, coverage (Eq. 11) ``|S|/|Ω|``;
* gain (Eq. 8) = λ·(scores of the action − scores of the static (0.70, 0.20)) −
  λ_stab ‖a_t − a_{t−1}‖²; reward (Eq. 12) = clip(G / σ_G, −1, 1), σ_G a running RMS of G
  (``reward_scale="rms"`` [ours]: on SynthRef the mini-batch means of the raw gain are 1e-5–1e-4,
  docs/semi.md; ``"none"`` = clip(G, −1, 1));
* DDPG (Eqs. 13–14): ``y = r + γ Q'(s', μ'(s'))``, critic loss ``(Q(s, a) − y)²``, actor loss
  ``−Q(s, μ(s))``, soft target updates with τ = 0.005; one Adam learning rate for both [paper;
  its value was lost: ``lr`` = 1e-3 ours] (``lr=None``: the pair ``lr_actor`` / ``lr_critic``).
  ``s'`` is the same sample's state at its next visit (``next_state="sample"``) or the state at
  the same position of the next mini-batch (``"batch"``, the layout before issue 33).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import IGNORE_INDEX as IGNORE  # the one ignore index
from ..errors import UsageError


@dataclass
class RPLEConfig:
    tau_fg_range: tuple[float, float] = (0.5, 0.99)
    tau_bg_range: tuple[float, float] = (0.01, 0.5)
    init_thresholds: tuple[float, float] = (0.70, 0.20)  # [paper]; also the static default of Eq. 8
    noise_std: float = 0.1
    band: int = 3  # ignored band's half-width in pixels at the training size (set from semi.band)
    band_regions: str = "all"  # set from semi.band_regions (all: every region boundary [paper]; foreground)
    temperature: float = 0.1  # T of Eq. 9
    lambdas: tuple[float, float, float, float] = (1.0, 1.0, 0.5, 0.1)  # sep, con, cov, stab
    terms: tuple[str, ...] = ("sep", "con", "cov", "stab")  # remove one for the reward ablations
    buffer_size: int = 10_000
    gamma: float = 0.99
    tau: float = 0.005
    lr: float | None = 1e-3  # one rate for actor and critic [paper; value ours]; None: lr_actor / lr_critic
    lr_actor: float = 1e-4  # [ours] used only with lr=None
    lr_critic: float = 1e-3  # [ours] used only with lr=None
    update_batch: int = 64  # transitions per update [ours]
    next_state: str = "sample"  # sample: s' = the sample's next visit; batch: the next mini-batch's row
    reward_scale: str = "rms"  # rms: G divided by its running RMS before the clip [ours]; none: clip(G)
    reward_momentum: float = 0.99  # of the running RMS [ours]
    actor_start: int = 0  # transitions in the buffer before the actor learns (the critic learns from the first) [ours]

    def __post_init__(self) -> None:
        for key, allowed in (
            ("band_regions", ("all", "foreground")),
            ("next_state", ("sample", "batch")),
            ("reward_scale", ("rms", "none")),
        ):
            if getattr(self, key) not in allowed:
                raise UsageError(f"semi.rple.{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if self.lr is not None and not self.lr > 0:
            raise UsageError(f"semi.rple.lr must be > 0 or null, got {self.lr}")


def _mlp(i: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, o))


class Actor(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _mlp(6, 2)

    def forward(self, s: torch.Tensor) -> torch.Tensor:  # pre-sigmoid action
        return self.net(s)


class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _mlp(8, 1)

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([s, a], -1)).squeeze(-1)


def _inv_sigmoid(y: float) -> float:
    return math.log(y / (1 - y))


# ----------------------------------------------------------------------------- pseudo-labels and scores
def thresholds_from(u: torch.Tensor, cfg: RPLEConfig) -> torch.Tensor:
    """(B, 2) pre-sigmoid actions → (τ_fg, τ_bg) in their ranges."""
    (f0, f1), (b0, b1) = cfg.tau_fg_range, cfg.tau_bg_range
    s = torch.sigmoid(u)
    return torch.stack([f0 + (f1 - f0) * s[:, 0], b0 + (b1 - b0) * s[:, 1]], -1)


def _box_count(x: torch.Tensor, r: int) -> torch.Tensor:
    """(B, H, W) sums of ``x`` over the (2r+1)² window around each pixel, clipped to the image
    (summed-area table: O(1) per pixel, ~30× faster than max pooling on CPU)."""
    k = 2 * r + 1
    c = F.pad(x, (r + 1, r, r + 1, r)).cumsum(1).cumsum(2)
    return c[:, k:, k:] - c[:, :-k, k:] - c[:, k:, :-k] + c[:, :-k, :-k]


def pseudo_label(p: torch.Tensor, thr: torch.Tensor, band: int = 3, regions: str = "all") -> torch.Tensor:
    """(B, H, W) labels in {0, 1, 255} from P̃ (B, H, W) and thresholds (B, 2).

    The band (``band`` = its half-width r in pixels): with ``regions="all"`` every pixel whose
    (2r+1)² window holds a pixel of another region (foreground, background, ignored) [paper:
    region boundaries]; with ``"foreground"`` the pixels whose window holds both foreground and
    non-foreground pixels, i.e. dilation minus erosion of the foreground."""
    fg = p >= thr[:, 0, None, None]
    bg = p <= thr[:, 1, None, None]
    lab = torch.where(fg, 1, torch.where(bg, 0, IGNORE)).long()
    if band > 0:
        f = fg.float()
        n_fg = _box_count(f, band)
        n_all = _box_count(torch.ones_like(f[:1]), band)
        mixed = (n_fg > 0.5) & (n_fg < n_all - 0.5)  # foreground and something else in the window
        if regions == "all":
            n_bg = _box_count(bg.float(), band)
            n_ign = n_all - n_fg - n_bg
            mixed = mixed | ((n_bg > 0.5) & (n_bg < n_all - 0.5)) | ((n_ign > 0.5) & (n_ign < n_all - 0.5))
        lab = torch.where(mixed, IGNORE, lab)
    return lab


def label_shares(lab: torch.Tensor) -> torch.Tensor:
    """(B, 3): shares of foreground, background and ignored pixels."""
    n = lab[0].numel()
    return (
        torch.stack(
            [(lab == 1).flatten(1).sum(1), (lab == 0).flatten(1).sum(1), (lab == IGNORE).flatten(1).sum(1)], -1
        ).float()
        / n
    )


def scores(p_w: torch.Tensor, p_cal: torch.Tensor, lab: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """(B, 3): separability (Eq. 9), consistency (Eq. 10), coverage (Eq. 11).

    An empty class has mean 0.5 in Eq. 9 and an empty selection consistency 0 [ours]."""
    fg, bg = (lab == 1).flatten(1).float(), (lab == 0).flatten(1).float()
    pw, pc = p_w.flatten(1), p_cal.flatten(1)
    mu_fg = torch.where(fg.sum(1) > 0, (pw * fg).sum(1) / fg.sum(1).clamp_min(1), torch.full_like(pw[:, 0], 0.5))
    mu_bg = torch.where(bg.sum(1) > 0, (pw * bg).sum(1) / bg.sum(1).clamp_min(1), torch.full_like(pw[:, 0], 0.5))
    sep = torch.sigmoid((mu_fg - mu_bg) / temperature)
    sel = fg + bg
    con = torch.where(
        sel.sum(1) > 0, 1 - ((pw - pc).abs() * sel).sum(1) / sel.sum(1).clamp_min(1), torch.zeros_like(sep)
    )
    cov = sel.sum(1) / sel.shape[1]
    return torch.stack([sep, con, cov], -1)


def _weighted_sum(
    d: torch.Tensor, stab: torch.Tensor | None, cfg: RPLEConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 8's sum from the score differences ``d`` (..., 3) and the stability penalty ``‖a_t − a_{t−1}‖²``
    (None: left out), over the terms of ``cfg.terms``; returns G and its weighted terms."""
    ls, lc, lv, lt = cfg.lambdas
    terms = {"sep": ls * d[..., 0], "con": lc * d[..., 1], "cov": lv * d[..., 2]}
    if stab is not None:
        terms["stab"] = -lt * stab
    parts = [v for k, v in terms.items() if k in cfg.terms]
    g = torch.zeros_like(d[..., 0])
    if parts:  # summed left to right, as Python's sum() did: the same rounding, the same runs
        g = parts[0]
        for v in parts[1:]:
            g = g + v
    return g, terms


def gain(
    p_w: torch.Tensor, p_cal: torch.Tensor, thr: torch.Tensor, prev_thr: torch.Tensor, cfg: RPLEConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 8: the instructional gain G (B,) of the chosen thresholds over the static default, and its terms."""
    default = torch.tensor(cfg.init_thresholds, device=thr.device).expand_as(thr)
    s_a = scores(p_w, p_cal, pseudo_label(p_cal, thr, cfg.band, cfg.band_regions), cfg.temperature)
    s_0 = scores(p_w, p_cal, pseudo_label(p_cal, default, cfg.band, cfg.band_regions), cfg.temperature)
    return _weighted_sum(s_a - s_0, (thr - prev_thr).pow(2).sum(-1), cfg)


def reward(
    p_w: torch.Tensor, p_cal: torch.Tensor, thr: torch.Tensor, prev_thr: torch.Tensor, cfg: RPLEConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eqs. 8 and 12 without scaling: ``clip(G, −1, 1)`` and the terms (:meth:`RPLE.scale` scales first)."""
    g, terms = gain(p_w, p_cal, thr, prev_thr, cfg)
    return g.clamp(-1.0, 1.0), terms


def threshold_grid(cfg: RPLEConfig, step: float = 0.05) -> torch.Tensor:
    """(K, 2) every (τ_fg, τ_bg) on a ``step`` grid inside the action ranges (the landscape probe's points)."""
    (f0, f1), (b0, b1) = cfg.tau_fg_range, cfg.tau_bg_range
    fg = torch.arange(f0, f1 + 1e-9, step)
    bg = torch.arange(b0, b1 + 1e-9, step)
    return torch.cartesian_prod(fg, bg).float()


def landscape(p_w: torch.Tensor, p_cal: torch.Tensor, cfg: RPLEConfig, grid: torch.Tensor) -> torch.Tensor:
    """(B, K): Eq. 8's gain without its stability term for every sample and every grid point [ours].

    The stability term depends on the sample's previous thresholds, not on the maps; left out, the
    argmax over the grid is the one-step optimum the critic can learn at best (telemetry only)."""
    b, k = p_cal.shape[0], grid.shape[0]
    thr = grid.to(p_cal.device).repeat(b, 1)  # sample-major: rows i*k .. i*k+k-1 belong to sample i
    pw, pc = p_w.repeat_interleave(k, 0), p_cal.repeat_interleave(k, 0)
    default = torch.tensor(cfg.init_thresholds, device=pc.device).expand(b, 2)
    s_a = scores(pw, pc, pseudo_label(pc, thr, cfg.band, cfg.band_regions), cfg.temperature).view(b, k, 3)
    s_0 = scores(p_w, p_cal, pseudo_label(p_cal, default, cfg.band, cfg.band_regions), cfg.temperature)
    return _weighted_sum(s_a - s_0[:, None], None, cfg)[0]


def state(
    p_cal: torch.Tensor, prev_thr: torch.Tensor, a: torch.Tensor, band: int = 3, regions: str = "all"
) -> torch.Tensor:
    """Eq. 7: (B, 6) = [mean(P̃), std(P̃), r_fg, r_bg, r_ign, a] under the previous thresholds."""
    flat = p_cal.flatten(1)
    shares = label_shares(pseudo_label(p_cal, prev_thr, band, regions))
    return torch.cat([flat.mean(1, keepdim=True), flat.std(1, keepdim=True), shares, a.view(-1, 1)], -1)


# ----------------------------------------------------------------------------- DDPG
@dataclass
class ReplayBuffer:
    capacity: int
    s: torch.Tensor = field(init=False)
    a: torch.Tensor = field(init=False)
    r: torch.Tensor = field(init=False)
    s2: torch.Tensor = field(init=False)
    n: int = 0
    pos: int = 0

    def __post_init__(self) -> None:
        self.s, self.a = torch.zeros(self.capacity, 6), torch.zeros(self.capacity, 2)
        self.r, self.s2 = torch.zeros(self.capacity), torch.zeros(self.capacity, 6)

    def add(self, s: torch.Tensor, a: torch.Tensor, r: torch.Tensor, s2: torch.Tensor) -> None:
        for i in range(s.shape[0]):
            self.s[self.pos], self.a[self.pos], self.r[self.pos], self.s2[self.pos] = s[i], a[i], r[i], s2[i]
            self.pos = (self.pos + 1) % self.capacity
            self.n = min(self.n + 1, self.capacity)

    def sample(self, k: int, generator: torch.Generator | None = None):
        idx = torch.randint(self.n, (k,), generator=generator)
        return self.s[idx], self.a[idx], self.r[idx], self.s2[idx]

    def state_dict(self) -> dict[str, Any]:
        return {
            "s": self.s[: self.n].clone(),
            "a": self.a[: self.n].clone(),
            "r": self.r[: self.n].clone(),
            "s2": self.s2[: self.n].clone(),
            "pos": self.pos,
            "n": self.n,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        n = int(d["n"])
        self.s[:n], self.a[:n], self.r[:n], self.s2[:n] = d["s"], d["a"], d["r"], d["s2"]
        self.n, self.pos = n, int(d["pos"])


class RPLE(nn.Module):
    """Actor, critic, their targets, the replay buffer and the optimisers. Training-time only."""

    def __init__(self, cfg: RPLEConfig | None = None):
        super().__init__()
        self.cfg = cfg or RPLEConfig()
        self.actor, self.critic = Actor(), Critic()
        # the initial policy gives (0.70, 0.20) for any state [paper]
        last = self.actor.net[-1]
        nn.init.zeros_(last.weight)
        (f0, f1), (b0, b1) = self.cfg.tau_fg_range, self.cfg.tau_bg_range
        tf, tb = self.cfg.init_thresholds
        with torch.no_grad():
            last.bias.copy_(torch.tensor([_inv_sigmoid((tf - f0) / (f1 - f0)), _inv_sigmoid((tb - b0) / (b1 - b0))]))
        self.actor_t, self.critic_t = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        for p in list(self.actor_t.parameters()) + list(self.critic_t.parameters()):
            p.requires_grad_(False)
        lr_a, lr_c = (self.cfg.lr, self.cfg.lr) if self.cfg.lr is not None else (self.cfg.lr_actor, self.cfg.lr_critic)
        self.opt_actor = torch.optim.Adam(self.actor.parameters(), lr=lr_a, foreach=True)
        self.opt_critic = torch.optim.Adam(self.critic.parameters(), lr=lr_c, foreach=True)
        self.buffer = ReplayBuffer(self.cfg.buffer_size)
        self.gain_ms: torch.Tensor
        self.gain_n: torch.Tensor
        self.register_buffer("gain_ms", torch.zeros(()))  # running mean square of G (reward_scale=rms)
        self.register_buffer("gain_n", torch.zeros((), dtype=torch.long))

    def scale(self, g: torch.Tensor) -> torch.Tensor:
        """Eq. 12: ``clip(G / σ_G, −1, 1)`` with σ_G the running RMS of G (``reward_scale="rms"``; the
        first batch sets it), or ``clip(G, −1, 1)`` (``"none"``). Updates the running RMS."""
        if self.cfg.reward_scale == "none" or g.numel() == 0:
            return g.clamp(-1.0, 1.0)
        ms = g.double().pow(2).mean().float()
        m = self.cfg.reward_momentum
        self.gain_ms.copy_(ms if int(self.gain_n) == 0 else m * self.gain_ms + (1 - m) * ms)
        self.gain_n += 1
        return (g / self.gain_ms.sqrt().clamp_min(1e-12)).clamp(-1.0, 1.0)

    def num_params(self) -> int:
        """Actor + critic (the paper's 0.009539 M; targets are copies)."""
        return sum(p.numel() for m in (self.actor, self.critic) for p in m.parameters())

    @torch.no_grad()
    def act(self, s: torch.Tensor, explore: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        u = self.actor(s)
        if explore and self.cfg.noise_std > 0:
            u = u + self.cfg.noise_std * torch.randn(u.shape, generator=generator)
        return thresholds_from(u, self.cfg)

    def update(self, generator: torch.Generator | None = None) -> dict[str, float]:
        """One DDPG update from the replay buffer (Eqs. 13–14) and soft target updates."""
        if self.buffer.n == 0:
            return {}
        s, a, r, s2 = self.buffer.sample(min(self.cfg.update_batch, self.buffer.n), generator)
        with torch.no_grad():
            y = r + self.cfg.gamma * self.critic_t(s2, thresholds_from(self.actor_t(s2), self.cfg))  # Eq. 13
        critic_loss = (self.critic(s, a) - y).pow(2).mean()  # Eq. 14
        self.opt_critic.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.opt_critic.step()
        logs = {"rple_critic_loss": float(critic_loss.detach())}
        if self.buffer.n >= self.cfg.actor_start:  # the actor follows a critic that has seen some data
            actor_loss = -self.critic(s, thresholds_from(self.actor(s), self.cfg)).mean()
            self.opt_actor.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.opt_actor.step()
            logs["rple_actor_loss"] = float(actor_loss.detach())
        with torch.no_grad():  # soft target updates θ' ← (1 − τ)θ' + τθ
            for net, tgt in ((self.actor, self.actor_t), (self.critic, self.critic_t)):
                torch._foreach_lerp_(list(tgt.parameters()), list(net.parameters()), self.cfg.tau)
        return logs
