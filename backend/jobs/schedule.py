"""The retrain schedule: one file, in RQ's cron format (``rq.cron.register``).

`hitl run` and `hitl scheduler` load it; point HITL_SCHEDULE_FILE at your own copy to change it.
Each entry only *requests* retrains; requests coalesce with webhook-triggered ones per project.
"""

from rq import cron

from backend.jobs.scheduled import retrain_all_projects
from backend.settings import get_settings

QUEUE = get_settings().queue_name  # the job below only requests retrains; fine-tunes then go to the slow queue

# Fast head retrain every hour: picks up annotations whose webhooks were lost.
cron.register(retrain_all_projects, queue_name=QUEUE, kwargs={"kind": "head"}, cron="0 * * * *", name="hourly-head")

# Re-rank every queue every 15 minutes: picks up tasks imported since the last publish.
cron.register(retrain_all_projects, queue_name=QUEUE, kwargs={"kind": "sync"}, cron="*/15 * * * *", name="queue-sync")

# Full encoder fine-tune every night at 03:00 (UTC).
cron.register(
    retrain_all_projects,
    queue_name=QUEUE,
    kwargs={"kind": "full"},
    cron="0 3 * * *",
    name="nightly-finetune",
    job_timeout=4 * 3600,
)
