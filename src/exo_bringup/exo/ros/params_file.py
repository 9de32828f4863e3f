"""Check the ROS 2 parameter files of a node's command line against the parameters it declares.

No rclpy here (unit-testable). :func:`exo.ros.parameters.declare_all` calls
:func:`check_params_files` with every ``--params-file`` of the process's
``--ros-args``, so a wrongly typed value in *any* file is refused at start-up
with the file, line and key named, e.g.::

    params file user.yaml:3: safety_monitor.user_torque_cap_nm: expected a float, got the string '40'

Why rclpy alone is not enough: rcl parses every ``--params-file`` into one
table, and a later file replaces an earlier file's value only when both have
the same YAML type. ``rcl_yaml_param_parser`` keeps one pointer per type in a
parameter's ``rcl_variant_t`` and an override frees and replaces only the
pointer of its own type; rclpy then reads the variant bool, integer, float,
string, ... in that order. So ``user_torque_cap_nm: "40"`` after
``config/safety.yaml``'s ``70.0`` leaves both set and rclpy returns the 70.0:
the user's value vanishes without an error (alone on a node, the same file is
refused, because then the string is the only value).

The second check, :func:`shadowed_values`, finds values that are well typed but
still do not take effect: rcl keeps one entry per node-name key, ordered by the
key's *first* appearance on the command line, and rclpy applies the entries in
that order. A ``/**`` entry of a later file merges into the ``/**`` entry of an
earlier file (``config/task.yaml`` has one), which comes before that earlier
file's ``/**/controller`` entry, so ``/**: ... pid: {kp: 100.0}`` in a user file
loses to ``config/controllers.yaml``. Values set with ``-p name:=value`` are
not checked there (rcl adds them to the ``/**`` entry as well).

How rcl reads a file (and how this module reads it):

- node-name keys may nest (``/ns:`` then ``name:``, joined with ``/``) down to
  a ``ros__parameters`` mapping; nested mappings inside it are dotted names;
- a key matches a node as in rclpy: ``/`` prepended if missing, then ``/*`` is
  one namespace level and ``/**`` any number (``/**``, ``/**/name``, ``name``
  = ``/name`` in the root namespace only, ``/ns/name``);
- a plain scalar is a bool (``true``, ``yes``, ``on``, ... in three spellings),
  else an integer (``strtol`` base 0: ``10``, ``0x1f``, ``017``), else a float
  (``strtod``: ``1.5``, ``1e3``, ``.inf``), else a string; a quoted scalar is
  always a string; a sequence is an array of one such type.

Type rules (those of :func:`exo.ros.parameters.declare_all`): a float
parameter takes an integer or a float; an integer parameter only an integer;
a bool only a bool; a string only a string. Keys the node does not declare are
not checked (they keep rcl's and rclpy's behaviour).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from exo.params import ConfigError, describe_yaml_error

#: ``ros__parameters``: the key under a node name that holds its parameters.
PARAMETERS_KEY = "ros__parameters"

_TRUE = frozenset({"Y", "y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
_FALSE = frozenset({"N", "n", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"})
_SPACE = " \t\n\v\f\r"
_INT_RE = re.compile(r"([+-]?)(?:0[xX]([0-9a-fA-F]+)|0([0-7]*)|([1-9][0-9]*))")
_FLOAT_RE = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
    r"|(?i:inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?))"
)
_YAML_SPECIAL_FLOATS = frozenset(
    f"{sign}.{word}" for sign in ("", "+", "-") for word in ("inf", "Inf", "INF")
) | frozenset({".nan", ".NaN", ".NAN"})
_INT64 = (-(2**63), 2**63 - 1)

#: Options of ``--ros-args`` that take a value (the value is not an option itself).
_VALUE_OPTIONS = frozenset({"-r", "--remap", "-p", "--param", "--params-file", "-e", "--enclave",
                            "--log-level", "--log-config-file", "--log-file-name"})


class ParamsFileError(ConfigError):
    """A ROS parameter file cannot be read, is not valid YAML, or has values of the wrong type."""


@dataclass(frozen=True)
class FileValue:
    """One value of a parameter file, typed the way rcl types it.

    Attributes:
        kind: ``bool``, ``integer``, ``float``, ``string``, ``<one of those> array``,
            ``empty array``, ``mapping``, ``mixed array`` or ``no value``.
        value: the Python value (list for arrays, None for mappings and missing values).
        line: 1-based line of the value in the file.
    """

    kind: str
    value: Any
    line: int


@dataclass(frozen=True)
class NodeEntry:
    """The ``ros__parameters`` of one node-name key of a file.

    Attributes:
        key: the node-name key, nested keys joined with ``/`` (``/**/safety_monitor``).
        line: 1-based line of the key.
        parameters: dotted parameter name -> value; nested mappings are listed too (kind ``mapping``).
    """

    key: str
    line: int
    parameters: dict[str, FileValue] = field(default_factory=dict)


@dataclass(frozen=True)
class ParamsFile:
    """A parsed ROS 2 parameter file.

    Attributes:
        path: the path as given on the command line (messages name it so).
        entries: its node entries in file order.
    """

    path: str
    entries: tuple[NodeEntry, ...]

    def entries_for(self, node_name: str, namespace: str) -> list[NodeEntry]:
        """The entries whose key matches the node ``namespace``/``node_name``, in file order."""
        return [e for e in self.entries if node_key_matches(e.key, node_name, namespace)]


# ----------------------------------------------------------------------------- command line


def _ros_options(argv: Sequence[str]) -> list[tuple[str, str]]:
    """``(option, value)`` of the value-taking options inside the ``--ros-args`` sections of ``argv``
    (a section runs from ``--ros-args`` to ``--`` or the end)."""
    out: list[tuple[str, str]] = []
    in_ros_args = False
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--ros-args":
            in_ros_args = True
        elif token == "--" and in_ros_args:
            in_ros_args = False
        elif in_ros_args and token in _VALUE_OPTIONS and i + 1 < len(argv):
            out.append((token, argv[i + 1]))
            i += 1
        i += 1
    return out


def ros_params_files(argv: Sequence[str]) -> list[str]:
    """The ``--params-file PATH`` values of the ``--ros-args`` sections of ``argv``, in order."""
    return [value for option, value in _ros_options(argv) if option == "--params-file"]


def ros_param_rules(argv: Sequence[str]) -> set[str]:
    """Parameter names set with ``-p``/``--param name:=value`` in ``--ros-args`` (a ``node:`` prefix dropped)."""
    return {value.partition(":=")[0].rsplit(":", 1)[-1] for option, value in _ros_options(argv)
            if option in ("-p", "--param")}


# ----------------------------------------------------------------------------- node-name keys


def fully_qualified_name(node_name: str, namespace: str) -> str:
    """``/ns/name`` of a node (``/name`` in the root namespace)."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{ns}/{node_name}"


