"""The pipeline's Lambda functions and what they share.

ingest.py    S3 ObjectCreated -> email.v1 on Kinesis (rejections under rejected/)
classify.py  Kinesis batch -> InvokeEndpoint -> classification.v1 in DynamoDB and S3
mail.py      raw e-mail bytes -> email.v1
records.py   the email.v1 and classification.v1 models
settings.py  POSTWERK_* settings that the stack's template sets
"""
