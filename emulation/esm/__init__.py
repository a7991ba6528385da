"""Kinesis and SQS -> Lambda event source mappings with AWS's semantics (docs/architecture.md 4).

MiniStack's own Kinesis poller ignores failures and loses records, so locally every mapping
is created disabled and this runner does the polling: it reads the mappings from the
backend's Lambda API, reads each shard in order, and invokes the function synchronously
through the backend's Lambda Invoke API. Honoured settings:

- BatchSize, MaximumBatchingWindowInSeconds (and the 6 MB invoke payload limit);
- StartingPosition TRIM_HORIZON, LATEST, AT_TIMESTAMP. LATEST is fixed when the runner
  first sees the mapping (it looks every second), not at its creation: MiniStack reports
  creation times in whole seconds, which would let in records from before. MiniStack also
  drops StartingPositionTimestamp, so an AT_TIMESTAMP mapping from it is refused (logged);
  LocalStack and AWS return it;
- one batch in flight per shard, records in order;
- FunctionResponseTypes=[ReportBatchItemFailures]: success up to the lowest failed sequence
  number, a retry from there; a malformed response fails the whole batch, as on AWS;
- BisectBatchOnFunctionError: a failing batch is split in two and each half retried
  (splitting does not count as a retry), so a poison record ends up alone;
- MaximumRetryAttempts (-1: until the records expire), MaximumRecordAgeInSeconds (-1: never);
- DestinationConfig.OnFailure to an SQS queue, with AWS's on-failure record;
- checkpoints on disk (the last sequence number done per mapping and shard), so a restarted
  runner goes on where it stopped: nothing lost, nothing skipped.

SQS mappings (QueueWorker): BatchSize and the batching window, ReportBatchItemFailures
(only what succeeded is deleted), a fixed number of concurrent pollers; redelivery and the
dead-letter queue are the queue's own (visibility timeout, RedrivePolicy).

Not handled: ParallelizationFactor > 1 (one batch per shard at a time), resharding, SNS
destinations, tumbling windows, SQS FIFO ordering by message group.

Layout: mapping.py (settings, outcomes), checkpoints.py, events.py (what Lambda
receives), kinesis.py (one shard's worker), sqs.py (one queue poller), runner.py
(discovery and invoking; the workers get only its narrow `Delivery`), __main__.py.
"""
