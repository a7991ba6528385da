"""The pipeline's Lambda functions and what they share.

The functions (handlers):
ingest.py     SQS batch of S3 ObjectCreated events -> email.v1 on Kinesis (rejections under
              rejected/ with their reason)
classify.py   Kinesis batch -> InvokeEndpoint -> classification.v1 in DynamoDB and S3
feedback.py   the review page (review.html) and its API behind API Gateway: corrections
monitor.py    hourly: measure the serving model, decide (retrain, promote)

What they share:
mail.py       raw e-mail bytes -> email.v1 (quotes.py: replies and signatures,
              language.py: the language of a text)
records.py    the email.v1 and classification.v1 models
results.py    reading the results table
measures.py   what the monitor computes over a window of results (pure functions)
lifecycle.py  the model life cycle: serve, promote, retrain, decide (also used by `postwerk`)
registry.py   trained models and the champion, as S3 objects
clients.py    boto3 clients made once per cold start
settings.py   POSTWERK_* settings that the stack's template sets
"""
