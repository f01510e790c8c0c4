"""The one place that talks to Label Studio's API, through label-studio-sdk.

Label Studio is the source of truth for annotations: the worker pulls them from here every
retrain, so a lost webhook or a flushed Redis delays learning but never loses a correction.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

T = TypeVar("T")

log = logging.getLogger(__name__)


def annotations_filter(operator: str) -> dict[str, Any]:
    """A Data Manager filter on the number of annotations, compared with 0."""
    return {"filter": "filter:tasks:total_annotations", "operator": operator, "type": "Number", "value": 0}


def data_filter(field: str, operator: str, value: Any) -> dict[str, Any]:
    """A Data Manager filter on a numeric task data field (``greater`` 0, ``equal`` 7, ...)."""
    return {"filter": f"filter:tasks:data.{field}", "operator": operator, "type": "Number", "value": value}


def _annotations_query(operator: str) -> str:
    return json.dumps({"filters": {"conjunction": "and", "items": [annotations_filter(operator)]}})


ANNOTATED_QUERY = _annotations_query("greater")
UNLABELED_QUERY = _annotations_query("equal")
IMPORT_ATTEMPTS = 4
DM_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # the Data Manager's Datetime filter values (data_manager/managers.py)
CHECK_PAGE = 500  # tasks per listing when checking what a failed import kept
FULL_READ_PAGE = 5000  # a full read of the pool: fewer, larger pages (docs/results/benchmarks.md)
CHECK_TIMEOUT_S = 300.0
SETTLE_LOOKS = 10  # at most, while a failed import's tasks still change


def with_retries(call: Callable[[], T], what: str, attempts: int = 4, backoff_s: float = 1.0) -> T:
    """Retry transient Label Studio failures (connection errors, 5xx) with exponential back-off."""
    for attempt in range(attempts):
        try:
            return call()
        except (httpx.TransportError, ApiError) as exc:
            status = getattr(exc, "status_code", None)
            if isinstance(exc, ApiError) and status is not None and status < 500:
                raise  # a 4xx will not get better by asking again
            if attempt == attempts - 1:
                raise
            delay = backoff_s * 2**attempt
            log.warning("Label Studio %s failed (%s); retrying in %.0fs", what, type(exc).__name__, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


class LabelStudioNotConfigured(RuntimeError):
    pass


class LabelStudioTokenRefused(RuntimeError):
    """Label Studio answered 401: HITL_LABEL_STUDIO_API_KEY is wrong, expired or revoked."""


class Unreachable(str):
    """``token_problem``'s answer when Label Studio could not be reached at all (not a refusal)."""


class LabelStudioUnavailable(RuntimeError):
    """Label Studio could not be reached or answered 5xx after retries: the job will be retried.
    Raised without the HTTP library's chain, so a worker logs a few lines per retry, not ninety."""


@contextlib.contextmanager
def unavailable_as_one_line(url: str) -> Iterator[None]:
    try:
        yield
    except httpx.TransportError as exc:
        raise LabelStudioUnavailable(
            f"Label Studio at {url} is unreachable ({type(exc).__name__}); the job will be retried"
        ) from None
    except ApiError as exc:
        if exc.status_code is not None and exc.status_code < 500:
            raise
        raise LabelStudioUnavailable(
            f"Label Studio at {url} answered HTTP {exc.status_code}; the job will be retried"
        ) from None


