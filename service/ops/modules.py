"""The modules that register operations (service/ops): one import line each."""
# ruff: noqa: F401
