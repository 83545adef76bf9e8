"""Label maps: read ``label_map.pbtxt`` strictly, write the TFLite ``labelmap.txt``.

The OD API numbers classes from 1 (0 is its implicit background); the TFLite
``TFLite_Detection_PostProcess`` op outputs ``class = id - 1``. So ``labelmap.txt``
line ``i`` (0-based) is the class with id ``i + 1``, and it has no background line.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from liteship.errors import LabelMapProblem

#: Line written to ``labelmap.txt`` for ids missing from the label map.
GAP_LABEL = "???"

#: Unicode categories that must not appear in a label: control characters (``\n``,
#: ``\r``, ``\t``, ``\x85`` ...) and the line/paragraph separators ``str.splitlines``
#: also splits on. Any of them would break the one-label-per-line ``labelmap.txt``.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


class LabelItem(NamedTuple):
    id: int
    name: str
    display_name: str | None = None

    @property
    def label(self) -> str:
        """What the app shows: ``display_name`` when set, else ``name``."""
        return self.display_name if self.display_name else self.name


@dataclass(frozen=True)
class LabelMap:
    """Validated label map: ids >= 1, unique, names without control characters."""

    #: In file order.
    items: tuple[LabelItem, ...]
    #: None when built from a list of names.
    path: Path | None = None

    @property
    def max_id(self) -> int:
        return max(item.id for item in self.items)

    def by_id(self) -> dict[int, LabelItem]:
        return {item.id: item for item in self.items}

    def labels(self) -> list[str]:
        """One label per id 1..max_id (gaps as ``???``): the ``labelmap.txt`` lines."""
        by_id = self.by_id()
        return [by_id[i].label if i in by_id else GAP_LABEL for i in range(1, self.max_id + 1)]


def read_label_map(path: Path) -> LabelMap:
    """Read ``label_map.pbtxt`` with the OD API's ``load_labelmap``, then validate strictly.

    Every problem becomes a one-line :class:`LabelMapProblem` naming the file and the fix.
    """
    path = Path(path)
    if not path.exists():
        raise LabelMapProblem(f"label map {path} does not exist: pass the path of your label_map.pbtxt")
    if not path.is_file():
        raise LabelMapProblem(f"label map {path} is not a file: pass the path of your label_map.pbtxt")
    proto = _load_with_odapi(path)
    _check_strict_syntax(path)
    items = tuple(_item_from_proto(item) for item in proto.item)
    return _validated(items, path)


def label_map_from_labels(labels: Sequence[str]) -> LabelMap:
    """Label map for a list of names: ids 1..n in list order."""
    items = tuple(LabelItem(i, str(name)) for i, name in enumerate(labels, start=1))
    return _validated(items, None)


def labelmap_txt(label_map: LabelMap) -> str:
    """The TFLite label file: line ``i`` = id ``i + 1``, no background line, gaps as ``???``."""
    return "".join(f"{label}\n" for label in label_map.labels())


def check_num_classes(label_map: LabelMap, num_classes: int, config_path: Path | None = None) -> None:
    """The model's class outputs must be exactly the label map's ids 1..max id."""
    max_id = label_map.max_id
    if max_id == num_classes:
        return
    config = f"{config_path}" if config_path is not None else "pipeline.config"
    source = _where(label_map)
    if max_id < num_classes:
        fix = (
            f"set model.ssd.num_classes: {max_id} in {config} (and retrain), "
            f"or add the missing classes {max_id + 1}..{num_classes} to the label map"
        )
    else:
        fix = (
            f"the model cannot output classes above {num_classes}: set model.ssd.num_classes: "
            f"{max_id} in {config} and retrain, or remove/renumber the label map items above {num_classes}"
        )
    raise LabelMapProblem(
        f"{source} has highest id {max_id} but model.ssd.num_classes in {config} is {num_classes}: {fix}"
    )


# --- reading -------------------------------------------------------------------------


def _load_with_odapi(path: Path) -> Any:
    from liteship import odapi

    text_format = _text_format()
    try:
        return odapi.label_map_util().load_labelmap(str(path))
    except UnicodeDecodeError as exc:
        raise LabelMapProblem(
            f"label map {path} is not UTF-8 text ({exc.reason} at byte {exc.start}): "
            "save it as UTF-8 text in protobuf text format"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - every OD API failure becomes a LabelMapProblem
        parse_error = _find_in_chain(exc, text_format.ParseError)
        if parse_error is not None:
            raise _syntax_problem(path, parse_error) from exc
        if isinstance(exc, ValueError):
            # _validate_label_map: negative ids, or id 0 not named "background". Re-check
            # the items here so the message names the offending item.
            _validated(_lenient_items(path), path)
            raise LabelMapProblem(f"label map {path}: {_one_line(exc)}; {_ID_FIX}") from exc
        raise LabelMapProblem(f"cannot read label map {path}: {_one_line(exc)}") from exc


def _check_strict_syntax(path: Path) -> None:
    """``load_labelmap`` uses ``text_format.Merge``, which silently keeps the last of two
    ``name:`` lines in one item; ``Parse`` rejects that, so a typo cannot rename a class."""
    text_format = _text_format()
    from liteship import odapi

    message = odapi.string_int_label_map_pb2().StringIntLabelMap()
    try:
        text_format.Parse(path.read_text(encoding="utf-8"), message)
    except text_format.ParseError as exc:
        raise _syntax_problem(path, exc) from exc


def _lenient_items(path: Path) -> tuple[LabelItem, ...]:
    from liteship import odapi

    message = odapi.string_int_label_map_pb2().StringIntLabelMap()
    _text_format().Merge(path.read_text(encoding="utf-8"), message)
    return tuple(_item_from_proto(item) for item in message.item)


def _text_format() -> Any:
    from google.protobuf import text_format

    return text_format


def _find_in_chain(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``load_labelmap`` retries a failed text parse as binary (``ParseFromString`` on a
    ``str``), so the real ``ParseError`` is hidden as the context of a ``TypeError``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _syntax_problem(path: Path, exc: Any) -> LabelMapProblem:
    line, column = exc.GetLine(), exc.GetColumn()
    detail = str(exc)
    prefix = f"{line}:{column} : "
    if detail.startswith(prefix):
        detail = detail[len(prefix) :]
    where = f"{path}:{line}:{column}" if line is not None else f"{path}"
    return LabelMapProblem(
        f"label map {where}: syntax error: {_one_line(detail).rstrip('.')}; expected protobuf text format "
        'like: item { id: 1 name: "cat" }'
    )


def _item_from_proto(item: Any) -> LabelItem:
    display = item.display_name if item.HasField("display_name") and item.display_name else None
    return LabelItem(int(item.id), str(item.name), display)


# --- validation ----------------------------------------------------------------------

_ID_FIX = "id 0 is reserved for the background class in the OD API; ids start at 1 — renumber your classes from 1"


def _validated(items: tuple[LabelItem, ...], path: Path | None) -> LabelMap:
    source = f"label map {path}" if path is not None else "label list"
    if not items:
        raise LabelMapProblem(f"{source} has no items: add one item per class, e.g. item {{ id: 1 name: \"cat\" }}")
    _check_ids(items, source)
    _check_names(items, source)
    return LabelMap(items=items, path=path)


def _check_ids(items: Iterable[LabelItem], source: str) -> None:
    first_with_id: dict[int, LabelItem] = {}
    for item in items:
        if item.id == 0:
            raise LabelMapProblem(f"{source}: item {item.name!r} has id 0; {_ID_FIX}")
        if item.id < 0:
            raise LabelMapProblem(
                f"{source}: item {item.name!r} has id {item.id}; ids must be positive: "
                "ids start at 1 (0 is the OD API's background) — renumber your classes from 1"
            )
        if item.id in first_with_id:
            other = first_with_id[item.id]
            raise LabelMapProblem(
                f"{source}: items {other.name!r} and {item.name!r} both have id {item.id}; "
                "give every class its own id (1, 2, 3, ...)"
            )
        first_with_id[item.id] = item


def _check_names(items: Iterable[LabelItem], source: str) -> None:
    for item in items:
        if not item.name:
            raise LabelMapProblem(f'{source}: item with id {item.id} has no name: add name: "..." to it')
        for field_name, value in (("name", item.name), ("display_name", item.display_name)):
            bad = _forbidden_char(value or "")
            if bad is not None:
                raise LabelMapProblem(
                    f"{source}: item with id {item.id} has {field_name} {value!r} containing the "
                    f"control character {bad!r}; it would break the one-label-per-line labelmap.txt — "
                    "remove it from the label map"
                )


def _forbidden_char(text: str) -> str | None:
    for char in text:
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            return char
    return None


def _where(label_map: LabelMap) -> str:
    return f"label map {label_map.path}" if label_map.path is not None else "label list"


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