def node_key_matches(key: str, node_name: str, namespace: str) -> bool:
    """Whether the node-name key ``key`` of a parameter file applies to the node (rclpy's rule).

    rclpy prepends ``/`` to a key without one, turns every ``/*`` into one namespace level
    (``/**`` thus into any number of them) and matches the whole fully qualified name.
    """
    name = key if key.startswith("/") else "/" + key
    try:  # the same text substitution as rclpy, the remaining "*" of "/**" being the regex's repetition
        return re.fullmatch(name.replace("/*", "(/[A-Za-z0-9_]+)"), fully_qualified_name(node_name, namespace)) \
            is not None
    except re.error:  # not a valid node name (rcl refuses the file itself)
        return False


# ----------------------------------------------------------------------------- values


def scalar_value(text: str, quoted: bool) -> tuple[str, Any]:
    """``(kind, value)`` of a YAML scalar as rcl types it (``get_value`` of rcl_yaml_param_parser)."""
    if quoted:
        return "string", text
    if text in _TRUE:
        return "bool", True
    if text in _FALSE:
        return "bool", False
    stripped = text.lstrip(_SPACE)
    m = _INT_RE.fullmatch(stripped)
    if m:
        sign, hexa, octal, decimal = m.groups()
        number = int(hexa, 16) if hexa is not None else int(octal or "0", 8) if octal is not None else int(decimal)
        number = -number if sign == "-" else number
        if _INT64[0] <= number <= _INT64[1]:
            return "integer", number
    if text in _YAML_SPECIAL_FLOATS:
        number = float(text.replace(".", ""))
        return "float", number
    if _FLOAT_RE.fullmatch(stripped):
        number = _strtod(stripped)
        if number is not None:
            return "float", number
    return "string", text


