"""The fixtures the tests share, each from a plugin in tests/support/ (see its __init__)."""

pytest_plugins = [
    "tests.support.layers",
    "tests.support.tiny_model",
    "tests.support.aws",
    "tests.support.sagemaker",
    "tests.support.review",
    "tests.support.reply_index",
    "tests.support.stack",
]
