"""Job names and scripts: rendering a template for every point of a space.

Placeholders are Python format fields. Besides the parameters, a template may use
the reserved keys in :data:`RESERVED_KEYS`. The conversion ``{value!q}`` shell-quotes
a value (``shlex.quote``): use it for any string parameter that lands on a shell
command line, so a value such as ``x; touch pwned`` stays one inert word.
"""
from __future__ import annotations

import os
import shlex
import string
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote   # C; what json.dumps uses
from typing import Any

from .errors import TemplateError
from .identity import digest_of, identity_of, stored_json

#: Keys every template can use, filled in per job. A parameter may not take these names.
RESERVED_KEYS = ("job_name", "hash", "job_dir", "work_dir")
#: The name of the experiment's own folder inside ``work_dir``.
STATE_DIR_NAME = ".param_search"


class _QuotingFormatter(string.Formatter):
    """``str.format`` plus the ``!q`` conversion (shell quoting)."""

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion == "q":
            return shlex.quote(str(value))
        return super().convert_field(value, conversion)


_QUOTING = _QuotingFormatter()


@dataclass(frozen=True)
class Template:
    """A format string checked once, then rendered fast for many jobs."""

    text: str
    what: str  # "name" or "template", for messages
    fields: frozenset   # the placeholders' field names, e.g. 'lr' or 'x[0]'
    quoting: bool

    @classmethod
    def parse(cls, text: str, what: str) -> "Template":
        if not isinstance(text, str):
            raise TemplateError(f"the job {what} must be a str, not {type(text).__name__}")
        fields, quoting = set(), False
        try:
            for _, field, _, conversion in string.Formatter().parse(text):
                if field is None:
                    continue
                root = _field_root(field)
                if root == "":
                    raise TemplateError(
                        f"the job {what} has a positional placeholder {{{field}}}; "
                        "name it after a parameter, e.g. {lr}"
                    )
                fields.add(field)
                quoting |= conversion == "q"
                if conversion not in (None, "q", "r", "s", "a"):
                    raise TemplateError(f"the job {what} uses an unknown conversion !{conversion}")
        except ValueError as exc:
            raise TemplateError(
                f"the job {what} is not a valid format string ({exc}); "
                "write literal braces as {{ and }}"
            ) from exc
        return cls(text, what, frozenset(fields), quoting)

    def check_keys(self, available: Iterable[str]) -> None:
        """Raise if a placeholder names no parameter nor reserved key, or names a parameter
        a format string cannot reference (``{0}`` is a position, ``{a.b}`` an attribute)."""
        available = list(available)
        unusable = [k for k in available if not referenceable(k)]
        for field in sorted(self.fields):
            root = _field_root(field)
            meant = [k for k in unusable if k == root or field.startswith(k)]
            if not meant and root in available and referenceable(root):
                continue
            if meant:
                raise TemplateError(
                    f"the job {self.what} cannot use parameter {meant[0]!r}: a format placeholder "
                    "can only name parameters without '.', '[', ']', '{', '}', ':' or '!' that are "
                    "not all digits; rename it, e.g. ParamSpace(**{'p_" + _identifier(meant[0])
                    + "': ...}) (or rename the DataFrame column)"
                )
            raise TemplateError(
                f"the job {self.what} uses {{{root}}}, which is neither a parameter nor a "
                f"reserved key; available keys: {', '.join(available)}"
            )

    def render(self, values: Mapping[str, Any]) -> str:
        try:
            if self.quoting:
                return _QUOTING.vformat(self.text, (), values)
            return self.text.format_map(values)
        except (KeyError, AttributeError, IndexError, TypeError, ValueError) as exc:
            raise TemplateError(
                f"cannot render the job {self.what} for parameters {_public(values)!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


_SPECIAL = ".[]{}:!"


def referenceable(name: str) -> bool:
    """Whether a format placeholder ``{name}`` can stand for a parameter of that name."""
    return bool(name) and not name.isdigit() and not any(ch in name for ch in _SPECIAL)


def _identifier(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def _field_root(field: str) -> str:
    for i, ch in enumerate(field):
        if ch in ".[":
            return field[:i]
    return field


def _public(values: Mapping[str, Any]) -> dict:
    return {k: v for k, v in values.items() if k not in RESERVED_KEYS}


@dataclass
class RenderedJob:
    """One job ready to be written: identity, name, script."""

    job_name: str
    hash: str
    params: dict
    script: str
    params_text: str = ""   # identity.stored_json(params), when already computed

    def params_json(self) -> str:
        """The text of the job's ``params.json``: name, hash and params (compact, strict JSON)."""
        text = self.params_text or stored_json(self.params)
        return f'{{"hash":{_quote(self.hash)},"job_name":{_quote(self.job_name)},"params":{text}}}\n'


def render_jobs(template: str, name: str, param_space: Iterable[Mapping], work_dir: str) -> list[RenderedJob]:
    """Render name and script for every point, checking everything before any write.

    Raises:
        TemplateError: a placeholder names no key, a name is unsafe, or two points share a name.
    """
    name_t, script_t = Template.parse(name, "name"), Template.parse(template, "template")
    work_dir = os.path.abspath(work_dir)
    if any(ch in work_dir for ch in "\t\n\r"):
        raise TemplateError(f"work_dir {work_dir!r} contains a tab or line break, which job lists and "
                            "scheduler commands cannot carry; use a folder name without them")
    jobs, checked_keys = [], None
    for params in param_space:
        params = dict(params)
        if checked_keys != list(params):
            checked_keys = _check_param_keys(params, name_t, script_t)
        jobs.append(_render_one(params, name_t, script_t, work_dir))
    return _unique(jobs)


def _check_param_keys(params: dict, name_t: Template, script_t: Template) -> list:
    clash = [k for k in params if k in RESERVED_KEYS]
    if clash:
        raise TemplateError(
            f"parameter {clash[0]!r} has the name of a reserved key; rename it "
            f"(reserved: {', '.join(RESERVED_KEYS)})"
        )
    name_t.check_keys([*params, "hash"])
    script_t.check_keys([*params, *RESERVED_KEYS])
    return list(params)


def _render_one(params: dict, name_t: Template, script_t: Template, work_dir: str) -> RenderedJob:
    identity, text = identity_of(params)
    digest = digest_of(identity)
    job_name = name_t.render({**params, "hash": digest})
    check_job_name(job_name, params)
    values = {**params, "job_name": job_name, "hash": digest,
              "job_dir": f"{work_dir}/{job_name}", "work_dir": work_dir}
    return RenderedJob(job_name, digest, params, script_t.render(values), text)


def check_job_name(job_name: str, params: Mapping | None = None) -> None:
    """Raise unless ``job_name`` is a safe directory name."""
    problem = None
    if job_name in ("", ".", ".."):
        problem = "is empty or a special directory name"
    elif any(ch in job_name for ch in "/\0\t\n\r"):
        problem = "contains '/', a NUL, tab or newline character"
    elif job_name == STATE_DIR_NAME:
        problem = "is reserved for the experiment's own state"
    elif job_name.startswith("."):
        problem = "starts with '.' (hidden folders are not jobs: a rebuilt index skips them)"
    elif len(job_name.encode()) > 255:
        problem = "is longer than 255 bytes"
    if problem:
        where = f" (parameters {dict(params)!r})" if params is not None else ""
        raise TemplateError(
            f"job name {job_name!r}{where} {problem}; change the name format so every job "
            "gets a plain directory name"
        )


def _unique(jobs: list[RenderedJob]) -> list[RenderedJob]:
    """Drop repeated points (same params: one job); raise if distinct points share a name."""
    seen: dict[str, RenderedJob] = {}
    unique = []
    for job in jobs:
        other = seen.setdefault(job.job_name, job)
        if other is job:
            unique.append(job)
        elif other.hash != job.hash:
            raise TemplateError(
                f"job name {job.job_name!r} is shared by parameters {other.params!r} and "
                f"{job.params!r}; add the differing parameters or {{hash}} to the name format"
            )
    if len(unique) < len(jobs):
        warnings.warn(f"the parameter space repeats {len(jobs) - len(unique)} points; "
                      "each distinct point is one job", stacklevel=3)
    return unique
