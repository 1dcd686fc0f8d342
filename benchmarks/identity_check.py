"""Refactoring check: train one short run per method and fingerprint the weights.

A refactor that must not change results (issue 12) is checked by running this before and after
and comparing the fingerprints: each method trains ``--steps`` steps of its SynthRef config on a
small batch (CPU, one thread, no loader workers), then the SHA-256 of every tensor of the final
model and of the method's state is printed and written as JSON::

    python benchmarks/identity_check.py --out before.json            # on the old commit
    python benchmarks/identity_check.py --out after.json --against before.json

``--against`` exits 1 when a fingerprint differs.

``--stand-ins`` fingerprints the pretraining world instead: each foundation stand-in (mask model,
dual encoder with and without regions, captioner, grounder with the objects and film bodies) is
pretrained with a tiny config for three steps through its ``pretrain_*`` function into a temporary
folder, and the folder's weights are hashed (a move of the training code, issue 35 step 1, must not
change them)::

    python benchmarks/identity_check.py --stand-ins --out before.json
    python benchmarks/identity_check.py --stand-ins --out after.json --against before.json

``--cells RUN [RUN …]`` is the full check on finished grid cells: each cell is trained again from
its own ``config.yaml`` (one thread, as the grid runs them) into a temporary folder and its final
weights are compared tensor by tensor with the cell's ``last/model.safetensors``::

    OMP_NUM_THREADS=1 python benchmarks/identity_check.py --cells runs/synthref_table1/synthref/l2l_1_s22 Needs the SynthRef data and priors of the
default configs (``l2l data synth --out runs/data/synthref --num-images 2000 --seed 0`` and
``l2l priors generate --data runs/data/synthref --subset all --out runs/data/synthref_priors``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
METHODS = {
    "supervised": "synthref_semi.yaml",
    "fixmatch": "synthref_semi.yaml",
    "prior-fusion": "synthref_semi.yaml",
    "agreement-filter": "synthref_semi.yaml",
    "catm": "synthref_semi.yaml",
    "static-threshold": "synthref_l2l.yaml",
    "l2l": "synthref_l2l.yaml",
}


def fingerprint(obj) -> str:
    """SHA-256 over the bytes of every tensor (sorted by key), recursively."""
    h = hashlib.sha256()

    def visit(key: str, v) -> None:
        if isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous()
            h.update(key.encode() + str(t.dtype).encode() + str(tuple(t.shape)).encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(v, dict):
            for k in sorted(v, key=str):
                visit(f"{key}.{k}", v[k])
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                visit(f"{key}[{i}]", x)
        elif isinstance(v, (int, float, str, bool)) or v is None:
            h.update(f"{key}={v!r}".encode())

    visit("", obj)
    return h.hexdigest()


def run(method: str, steps: int, overrides: list[str]) -> dict[str, str]:
    from l2l.config import load_config

    try:
        from l2l.schema import TrainConfig
    except ImportError:  # before issue 12
        from l2l.engine.trainer import TrainConfig

    cfg = load_config(
        TrainConfig,
        str(ROOT / "configs" / METHODS[method]),
        [
            f"method={method}",
            f"total_steps={steps}",
            "batch_size=4",
            "semi.unlabeled_batch_size=4",
            "semi.warmup_steps=5",
            "data.workers=0",
            "data.eval_max_samples=8",
            "ckpt_every=1000000",
            "log_every=5",
            "device=cpu",
            *overrides,
        ],
    )
    from l2l.engine.trainer import Trainer

    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(cfg, d, show_progress=False)
        out = tr.fit(resume=False)
        model_fp = fingerprint(tr.model.state_dict())
        metrics = [json.loads(line) for line in open(Path(d) / "metrics.jsonl")]
    losses = [round(m["loss"], 8) for m in metrics if "loss" in m]
    return {"model": model_fp, "losses": json.dumps(losses), "oIoU": f"{out['results'].get('oIoU', float('nan')):.6f}"}


def _pretraining_module(kind: str):
    """The module holding ``pretrain_<kind>``: ``l2l.pretrain.<kind>`` (issue 35 step 1 on), else
    ``l2l.foundation.<kind>`` (the layout before it), so that one script fingerprints both."""
    import importlib

    try:
        return importlib.import_module(f"l2l.pretrain.{kind}")
    except ModuleNotFoundError:
        return importlib.import_module(f"l2l.foundation.{kind}")


def stand_in_configs() -> dict[str, tuple[str, object]]:
    """name → (kind, tiny train config) of every stand-in target: three steps, a dozen pool images."""
    from l2l.data.pool import PoolConfig
    from l2l.foundation.captioner import CaptionerConfig
    from l2l.foundation.dual_encoder import DualEncoderConfig
    from l2l.foundation.grounder import GrounderConfig
    from l2l.foundation.mask_model import MaskModelConfig

    conv = (8, 8, 8, 8)
    common = dict(pool=PoolConfig(size=64), train_images=12, steps=3, workers=1, log_every=1)
    mask = MaskModelConfig(image_size=64, conv_channels=conv, dim=8, hypotheses=3, init=None)
    dual = DualEncoderConfig(crop_size=32, conv_channels=conv, embed_dim=8, init=None)
    region = DualEncoderConfig(
        crop_size=32,
        conv_channels=conv,
        embed_dim=8,
        init=None,
        regions=True,
        scene_size=64,
        context_dim=8,
        fuse_dim=16,
        text_queries=2,
    )
    cap = CaptionerConfig(conv_channels=conv, embed_dim=16, word_dim=8, hidden=16, init=None)
    ground = dict(image_size=64, conv_channels=conv, dim=16, layers=1, heads=2, init=None, dense_dim=16, roi=2)
    cfgs = {}
    for name, kind, cls, kw in (
        (
            "mask_model",
            "mask_model",
            "MaskTrainConfig",
            dict(model=mask, eval_images=3, batch_images=4, prompts_per_image=2),
        ),
        ("dual_encoder", "dual_encoder", "DualEncoderTrainConfig", dict(model=dual, batch_size=16)),
        ("dual_encoder_regions", "dual_encoder", "DualEncoderTrainConfig", dict(model=region, scenes_per_step=4)),
        ("captioner", "captioner", "CaptionerTrainConfig", dict(model=cap, batch_size=8)),
        (
            "grounder_objects",
            "grounder",
            "GrounderTrainConfig",
            dict(model=GrounderConfig(**ground, body="objects"), eval_images=3, batch_size=4, images_per_step=4),
        ),
        (
            "grounder_film",
            "grounder",
            "GrounderTrainConfig",
            dict(model=GrounderConfig(**ground, body="film"), eval_images=3, batch_size=4, images_per_step=0),
        ),
    ):
        cfgs[name] = (kind, getattr(_pretraining_module(kind), cls)(**{**common, **kw}))
    return cfgs


def pretrain_stand_ins() -> dict[str, dict[str, str]]:
    """Fingerprints of each stand-in's pretrained folder (weights, and the card's loss trajectory)."""
    from safetensors.torch import load_file

    res = {}
    for name, (kind, cfg) in stand_in_configs().items():
        with tempfile.TemporaryDirectory() as d:
            card = getattr(_pretraining_module(kind), f"pretrain_{kind}")(cfg, Path(d) / name, show_progress=False)
            weights = {f.name: load_file(str(f)) for f in sorted((Path(d) / name).glob("*.safetensors"))}
        res[name] = {"model": fingerprint(weights), "losses": json.dumps(card.get("trajectory", []))}
        print(f"{name:22s} weights {res[name]['model'][:16]}", flush=True)
    return res


def rerun_cell(run: Path) -> bool:
    from safetensors.torch import load_file

    from l2l.config import load_config
    from l2l.engine.trainer import Trainer
    from l2l.schema import TrainConfig

    cfg = load_config(TrainConfig, run / "config.yaml")
    with tempfile.TemporaryDirectory() as d:
        Trainer(cfg, d, show_progress=False).fit(resume=False)
        new = load_file(str(Path(d) / "last" / "model.safetensors"))
    old = load_file(str(run / "last" / "model.safetensors"))
    same = set(old) == set(new) and all(torch.equal(old[k], new[k]) for k in old)
    print(f"{run}: {len(old)} tensors, {'byte-identical' if same else 'DIFFERENT'}", flush=True)
    return same


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    ap.add_argument("--set", nargs="*", default=[], help="extra config overrides for every run")
    ap.add_argument("--out", default=None, help="write the fingerprints here (JSON)")
    ap.add_argument("--against", default=None, help="compare with fingerprints written earlier")
    ap.add_argument("--cells", nargs="*", default=[], help="finished run folders to train again and compare")
    ap.add_argument(
        "--stand-ins", action="store_true", help="fingerprint the foundation stand-ins' pretraining instead"
    )
    args = ap.parse_args()
    if args.cells:
        return 0 if all([rerun_cell(Path(c)) for c in args.cells]) else 1
    torch.set_num_threads(1)
    res = {}
    if args.stand_ins:
        res = pretrain_stand_ins()
    for m in [] if args.stand_ins else args.methods:
        res[m] = run(m, args.steps, args.set)
        print(f"{m:18s} model {res[m]['model'][:16]}  oIoU {res[m]['oIoU']}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))
    if args.against:
        old = json.loads(Path(args.against).read_text())
        bad = [m for m in res if m in old and old[m] != res[m]]
        for m in bad:
            print(f"DIFFERENT: {m}: " + ", ".join(k for k in res[m] if res[m][k] != old[m].get(k)))
        print("identical" if not bad else f"{len(bad)} of {len(res)} differ")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
