"""The shapes of the saga's table: a step, the command it sends, one row per event it takes."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from order.saga.events import SOURCES, Event
from order.saga.state import Effects, Moved, Saga, StepName


class Command(Protocol):
    @property
    def operation_id(self) -> str: ...


C = TypeVar("C", bound=Command)
E = TypeVar("E", bound=Event)

# How a step is timed: REPLY waits for replies and re-sends on a deadline; PROVIDER is driven
# by the payment worker at once; PROVIDER_AFTER_GRACE once the provider could have recorded
# a late payment; None: nothing in flight.
Deadline = Literal["REPLY", "PROVIDER", "PROVIDER_AFTER_GRACE"] | None


@dataclass(frozen=True)
class Sends(Generic[C]):
    """The command a step sends on entry (one per refund for a refunding step)."""

    command: type[C]
    build: Callable[[Saga], Sequence[C]]


@dataclass(frozen=True)
class On(Generic[E]):
    """One row: at this step, `event` is handled by `handler`, which leads to one of `to`."""

    event: type[E]
    handler: Callable[[Saga, E, Effects], Moved]
    to: tuple[StepName, ...]
    # A reply to a command: applied only while its operation id is waited for.
    reply: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reply", not isinstance(SOURCES[self.event], str))


@dataclass(frozen=True)
class Step:
    """A step: how it is timed, what it sends on entry, and the events it takes."""

    deadline: Deadline
    sends: Sends[Any] | None
    on: tuple[On[Any], ...]
    handlers: dict[type, On[Any]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "handlers", {row.event: row for row in self.on})


# The table is written with these three: unlike the classes' constructors, they let mypy check
# that a row's handler takes the row's event and a step's builder makes the step's command.
def sends(command: type[C], build: Callable[[Saga], Sequence[C]]) -> Sends[Any]:
    return Sends(command, build)


def on(event: type[E], handler: Callable[[Saga, E, Effects], Moved], *to: StepName) -> On[Any]:
    return On(event, handler, to)


def step(deadline: Deadline, sends: Sends[Any] | None, *rows: On[Any]) -> Step:
    return Step(deadline, sends, rows)
