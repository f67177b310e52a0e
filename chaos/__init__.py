"""The chaos suite: a seeded load through the gateway while processes, Kafka and PostgreSQL are
killed and restarted, then an auditor that checks the books balance (docs/chaos.md)."""
