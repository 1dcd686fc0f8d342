"""Dataset statistics: counts per split, expression-length buckets, objects per image."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .refer import LENGTH_BUCKETS, ReferDataset, length_bucket


def dataset_stats(ds: ReferDataset) -> dict[str, Any]:
    """Per split: images, refs, sentences, words per sentence, length buckets, objects per image,
    same-category distractors per ref, and expression kinds where the dataset tags them."""
    out: dict[str, Any] = {"dataset": ds.name, "splits": {}}
    for split in ds.splits:
        samples = ds.samples(split)
        images = {s.image_id for s in samples}
        refs = {s.ref_id for s in samples}
        lens = np.array([s.n_words for s in samples])
        objs = np.array([len(ds.image_anns(i)) for i in images])
        same = []
        for r in refs:
            ref = ds.refs[r]
            cat = ds.anns[int(ref["ann_id"])]["category_id"]
            same.append(sum(1 for a in ds.image_anns(int(ref["image_id"])) if ds.anns[a]["category_id"] == cat) - 1)
        out["splits"][split] = {
            "images": len(images),
            "refs": len(refs),
            "sentences": len(samples),
            "words_mean": round(float(lens.mean()), 2) if len(lens) else 0.0,
            "length_buckets": {
                name: int(c)
                for name, c in (
                    (n, sum(1 for s in samples if length_bucket(s.n_words) == n)) for n, _, _ in LENGTH_BUCKETS
                )
            },
            "objects_per_image_mean": round(float(objs.mean()), 2) if len(objs) else 0.0,
            "same_category_distractors_per_ref": round(float(np.mean(same)), 2) if same else 0.0,
            "kinds": dict(sorted(Counter(s.kind for s in samples if s.kind).items())),
        }
    return out


def format_stats(stats: dict[str, Any]) -> str:
    """A plain-text table of :func:`dataset_stats`."""
    buckets = [b for b, _, _ in LENGTH_BUCKETS]
    head = (
        f"{'split':<8}{'images':>8}{'refs':>8}{'sents':>8}{'words':>7}"
        + "".join(f"{b:>7}" for b in buckets)
        + f"{'obj/img':>9}{'same-cat':>10}"
    )
    lines = [f"dataset: {stats['dataset']}", head, "-" * len(head)]
    for split, s in stats["splits"].items():
        lines.append(
            f"{split:<8}{s['images']:>8}{s['refs']:>8}{s['sentences']:>8}{s['words_mean']:>7}"
            + "".join(f"{s['length_buckets'][b]:>7}" for b in buckets)
            + f"{s['objects_per_image_mean']:>9}{s['same_category_distractors_per_ref']:>10}"
        )
    kinds = {k for s in stats["splits"].values() for k in s["kinds"]}
    if kinds:
        lines.append("")
        lines.append(
            "expression kinds (sentences): "
            + "; ".join(
                f"{split}: " + ", ".join(f"{k} {n}" for k, n in s["kinds"].items())
                for split, s in stats["splits"].items()
            )
        )
    return "\n".join(lines)
