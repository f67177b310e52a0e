"""Users: sign-up (with an empty wallet), login, and the configured admin account."""

import uuid
from datetime import datetime

from contracts.wallet import UserRegistered
from shopkit.db import Database
from shopkit.errors import Problem
from shopkit.outbox import publish
from wallet.models import User
from wallet.passwords import Passwords


async def register_user(
    db: Database,
    *,
    passwords: Passwords,
    name: str,
    email: str,
    password: str,
    now: datetime,
    role: str = "user",
) -> User:
    """Create a user with an empty wallet; 409 EMAIL_TAKEN when the email is in use."""
    password_hash = await passwords.hash(password)
    user_id = str(uuid.uuid4())
    async with db.transaction() as tx:
        created = await tx.fetchval(
            "WITH registered AS (INSERT INTO users"
            "  (id, name, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
            "  ON CONFLICT (email) DO NOTHING RETURNING id)"
            " INSERT INTO wallets (user_id, balance) SELECT id, 0 FROM registered"
            " RETURNING user_id",
            user_id,
            name,
            email,
            password_hash,
            role,
            now,
        )
        if created is None:
            raise Problem(409, "EMAIL_TAKEN", "a user with this email already exists")
        await publish(
            tx,
            UserRegistered(user_id=user_id, name=name, email=email, role=role, registered_at=now),
        )
    return User(id=user_id, name=name, email=email, role=role)


async def authenticate(db: Database, *, passwords: Passwords, email: str, password: str) -> User:
    """The user with these credentials; 401 INVALID_CREDENTIALS otherwise."""
    async with db.autocommit() as conn:
        row = await conn.fetchrow(
            "SELECT id, name, email, role, password_hash FROM users WHERE email = $1", email
        )
    user = User(**row) if row is not None else None
    if not await passwords.verify(user.password_hash if user else None, password) or user is None:
        raise Problem(401, "INVALID_CREDENTIALS", "email or password is wrong")
    return user


async def ensure_admin(
    db: Database, *, passwords: Passwords, email: str, password: str, now: datetime
) -> None:
    """Create the admin account, or give it this password: the configured one always wins."""
    async with db.autocommit() as conn:
        found = await conn.fetchrow("SELECT id, password_hash FROM users WHERE email = $1", email)
    if found is None:
        try:
            await register_user(
                db,
                passwords=passwords,
                name="Admin",
                email=email,
                password=password,
                now=now,
                role="admin",
            )
        except Problem:
            pass  # another replica created it first
        return
    if await passwords.verify(found["password_hash"], password):
        return
    password_hash = await passwords.hash(password)
    async with db.autocommit() as conn:
        await conn.execute(
            "UPDATE users SET password_hash = $2, role = 'admin' WHERE id = $1",
            found["id"],
            password_hash,
        )
