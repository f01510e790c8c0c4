# rq-dashboard at a pinned version (not an unpinned third-party image); basic auth and the Redis URL
# come from RQ_DASHBOARD_USERNAME, RQ_DASHBOARD_PASSWORD and RQ_DASHBOARD_REDIS_URL.
FROM python:3.11-slim
RUN pip install --no-cache-dir "rq-dashboard==0.9.0" "rq>=2.4,<3" && useradd --uid 10001 dashboard
USER dashboard
EXPOSE 9181
CMD ["rq-dashboard", "--bind", "0.0.0.0", "--port", "9181"]
