"""Wallet messages: users, balances, and the saga's debit and refund."""

from datetime import datetime
from typing import Literal

from contracts.base import Message
from contracts.topics import WALLET_COMMANDS, WALLET_EVENTS, WALLET_REPLIES


class UserRegistered(Message):
    """A user signed up; other services learn user ids from this."""

    TOPIC = WALLET_EVENTS
    KEY = "user_id"
    user_id: str
    name: str
    email: str
    role: Literal["user", "admin"]
    registered_at: datetime


class BalanceCharged(Message):
    """A user charged their balance."""

    TOPIC = WALLET_EVENTS
    KEY = "user_id"
    user_id: str
    amount: int
    balance: int
    transaction_id: str


class DebitWallet(Message):
    """Take `amount` from the user's balance for an order (idempotent per operation_id)."""

    TOPIC = WALLET_COMMANDS
    KEY = "order_id"
    order_id: str
    operation_id: str
    user_id: str
    amount: int


class RefundWallet(Message):
    """Give back up to `amount` of what the debit `debit_operation_id` took (idempotent).

    When that debit never happened (its command is late or lost), the debit is voided instead:
    nothing is refunded, and the debit is refused if it ever arrives.
    """

    TOPIC = WALLET_COMMANDS
    KEY = "order_id"
    order_id: str
    operation_id: str
    debit_operation_id: str
    user_id: str
    amount: int


class WalletDebited(Message):
    """The debit was taken."""

    TOPIC = WALLET_REPLIES
    KEY = "order_id"
    order_id: str
    operation_id: str
    user_id: str
    amount: int
    balance: int
    transaction_id: str


class WalletDebitFailed(Message):
    """The debit could not be taken; nothing changed."""

    TOPIC = WALLET_REPLIES
    KEY = "order_id"
    order_id: str
    operation_id: str
    user_id: str
    reason: Literal["INSUFFICIENT_BALANCE", "USER_NOT_FOUND"]


class WalletRefunded(Message):
    """The refund was given back."""

    TOPIC = WALLET_REPLIES
    KEY = "order_id"
    order_id: str
    operation_id: str
    user_id: str
    amount: int
    balance: int
    transaction_id: str
