"""``catdog train quick`` and ``catdog train pretrained``: the two models, side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from catdog.cli.options import add_sample, add_seed_and_progress, sample
from catdog.config import Settings

DEFAULT_PRETRAINED_PER_CLASS = 500
DEFAULT_QUICK_PER_CLASS = 1000


def register(verbs) -> None:
    train = verbs.add_parser("train", help="train the quick CNN or the pretrained model")
    models = train.add_subparsers(dest="action", required=True, metavar="MODEL")
    register_quick(models)
    register_pretrained(models)


def register_quick(models) -> None:
    quick = models.add_parser(
        "quick",
        help="train the small from-scratch CNN (seconds on a laptop)",
        description="Train a small CNN from scratch on data/training, validate on data/validation, and "
        "save the model, its per-epoch history (JSON) and its training curves (PNG).",
    )
    quick.add_argument("--data", type=Path, help="prepared data folder (default: $CATDOG_DATA_DIR or data)")
    add_sample(
        quick,
        "sample photos from SRC (as for `data prepare`), prepare them and train in one go, within --seconds",
        DEFAULT_QUICK_PER_CLASS,
        "quick",
    )
    quick.add_argument(
        "--seconds",
        type=float,
        help="training time budget (default with --source: "
        "the budget that keeps any N up to 1000 under a minute on 2 cores; else none)",
    )
    quick.add_argument(
        "--epochs",
        type=int,
        help="passes over the training photos (default: the architecture's own; with --seconds, at most this many)",
    )
    quick.add_argument(
        "--image-size",
        type=int,
        metavar="PX",
        help="input size in pixels (default: the "
        "architecture's own, 128 for quick; within a time budget 40, which measured best)",
    )
    quick.add_argument(
        "--arch",
        choices=("quick", "original"),
        default="quick",
        help="quick: ours; original: the 2019 lab's network, for comparison (slow)",
    )
    quick.add_argument("--out", type=Path, help="model file (default: models/quick.keras, or models/original.keras)")
    add_seed_and_progress(quick)
    quick.set_defaults(run=train_quick)


def register_pretrained(models) -> None:
    pre = models.add_parser(
        "pretrained",
        help="train a cat/dog head on ImageNet MobileNet features",
        description="Put a cat/dog head on keras.applications.MobileNetV2 (alpha 1.0, ImageNet weights, photos "
        "at 288 px; --backbone mobilenet: 2019's MobileNet v1 0.75) and save ONE .keras file plus a JSON card. "
        "--head imagenet instead reads the untouched ImageNet classifier (MobileNet v1 0.75's) as dog breeds vs "
        "domestic cats: no training data needed.",
    )
    add_sample(
        pre,
        "photos to sample from, as for `data prepare`, or an already prepared folder (default: $CATDOG_DATA_SOURCE)",
        DEFAULT_PRETRAINED_PER_CLASS,
        "pretrained",
    )
    pre.add_argument(
        "--head",
        choices=("trained", "imagenet"),
        default="trained",
        help="trained: learn a head on the photos; imagenet: zero-shot ImageNet classes",
    )
    pre.add_argument(
        "--backbone",
        choices=("mobilenet_v2", "mobilenet"),  # catdog.models.BACKBONES, named here so --help needs no TensorFlow
        default="mobilenet_v2",
        help="the ImageNet network under the head: MobileNetV2 1.0 at 288 px (mobilenet_v2, the default) or "
        "2019's MobileNet v1 0.75 at 224 px (mobilenet); its weights file in CATDOG_WEIGHTS_DIR, or downloaded",
    )
    pre.add_argument("--epochs", type=int, default=30, help="head training epochs (default 30)")
    pre.add_argument(
        "--fine-tune",
        action="store_true",
        help="also train the backbone's last blocks, at a small "
        "learning rate, after the head (a few minutes more on 2 cores; see benchmarks/RESULTS.md)",
    )
    pre.add_argument("--out", type=Path, help="model file (default: models/pretrained.keras)")
    add_seed_and_progress(pre)
    pre.set_defaults(run=train_pretrained)


def train_quick(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import plots, training

    out = args.out or settings.models_dir / ("quick.keras" if args.arch == "quick" else "original.keras")
    data_dir, seconds = args.data or settings.data_dir, args.seconds
    if args.source:  # sample, prepare and train in one go, within a time budget
        data_dir = args.data_out or settings.data_dir / "quick"
        sample(args, settings, args.source, data_dir)
        seconds = training.QUICK_BUDGET_SECONDS if seconds is None else seconds
    result = training.train_cnn(
        data_dir, out, arch=args.arch, epochs=args.epochs, seed=args.seed, seconds=seconds, image_size=args.image_size
    )
    figure = plots.plot_history(result.history, f"{args.arch} CNN on {data_dir}")
    chart = plots.save_figure(figure, out.with_suffix(".history.png"))
    print(
        f"Trained the {args.arch} CNN in {result.seconds:.1f} s: validation accuracy {result.validation_accuracy:.2f}"
    )
    print(f"  model   {out}\n  curves  {chart}")
    return 0


def train_pretrained(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import plots, transfer
    from catdog.data import MANIFEST_NAME

    out = args.out or settings.models_dir / "pretrained.keras"
    source = args.source or settings.data_source
    data_dir = Path(source) if (Path(source) / MANIFEST_NAME).is_file() else None
    if data_dir is None and (args.head == "trained" or args.source):
        data_dir = args.data_out or settings.data_dir / "pretrained"
        sample(args, settings, source, data_dir)
    if args.head == "imagenet":
        _, val_accuracy = transfer.build_zero_shot_model(out, data_dir=data_dir, weights_dir=settings.weights_source)
        score = f"validation accuracy {val_accuracy:.3f}" if val_accuracy is not None else "not scored (no --source)"
        print(f"Saved the zero-shot ImageNet head: {score}\n  model   {out}")
        return 0
    result = transfer.train_pretrained(
        data_dir,
        out,
        weights_dir=settings.weights_source,
        epochs=args.epochs,
        seed=args.seed,
        progress=not args.no_progress,
        fine_tune=args.fine_tune,
        backbone=args.backbone,
    )
    what = f"{args.backbone} head and its last blocks" if args.fine_tune else f"{args.backbone} head"
    chart = plots.save_figure(plots.plot_history(result.history, what), out.with_suffix(".history.png"))
    print(f"Trained the {what} in {result.seconds:.1f} s: validation accuracy {result.validation_accuracy:.3f}")
    print(f"  model   {out}\n  card    {out.with_suffix('.json')}\n  curves  {chart}")
    return 0
