import os

pytest_plugins = ["shopdev.testing"]

# Tests register and log in hundreds of users from one address, like a load test: abuse limits
# are off (services and the e2e gateway inherit this) except where a test turns them on.
os.environ.setdefault("SHOP_RATE_LIMITS", "off")
