"""``hitl``: one entry point for serving, the worker and the tools around them."""

from __future__ import annotations

import argparse
import json
import os
import sys

from backend.settings import Settings, get_settings


def queue_settings() -> Settings:
    """The settings, with the embedded Redis of ``hitl run`` when HITL_REDIS_URL is unset and one is
    live for this data folder: the retrain queue a command reads or asks is then the one in use."""
    settings = get_settings()
    if settings.redis_url:
        return settings
    from backend.services.embedded_redis import live_url

    found = live_url(settings.data_dir)
    return settings.model_copy(update={"redis_url": found}) if found else settings


def cmd_serve(args: argparse.Namespace) -> int:
    from backend.server.serve import serve

    return serve(get_settings(), host=args.host, port=args.port, workers=args.workers, dev=args.dev)


def cmd_worker(args: argparse.Namespace) -> int:
    from backend.jobs.worker import run_worker

    return run_worker(get_settings(), burst=args.burst, which=args.queues)


def cmd_run(args: argparse.Namespace) -> int:
    from backend.services.supervisor import run_all

    return run_all(get_settings(), workers=args.workers, serve_workers=args.serve_workers)


def cmd_scheduler(args: argparse.Namespace) -> int:
    from backend.jobs.schedule_runner import run_scheduler

    return run_scheduler(get_settings())


def cmd_sync(args: argparse.Namespace) -> int:
    from backend.jobs.context import WorkerContext
    from backend.jobs.sync_job import sync_and_record

    settings = queue_settings()
    ls = _label_studio_checked(settings, args.project)  # a wrong URL, token or id fails before the model loads
    ctx = WorkerContext.create(settings)
    summary = sync_and_record(
        ctx, ls, args.project, args.strategy, not args.quiet, dry_run=args.dry_run, full_read=args.full_read
    )
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        print(summary.line())
    return 0


def _label_studio_checked(settings, project: int):  # type: ignore[no-untyped-def]
    """The Label Studio client, after one cheap call that proves the URL, the token and the project."""
    from backend.stores.labelstudio import LabelStudioClient

    ls = LabelStudioClient.from_settings(settings)
    ls.project(project)
    return ls


def cmd_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from backend.admin.importer import ImportFileError, import_file
    from backend.labeling import parse_label_config
    from backend.stores.labelstudio import LabelStudioClient

    settings = queue_settings()
    ls = LabelStudioClient.from_settings(settings)
    spec = parse_label_config(ls.label_config(args.project))
    try:
        summary = import_file(ls, args.project, spec, Path(args.file), progress=not args.quiet)
    except ImportFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary.line())
    if summary.imported == 0:
        return 0 if summary.already and not summary.rejected else 1  # a rerun with nothing new is no failure
    if not args.no_sync:  # order the queue now, not after the first annotation
        from backend.jobs.context import WorkerContext
        from backend.jobs.sync_job import sync_and_record

        ctx = WorkerContext.create(settings)
        print(sync_and_record(ctx, ls, args.project, progress=not args.quiet).line())
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from backend.models.encoder import encoder_from_settings
    from backend.tools.bench.common import dataset_dir
    from backend.tools.simulate import simulate
    from backend.tools.simulate_ner import is_ner_dataset, simulate_ner

    dataset = dataset_dir(None, args.dataset)  # before the encoder loads: say at once what is missing
    settings = get_settings()
    base = encoder = encoder_from_settings(settings)
    if args.precision == "int8":  # embeddings of the int8 encoder: its own cache, as in the product
        encoder = encoder.quantized()
    if is_ner_dataset(dataset):  # tokens/tags rows: the NER loop (margin on the weakest word)
        summary = simulate_ner(
            dataset,
            args.strategy.removesuffix("-diverse"),
            args.budget,
            args.step,
            args.seeds,
            Path(args.out),
            settings.data_dir / "cache",
            encoder,
            start=args.start,
            pool_size=args.pool_size,
            test_size=args.test_size,
        )
    else:
        from backend.tools.simulate import FineTunes

        if args.model:  # checked before the replay starts: a wrong name fails at once, in words
            from backend.plugin import load_plugin_class

            load_plugin_class(args.model)
        tuned = not args.head_only and not args.model  # a plug-in has no encoder to fine-tune
        fine_tunes = FineTunes(base, settings, int8=args.precision == "int8") if tuned else None
        summary = simulate(
            dataset,
            args.strategy,
            args.budget,
            args.step,
            args.seeds,
            Path(args.out),
            settings.data_dir / "cache",
            encoder,
            start=args.start,
            pool_size=args.pool_size,
            test_size=args.test_size,
            target_precision=args.target_precision,
            fine_tunes=fine_tunes,
            plugin=args.model or "",
        )
    print((Path(args.out) / "summary.md").read_text())
    print(
        f"curves: {Path(args.out) / 'curve.csv'}  plot: {Path(args.out) / 'learning_curves.png'}  "
        f"({summary['seconds']}s)"
    )
    return 0


