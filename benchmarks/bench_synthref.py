"""SynthRef generation speed: wall time for N images (default 10,000) with all cores.

python benchmarks/bench_synthref.py [--images 10000] [--workers N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time

from l2l.data.synthref import SynthRefConfig, generate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    out = a.out or tempfile.mkdtemp(prefix="synthref_bench_")
    t = time.perf_counter()
    meta = generate(
        SynthRefConfig(images=a.images, image_size=a.size), out, workers=a.workers, force=True, show_progress=False
    )
    dt = time.perf_counter() - t
    sents = sum(v["sentences"] for v in meta["counts"].values())
    print(
        json.dumps(
            {
                "benchmark": "synthref_generation",
                "images": a.images,
                "image_size": a.size,
                "workers": a.workers or os.cpu_count(),
                "seconds": round(dt, 1),
                "images_per_s": round(a.images / dt, 1),
                "sentences": sents,
                "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
            }
        )
    )
    if not a.out:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