def _strtod(text: str) -> float | None:
    """The value of a float literal, or None where C's strtod reports a range error (rcl: a string)."""
    body = text.lstrip("+-")
    lowered = body.lower()
    if lowered.startswith("nan"):
        return math.nan
    if lowered.startswith("inf"):
        return -math.inf if text.startswith("-") else math.inf
    is_hex = lowered.startswith("0x")
    try:
        number = float.fromhex(text) if is_hex else float(text)
    except (OverflowError, ValueError):
        return None
    mantissa = re.split("[pP]" if is_hex else "[eE]", body[2:] if is_hex else body)[0]
    underflow = abs(number) < sys.float_info.min and re.search("[1-9a-fA-F]" if is_hex else "[1-9]", mantissa)
    return None if math.isinf(number) or underflow else number


def _value(node: yaml.Node) -> FileValue:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        return FileValue("mapping", None, line)
    if isinstance(node, yaml.SequenceNode):
        items = [_value(item) for item in node.value]
        if not items:
            return FileValue("empty array", [], line)
        kinds = {item.kind for item in items}
        if len(kinds) != 1 or next(iter(kinds)) not in ("bool", "integer", "float", "string"):
            return FileValue("mixed array", [item.value for item in items], line)
        return FileValue(f"{items[0].kind} array", [item.value for item in items], line)
    assert isinstance(node, yaml.ScalarNode)
    quoted = node.style in ("'", '"')
    if not quoted and node.value == "":
        return FileValue("no value", None, line)
    kind, value = scalar_value(node.value, quoted)
    return FileValue(kind, value, line)


def _parameters(node: yaml.MappingNode, prefix: str, out: dict[str, FileValue]) -> None:
    for key_node, value_node in node.value:
        name = f"{prefix}{key_node.value}"
        out[name] = _value(value_node)
        if isinstance(value_node, yaml.MappingNode):
            _parameters(value_node, name + ".", out)


def _entries(node: yaml.MappingNode, prefix: str, out: list[NodeEntry]) -> None:
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or not isinstance(value_node, yaml.MappingNode):
            continue  # rcl refuses these; it reports them itself
        if key_node.value == PARAMETERS_KEY:
            if prefix:
                entry = NodeEntry(prefix, key_node.start_mark.line + 1)
                _parameters(value_node, "", entry.parameters)
                out.append(entry)
            continue
        _entries(value_node, f"{prefix}/{key_node.value}" if prefix else key_node.value, out)


