"""``config.yaml`` and ``sweep.yaml``: parsing, validation, mapping onto Optuna distributions.

Every error is a :class:`YamlFileError` whose message names the file, the line and the
parameter, so the editor and the sweep form can show it as is.

``sweep.yaml`` forms (W&B-style names; min/max written with a decimal point are real-valued,
otherwise integer):

* ``{values: [a, b]}`` — categorical;
* ``{value: x}`` — fixed, not searched;
* ``{distribution: uniform | int_uniform, min, max}``;
* ``{distribution: log_uniform | log_uniform_values, min, max}`` — min/max are the values
  themselves (both names accepted), sampled on a log scale;
* ``{distribution: q_uniform, min, max, q}`` — quantised to multiples of ``q`` from min.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

SCALAR_TYPES = (str, int, float, bool, type(None))
DISTRIBUTIONS = {
    "uniform",
    "int_uniform",
    "log_uniform",
    "log_uniform_values",
    "q_uniform",
}


class YamlFileError(ValueError):
    """A config/sweep file that cannot be used; the message names file, line and field."""

    def __init__(self, filename: str, line: int | None, message: str) -> None:
        self.filename = filename
        self.line = line
        self.detail = message
        where = f"{filename} line {line}" if line else filename
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class SearchSpace:
    """The parsed ``sweep.yaml``: searched distributions and fixed values."""

    distributions: dict[str, BaseDistribution]
    fixed: dict[str, Any] = field(default_factory=dict)
    #: The line each parameter is named on, for errors found later.
    lines: dict[str, int] = field(default_factory=dict)

    def check_against(self, defaults: dict[str, Any], filename: str = "sweep.yaml") -> None:
        """Refuse a parameter that ``config.yaml`` does not have: train.py reads its config,
        so a misspelled name would be searched, ranked by importance and written into the
        tuned config while every trial ran with the default."""
        for name in [*self.distributions, *self.fixed]:
            if name in defaults:
                continue
            close = difflib.get_close_matches(name, [str(k) for k in defaults], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise YamlFileError(
                filename,
                self.lines.get(name),
                f"parameter '{name}' is not in config.yaml{hint} (train.py reads its "
                "hyperparameters from config.yaml: add it there with its default value)",
            )

    def trial_config(self, defaults: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """The full config a trial runs with: defaults, then fixed values, then samples."""
        return {**defaults, **self.fixed, **params}

    def readable(self, params: dict[str, Any]) -> dict[str, Any]:
        """Sampled reals to 6 significant digits (``lr: 0.00618070``, not
        ``0.0061806980045350035``), as a trial stores, runs and reports them: still inside
        their bounds and on their ``q`` grid; categorical values stay as listed."""
        return {k: _readable(v, self.distributions.get(k)) for k, v in params.items()}


def _readable(value: Any, distribution: BaseDistribution | None) -> Any:
    if not isinstance(distribution, FloatDistribution) or not isinstance(value, float):
        return value
    low, high, step = distribution.low, distribution.high, distribution.step
    if step is not None:  # on the grid, without float noise (0.15000000000000002)
        short = float(f"{low + round((value - low) / step) * step:.12g}")
    else:
        short = float(f"{value:.6g}")
    return min(max(short, low), high)


def _compose(text: str, filename: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise YamlFileError(filename, line, str(exc.problem or exc)) from None
    except yaml.YAMLError as exc:
        raise YamlFileError(filename, None, str(exc)) from None


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _construct(node: yaml.Node) -> Any:
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _unique_keys(node: yaml.MappingNode, filename: str, what: str) -> None:
    """PyYAML keeps the last of duplicate keys silently; a user meant one of them."""
    seen: set[Any] = set()
    for key_node, _value in node.value:
        key = _construct(key_node)
        if not isinstance(key, str):
            continue  # refused with its own message by the caller
        if key in seen:
            raise YamlFileError(filename, _line(key_node), f"{what}'{key}' is defined twice")
        seen.add(key)


def _is_config_value(value: Any) -> bool:
    """What a flat config.yaml holds: a scalar or a list of scalars."""
    flat_list = isinstance(value, list) and all(isinstance(v, SCALAR_TYPES) for v in value)
    return isinstance(value, SCALAR_TYPES) or flat_list


def parse_config_yaml(text: str, filename: str = "config.yaml") -> dict[str, Any]:
    """Parse a flat ``config.yaml`` (hyperparameter name → scalar or list of scalars)."""
    root = _compose(text, filename)
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise YamlFileError(filename, _line(root), "must be a mapping of name: value")
    _unique_keys(root, filename, "")
    config: dict[str, Any] = {}
    for key_node, value_node in root.value:
        key = _construct(key_node)
        if not isinstance(key, str):
            raise YamlFileError(filename, _line(key_node), f"key {key!r} must be a string")
        value = _construct(value_node)
        if not _is_config_value(value):
            raise YamlFileError(
                filename, _line(value_node), f"'{key}' must be a number, string, bool or list"
            )
        config[key] = value
    return config


def render_config(config: dict[str, Any], template: str | None = None) -> str:
    """``config`` as config.yaml text. With ``template`` (the config.yaml it derives from), the
    template's comments, order and spelling of unchanged values are kept and only changed
    values are rewritten in place; new keys go at the end."""
    plain = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    template = (template or "").removeprefix("\ufeff")  # a BOM would end up mid-file
    try:
        root = yaml.compose(template, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return plain
    if not isinstance(root, yaml.MappingNode):
        return plain
    text, seen = template, set()
    # Back to front, so the earlier nodes' offsets stay valid.
    for key_node, value_node in reversed(root.value):
        key = _construct(key_node)
        seen.add(key)
        if key not in config or _identical(_construct(value_node), config[key]):
            continue
        if not isinstance(value_node, yaml.ScalarNode):
            return plain
        start, end = value_node.start_mark.index, value_node.end_mark.index
        value = yaml.safe_dump([config[key]], default_flow_style=True, width=10**9).strip()[1:-1]
        if start == end and not text[start - 1 : start].isspace():
            value = " " + value  # an empty value (``wd:``) gets its space
        text = text[:start] + value + text[end:]
    added = {k: v for k, v in config.items() if k not in seen}
    if added:
        text = text.rstrip("\n") + "\n" + yaml.safe_dump(added, sort_keys=False)
    try:
        same = _identical(yaml.safe_load(text), config)
    except yaml.YAMLError:
        same = False
    return text if same else plain


def _identical(a: Any, b: Any) -> bool:
    """Equal and of the same types (``1 == 1.0 == True`` would keep the template's type)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _number(value: Any) -> int | float | None:
    """YAML 1.1 reads ``1e-4`` as a string; accept it as the real number users meant."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _parse_parameter(name: str, spec: Any, line: int, filename: str) -> BaseDistribution | Any:
    def fail(message: str) -> YamlFileError:
        return YamlFileError(filename, line, f"parameter '{name}': {message}")

    if not isinstance(spec, dict):
        raise fail("must be a mapping such as {values: [...]} or {distribution: ..., min, max}")
    if "value" in spec:
        if len(spec) > 1:
            raise fail("'value' fixes the parameter and takes no other keys")
        if not _is_config_value(spec["value"]):
            raise fail("'value' must be a number, string, bool or list, as in config.yaml")
        return _Fixed(spec["value"])
    if "values" in spec:
        values = spec["values"]
        extra = set(spec) - {"values", "distribution"}
        if extra or spec.get("distribution", "categorical") != "categorical":
            raise fail(f"'values' takes no other keys (got {', '.join(sorted(extra))})")
        if not isinstance(values, list) or not values:
            raise fail("'values' must be a non-empty list")
        if not all(isinstance(v, SCALAR_TYPES) for v in values):
            raise fail("'values' may only hold numbers, strings, booleans or null")
        if len(set(map(repr, values))) != len(values):
            raise fail("'values' has duplicates")
        return CategoricalDistribution(values)

    kind = spec.get("distribution")
    if kind is None:
        raise fail("needs 'values', 'value' or 'distribution'")
    if kind not in DISTRIBUTIONS:
        raise fail(f"unknown distribution '{kind}' (use one of {', '.join(sorted(DISTRIBUTIONS))})")
    allowed = {"distribution", "min", "max"} | ({"q"} if kind == "q_uniform" else set())
    unknown = set(spec) - allowed
    if unknown:
        raise fail(f"unknown key(s) {', '.join(sorted(unknown))} for {kind}")
    for key in ("min", "max"):
        if key not in spec:
            raise fail(f"'{key}' is required for {kind}")
    low, high = _number(spec["min"]), _number(spec["max"])
    if low is None or high is None:
        raise fail("'min' and 'max' must be numbers")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise fail("'min' and 'max' must be finite")
    if low >= high:
        raise fail(f"'min' ({low}) must be less than 'max' ({high})")

    integer = kind == "int_uniform" or (isinstance(low, int) and isinstance(high, int))
    log = kind in ("log_uniform", "log_uniform_values")
    if log and low <= 0:
        raise fail(f"'min' must be > 0 for {kind} (got {low})")
    step: int | float | None = None
    if kind == "q_uniform":
        q = _number(spec.get("q"))
        if q is None or q <= 0:
            raise fail("'q' must be a positive number")
        integer = integer and float(q).is_integer()
        step = int(q) if integer else float(q)
        steps = (high - low) / step
        if steps < 1:
            raise fail(f"'q' ({q}) is larger than max - min")
        if not math.isclose(steps, round(steps), rel_tol=0, abs_tol=1e-9):
            # Optuna would quietly lower 'max' to the last multiple; say so instead.
            raise fail(f"max - min ({high - low:g}) must be a multiple of 'q' ({q})")
    if integer:
        if not (float(low).is_integer() and float(high).is_integer()):
            raise fail("int_uniform needs whole-number 'min' and 'max'")
        return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    return FloatDistribution(float(low), float(high), log=log, step=step)


@dataclass(frozen=True)
class _Fixed:
    value: Any


def parse_sweep_yaml(
    text: str, filename: str = "sweep.yaml", *, strict: bool = True
) -> SearchSpace:
    """Parse ``sweep.yaml`` into Optuna distributions; raise :class:`YamlFileError`.

    ``strict=False`` reads a sweep's stored copy: sections other than ``parameters`` were
    allowed when older sweeps started, and such a sweep must still resume.
    """
    root = _compose(text, filename)
    if root is None:
        raise YamlFileError(filename, None, "is empty; it needs a 'parameters' mapping")
    if not isinstance(root, yaml.MappingNode):
        raise YamlFileError(filename, _line(root), "must be a mapping with 'parameters'")
    _unique_keys(root, filename, "section ")
    sections = {_construct(k): (k, v) for k, v in root.value}
    for name, (key_node, _value) in sections.items():
        if strict and name != "parameters":  # W&B's method/metric: ignoring them would mislead
            raise YamlFileError(
                filename,
                _line(key_node),
                f"unknown section '{name}': only 'parameters' is read (sweeps use Optuna's "
                "TPE and minimise the val loss, or the Early Ranking score in a Fast Sweep)",
            )
    if "parameters" not in sections:
        raise YamlFileError(filename, _line(root), "needs a 'parameters' mapping")
    key_node, params_node = sections["parameters"]
    if not isinstance(params_node, yaml.MappingNode) or not params_node.value:
        raise YamlFileError(filename, _line(key_node), "'parameters' must be a non-empty mapping")

    _unique_keys(params_node, filename, "parameter ")
    distributions: dict[str, BaseDistribution] = {}
    fixed: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for name_node, spec_node in params_node.value:
        name = _construct(name_node)
        line = _line(name_node)
        if not isinstance(name, str) or not name:
            raise YamlFileError(filename, line, f"parameter name {name!r} must be a string")
        lines[name] = line
        if isinstance(spec_node, yaml.MappingNode):
            _unique_keys(spec_node, filename, f"parameter '{name}': key ")
        parsed = _parse_parameter(name, _construct(spec_node), line, filename)
        if isinstance(parsed, _Fixed):
            fixed[name] = parsed.value
        else:
            distributions[name] = parsed
    if not distributions:
        raise YamlFileError(filename, _line(key_node), "no parameter is searched")
    return SearchSpace(distributions=distributions, fixed=fixed, lines=lines)
