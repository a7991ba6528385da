"""The pipeline's Lambda functions and what they share (docs/architecture.md, section 1).

The functions (handlers):
ingest.py        SQS batch of S3 ObjectCreated events -> email.v1 on Kinesis (rejections under
                 rejected/ with their reason)
classify.py      Kinesis batch -> InvokeEndpoint -> classification.v1 in DynamoDB and S3, each
                 new result routed on the EventBridge bus
feedback.py      the review page (review.html) and its API behind API Gateway: corrections,
                 reply templates, suggestions and sending
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
routing.py       results and corrections as events on the routing bus, by team
replies.py       reply templates, suggestions and sending once (placeholders.py fills the
                 templates, reply_index.py finds the replies to similar e-mails)
results.py       reading the results table
measures.py      what the monitor computes over a window of results (pure functions)
lifecycle.py     the model life cycle: serve, promote, retrain, decide (also used by `postwerk`)
registry.py      trained models and the champion, as S3 objects
clients.py       boto3 clients made once per cold start
settings.py      POSTWERK_* settings that the stack's template sets
"""
