"""The local SageMaker service: training, tuning and transform jobs, models and endpoints
behind the `sagemaker` and `sagemaker-runtime` wire protocols, so plain boto3, the AWS CLI
and the SageMaker Python SDK work against it.

    app.py          HTTP: the awsJson1_1 control plane (POST /) and InvokeEndpoint
    protocol.py     AWS error shapes and request helpers;  tags.py  tags on every resource
    store.py        resources as JSON documents in SQLite (state survives a restart)
    artifacts.py    S3 and CloudWatch Logs in the AWS backend
    containers.py   how jobs and replicas run: processes of `python -m model`, or containers
    jobs.py         the life cycle every kind of job shares (create, stop, end, recovery)
    training.py     training jobs (one run per instance);  tuning.py  tuning jobs (Optuna)
    transform.py    batch transform jobs
    endpoints.py    models, endpoint configs, endpoints: the control plane and deploying
    fleets.py       the replicas of an endpoint and their fleets;  model_files.py  their files
    invocations.py  InvokeEndpoint's hop to a ready replica
    launcher.py     start the service as a subprocess (for `python -m emulation` and tests)
"""
