"""Fuzzers run by `make fuzz` (not collected by pytest: no test_ prefix)."""
