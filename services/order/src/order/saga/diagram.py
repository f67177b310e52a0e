"""The table rendered for people: a mermaid state diagram and a markdown table of the steps
(docs/generated/saga.md is made of them)."""

from order.saga.table import START, TABLE, TRANSITIONS


def mermaid_state_diagram() -> str:
    """`TRANSITIONS` as a mermaid stateDiagram-v2, one arrow per row."""
    lines = ["```mermaid", "stateDiagram-v2", f"    [*] --> {START} : OrderPlaced"]
    lines += [f"    {step} --> {to} : {event}" for step, event, to in TRANSITIONS]
    lines.append("```")
    return "\n".join(lines)


def markdown_table() -> str:
    """Each step with the command it sends and its timing, then a line per event it takes."""
    lines = [
        "| step | sends | timed by | on | handled by | next steps |",
        "|---|---|---|---|---|---|",
    ]
    for name, step in TABLE.items():
        sends = step.sends.command.__name__ if step.sends else ""
        for i, row in enumerate(step.on):
            head = f"| {name} | {sends} | {step.deadline or ''} " if i == 0 else "| | | "
            handler = f"`{row.handler.__module__.rsplit('.', 1)[-1]}.{row.handler.__name__}`"
            lines.append(f"{head}| {row.event.__name__} | {handler} | {', '.join(row.to)} |")
    return "\n".join(lines)
