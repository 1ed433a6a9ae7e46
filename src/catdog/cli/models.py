"""``catdog models list|rollback``: the kept versions of a model, and serving an earlier one again."""

from __future__ import annotations

import argparse

from catdog.config import Settings


def register(verbs) -> None:
    models = verbs.add_parser("models", help="list the kept model versions, or roll back to one")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list",
        help="every kept version: scores, parent, served or refused (and why)",
        description="List every version `catdog retrain` kept, oldest first: its "
        "check-set and room accuracy, its parent, and what became of it.",
    )
    listing.add_argument("--name", default="pretrained", help="the model (default: pretrained)")
    listing.set_defaults(run=run_list)
    back = actions.add_parser(
        "rollback",
        help="serve an earlier version again",
        description="Serve VERSION again (default: the one served before the current "
        "one); the classifier follows within its reload period.",
    )
    back.add_argument("version", nargs="?", metavar="VERSION", help="a version from `catdog models list`")
    back.add_argument("--name", default="pretrained", help="the model (default: pretrained)")
    back.set_defaults(run=run_rollback)


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import registry

    listed = registry.versions(settings.models_dir, args.name)
    if not listed:
        print(
            f"no versions of {args.name} kept yet in {settings.models_dir} (serving: "
            f"{registry.serving(settings.models_dir, args.name) or 'none'}); `catdog retrain` keeps them"
        )
        return 0
    print(registry.versions_table(listed))
    return 0


def run_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import registry

    before = registry.serving(settings.models_dir, args.name)
    now = registry.rollback(settings.models_dir, args.name, args.version)
    print(
        f"{args.name}: serving {now} (was {before}); the classifier follows within CATDOG_MODEL_RELOAD_SECONDS "
        f"({settings.model_reload_seconds} s)"
    )
    return 0