def cmd_configs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from backend.admin import configs as admin
    from backend.labeling import UnsupportedConfig
    from backend.plugin import PluginError

    if args.configs_command == "validate":
        failed = 0
        for path in args.paths:
            try:
                spec = admin.validate_file(Path(path))
            except UnsupportedConfig as exc:
                print(f"INVALID {exc}")
                failed += 1
                continue
            rationale = f', rationale <TextArea name="{spec.rationale_name}">' if spec.rationale_name else ""
            control = "Labels" if spec.is_ner else "Choices"
            obj = "Image" if spec.modality == "image" else "Text"
            target = f'<{control} name="{spec.from_name}"> over <{obj} name="{spec.to_name}">'
            target += f" (data key ${spec.data_key})"
            print(f"ok      {path}: {spec.kind.value}, {target}, labels {list(spec.labels)}{rationale}")
        return 1 if failed else 0
    from backend.stores.labelstudio import LabelStudioClient

    settings = get_settings()
    ls = LabelStudioClient.from_settings(settings)
    backend_url = args.backend_url or f"http://{settings.host}:{settings.port}"
    try:
        result = admin.load(settings, ls, Path(args.path), args.project, backend_url, args.model)
    except (UnsupportedConfig, PluginError) as exc:
        print(f"INVALID {exc}")
        return 1
    print(json.dumps(admin.as_dict(result), indent=2))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from backend.cli import models as models_cli

    return models_cli.run(args, queue_settings())


