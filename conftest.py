pytest_plugins = ["shopkit.testing"]