def parse_params_file(path: str | Path, text: str | None = None) -> ParamsFile:
    """Parse the parameter file ``path`` (or ``text``, with ``path`` only naming it in messages).

    Raises:
        ParamsFileError: the file cannot be read or is not valid YAML (one line with the file and line).
    """
    name = str(path)
    if text is None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ParamsFileError(f"params file {name}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ParamsFileError(f"params file {name}: not a text file ({exc.reason})") from None
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ParamsFileError(f"params file {name}: not valid YAML: {describe_yaml_error(exc)}") from None
    entries: list[NodeEntry] = []
    if isinstance(document, yaml.MappingNode):
        _entries(document, "", entries)
    return ParamsFile(name, tuple(entries))


# ----------------------------------------------------------------------------- checks


_KIND_OF_TYPE = {bool: "bool", int: "integer", float: "float", str: "string"}


def expected_kind(default: Any) -> str | None:
    """rcl kind of a parameter whose default is ``default`` (None: not checked)."""
    if isinstance(default, (list, tuple)):
        inner = _KIND_OF_TYPE.get(type(default[0])) if default else None
        return f"{inner} array" if inner else None
    return _KIND_OF_TYPE.get(type(default))


def accepts(default: Any, value: FileValue) -> bool:
    """Whether a parameter with default ``default`` takes ``value`` (see the module's type rules)."""
    want = expected_kind(default)
    if want is None:
        return True
    if want == "float":
        return value.kind in ("float", "integer")
    if want.endswith(" array") and value.kind == "empty array":
        return True
    return value.kind == want


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def describe(value: FileValue) -> str:
    """``the string '40'``, ``the integer 5``, ``a mapping``, ... for messages."""
    if value.kind == "string":
        return f"the string {value.value!r}"
    if value.kind == "bool":
        return f"the bool {str(value.value).lower()}"
    if value.kind in ("integer", "float"):
        return f"the {value.kind} {value.value!r}"
    if value.kind == "no value":
        return "no value"
    if value.kind.endswith("array") and value.kind != "empty array":
        return f"{_article(value.kind)} {value.kind} {value.value!r}"
    return f"{_article(value.kind)} {value.kind}"


def type_problems(params_file: ParamsFile, node_name: str, namespace: str,
                  declared: Mapping[str, Any]) -> list[str]:
    """One message per value of ``params_file`` for this node whose type ``declared`` refuses.

    Args:
        params_file: the parsed file.
        node_name, namespace: the node (``safety_monitor``, ``/exo``).
        declared: parameter name -> default value (its type is the parameter's type).
    """
    problems = []
    for entry in params_file.entries_for(node_name, namespace):
        for name, value in entry.parameters.items():
            if name in declared and not accepts(declared[name], value):
                want = expected_kind(declared[name])
                problems.append(f"params file {params_file.path}:{value.line}: {node_name}.{name}: "
                                f"expected {_article(want)} {want}, got {describe(value)}")
    return problems


Setting = tuple[ParamsFile, NodeEntry, FileValue]


def intended_values(files: Iterable[ParamsFile], node_name: str, namespace: str,
                    declared: Mapping[str, Any]) -> dict[str, Setting]:
    """Declared parameter -> the setting the files mean to give it: the last one, file by file and
    entry by entry in file order (``ros2 launch`` semantics: a later file wins)."""
    out: dict[str, Setting] = {}
    for params_file in files:
        for entry in params_file.entries_for(node_name, namespace):
            for name, value in entry.parameters.items():
                if name in declared:
                    out[name] = (params_file, entry, value)
    return out


def rcl_values(files: Iterable[ParamsFile], node_name: str, namespace: str,
               declared: Mapping[str, Any]) -> dict[str, Setting]:
    """Declared parameter -> the setting rcl and rclpy deliver (for values of one type): one entry per
    node-name key, ordered by the key's first appearance; a later file's value replaces the value of
    the same key's entry; rclpy applies the matching entries in that order, the last one winning."""
    order: list[str] = []
    table: dict[str, dict[str, Setting]] = {}
    for params_file in files:
        for entry in params_file.entries:
            if entry.key not in table:
                order.append(entry.key)
                table[entry.key] = {}
            table[entry.key].update({name: (params_file, entry, value) for name, value in entry.parameters.items()
                                     if name in declared})
    out: dict[str, Setting] = {}
    for key in order:
        if node_key_matches(key, node_name, namespace):
            out.update(table[key])
    return out


def same_value(a: Any, b: Any) -> bool:
    """Equality of parameter values, an integer equal to a float and NaN equal to NaN."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def shadowed_values(files: Sequence[ParamsFile], node_name: str, namespace: str,
                    declared: Mapping[str, Any], received: Mapping[str, Any],
                    command_line_params: Iterable[str] = ()) -> list[str]:
    """One message per declared parameter whose value in the files does not reach the node.

    Args:
        files: the node's parameter files in command-line order.
        node_name, namespace: the node.
        declared: parameter name -> default value.
        received: parameter name -> the value the node got from rclpy.
        command_line_params: names set with ``-p`` (not checked: rcl adds them to its ``/**`` entry).
    """
    skip = set(command_line_params)
    winners = rcl_values(files, node_name, namespace, declared)
    problems = []
    for name, (params_file, entry, value) in intended_values(files, node_name, namespace, declared).items():
        if name in skip or name not in received or not accepts(declared[name], value):
            continue
        if same_value(value.value, received[name]):
            continue
        message = (f"params file {params_file.path}:{value.line}: {node_name}.{name} = {value.value!r} does not "
                   f"take effect: the node gets {received[name]!r}")
        winner = winners.get(name)
        if winner is not None and winner[1] is not entry:
            message += (f" from params file {winner[0].path}:{winner[2].line} (entry '{winner[1].key}'), because rcl "
                        f"applies node entries in the order their keys first appear on the command line and "
                        f"'{winner[1].key}' comes after '{entry.key}'; set it under '{winner[1].key}:' instead")
        problems.append(message)
    return problems


def check_params_files(paths: Sequence[str | Path], node_name: str, namespace: str,
                       declared: Mapping[str, Any]) -> list[ParamsFile]:
    """Parse ``paths`` and refuse values of the wrong type; returns the parsed files.

    Raises:
        ParamsFileError: a file cannot be read or parsed, or values have the wrong type
            (every problem named, ``; ``-separated, one line).
    """
    files = [parse_params_file(p) for p in paths]
    problems = [msg for f in files for msg in type_problems(f, node_name, namespace, declared)]
    if problems:
        raise ParamsFileError("; ".join(problems))
    return files
