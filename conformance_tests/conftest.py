"""Loads the suite's plugin (options, fixtures, summary) when pytest collects this folder."""

pytest_plugins = ["conformance_tests.plugin"]
