"""What the tests share. Helper functions are imported from these modules; fixtures come
through the plugins that tests/conftest.py registers, so a test asks for them by name. No
test module imports another test module or a conftest (tests/unit/test_architecture.py)."""
