"""A job's identity: the sorted-key JSON of its params and a short digest of it.

The digest (``{hash}`` in templates, ``hash`` in ``params.json``) is the same in every
process and on every machine, so a job found on disk is recognised as the same point.

It digests the text Python's ``json.dumps`` writes, which spells non-finite floats
``NaN``, ``Infinity`` and ``-Infinity``: strict JSON has no such numbers, so files hold
:func:`stored_json` instead, where they are tagged (see :func:`tag_nonfinite`). The hash
stays that of ``json.dumps`` for every value, so no job made by an earlier version changes
identity.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii as _quote   # C; what json.dumps uses
from typing import Any

from .errors import TemplateError

HASH_LENGTH = 12
#: The key of the object that stands for a non-finite float in strict JSON (the form
#: MongoDB's Extended JSON uses): ``{"$numberDouble": "NaN"}``, ``"Infinity"``, ``"-Infinity"``.
FLOAT_TAG = "$numberDouble"
#: The key wrapping a parameter's own dict that would otherwise read as a tag.
DICT_TAG = "$dict"
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def canonical_json(params: Mapping[str, Any]) -> str:
    """Sorted-key, compact JSON of the params as ``json.dumps`` writes it: the text the
    hash digests (see the module docstring)."""
    flat = _flat_json(params)
    if flat is not None:
        return flat
    return _dumps(params, params, strict=False)


def identity_of(params: Mapping[str, Any]) -> tuple[str, str]:
    """``(canonical_json(params), stored_json(params))``, computing the text once when
    they are the same (no non-finite float, no tag-like dict)."""
    flat = _flat_json(params)
    if flat is not None:
        return flat, flat
    canonical = _dumps(params, params, strict=False)
    tagged = tag_nonfinite(params)
    return canonical, canonical if tagged is params else _dumps(tagged, params, strict=True)


def stored_json(params: Mapping[str, Any]) -> str:
    """Sorted-key, compact, strict JSON of the params: what ``params.json`` holds."""
    return identity_of(params)[1]


def _dumps(value: Any, params: Mapping[str, Any], strict: bool) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=json_default,
                          allow_nan=not strict)
    except (TypeError, ValueError) as exc:
        raise TemplateError(
            f"parameters {dict(params)!r} cannot be stored as JSON ({exc}); "
            "use numbers, strings, booleans, None, or lists of them"
        ) from exc


def tag_nonfinite(value: Any) -> Any:
    """``value`` made strict JSON: NaN, inf and -inf become ``{"$numberDouble": "NaN"}``
    (``"Infinity"``, ``"-Infinity"``), and a dict whose only key is ``$numberDouble`` or
    ``$dict`` is wrapped as ``{"$dict": {...}}`` so it is not read back as a float.

    Returns ``value`` itself when nothing needed to change (the usual case), so callers can
    tell by identity. Numpy scalars and arrays become Python values first.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {FLOAT_TAG: "NaN" if value != value else "Infinity" if value > 0 else "-Infinity"}
    if isinstance(value, (list, tuple)):
        items = [tag_nonfinite(v) for v in value]
        return value if all(a is b for a, b in zip(items, value)) else items
    if isinstance(value, Mapping):
        tagged = {k: tag_nonfinite(v) for k, v in value.items()}
        if len(tagged) == 1 and next(iter(tagged)) in (FLOAT_TAG, DICT_TAG):
            return {DICT_TAG: tagged}
        return value if all(tagged[k] is v for k, v in value.items()) else tagged
    try:
        plain = json_default(value)
    except TypeError:
        return value   # not JSON; json.dumps says so
    return tag_nonfinite(plain)


def untag_nonfinite(value: Any) -> Any:
    """The inverse of :func:`tag_nonfinite`, for a value as ``json.loads`` returns it.

    Lenient: an object that is no well-formed tag stays as it is, and the bare ``NaN`` /
    ``Infinity`` that earlier versions wrote are floats already (``json.loads`` reads them).
    """
    if isinstance(value, list):
        return [untag_nonfinite(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            (key, inner), = value.items()
            if key == FLOAT_TAG and isinstance(inner, str) and inner in _NONFINITE:
                return _NONFINITE[inner]
            if key == DICT_TAG and isinstance(inner, dict):
                return {k: untag_nonfinite(v) for k, v in inner.items()}
        return {k: untag_nonfinite(v) for k, v in value.items()}
    return value


def _flat_json(params: Mapping[str, Any]) -> str | None:
    """``canonical_json`` of a flat dict of str, int, float, bool and None values, byte for
    byte as ``json.dumps`` writes it but faster; None for anything else, and for
    non-finite floats (whose strict JSON differs, see :func:`identity_of`)."""
    parts = []
    for key in sorted(params) if all(type(k) is str for k in params) else ():
        value = params[key]
        kind = type(value)
        if kind is str:
            text = _quote(value)
        elif kind is int:
            text = int.__repr__(value)
        elif kind is float:
            text = float.__repr__(value) if value == value and value not in _INFINITIES else None
        else:
            text = _CONSTANTS.get(id(value))
        if text is None:
            return None
        parts.append(f"{_quote(key)}:{text}")
    return "{" + ",".join(parts) + "}" if len(parts) == len(params) else None


_INFINITIES = (float("inf"), float("-inf"))
_CONSTANTS = {id(True): "true", id(False): "false", id(None): "null"}


def json_default(value: Any) -> Any:
    """``default=`` of ``json.dumps``: numpy scalars and arrays as Python values."""
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):  # numpy arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} value {value!r} is not JSON serializable")


def params_hash(params: Mapping[str, Any]) -> str:
    """A short stable digest of the params, identical across processes and machines."""
    return digest_of(canonical_json(params))


def digest_of(identity: str) -> str:
    """The hash of a canonical JSON text (see :func:`params_hash`)."""
    return hashlib.sha256(identity.encode()).hexdigest()[:HASH_LENGTH]
