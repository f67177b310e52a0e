"""The base of every contract: a frozen pydantic model that knows its topic and its key field."""

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from contracts.topics import Topic

MESSAGE_TYPES: dict[str, type["Message"]] = {}


class Message(BaseModel):
    """A command or event. Subclasses name their topic and the field used as the Kafka key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TOPIC: ClassVar[Topic]
    KEY: ClassVar[str]
    VERSION: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__ in MESSAGE_TYPES:
            raise TypeError(f"duplicate message type {cls.__name__}")
        MESSAGE_TYPES[cls.__name__] = cls

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__


def message_type(name: str) -> type[Message]:
    """The contract class registered under a type name (KeyError when unknown)."""
    return MESSAGE_TYPES[name]
