from tests.emulation.conftest import sagemaker_service  # noqa: F401 (fixture)
