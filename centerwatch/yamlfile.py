"""YAML as both sides read their own files: safe, and refusing duplicate keys (YAML would keep the
last silently). Errors carry the file, the line and the problem."""

from __future__ import annotations

from typing import Any

import yaml


class YamlError(ValueError):
    def __init__(self, where: str, at: str, message: str) -> None:
        super().__init__(f"{where}: {at}: {message}" if at else f"{where}: {message}")
        self.where = where
        self.at = at
        self.message = message


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_text(text: str, where: str) -> Any:
    """``text`` parsed; ``YamlError`` naming ``where``, the line and column, and the problem."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise YamlError(where, at, f"invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