def cmd_label_errors(args: argparse.Namespace) -> int:
    from backend.jobs.context import WorkerContext
    from backend.jobs.label_errors import SUSPECTS_TAB, check_project, review
    from backend.monitoring.label_errors import LabelErrorsUnsupported

    settings = get_settings()
    _label_studio_checked(settings, args.project)
    ctx = WorkerContext.create(settings)
    try:
        report = check_project(ctx, args.project)
    except LabelErrorsUnsupported as exc:
        print(f"error: project {args.project}: {exc}", file=sys.stderr)
        return 1
    outcome = None if args.dry_run else review(ctx, args.project, report)
    if args.json:
        print(json.dumps({**report.as_dict(), **(outcome or {})}))
        return 0
    print("\n".join(report.lines(args.limit)))
    if outcome is not None:
        print(
            f"reviewers' verdicts on earlier flags recorded: {outcome['verdicts']}; Label Studio tab "
            f"'{SUSPECTS_TAB}': {outcome['marked']} tasks marked, {outcome['cleared']} unmarked"
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from backend.jobs.queue import RetrainQueue
    from backend.oversight.report import write_report
    from backend.oversight.retrains import retrain_lines
    from backend.stores.audit import AuditStore
    from backend.stores.queue_state import queue_state_location
    from backend.stores.registry import Registry

    settings = queue_settings()
    audit, registry = AuditStore.from_settings(settings), Registry.from_settings(settings)
    if not registry.versions(args.project) and not audit.versions(args.project) and not audit.events(args.project):
        print(
            f"error: project {args.project} has no versions, retrains or events here (registry "
            f"{settings.registry_dir}, audit store of HITL_DATA_DIR={settings.data_dir}): check the project id "
            "and that HITL_DATA_DIR / HITL_REGISTRY_DIR are the ones the backend uses",
            file=sys.stderr,
        )
        return 1
    out = Path(args.out or settings.data_dir / "reports" / f"project-{args.project}.html")
    queue = RetrainQueue(settings) if settings.redis_url else None  # the same retrain line as the dashboard's
    write_report(
        args.project,
        audit,
        registry,
        queue_state_location(settings.data_dir, settings.database_url),
        out,
        settings.routing_target_precision,
        settings.holdout_fraction,
        settings.gate_min_eval,
        retrain_lines(queue, [args.project])[args.project],
    )
    print(f"report: {out.resolve()}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from backend.tools.bench import run_bench

    return run_bench(args, get_settings())


def version() -> str:
    """The installed distribution's version (backend.__version__ when run from a source tree)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    import backend

    try:
        return installed("hitl-backend")
    except PackageNotFoundError:
        return backend.__version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hitl",
        description="Human-in-the-loop active-learning backend for Label Studio. "
        "Settings come from HITL_* environment variables (see docs/reference/settings.md).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_service_commands(sub)
    _add_queue_commands(sub)
    _add_simulate_command(sub)
    scheduler = sub.add_parser("scheduler", help="enqueue scheduled retrains (RQ cron; see HITL_SCHEDULE_FILE)")
    scheduler.set_defaults(func=cmd_scheduler)

    from backend.cli import models as models_cli

    models_cli.add_parser(sub)
    _add_oversight_commands(sub)
    sub.choices["models"].set_defaults(func=cmd_models)

    from backend.tools.bench import add_parser as add_bench

    add_bench(sub)
    sub.choices["bench"].set_defaults(func=cmd_bench)
    return parser


def _add_service_commands(sub: argparse._SubParsersAction) -> None:
    """serve, run, worker: the long-running processes."""
    serve = sub.add_parser("serve", help="serve the ML backend protocol to Label Studio (gunicorn)")
    serve.add_argument("--host", help="bind address (default: HITL_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: HITL_PORT, 9090)")
    serve.add_argument("--workers", type=int, default=1, help="gunicorn worker processes (default 1)")
    serve.add_argument("--dev", action="store_true", help="Flask's development server instead of gunicorn")
    serve.set_defaults(func=cmd_serve)

    run = sub.add_parser(
        "run", help="the main job: Redis (embedded unless HITL_REDIS_URL is set), RQ worker(s) and the server"
    )
    run.add_argument("--workers", type=int, default=1, help="RQ worker processes (default 1)")
    run.add_argument("--serve-workers", type=int, default=1, help="gunicorn worker processes (default 1)")
    run.set_defaults(func=cmd_run)

    worker = sub.add_parser("worker", help="run an RQ worker for retrain jobs (needs HITL_REDIS_URL)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument(
        "--queues",
        choices=["both", "fast", "slow"],
        default="both",
        help="fast: head retrains, syncs, proposals; slow: fine-tunes, label checks, pool embeddings; "
        "both (default): fast first",
    )
    worker.set_defaults(func=cmd_worker)


def _add_queue_commands(sub: argparse._SubParsersAction) -> None:
    """sync, import, configs: the project and its queue."""
    sync = sub.add_parser(
        "sync",
        help="score a project's unlabeled tasks and order Label Studio's queue by informativeness",
        description="Scores every unlabeled task of the project with the serving version (cold start: diverse "
        "coverage), plans the queue (a cluster-diverse head, held-out checks and audit samples spread at random "
        "and shown blind, answers pre-selected only where the version is sure enough), then writes new predictions "
        "in bulk, the head's ranks and headers, and the review tab, and switches the project to that version. "
        "A prediction already written is never changed. Safe to rerun: it converges to the same queue.",
    )
    sync.add_argument("--project", type=int, required=True, help="Label Studio project id")
    sync.add_argument(
        "--strategy",
        help="margin, entropy, least_confidence, badge, random or cold-start (default: HITL_SYNC_STRATEGY)",
    )
    sync.add_argument("--quiet", action="store_true", help="no progress bars")
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="plan only: print what the sync would write (predictions and how each is shown, ranks, the "
        "review tab, the queue head's headers) and write nothing to Label Studio, the registry or the sync "
        "state (the embedding cache and cluster centroids may fill)",
    )
    sync.add_argument(
        "--full-read",
        action="store_true",
        help="read the whole pool from Label Studio (default: only the tasks changed since the last sync, with "
        "the whole pool read again every HITL_SYNC_FULL_READ_S, after a task was deleted or the version family "
        "changed)",
    )
    sync.add_argument("--json", action="store_true", help="print the summary as JSON")
    sync.set_defaults(func=cmd_sync)

    imp = sub.add_parser(
        "import",
        help="import tasks (JSON, JSONL or CSV) into a project in bulk, then order its queue",
        description="Reads tasks from FILE: a .json list, .jsonl (one task per line) or .csv with a header (UTF-8, "
        "a BOM is fine). A row is the task's data, or a task with a 'data' object. The whole file is checked "
        "before anything is sent: rows without the field the labeling config reads, with NaN, nested more than "
        "32 levels or over 1 MiB are reported by line, one line each, and left out. Rows already in the project "
        "(same data) are skipped, so a rerun imports only what is new. Tasks go to Label Studio in chunks of "
        "1,000; then the queue is ordered at once (hitl sync; a cold start orders for diverse coverage).",
    )
    imp.add_argument("file", metavar="FILE", help="tasks: .json, .jsonl or .csv")
    imp.add_argument("--project", type=int, required=True, help="Label Studio project id")
    imp.add_argument("--no-sync", action="store_true", help="import only; do not order the queue")
    imp.add_argument("--quiet", action="store_true", help="no progress bars")
    imp.set_defaults(func=cmd_import)

    configs = sub.add_parser("configs", help="validate labeling configs; set up a Label Studio project from one")
    csub = configs.add_subparsers(dest="configs_command", required=True, metavar="ACTION")
    validate = csub.add_parser("validate", help="check that each config can be served; say what to change if not")
    validate.add_argument("paths", nargs="+", metavar="PATH", help="labeling config XML files")
    load = csub.add_parser(
        "load",
        help="create or update a project with this config, connect this backend and its webhook (idempotent)",
        description="Creates the project (or updates its labeling config), connects this backend as its ML "
        "backend (basic auth when HITL_BASIC_AUTH_* is set), gives the backend's webhook the shared-secret header "
        "(HITL_WEBHOOK_SECRET) and turns on uncertainty sampling. Needs HITL_LABEL_STUDIO_URL and "
        "HITL_LABEL_STUDIO_API_KEY. Running it again changes nothing.",
    )
    load.add_argument("path", metavar="PATH", help="labeling config XML file")
    load.add_argument("--project", required=True, metavar="TITLE", help="project title (created if missing)")
    load.add_argument(
        "--backend-url", help="URL Label Studio uses to reach this backend (default http://HITL_HOST:HITL_PORT)"
    )
    load.add_argument(
        "--model",
        metavar="PACKAGE.MODULE:CLASS",
        help="this project's own model plug-in (docs/plugins.md); '' returns it to the deployment's (HITL_MODEL, "
        "else the bundled encoder). Checked before anything is written; the next retrain uses it",
    )
    configs.set_defaults(func=cmd_configs)


def _add_simulate_command(sub: argparse._SubParsersAction) -> None:
    """simulate: the loop replayed on a labeled dataset."""
    from backend.tools.simulate_options import DEFAULT_STRATEGY, SIM_STRATEGIES

    sim = sub.add_parser(
        "simulate",
        help="replay active learning on a labeled dataset with a simulated annotator; curves, plot, summary",
        description="Replays the loop with the product's own encoder, head, held-out split, strategies and "
        "calibration, and, unless --head-only, its fine-tune schedule. The annotator answers from the gold labels. "
        "Runs the chosen strategy and the random baseline "
        "from a cold-start set, writes curve.csv, learning_curves.png, summary.json and summary.md. Finished "
        "(strategy, seed) runs in OUT are reused, so a rerun only does what is missing. Embeddings are cached in "
        "HITL_DATA_DIR/cache.",
    )
    sim.add_argument(
        "--dataset",
        required=True,
        metavar="FOLDER",
        help="folder with train.jsonl (the pool) and test.jsonl: rows {text, label} for classification, "
        "or {tokens, tags} (BIO) for NER, e.g. ../shared/data/wnut17; or a dataset's name under "
        "HITL_SHARED_DATA (the full datasets are not in this repository)",
    )
    sim.add_argument(
        "--strategy",
        default=DEFAULT_STRATEGY,
        choices=SIM_STRATEGIES,
        help=f"query strategy (default {DEFAULT_STRATEGY}: margin with a cluster-diverse batch, as the sync serves it)",
    )
    sim.add_argument("--budget", type=int, default=1000, help="labels at the end (1000)")
    sim.add_argument("--step", type=int, default=50, help="labels per round (50)")
    sim.add_argument("--start", type=int, default=50, help="cold-start set size (50)")
    sim.add_argument("--seeds", type=int, default=3, help="repetitions with different seeds (3)")
    sim.add_argument("--out", required=True, help="output folder")
    sim.add_argument("--pool-size", type=int, help="use only the first N rows of train.jsonl")
    sim.add_argument("--test-size", type=int, help="use only the first N rows of test.jsonl")
    sim.add_argument("--target-precision", type=float, default=0.98, help="routing target precision (0.98)")
    sim.add_argument(
        "--precision",
        choices=["float", "int8"],
        default="float",
        help="inference precision of the replayed encoder: float (HITL_PRECISION's float) or int8, as "
        "an int8 version serves (use another --out per precision)",
    )
    sim.add_argument(
        "--model",
        metavar="PACKAGE.MODULE:CLASS",
        help="replay your model plug-in (docs/plugins.md) instead of the bundled encoder's head: does active "
        "learning pay for it, and after how many labels is it good enough? (the encoder still embeds the pool "
        "for the diverse queue head, as the sync does; no fine-tunes)",
    )
    sim.add_argument(
        "--head-only",
        action="store_true",
        help="replay head retrains only (fast, minutes): no fine-tunes. By default the replay also "
        "fine-tunes the encoder when the product's schedule would (HITL_FINETUNE_MIN_LABELS, "
        "HITL_FINETUNE_GROWTH, HITL_FINETUNE_EVERY; recipe HITL_FINETUNE_EPOCHS, _LR, _MIN_STEPS) and "
        "re-embeds the pool and test set after each; text classification only",
    )
    sim.set_defaults(func=cmd_simulate)


def _add_oversight_commands(sub: argparse._SubParsersAction) -> None:
    """label-errors, report: what people check."""
    errors = sub.add_parser(
        "label-errors",
        help="list a project's probable label errors (annotations the model confidently contradicts)",
        description="Pulls the project's annotations from Label Studio, scores every annotated task out of sample "
        "(5 folds: no task is judged by a head that trained on it) and lets cleanlab flag the labels the model "
        "confidently contradicts, most suspicious first, each with the label the model suggests and the nearest "
        "annotated tasks carrying it; where tasks have several annotators, their agreement and each annotator's "
        "quality (cleanlab's CROWDLAB). Then, as the job after every publish does: records what reviewers did with "
        "earlier flags (changed / kept) and the new flags in the audit store, and marks the suspects in Label "
        "Studio (task data fields hitl_suspect, hitl_suggested, hitl_evidence) for the Data Manager tab "
        "'Suspected label errors (hitl)'. No annotation is ever written. Single-choice projects.",
    )
    errors.add_argument("--project", type=int, required=True, help="Label Studio project id")
    errors.add_argument("--json", action="store_true", help="print every suspect as JSON")
    errors.add_argument("--limit", type=int, default=20, help="suspects listed (20; --json lists all)")
    errors.add_argument("--dry-run", action="store_true", help="only list: record nothing, write nothing")
    errors.set_defaults(func=cmd_label_errors)
    report = sub.add_parser(
        "report",
        help="an HTML report with plots: quality per version, calibration, queue scores, retrain history",
        description="Writes one self-contained HTML page (plots embedded) from the audit store, the model registry "
        "and the last sync's scores; it does not call Label Studio.",
    )
    report.add_argument("--project", type=int, required=True, help="Label Studio project id")
    report.add_argument("--out", help="output file (default: $HITL_DATA_DIR/reports/project-ID.html)")
    report.set_defaults(func=cmd_report)


PRIVATE_UMASK = 0o077  # the audit DB, Redis's data, reports, models: the owner's only (files 0600, folders 0700)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.umask(PRIVATE_UMASK)  # before anything is written; children (Redis, workers, gunicorn) inherit it
    from backend import logs

    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        message = user_error(exc, settings)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2


def user_error(exc: Exception, settings: object) -> str | None:
    """One line that says what to do, for the failures a user can fix; None for a real bug (whose
    traceback is worth having). Never the response's headers or body: they carry session cookies."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    from backend.labeling import UnsupportedConfig
    from backend.stores.labelstudio import LabelStudioNotConfigured
    from backend.stores.registry import RegistryError

    url = getattr(settings, "label_studio_url", None) or "HITL_LABEL_STUDIO_URL"
    if isinstance(exc, ApiError):
        status = exc.status_code
        if status in (401, 403):
            return (
                f"Label Studio at {url} refused the API key (HTTP {status}): set HITL_LABEL_STUDIO_API_KEY to a "
                "valid token (Account & Settings → Access Token; legacy tokens need "
                "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true on Label Studio)"
            )
        if status == 404 and isinstance(exc.body, dict) and "detail" in exc.body:  # Label Studio's API said it
            return f"Label Studio at {url} has no such object (HTTP 404): check the project id"
        if status == 404:  # a page that is not Label Studio's API: the URL's path is wrong
            return (
                f"{url} answered HTTP 404 with a page that is not Label Studio's API: check the path in "
                "HITL_LABEL_STUDIO_URL (Label Studio's address, e.g. http://127.0.0.1:8080, without /api or "
                "/projects)"
            )
        return f"Label Studio at {url} answered HTTP {status}; its log says why"
    audit = audit_store_error(exc, settings)
    if audit is not None:
        return audit
    if isinstance(exc, httpx.TransportError):
        return (
            f"cannot reach Label Studio at {url} ({type(exc).__name__}): is it running, and is "
            "HITL_LABEL_STUDIO_URL right? (./scripts/label-studio.sh start runs one)"
        )
    if isinstance(exc, LabelStudioNotConfigured | UnsupportedConfig | RegistryError):
        return str(exc)
    return None


def audit_store_error(exc: Exception, settings: object) -> str | None:
    """One line for an audit store that cannot be opened or reached (SQLite or PostgreSQL), its
    password hidden; None for anything else."""
    import sqlite3

    from backend.stores.audit import AuditStore

    postgres_errors: tuple[type[Exception], ...] = ()
    try:
        import psycopg

        postgres_errors = (psycopg.OperationalError,)
    except ImportError:  # PostgreSQL support is an extra
        pass
    if not isinstance(exc, (sqlite3.OperationalError, *postgres_errors)):
        return None
    configured = getattr(settings, "audit_db_url", None)
    where = AuditStore.describe(configured) if configured else f"{getattr(settings, 'data_dir', 'var')}/audit.sqlite3"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if configured:
        first = first.replace(configured, AuditStore.describe(configured))
    return (
        f"the audit store {where} cannot be used ({first}): check HITL_AUDIT_DB_URL (PostgreSQL running, "
        "reachable, credentials right) or HITL_DATA_DIR (a writable folder)"
    )


if __name__ == "__main__":
    sys.exit(main())
