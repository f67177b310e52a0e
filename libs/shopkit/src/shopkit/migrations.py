"""Alembic support shared by every service: the env.py body and the kit's own tables."""

import asyncio
import os

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy import MetaData, pool
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config


def run_migrations(metadata: MetaData) -> None:
    """The whole of a service's migrations/env.py: online, async, URL from SHOP_DATABASE_URL."""
    config = context.config
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("SHOP_DATABASE_URL")
    if not url:
        raise RuntimeError("set SHOP_DATABASE_URL (or sqlalchemy.url) to migrate")
    config.set_main_option("sqlalchemy.url", url)

    def migrate(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = async_engine_from_config(
            config.get_section(config.config_ini_section, {}),
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )
        async with engine.connect() as connection:
            await connection.run_sync(migrate)
        await engine.dispose()

    asyncio.run(run())


def create_kit_tables() -> None:
    """Outbox, inbox and idempotency tables; call from a service's first migration."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("envelope", postgresql.JSONB, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("published_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "ix_outbox_unpublished", "outbox", ["id"], postgresql_where=sa.text("published_at IS NULL")
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("message_id", sa.Uuid, primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("response_status", sa.Integer),
        sa.Column("response_body", postgresql.JSONB),
        sa.Column(
            "claimed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )


def outbox_deletes_sent_rows() -> None:
    """The relay deletes what it sent (0002 in every service): sent rows and their mark go."""
    op.execute("DELETE FROM outbox WHERE published_at IS NOT NULL")
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
    op.drop_column("outbox", "published_at")


def outbox_marks_sent_rows() -> None:
    """Undo `outbox_deletes_sent_rows` (what was deleted stays gone; it is on Kafka)."""
    op.add_column("outbox", sa.Column("published_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_outbox_unpublished", "outbox", ["id"], postgresql_where=sa.text("published_at IS NULL")
    )


def drop_kit_tables() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("inbox")
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
    op.drop_table("outbox")


def create_dead_letters() -> None:
    """Dead letters kept in the service's own database (0003 in every service): the `.dlt`
    topics expire with Kafka's retention, an operator's queue must not."""
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer),
        sa.Column("offset", sa.BigInteger),
        sa.Column("key", sa.String(200)),
        sa.Column("message_id", sa.Uuid),
        sa.Column("type", sa.String(100)),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column(
            "dead_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        # DEAD (listed), REDRIVING (sent back, not yet handled), REDRIVEN (handled: gone from
        # the list, kept for the record of who redrove it).
        sa.Column("status", sa.String(20), nullable=False, server_default="DEAD"),
        sa.Column("redriven_at", sa.DateTime(timezone=True)),
        sa.Column("redriven_by", sa.String(100)),
    )
    op.create_index("ix_dead_letters_status_dead_at", "dead_letters", ["status", "dead_at"])
    op.create_index(
        "ix_dead_letters_consumer_message_id", "dead_letters", ["consumer", "message_id"]
    )


def drop_dead_letters() -> None:
    op.drop_table("dead_letters")


def index_for_pruning() -> None:
    """BRIN indexes on the ages the retention job prunes by (0004 in every service).

    Rows arrive in time order, so a BRIN index (a few pages, no entry per row) finds the old
    ones; a btree would add an entry to every inbox insert, which runs for every message.
    autosummarize: a range is summarized once it fills, not only at the next VACUUM (until
    then the prune query reads every page)."""
    for table, column in (("inbox", "processed_at"), ("idempotency_keys", "claimed_at")):
        op.create_index(
            f"ix_{table}_{column}",
            table,
            [column],
            postgresql_using="brin",
            postgresql_with={"autosummarize": "on"},
        )


def drop_pruning_indexes() -> None:
    op.drop_index("ix_idempotency_keys_claimed_at", table_name="idempotency_keys")
    op.drop_index("ix_inbox_processed_at", table_name="inbox")