def _same_tab(held: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a tab Label Studio holds has the title, ordering, display types and filters wanted
    (Label Studio adds ids and indexes to the filters it returns)."""

    def filters(data: dict[str, Any]) -> list[tuple[Any, ...]]:
        items = (data.get("filters") or {}).get("items") or []
        return sorted((f.get("filter"), f.get("operator"), str(f.get("value"))) for f in items)

    keys = ("title", "ordering", "columnsDisplayType", "hiddenColumns")
    return all(held.get(k) == wanted.get(k) for k in keys) and filters(held) == filters(wanted)


def answered(task: dict[str, Any]) -> bool:
    """Whether a task holds an annotation that was not cancelled (skipped)."""
    return any(isinstance(a, dict) and not a.get("was_cancelled") for a in task.get("annotations") or [])


def _plain(obj: Any) -> Any:
    """SDK models → plain JSON-like dicts (the rest of the backend speaks dicts)."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return obj


class LabelStudioClient:
    def __init__(self, url: str | None, api_key: str | None, timeout_s: float = 30.0) -> None:
        if not url or not api_key:
            raise LabelStudioNotConfigured(
                "set HITL_LABEL_STUDIO_URL and HITL_LABEL_STUDIO_API_KEY so the backend can reach Label Studio "
                "(README, Quick start)"
            )
        self.url = url.rstrip("/")
        self.sdk = LabelStudio(base_url=self.url, api_key=api_key, timeout=timeout_s)

    @classmethod
    def from_settings(cls, settings: Any, timeout_s: float = 30.0) -> LabelStudioClient:
        """The client for HITL_LABEL_STUDIO_URL and HITL_LABEL_STUDIO_API_KEY (the one construction
        point); LabelStudioNotConfigured when either is unset."""
        key = settings.label_studio_api_key
        return cls(settings.label_studio_url, key.get_secret_value() if key else None, timeout_s)

    def project(self, project_id: int) -> dict[str, Any]:
        return _plain(self.sdk.projects.get(id=project_id))

    def serves(self, project_id: int) -> bool | None:
        """Whether the project exists and has an ML backend connected; None when Label Studio could
        not answer (down, 5xx), so the caller can tell "no" from "don't know". A refused token raises
        LabelStudioTokenRefused: nothing can be confirmed until it is fixed."""
        try:
            self.sdk.projects.get(id=project_id)
            return bool(self.ml_backends(project_id))
        except ApiError as exc:
            if exc.status_code == 401:
                raise LabelStudioTokenRefused(self._refused(401)) from None
            if exc.status_code in (403, 404):
                return False
            return None
        except httpx.HTTPError:
            return None

    def token_problem(self) -> str | None:
        """None when Label Studio accepts the token; else what is wrong, in one sentence."""
        try:
            self._raw("api/current-user/whoami", "GET")
        except ApiError as exc:
            if exc.status_code in (401, 403):
                return self._refused(exc.status_code)
            return f"Label Studio at {self.url} answered HTTP {exc.status_code}"
        except httpx.HTTPError as exc:
            return Unreachable(f"Label Studio at {self.url} is unreachable ({type(exc).__name__})")
        return None

    def _refused(self, status: int) -> str:
        return (
            f"Label Studio refused the token (HTTP {status} from {self.url}): set HITL_LABEL_STUDIO_API_KEY "
            "to a valid one (Account & Settings → Access Token)"
        )

    def label_config(self, project_id: int) -> str:
        return str(self.project(project_id)["label_config"])

    def annotated_tasks(self, project_id: int, page_size: int = 500) -> Iterator[dict[str, Any]]:
        """Every task with at least one annotation, with its annotations and predictions, page by page."""
        # only_annotated is ignored by Label Studio 1.23's /api/tasks; a Data Manager filter is honoured.
        # That filter reads the task's annotation counter, which a task-data write racing an annotation
        # can leave at 0 (seen in end-to-end runs: one annotation of 50 never pulled): such a task lists
        # as unlabeled, with its annotation, so it is taken from there too.
        seen = set()
        for task in self._pages(project_id, ANNOTATED_QUERY, page_size):
            seen.add(task.get("id"))
            yield task
        for task in self._pages(project_id, UNLABELED_QUERY, page_size):
            if task.get("id") not in seen and answered(task):
                yield task

    def unlabeled_tasks(self, project_id: int, page_size: int = 500) -> Iterator[dict[str, Any]]:
        """Tasks nobody has annotated yet (the pool), with their predictions, page by page (a task whose
        annotation counter lags its annotations is left out: see ``annotated_tasks``)."""
        for task in self._pages(project_id, UNLABELED_QUERY, page_size):
            if not answered(task):
                yield task

    def listed_unlabeled(self, project_id: int, page_size: int = FULL_READ_PAGE) -> Iterator[dict[str, Any]]:
        """Every task the unlabeled filter lists, as Label Studio lists it (with the rare task whose
        annotation counter lags its annotation: see ``answered``). Large pages: Label Studio sums
        the counters of the whole filtered pool for every page it serves."""
        yield from self._pages(project_id, UNLABELED_QUERY, page_size)

    def changed_tasks(self, project_id: int, since: str, page_size: int = 500) -> Iterator[dict[str, Any]]:
        """Every task Label Studio changed after ``since`` (see ``pool_mark``): new tasks, tasks
        annotated or whose annotation was deleted, edited data, a prediction saved one by one. Label
        Studio stamps ``updated_at`` on each of those; a bulk import of predictions and a deleted
        task it does not (``pool_mark``'s count finds the latter)."""
        item = {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": since}
        yield from self._pages(project_id, json.dumps({"filters": {"conjunction": "and", "items": [item]}}), page_size)

    def pool_mark(self, project_id: int, overlap_s: float) -> tuple[int, str]:
        """How many tasks the unlabeled filter lists now, and the time from which the next read of
        changes must start: Label Studio's clock (its reply's ``Date``) less ``overlap_s``, for a
        change stamped before it committed."""
        params = {"project": project_id, "page": 1, "page_size": 1, "fields": "task_only", "query": UNLABELED_QUERY}
        response = with_retries(lambda: self._raw("api/tasks", "GET", params=params), "count")
        stamp = response.headers.get("date")
        now = parsedate_to_datetime(stamp) if stamp else datetime.now(UTC)
        since = (now - timedelta(seconds=overlap_s)).astimezone(UTC).strftime(DM_TIME)
        return int(response.json()["total"]), since

    def task_data(self, project_id: int, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Every task's data (nothing else), page by page: what ``hitl import`` compares rows with."""
        for task in self._pages(project_id, None, page_size, fields="task_only"):
            yield task.get("data") or {}

    def _pages(
        self, project_id: int, query: str | None, page_size: int, fields: str = "all"
    ) -> Iterator[dict[str, Any]]:
        """Page by page, stopping at a short page: the SDK's pager asks for one page past the end,
        which Label Studio answers 404 and logs as a traceback on every pull."""
        page = 1
        while True:
            try:
                items = (
                    self.sdk.tasks.list(
                        project=project_id, fields=fields, query=query, page=page, page_size=page_size
                    ).items
                    or []
                )
            except ApiError as exc:
                if exc.status_code == 404 and page > 1:  # the previous page was exactly full and the last
                    return
                raise
            yield from (_plain(task) for task in items)
            if len(items) < page_size:
                return
            page += 1

    # writing the queue -------------------------------------------------------------------------
    def import_predictions(self, project_id: int, predictions: list[dict[str, Any]]) -> int:
        """Bulk create (POST /api/projects/{id}/import/predictions): one call per chunk, not per task.

        A call that failed may still have been applied (a read timeout while Label Studio, slow on a
        large project, went on and committed): before sending again, the tasks that now hold their
        prediction are left out, so a retry never gives a task the same prediction twice."""
        pending = list(predictions)
        for attempt in range(IMPORT_ATTEMPTS):
            if not pending:
                break
            try:
                self.sdk.projects.import_predictions(id=project_id, request=pending)
                break
            except (httpx.TransportError, ApiError) as exc:
                status = getattr(exc, "status_code", None)
                if isinstance(exc, ApiError) and status is not None and status < 500:
                    raise
                if attempt == IMPORT_ATTEMPTS - 1:
                    raise
                log.warning("Label Studio import failed (%s); checking what it kept, then retrying", type(exc).__name__)
                held = self._settled(project_id, [int(p["task"]) for p in pending], 2**attempt)
                pending = [p for p in pending if p.get("model_version") not in held.get(int(p["task"]), set())]
        return len(predictions)

    def _settled(self, project_id: int, task_ids: list[int], wait_s: float) -> dict[int, set[str]]:
        """What the tasks hold once Label Studio has stopped writing to them: a request we gave up
        on may still be running there, so two looks ``wait_s`` apart must agree."""
        time.sleep(wait_s)
        held = self._holding(project_id, task_ids)
        for _ in range(SETTLE_LOOKS):
            time.sleep(wait_s)
            again = self._holding(project_id, task_ids)
            if again == held:
                break
            held = again
        return held

    def _holding(self, project_id: int, task_ids: list[int]) -> dict[int, set[str]]:
        """Per task of ``task_ids``, the model versions of the predictions it holds (one listing call
        per CHECK_PAGE tasks, with a long timeout: Label Studio may still be busy)."""
        held: dict[int, set[str]] = {}
        for start in range(0, len(task_ids), CHECK_PAGE):
            ids = task_ids[start : start + CHECK_PAGE]
            query = json.dumps({"selectedItems": {"all": False, "included": ids}})
            size = len(ids)
            items = with_retries(
                lambda query=query, size=size: (
                    self.sdk.tasks.list(
                        project=project_id,
                        fields="all",
                        query=query,
                        page=1,
                        page_size=size,
                        request_options={"timeout_in_seconds": CHECK_TIMEOUT_S},
                    ).items
                ),
                "check",
            )
            for task in items or []:
                plain = _plain(task)
                held[int(plain["id"])] = {str(p.get("model_version")) for p in plain.get("predictions") or []}
        return held

    def update_prediction(self, prediction_id: int, result: list[dict[str, Any]], score: float) -> None:
        """One prediction's result and score, in place (PATCH /api/predictions/{id})."""
        with_retries(lambda: self.sdk.predictions.update(id=prediction_id, result=result, score=score), "update")

    def create_prediction(self, prediction: dict[str, Any]) -> None:
        """One prediction, one HTTP call (the slow path; kept for the benchmark's baseline)."""
        self.sdk.predictions.create(**prediction)

    def model_versions(self, project_id: int) -> dict[str, int]:
        """Prediction counts per model version in the project (GET /api/projects/{id}/model-versions/)."""
        response = with_retries(lambda: self._raw(f"api/projects/{project_id}/model-versions/", "GET"), "versions")
        return {str(k): int(v) for k, v in response.json().items()}

    def delete_model_version(self, project_id: int, model_version: str) -> None:
        """Delete every prediction of one model version in the project, in one call."""
        with_retries(
            lambda: self._raw(
                f"api/projects/{project_id}/model-versions/", "DELETE", json={"model_version": model_version}
            ),
            "delete version",
        )

    def _raw(self, path: str, method: str, **kwargs: Any) -> httpx.Response:
        """An API call the SDK has no method for, with the SDK's auth; HTTP errors raise ApiError."""
        response = self.sdk._client_wrapper.httpx_client.request(path, method=method, **kwargs)
        if response.status_code >= 400:
            raise ApiError(status_code=response.status_code, body=response.text[:500])
        return response

    def use_uncertainty_sampling(self, project_id: int, model_version: str) -> None:
        """Serve the lowest-scored task of ``model_version`` first (Label Studio's uncertainty sampling)."""
        with_retries(
            lambda: self.sdk.projects.update(
                id=project_id, sampling="Uncertainty sampling", model_version=model_version
            ),
            "project update",
        )

    def update_task_data(self, task_id: int, data: dict[str, Any]) -> None:
        """Replace one task's data (PATCH /api/tasks/{id}); Community has no bulk write of task data."""
        with_retries(lambda: self._raw(f"api/tasks/{task_id}", "PATCH", json={"data": data}), "task update")

    def ensure_view(
        self,
        project_id: int,
        title: str,
        order_by: str,
        filters: list[dict[str, Any]] | None = None,
        first: bool = True,
        hidden: list[str] | None = None,
    ) -> int:
        """A Data Manager tab: ``title``, the tasks passing ``filters`` (default: unannotated ones)
        sorted by ``order_by`` (numerically, for a task data field). A tab of that title that
        differs is brought up to date; ``first`` puts it before the others (annotators open the first);
        ``hidden``: columns (``tasks:…``) the tab hides, so the ones that matter fit on the screen."""
        items = [annotations_filter("equal")] if filters is None else filters
        tab = {
            "title": title,
            "ordering": [order_by],
            "columnsDisplayType": {order_by: "Number"},
            "filters": {"conjunction": "and", "items": items},
        }
        if hidden is not None:
            tab["hiddenColumns"] = {"explore": hidden, "labeling": hidden}
        views = self.views(project_id)
        ours = next((v for v in views if (v.get("data") or {}).get("title") == title), None)
        if ours is None:
            ours = _plain(self.sdk.views.create(project=project_id, data=tab))
        elif not _same_tab(ours.get("data") or {}, tab):
            data = {**(ours.get("data") or {}), **tab}
            self._raw(f"api/dm/views/{ours['id']}", "PATCH", json={"project": project_id, "data": data})
        ids = [int(v["id"]) for v in views if v["id"] != ours["id"]]
        if first and views and int(views[0]["id"]) != int(ours["id"]):
            self._raw("api/dm/views/order/", "POST", json={"project": project_id, "ids": [int(ours["id"]), *ids]})
        return int(ours["id"])

    def views(self, project_id: int) -> list[dict[str, Any]]:
        """The project's Data Manager tabs, in their order."""
        return [_plain(v) for v in self.sdk.views.list(project=project_id)]

    def delete_view(self, view_id: int) -> None:
        with_retries(lambda: self._raw(f"api/dm/views/{view_id}", "DELETE"), "delete tab")

    def view_task_ids(self, project_id: int, view_id: int, page_size: int = 500) -> list[int]:
        """The ids of the tasks a tab lists, in its order (what a reviewer sees)."""
        ids: list[int] = []
        page = 1
        while True:
            response = self._raw(
                f"api/tasks?project={project_id}&view={view_id}&page={page}&page_size={page_size}&fields=task_only",
                "GET",
            )
            body = response.json()
            tasks = body.get("tasks", body) if isinstance(body, dict) else body
            ids += [int(t["id"]) for t in tasks]
            if len(tasks) < page_size:
                return ids
            page += 1

    def run_action(self, project_id: int, action: str, task_ids: list[int], **body: Any) -> dict[str, Any]:
        """A Data Manager action on the given tasks, as the Actions menu runs it
        (``POST /api/dm/actions?id=<action>``), e.g. ``predictions_to_annotations``."""
        payload = {"selectedItems": {"all": False, "included": [int(t) for t in task_ids]}, **body}
        return dict(self._raw(f"api/dm/actions?id={action}&project={project_id}", "POST", json=payload).json())

    def next_task(self, project_id: int, view_id: int | None = None) -> dict[str, Any]:
        """What Label Studio would open next for the API user. Without ``view_id``: the project's
        sampling (GET /api/projects/{id}/next, as the labeling page's "Label All Tasks"). With it:
        what "Label Tasks As Displayed" opens from that tab, the Data Manager's ``next_task`` action
        with the tab's ordering and filters."""
        if view_id is None:
            response = self.sdk._client_wrapper.httpx_client.request(f"api/projects/{project_id}/next", method="GET")
            response.raise_for_status()
            return dict(response.json())
        view = self._raw(f"api/dm/views/{view_id}", "GET").json()
        body = {
            "ordering": view.get("ordering") or (view.get("data") or {}).get("ordering") or [],
            "filters": (view.get("data") or {}).get("filters") or {"conjunction": "and", "items": []},
        }
        query = f"api/dm/actions?id=next_task&project={project_id}&tabID={view_id}"
        return dict(self._raw(query, "POST", json=body).json())

    def tasks(self, project_id: int, page_size: int = 100) -> Iterator[dict[str, Any]]:
        pager = self.sdk.tasks.list(project=project_id, fields="all", page_size=page_size)
        for task in pager:
            yield _plain(task)

    # project set-up (used by admin tooling and the end-to-end tests) -------------------------
    def create_project(self, title: str, label_config: str) -> int:
        return int(self.sdk.projects.create(title=title, label_config=label_config).id)

    def import_tasks(self, project_id: int, data: list[dict[str, Any]]) -> None:
        self.sdk.projects.import_tasks(id=project_id, request=data)

    def connect_backend(
        self, project_id: int, url: str, title: str = "hitl-backend", basic_auth: tuple[str, str] | None = None
    ) -> int:
        """One ML backend connection to ``url`` per project: reused (and updated) when it exists."""
        existing = [b for b in (_plain(b) for b in self.sdk.ml.list(project=project_id)) if b.get("url") == url]
        params: dict[str, Any] = {
            "url": url,
            "project": project_id,
            "title": title,
            "is_interactive": False,
            "auto_update": True,
        }
        if basic_auth:
            params.update(auth_method="BASIC_AUTH", basic_auth_user=basic_auth[0], basic_auth_pass=basic_auth[1])
        if existing:
            backend_id = int(existing[0]["id"])
            self.sdk.ml.update(id=backend_id, **params)
            return backend_id
        return int(self.sdk.ml.create(**params).id)

    def ensure_webhook(self, project_id: int, url: str, headers: dict[str, str]) -> int:
        """One webhook to ``url`` per project, carrying ``headers`` (the shared secret)."""
        hooks = [h for h in (_plain(h) for h in self.sdk.webhooks.list(project=str(project_id))) if h.get("url") == url]
        if hooks:
            hook_id = int(hooks[0]["id"])
            self.sdk.webhooks.update(
                id=hook_id, url=url, headers=headers, send_payload=True, send_for_all_actions=True, is_active=True
            )
            for extra in hooks[1:]:
                self.sdk.webhooks.delete(id=int(extra["id"]))
            return hook_id
        hook = self.sdk.webhooks.create(
            url=url, project=project_id, headers=headers, send_payload=True, send_for_all_actions=True, is_active=True
        )
        return int(hook.id)

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], **fields: Any) -> int:
        return int(self.sdk.annotations.create(id=task_id, result=result, **fields).id)

    def find_project(self, title: str) -> dict[str, Any] | None:
        """The project with exactly this title (Label Studio's title filter matches substrings)."""
        for project in (_plain(p) for p in self.sdk.projects.list(title=title)):
            if project.get("title") == title:
                return project
        return None

    def update_label_config(self, project_id: int, label_config: str) -> None:
        self.sdk.projects.update(id=project_id, label_config=label_config)

    def ml_backends(self, project_id: int) -> list[dict[str, Any]]:
        return [_plain(b) for b in self.sdk.ml.list(project=project_id)]

    def webhooks(self, project_id: int) -> list[dict[str, Any]]:
        return [_plain(h) for h in self.sdk.webhooks.list(project=str(project_id))]

    def file_url(self, ref: str) -> str:
        """The URL to fetch for ``ref``: this client's own base URL plus ``ref``'s validated path.
        Raises UnsafeReference unless ``ref`` names a file Label Studio serves (see ``file_path``)."""
        return self.url + file_path(self.url, ref)

    def download(self, ref: str, max_bytes: int) -> bytes:
        """A file Label Studio serves (an uploaded image: ``/data/upload/...``), with this client's
        credentials. The request goes to this client's configured URL whatever ``ref`` says: its
        host part is only compared, never used (so no parser disagreement can send the token away)."""
        import requests

        url = self.file_url(ref)
        headers = self.sdk._client_wrapper.get_headers()  # the SDK's auth (legacy token or refreshed PAT)
        with requests.get(url, headers=headers, timeout=30, stream=True, allow_redirects=False) as response:
            if response.is_redirect:  # e.g. a presigned cloud-storage URL: another host, never followed
                raise ValueError("Label Studio answered with a redirect; redirects are not followed (SSRF protection)")
            response.raise_for_status()
            data = bytearray()
            for chunk in response.iter_content(1 << 16):
                data.extend(chunk)
                if len(data) > max_bytes:
                    raise ValueError(f"image larger than {max_bytes} bytes (HITL_MAX_IMAGE_BYTES)")
            return bytes(data)


class UnsafeReference(ValueError):
    """A task's file reference that does not name a file on the configured Label Studio."""


# Label Studio serves task files under these paths: uploads (/data/upload/<project>/<file>) and
# local storage (/data/local-files/?d=...). Nothing else on its API is ever requested with our token.
FILE_PREFIXES = ("/data/",)
_PATH_CHARS = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*(\?[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*)?$")
_AUTHORITY = re.compile(r"^(?P<host>[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]{1,5}))?$")
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})|%(2[Ff]|5[Cc]|2[Ee]|00)")
_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_REFERENCE_CHARS = 2048


