# The project's own fixtures, the same ones plugin authors can use.
pytest_plugins = ["hma_framework.testing"]
