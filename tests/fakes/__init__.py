"""Loopback servers speaking exchange wire formats, for tests here and in plugins."""
