"""`python -m emulation.sagemaker`: the local SageMaker service on POSTWERK_SAGEMAKER_PORT.

Its jobs and endpoints use the AWS backend that the standard variables name
(AWS_ENDPOINT_URL for the embedded MiniStack, nothing for real AWS).
"""

import logging

import uvicorn

from emulation.sagemaker.app import create_app
from emulation.sagemaker.settings import ServiceSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for chatty in ("botocore", "urllib3"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    settings = ServiceSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=2,  # a request still open then does not hold up the stop
    )


if __name__ == "__main__":
    main()
