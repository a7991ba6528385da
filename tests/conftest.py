"""The fixtures the tests share, each from a plugin in tests/support/ (see its __init__)."""

pytest_plugins = [
    "pytester",  # tests/unit/test_layers.py runs pytest on tests of its own
    "tests.support.layers",
    "tests.support.tiny_model",
    "tests.support.aws",
    "tests.support.sagemaker",
    "tests.support.review",
    "tests.support.reply_index",
    "tests.support.stack",
    "tests.support.mailbox",
]