def file_path(base_url: str, ref: str) -> str:
    """The path (and query) of ``ref`` below ``base_url``, when ``ref`` is a path Label Studio serves
    files from or an absolute URL of exactly the same origin; otherwise UnsafeReference.

    Strict on purpose: only printable ASCII, no backslash, no user info, no fragment, no encoded
    slash, backslash or dot, no ``..`` segment, and an authority equal to the configured one."""
    if not isinstance(ref, str) or not ref:
        raise UnsafeReference("the file reference is empty")
    if len(ref) > MAX_REFERENCE_CHARS:
        raise UnsafeReference(f"the file reference is longer than {MAX_REFERENCE_CHARS} characters")
    if not ref.isascii() or not ref.isprintable() or any(c in ref for c in " \\#"):
        raise UnsafeReference(
            "the file reference has characters a Label Studio file path never has "
            "(non-ASCII, space, backslash, control or '#')"
        )
    base = urlsplit(base_url)
    base_path = base.path.rstrip("/")
    if ref.startswith("/") and not ref.startswith("//"):
        path = ref
    else:
        scheme, sep, rest = ref.partition("://")
        if not sep or scheme.lower() not in _DEFAULT_PORTS:
            raise UnsafeReference("only paths on Label Studio and http(s) URLs of the same origin are fetched")
        authority, slash, tail = rest.partition("/")
        if _origin(scheme, authority) != _origin(base.scheme, base.netloc):
            raise UnsafeReference(f"the file is not on the configured Label Studio ({base.netloc})")
        path = slash + tail
        if base_path:
            if not (path == base_path or path.startswith(base_path + "/")):
                raise UnsafeReference("the file is not below the configured Label Studio URL")
            path = path[len(base_path) :]
    if not _PATH_CHARS.match(path) or _ESCAPE.search(path.split("?", 1)[0]):
        raise UnsafeReference("the file path has characters or escapes Label Studio file paths never have")
    if ".." in path.split("?", 1)[0].split("/"):
        raise UnsafeReference("the file path has a '..' segment")
    if not path.startswith(FILE_PREFIXES):
        raise UnsafeReference(f"only files Label Studio serves under {', '.join(FILE_PREFIXES)} are fetched")
    return path


def _origin(scheme: str, authority: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a plain authority; anything else (user info, odd ports) is refused."""
    scheme = scheme.lower()
    match = _AUTHORITY.match(authority.lower())
    if scheme not in _DEFAULT_PORTS or not match:
        raise UnsafeReference(f"{authority[:80]!r} is not a plain host[:port]")
    port = int(match["port"]) if match["port"] else _DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise UnsafeReference(f"port {port} is out of range")
    return scheme, match["host"], port
