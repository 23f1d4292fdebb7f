"""Label catalogues: one per language, the same keys in each (tests/unit/test_console_labels.py checks).

``Labels(lang)("member.list.title")`` gives the label; ``{name}`` placeholders are filled from
keyword arguments. A missing key raises KeyError at once rather than showing a raw key.
"""

from __future__ import annotations

from typing import Any

from gateway.console.i18n import en, zh_CN

CATALOGUES: dict[str, dict[str, str]] = {"zh-CN": zh_CN.LABELS, "en": en.LABELS}
LANGUAGES = tuple(CATALOGUES)
DEFAULT_LANGUAGE = "zh-CN"


class Labels:
    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in CATALOGUES else DEFAULT_LANGUAGE
        self._labels = CATALOGUES[self.lang]

    def __call__(self, key: str, **values: Any) -> str:
        text = self._labels[key]
        return text.format(**values) if values else text

    def error(self, reason: str, detail: str = "") -> str | None:
        """The text for an API error's stable reason (``error.FIELD_INVALID``), or None when there is none."""
        text = self._labels.get(f"error.{reason}") if reason else None
        return text.format(detail=detail) if text is not None else None

    def enum(self, prefix: str, value: str | int | None, default: str = "—") -> str:
        """The label of an enum value by name (``enum.gender.GENDER_MALE``); ``default`` for unset."""
        if value in (None, "", 0) or str(value).endswith("_UNSPECIFIED"):
            return default
        return self._labels.get(f"enum.{prefix}.{value}", str(value))
