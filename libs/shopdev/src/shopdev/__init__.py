"""Test fixtures and the local stack runner: development tooling, never installed in an image."""
