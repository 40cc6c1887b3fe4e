"""Checking a parsed JSON or YAML document field by field: the one schema mechanism for every file snp-edge
reads (``model.json``, ``manifest.json``, pruning configurations, measurement files). Python 3.6-clean, no
third-party imports, so the device side uses it too.

A :class:`Document` wraps one parsed file; its getters return a field's value when it has the expected type
and range, and otherwise raise the document's error class with one line naming the file, the field (dotted,
with list indices: ``arch.blocks[3].mlp``), what was expected and what was found::

    doc = Document("pruned/model.json", SnpEdgeError)
    arch = doc.dict(desc, "arch", "arch")
    width = doc.int(arch, "embed", "arch.embed", minimum=1, maximum=base_width)

Numbers are never booleans and always finite (JSON and YAML both admit NaN and infinities: ``NaN``,
``.nan``, ``.inf``), so a value that passed a getter can be compared, allocated and written safely.
"""

import math

MISSING = object()


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def shown(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Document(object):
    """Typed access to one parsed document; ``error`` is the exception class raised (a :class:`UserError`)."""

    def __init__(self, label, error):
        self.label, self.error = str(label), error

    def fail(self, field, expected, value=MISSING):
        got = "" if value is MISSING else f", got {shown(value)}"
        raise self.error(f"{self.label}: field {field}: expected {expected}{got}")

    def get(self, obj, key, field, default=MISSING):
        if key not in obj:
            if default is MISSING:
                raise self.error(f"{self.label}: missing field {field}")
            return default
        return obj[key]

    def dict(self, obj, key, field, default=MISSING):
        value = self.get(obj, key, field, default)
        if not isinstance(value, dict) and not (value is default and default is not MISSING):
            self.fail(field, "an object", value)
        return value

    def list(self, obj, key, field, default=MISSING, min_items=0, max_items=None):
        value = self.get(obj, key, field, default)
        if value is default and default is not MISSING:
            return value
        if not isinstance(value, list):
            self.fail(field, "a list", value)
        if len(value) < min_items or (max_items is not None and len(value) > max_items):
            within = f"at least {min_items}" if max_items is None else f"{min_items} to {max_items}"
            self.fail(field, f"a list of {within} items", f"{len(value)} items")
        return value

    def str(self, obj, key, field, choices=None, default=MISSING, max_len=4096):
        value = self.get(obj, key, field, default)
        if value is default and default is not MISSING:
            return value
        if not isinstance(value, str) or not value or len(value) > max_len:
            self.fail(field, "a non-empty string", value)
        if choices is not None and value not in choices:
            self.fail(field, "one of " + ", ".join(choices), value)
        return value

    def bool(self, obj, key, field, default=MISSING):
        value = self.get(obj, key, field, default)
        if not isinstance(value, bool) and not (value is default and default is not MISSING):
            self.fail(field, "true or false", value)
        return value

    def int(self, obj, key, field, minimum=None, maximum=None, default=MISSING):
        return self.int_value(self.get(obj, key, field, default), field, minimum, maximum, default)

    def number(self, obj, key, field, minimum=None, maximum=None, exclusive_minimum=False, default=MISSING):
        return self.number_value(self.get(obj, key, field, default), field, minimum, maximum, exclusive_minimum,
                                 default)

    def int_value(self, value, field, minimum=None, maximum=None, default=MISSING):
        """``value`` (an item already taken out of its container) checked as an integer in range."""
        if value is default and default is not MISSING:
            return value
        if not is_int(value) or (minimum is not None and value < minimum) or \
                (maximum is not None and value > maximum):
            self.fail(field, "an integer " + _within(minimum, maximum), value)
        return value

    def number_value(self, value, field, minimum=None, maximum=None, exclusive_minimum=False, default=MISSING):
        if value is default and default is not MISSING:
            return value
        ok = is_number(value)
        if ok and minimum is not None:
            ok = value > minimum if exclusive_minimum else value >= minimum
        if ok and maximum is not None:
            ok = value <= maximum
        if not ok:
            self.fail(field, "a finite number " + _within(minimum, maximum, exclusive_minimum), value)
        return value

    def only(self, obj, field, allowed):
        """Refuse keys of ``obj`` outside ``allowed`` (a typo would otherwise be ignored silently)."""
        unknown = sorted(str(k) for k in obj if k not in allowed)
        if unknown:
            name = f"{field}." if field else ""
            raise self.error(f"{self.label}: unknown field {name}{unknown[0]} (known: {', '.join(sorted(allowed))})")


def _within(minimum, maximum, exclusive_minimum=False):
    if minimum is None and maximum is None:
        return ""
    if maximum is None:
        return f"{'>' if exclusive_minimum else '>='} {minimum}"
    if minimum is None:
        return f"<= {maximum}"
    return f"in {'(' if exclusive_minimum else '['}{minimum}, {maximum}]"


def check_finite_tree(obj, label, error):
    """Refuse any NaN or infinity anywhere in a parsed document (nested dicts and lists), naming its field."""
    stack = [("", obj)]
    while stack:
        field, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise error(f"{label}: field {field or '(top level)'}: expected a finite number, got {value!r}")
        if isinstance(value, dict):
            stack.extend((f"{field}.{k}" if field else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{field}[{i}]", v) for i, v in enumerate(value))
