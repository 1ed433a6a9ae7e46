"""Which backbone, at which photo size: the pretrained model's accuracy against its cost per photo.

Each ImageNet backbone (MobileNet v1 0.75, MobileNetV2 1.0) looks at the photos at several sizes (its
convolutions take any size; the weights were trained at 224 px). For each, the frozen features of every
Kaggle photo that is not reserved (1,497: catdog's 500 reserved photos stay unseen here too), then k-fold
cross-validation of the head `catdog train pretrained` trains (photos also seen mirrored): every photo is
scored once, by a head that never saw it, so each accuracy counts ~1,500 verdicts instead of 500. Its cost:
the whole model's compiled graph (catdog.predict.predict_fn) on batches of 16, as the classifier runs it.

    python benchmarks/backbone_sizes.py --json benchmarks/backbone-sizes.json   # RESULTS.md, issue 43
    python benchmarks/backbone_sizes.py --smoke    # seconds: tiny sizes, checks the script, measures nothing
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CATDOG_SHARED") or REPO.parent / "shared").resolve()
# (backbone, photo size): MobileNet v1 at 224 px first, the lab's backbone before issue 43 (the cost baseline).
CANDIDATES = (
    ("mobilenet", 224),
    ("mobilenet", 288),
    ("mobilenet_v2", 224),
    ("mobilenet_v2", 256),
    ("mobilenet_v2", 288),
)
SMOKE_CANDIDATES = (CANDIDATES[0], CANDIDATES[-1])  # the cost baseline and the default: the script's paths
FOLDS = 3
COST_BATCH = 16


def features(kind, images, weights_dir):
    """The frozen backbone's pooled features of the photos and of their mirror images."""
    from catdog import models, transfer

    extract = transfer.feature_extractor(models.build_backbone(kind, weights_dir))
    return [extract.predict(batch, batch_size=32, verbose=0) for batch in (images, images[:, :, ::-1])]


def cross_validated(plain, mirrored, labels, folds: int) -> int:
    """Misses over every photo, each scored by the head trained on the other folds."""
    import keras
    import numpy as np

    from catdog import models, transfer

    order = np.random.default_rng(0).permutation(len(labels))
    missed = 0
    for fold, test in enumerate(np.array_split(order, folds)):
        train = np.setdiff1d(order, test)
        keras.utils.set_random_seed(fold)
        head = models.build_head(plain.shape[1])
        head.fit(
            np.concatenate([plain[train], mirrored[train]]),
            np.concatenate([labels[train], labels[train]]),
            batch_size=transfer.HEAD_BATCH_SIZE,
            epochs=transfer.HEAD_EPOCHS,
            verbose=0,
        )
        p_dog = head.predict(plain[test], verbose=0).reshape(-1)
        missed += int(((p_dog > 0.5) != (labels[test] > 0.5)).sum())
    return missed


def cost_ms(kind, head_inputs: int, weights_dir, rounds: int) -> float:
    """ms a photo for the whole model (pixels to p(dog)) on batches of 16, as the classifier calls it."""
    import numpy as np

    from catdog import models, predict

    model = models.assemble_pretrained(models.build_backbone(kind, weights_dir), models.build_head(head_inputs))
    run = predict.predict_fn(model)
    batch = np.zeros((COST_BATCH, kind.image_size, kind.image_size, 3), np.uint8)
    run(batch)
    started = time.perf_counter()
    for _ in range(rounds):
        run(batch)
    return (time.perf_counter() - started) * 1000 / (rounds * COST_BATCH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, not the figures")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    weights_dir = os.environ.get("CATDOG_WEIGHTS_DIR", str(SHARED / "models" / "imagenet"))
    work = Path(tempfile.mkdtemp(prefix="catdog-backbone-sizes-"))
    os.environ.setdefault("KERAS_HOME", str(work / "keras"))
    import catdog

    catdog.quiet_tensorflow()
    import numpy as np

    from catdog import models
    from catdog.data import image_files, load_arrays, prepare

    per_class = 8 if args.smoke else 1000  # 1000: every photo of the Kaggle set that is not reserved
    prepare(str(SHARED / "datasets" / "kaggle-dev"), work / "photos", per_class, cache_dir=work, progress=False)
    files = image_files(work / "photos", "training") + image_files(work / "photos", "validation")
    labels = np.array([label for _, label in files], dtype=np.float32)
    report: dict = {"cpus": os.cpu_count(), "photos": len(files), "folds": 2 if args.smoke else FOLDS, "runs": []}
    for name, size in SMOKE_CANDIDATES if args.smoke else CANDIDATES:
        kind = dataclasses.replace(models.BACKBONES[name], image_size=size)
        images = load_arrays([path for path, _ in files], size)
        plain, mirrored = features(kind, images, weights_dir)
        missed = cross_validated(plain, mirrored, labels, report["folds"])
        run = {
            "backbone": name,
            "input_px": size,
            "missed": missed,
            "accuracy": round(1 - missed / len(labels), 4),
            "ms_per_photo": round(cost_ms(kind, plain.shape[1], weights_dir, 2 if args.smoke else 20), 2),
        }
        report["runs"].append(run)
        print(run, flush=True)
    baseline = report["runs"][0]["ms_per_photo"]  # MobileNet v1 0.75 at 224 px, the backbone before issue 43
    print(f"{report['photos']} Kaggle photos (none reserved), {report['folds']}-fold cross-validation; 2 cores")
    print("| backbone | input | misses | accuracy | ms a photo, batches of 16 | cost against v1 at 224 px |")
    print("|---|---:|---:|---:|---:|---:|")
    for run in report["runs"]:
        run["cost_ratio"] = round(run["ms_per_photo"] / baseline, 2)
        print(
            f"| {run['backbone']} | {run['input_px']} px | {run['missed']} | {run['accuracy']:.4f} "
            f"| {run['ms_per_photo']:.1f} | {run['cost_ratio']:.2f}x |"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
