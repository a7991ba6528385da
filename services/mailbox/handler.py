"""The mailbox door on AWS: a function that an EventBridge schedule starts every minute
(decision 0011). Each run fetches every mailbox once, within the run's time less a margin,
and publishes two metrics (CloudWatch embedded metric format, namespace postwerk, service
mailbox) that the stack's alarms watch:
- MailboxesOverdue: mailboxes without a successful fetch for their alarm time;
- MailboxLoginsRefused: mailboxes whose last login was refused.
Locally the same fetch runs as `python -m services.mailbox`, with IDLE.
"""

import time

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from services.mailbox import state
from services.mailbox.door import Buckets, fetch_all, logger
from services.settings import FunctionSettings

MARGIN_SECONDS = 10  # left for recording health and flushing the metrics

metrics = Metrics(namespace="postwerk", service="mailbox")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    settings = FunctionSettings()
    buckets = Buckets(raw=settings.raw_bucket, artifacts=settings.artifacts_bucket)
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS
    fetched = fetch_all(buckets, deadline)
    now = state.now()
    overdue = [name for name, (mailbox, health) in fetched.items() if health.overdue(mailbox, now)]
    refused = [name for name, (_, health) in fetched.items() if health.login_refused]
    metrics.add_metric(name="MailboxesOverdue", unit=MetricUnit.Count, value=len(overdue))
    metrics.add_metric(name="MailboxLoginsRefused", unit=MetricUnit.Count, value=len(refused))
    return {
        name: {"stored": health.stored, "backlog": health.backlog, "error": health.last_error}
        for name, (_, health) in fetched.items()
    }
