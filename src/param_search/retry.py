"""The retry policy: which ended attempts go out again, and with what resources.

A policy is data (stored in the experiment as JSON, so any later process applies the same
one); :meth:`Retry.decide` is pure: given a record that ended and how its queue reads and
writes resources, it says what the next attempt asks for and the line the jobs table
shows for the decision.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import OptionError
from .resources import megabytes, scaled, seconds
from .states import COMPLETED, FAILED, FINAL_STATES, PRUNED

if TYPE_CHECKING:
    from .record import Record

#: What a rule may say, and what each value must be.
ACTIONS = {"time": "a factor > 0 for the time limit, e.g. 2.0",
           "mem": "a factor > 0 for the memory, e.g. 2.0",
           "exclude_node": "True to keep the next attempt off the node this one ran on",
           "exit_codes": "a list of exit codes worth retrying (others are not retried)"}
#: States a rule may name.
RETRYABLE = sorted(FINAL_STATES - {COMPLETED, PRUNED})   # a pruned trial was stopped on purpose
#: Without ``on=``: the failures nobody's job causes.
DEFAULT_ON: dict[str, dict | None] = {"NODE_FAIL": {}, "PREEMPTED": {}}


@dataclass(frozen=True)
class Decision:
    """What the next attempt asks for (``time_limit``, ``mem_limit``, ``excluded``: text,
    only those that change) and the history line that says why."""
    resources: dict[str, str | None]
    note: str


@dataclass(frozen=True)
class Resources:
    """How one queue reads and writes resources (see ``Queue.resource_syntax``)."""
    parse_time: Callable[[str], float]    # text -> seconds
    write_time: Callable[[float], str]
    parse_mem: Callable[[str], float]     # text -> MiB
    write_mem: Callable[[float], str]
    can_exclude: bool


@dataclass(frozen=True)
class Retry:
    """Send jobs that ended in some states again, up to ``max_attempts`` attempts in all.

    ``on`` maps a final state to a rule: ``{}`` sends the job again as it was; ``{'time':
    2.0}`` doubles the time limit, ``{'mem': 2.0}`` the memory (each from the previous
    attempt's value, at most ``max_time`` / ``max_mem``); ``{'exclude_node': True}`` keeps
    it off the node it failed on; ``{'exit_codes': [75]}`` retries only those exit codes;
    ``None`` (or a state left out) means not retried. Default: NODE_FAIL and PREEMPTED.

    Args:
        max_attempts: attempts per job in all (the first one included).
        on: state -> rule, as above.
        max_time: the most time a retry may ask for, e.g. ``'24:00:00'``.
        max_mem: the most memory a retry may ask for, e.g. ``'64G'``.
    """

    max_attempts: int = 3
    on: Mapping[str, Mapping[str, Any] | None] = field(default_factory=lambda: dict(DEFAULT_ON))
    max_time: str | None = None
    max_mem: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise OptionError(f"max_attempts must be an int >= 1, not {self.max_attempts!r}")
        if not isinstance(self.on, Mapping):
            raise OptionError(f"on= must be a dict from states to rules, e.g. {{'TIMEOUT': {{'time': 2.0}}}}, "
                              f"not {self.on!r}")
        rules = {}
        for state, rule in self.on.items():
            state = str(state)
            if state not in RETRYABLE:
                raise OptionError(f"Retry(on=...): {state!r} is not a state to retry; "
                                  f"use one of {', '.join(RETRYABLE)}")
            rules[state] = None if rule is None else _checked_rule(state, rule)
        object.__setattr__(self, "on", rules)
        if self.max_time is not None:
            seconds(self.max_time)
        if self.max_mem is not None:
            megabytes(self.max_mem)

    # -- stored form -------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"max_attempts": self.max_attempts, "on": dict(self.on),
                "max_time": self.max_time, "max_mem": self.max_mem}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Retry":
        return cls(data["max_attempts"], data["on"], max_time=data.get("max_time"),
                   max_mem=data.get("max_mem"))

    # -- deciding ----------------------------------------------------------------------
    @property
    def states(self) -> frozenset[str]:
        """The states some rule retries."""
        return frozenset(s for s, rule in self.on.items() if rule is not None)

    def wants(self, record: "Record") -> bool:
        """Whether the record's ended attempt is to be sent again."""
        rule = self.on.get(record["state"])
        if rule is None or record["attempt"] >= self.max_attempts:
            return False
        codes = rule.get("exit_codes")
        return codes is None or record["exit_code"] in codes

    def check(self, queue_name: str, syntax: Resources | None) -> None:
        """Refuse, before anything is sent, a rule the queue cannot carry out."""
        for state, rule in self.on.items():
            if rule and rule.get("exclude_node") and not (syntax and syntax.can_exclude):
                raise OptionError(f"Retry(on={{{state!r}: {{'exclude_node': True}}}}): the {queue_name} "
                                  "queue cannot keep a job off a node; drop exclude_node")

    def decide(self, record: "Record", syntax: Resources | None) -> Decision:
        """The next attempt of a record that :meth:`wants` another (``syntax``: how its queue
        writes resources; None if it has none)."""
        rule = self.on[record["state"]] or {}
        new: dict[str, str | None] = {}
        changes = []
        cap_time = None if self.max_time is None else seconds(self.max_time)
        cap_mem = None if self.max_mem is None else megabytes(self.max_mem)
        for key, field_name, cap in (("time", "time_limit", cap_time), ("mem", "mem_limit", cap_mem)):
            if key not in rule:
                continue
            value = None if syntax is None else scaled(
                record[field_name], float(rule[key]), cap,
                *((syntax.parse_time, syntax.write_time) if key == "time" else (syntax.parse_mem, syntax.write_mem)))
            if value is None:
                changes.append(f"{key} unknown (the queue's default), not scaled")
            else:
                new[field_name] = value
                changes.append(f"{key} {value}")
        if rule.get("exclude_node") and record["node"]:
            nodes = sorted({*filter(None, (record["excluded"] or "").split(",")), *record["node"].split(",")})
            new["excluded"] = ",".join(nodes)
            changes.append(f"exclude {new['excluded']}")
        return Decision(new, f"attempt {record['attempt']}: {_what(record)} -> {', '.join(changes) or 'again'}")


def _what(record: "Record") -> str:
    """The ended attempt in a few words: ``TIMEOUT at 0:01:00``, ``FAILED (exit 75)``."""
    state = record["state"]
    if state == FAILED and record["exit_code"] is not None:
        return f"FAILED (exit {record['exit_code']})"
    if state == "TIMEOUT" and record["time_limit"]:
        return f"TIMEOUT at {record['time_limit']}"
    if state == "OUT_OF_MEMORY" and record["mem_limit"]:
        return f"OUT_OF_MEMORY at {record['mem_limit']}"
    if state == "NODE_FAIL" and record["node"]:
        return f"NODE_FAIL on {record['node']}"
    return state


def _checked_rule(state: str, rule: Any) -> dict[str, Any]:
    if not isinstance(rule, Mapping):
        raise OptionError(f"Retry(on={{{state!r}: ...}}): a rule is a dict such as {{'time': 2.0}}, "
                          f"{{}} (again as it was) or None (not retried), not {rule!r}")
    for key, value in rule.items():
        if key not in ACTIONS:
            raise OptionError(f"Retry(on={{{state!r}: {{{key!r}: ...}}}}): unknown action; use "
                              + "; ".join(f"{k!r}: {v}" for k, v in ACTIONS.items()))
        if key in ("time", "mem") and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise OptionError(f"Retry(on={{{state!r}: {{{key!r}: {value!r}}}}}): {ACTIONS[key]}")
        if key == "exclude_node" and not isinstance(value, bool):
            raise OptionError(f"Retry(on={{{state!r}: {{'exclude_node': {value!r}}}}}): {ACTIONS[key]}")
        if key == "exit_codes" and (isinstance(value, (str, bytes)) or not all(
                isinstance(c, int) and not isinstance(c, bool) for c in value)):
            raise OptionError(f"Retry(on={{{state!r}: {{'exit_codes': {value!r}}}}}): {ACTIONS[key]}")
    return {k: (list(v) if k == "exit_codes" else v) for k, v in rule.items()}
