"""The local SageMaker service: training jobs, tuning jobs, models and endpoints behind the
`sagemaker` and `sagemaker-runtime` wire protocols, so plain boto3 works against it.

    app.py        HTTP: the awsJson1_1 control plane (POST /) and InvokeEndpoint
    protocol.py   AWS error shapes and request helpers
    store.py      resources as JSON documents in SQLite (state survives a restart)
    artifacts.py  S3 and CloudWatch Logs in the AWS backend
    containers.py how jobs and replicas run: processes of `python -m model`
    training.py   training jobs;  tuning.py  tuning jobs (Optuna)
    endpoints.py  models, endpoint configs, endpoints and their replicas
"""
