"""``hitl models list|promote|rollback``: inspect and move a project's serving version."""

from __future__ import annotations

import argparse
import json
import time

from backend.ids import JobKind
from backend.settings import Settings
from backend.stores.registry import Registry, RegistryError, served_name


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    models = sub.add_parser("models", help="list, promote or roll back model versions (registry on disk)")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = msub.add_parser("list", help="versions of a project, newest last; * marks the one served")
    listing.add_argument("--project", type=int, required=True, help="Label Studio project id")
    listing.add_argument("--json", action="store_true", help="machine-readable output (every version)")
    listing.add_argument(
        "--all",
        action="store_true",
        help="every head refresh, not one line per family (the version name Label Studio sees)",
    )
    promote = msub.add_parser("promote", help="serve VERSION from the next request on")
    promote.add_argument("--project", type=int, required=True, help="Label Studio project id")
    promote.add_argument("version")
    rollback = msub.add_parser("rollback", help="serve the version before the current one (its parent)")
    rollback.add_argument("--project", type=int, required=True, help="Label Studio project id")
    models.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    registry = Registry.from_settings(settings)
    project = args.project
    try:
        if args.models_command == "list":
            return _list(registry, project, args.json, args.all)
        if args.models_command == "promote":
            registry.promote(project, args.version)
            print(f"project {project}: now serving {args.version}")
            _reorder_queue(settings, project, f"promoted {args.version}")
            return 0
        current = registry.current(project)
        if current is None:
            print(f"project {project} has no serving version to roll back from")
            return 1
        target = registry.meta(project, current).get("parent")
        if not target:
            versions = registry.versions(project)
            earlier = versions[: versions.index(current)] if current in versions else []
            target = earlier[-1] if earlier else None
        if not target:
            print(f"project {project}: {current} is the first version; nothing to roll back to")
            return 1
        registry.promote(project, target)
        print(f"project {project}: rolled back {current} -> {target}")
        _reorder_queue(settings, project, f"rolled back to {target}")
        return 0
    except RegistryError as exc:
        print(f"error: {exc}")
        return 1


def _reorder_queue(settings: Settings, project: int, reason: str) -> None:
    """The queue was ranked by the version that no longer serves: ask a worker to re-rank it."""
    if not settings.redis_url:
        print(f"re-order the queue with: hitl sync --project {project}")
        return
    from redis import RedisError

    from backend.jobs.queue import RetrainQueue

    try:
        status = RetrainQueue(settings).request(project, JobKind.SYNC, reason=reason).status
        print(f"queue re-order {status} (a worker rescores the unlabeled tasks with the serving version)")
    except (RedisError, ValueError) as exc:
        print(f"could not ask for a queue re-order ({type(exc).__name__}); run: hitl sync --project {project}")


def _list(registry: Registry, project: int, as_json: bool, every: bool = False) -> int:
    current = registry.current(project)
    rows = []
    for version in registry.versions(project):
        meta = registry.meta(project, version)
        metrics = meta.get("metrics") or {}
        rows.append(
            {
                "version": version,
                "serving": version == current,
                "created": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(meta.get("created_at", 0))),
                "kind": (meta.get("training") or {}).get("kind", "?"),
                "examples": (meta.get("training") or {}).get("examples"),
                "primary_metric": metrics.get("primary"),
                "parent": meta.get("parent"),
                "family": served_name(meta),
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"project {project} has no versions yet (cold start)")
        return 0
    families_used = any(r["family"] != r["version"] for r in rows)  # HITL_VERSION_FAMILY_LABELS > 0
    if not every and families_used:  # one line per family: its newest version, and how many head refreshes it had
        newest: dict[str, dict] = {}
        for r in rows:
            r["refreshes"] = newest.get(r["family"], {}).get("refreshes", -1) + 1
            r["serving"] = r["serving"] or newest.get(r["family"], {}).get("serving", False)
            newest[r["family"]] = r
        rows = list(newest.values())
        print(f"{len(rows)} version families (the names Label Studio sees); --all lists every head refresh")
    else:
        every = True
        print(f"{len(rows)} versions, oldest first; * marks the one serving")
    name, last = ("family", "refreshes  newest") if not every else ("version", "parent")
    print(f"{'':2}{name:<26}{'created (UTC)':<21}{'kind':<6}{'examples':>9}{'metric':>9}  {last}")
    for r in rows:
        metric = f"{r['primary_metric']:.4f}" if isinstance(r["primary_metric"], float) else "-"
        tail = f"{r['refreshes']:>9}  {r['version']}" if not every else (r["parent"] or "-")
        print(
            f"{'*' if r['serving'] else ' ':2}{r[name]:<26}{r['created']:<21}{r['kind']:<6}"
            f"{r['examples'] or '-':>9}{metric:>9}  {tail}"
        )
    return 0
