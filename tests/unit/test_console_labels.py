"""The console's label catalogues: the same keys and placeholders in every language, and every key the pages use."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from gateway.console import crowd_editor
from gateway.console.i18n import CATALOGUES, DEFAULT_LANGUAGE, Labels
from gateway.console.layout import NAV
from gateway.console.pages.business import APPLICATION_STATES, FOLLOW_UP_METHODS
from gateway.console.pages.import_wizard import KINDS as IMPORT_KINDS
from gateway.console.pages.members import SORTS, TRI

CONSOLE = Path(__file__).resolve().parents[2] / "gateway" / "console"
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([a-z_][a-z0-9_.]*)["']""")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def used_keys() -> set[str]:
    keys = set()
    for path in CONSOLE.rglob("*.py"):
        keys |= set(LITERAL_KEY.findall(path.read_text(encoding="utf-8")))
    keys |= {key for key, _, _ in NAV}
    keys |= {f"crowd.kind.{k}" for k in crowd_editor.KINDS} | {f"crowd.window.{w}" for w in crowd_editor.WINDOWS}
    keys |= {f"enum.metric.{m}" for m in crowd_editor.METRICS} | {f"enum.gender.{g}" for g in crowd_editor.GENDERS}
    keys |= {f"enum.review.{r}" for r in crowd_editor.REVIEWS} | {f"enum.sort.{s}" for s in SORTS}
    keys |= {f"enum.direction.{d}" for d in crowd_editor.DIRECTIONS}
    keys |= {f"enum.import_kind.{k}" for k in IMPORT_KINDS}
    keys |= {f"enum.application_state.{s}" for s in APPLICATION_STATES}
    keys |= {f"enum.follow_up_method.{m}" for m in FOLLOW_UP_METHODS}
    keys |= {f"enum.channel.{c}" for c in crowd_editor.CHANNELS}
    keys |= {f"enum.online_metric.{m}" for m in crowd_editor.ONLINE_METRICS}
    keys |= {f"tri.{field}.{v}" for field in ("card_opened", "disabled", "store_member") for v in TRI}
    keys |= {f"members.filter.{f}" for f in ("card_opened", "disabled", "store_member", "levels", "review_statuses",
                                             "registration_mall_ids", "tag_ids", "group_ids")}
    return keys


def test_default_language_is_chinese():
    assert DEFAULT_LANGUAGE == "zh-CN"
    assert Labels("no-such-language").lang == "zh-CN"


@pytest.mark.parametrize("lang", sorted(CATALOGUES))
def test_every_catalogue_has_every_key_of_the_others(lang):
    others = set().union(*(set(c) for name, c in CATALOGUES.items() if name != lang))
    missing = sorted(others - set(CATALOGUES[lang]))
    assert not missing, f"{lang} lacks {missing}"


@pytest.mark.parametrize("lang", sorted(CATALOGUES))
def test_every_key_the_pages_use_is_in_the_catalogue(lang):
    missing = sorted(used_keys() - set(CATALOGUES[lang]))
    assert not missing, f"{lang} lacks {missing}"


def test_placeholders_match_across_languages():
    zh, en = CATALOGUES["zh-CN"], CATALOGUES["en"]
    differ = {key: (placeholders(zh[key]), placeholders(en[key])) for key in zh
              if placeholders(zh[key]) != placeholders(en.get(key, ""))}
    assert not differ


def test_labels_fill_placeholders_and_name_enums():
    zh, en = Labels("zh-CN"), Labels("en")
    assert zh("members.total", n="1,024") == "共 1,024 位会员"
    assert en("members.total", n="1,024") == "1,024 members"
    assert zh.enum("gender", "GENDER_FEMALE") == "女"
    assert en.enum("gender", "GENDER_UNSPECIFIED") == "—"
    with pytest.raises(KeyError):
        zh("no.such.key")


def test_the_crowd_editor_offers_every_condition_kind_and_writes_what_the_api_reads():
    from google.protobuf import json_format

    from crowdpack.customer.v1 import crowd_pb2

    assert set(crowd_editor.KINDS) == {f.name for f in crowd_pb2.Condition.DESCRIPTOR.oneofs_by_name["kind"].fields}
    for kind in crowd_editor.KINDS:
        state = crowd_editor.default_state(kind)
        if kind in ("gender", "level", "tags", "groups", "registration_mall", "interaction_mall", "review_status",
                    "card_open_channel"):
            state["values"] = {"gender": ["GENDER_MALE"], "level": [1], "review_status": ["REVIEW_STATUS_PENDING"],
                               "card_open_channel": ["OPEN_CHANNEL_DOUYIN"]}.get(kind, ["1"])
        written = crowd_editor.condition_json(kind, state)
        json_format.ParseDict(written, crowd_pb2.Condition())  # the API's JSON mapping takes it as it is
        assert crowd_editor.condition_json(kind, crowd_editor.state_from_json(kind, written[kind])) == written
