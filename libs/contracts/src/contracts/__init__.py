"""Every message that crosses a service boundary, and the topics that carry them."""

from contracts.base import MESSAGE_TYPES, Message, message_type
from contracts.envelope import Envelope
from contracts.topics import ALL_TOPICS, Topic

__all__ = ["ALL_TOPICS", "MESSAGE_TYPES", "Envelope", "Message", "Topic", "message_type"]

# Importing the message modules registers every contract in MESSAGE_TYPES.
from contracts import catalog, coupon, order, wallet

__all__ += ["catalog", "coupon", "order", "wallet"]
