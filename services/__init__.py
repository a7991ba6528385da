"""The pipeline's Lambda functions and what they share (docs/architecture.md, section 1).

The functions (handlers):
ingest.py        SQS batch of S3 ObjectCreated events -> email.v1 on Kinesis (rejections under
                 rejected/ with their reason)
classify.py      Kinesis batch -> InvokeEndpoint -> classification.v1 in DynamoDB and S3, each
                 new result routed on the EventBridge bus
feedback.py      the review page (review.html) and its API behind API Gateway: corrections,
                 reply templates, suggested and sent replies
monitor.py       hourly: measure the serving model, decide (retrain, promote), refresh the
                 reply index
autoreply.py     SQS batch of routed results -> automatic replies, where a template says so
mailbox/         the mailbox door: IMAP mailboxes -> raw e-mails in incoming/, exactly once
                 (a scheduled function on AWS, `python -m services.mailbox` locally)

What they share:
mail.py          raw e-mail bytes -> email.v1 (quotes.py: replies and signatures,
                 language.py: the language of a text)
records.py       the email.v1 and classification.v1 models, the InvokeEndpoint answer
batch.py         partial batch responses for handlers that work on a whole batch
results.py       the results table and bucket: each result stored once, read back
routing.py       results and corrections as events on the routing bus, to the teams' queues
replies/         templates, suggestions, the suggestion index, sending replies, the address
                 and auto-reply policy (services/replies/__init__.py lists its modules;
                 placeholders.py: what fills a reply's placeholders)
measures.py      what the monitor computes over a window of results (pure functions)
lifecycle.py     the model life cycle: serve, promote, retrain, decide (also used by `postwerk`)
registry.py      trained models and the champion, as S3 objects
storage.py       S3 access: reads with missing keys as None, conditional writes, listing,
                 deleting
clients.py       boto3 clients, made once per AWS environment (also used by `postwerk`)
waits.py         bounded waits on jobs, stacks and endpoints (also used by `postwerk`)
settings.py      POSTWERK_* settings that the stack's template sets
"""
