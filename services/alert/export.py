"""The alert list as a CSV file in the shared download format (``services/common/downloads.py``): Chinese
headers and values, UTF-8 with a BOM or GB18030, times in each alert's mall's time zone."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from crowdpack.alert.v1 import alert_service_pb2 as pb
from services.alert.evaluation import conditions_of
from services.alert.models import Alert
from services.common.downloads import GB18030, UTF8_BOM, csv_download, local_time, yes_no, zone_of

HEADERS = ("预警编号", "商场编号", "会员编号", "规则编号", "规则名称", "触发条件", "状态", "门店成员", "会员已禁用",
           "首次触发时间", "最近触发时间", "相关订单数")
CONDITION_NAMES: dict[int, str] = {pb.CONDITION_KIND_SINGLE_ORDER: "单笔异常", pb.CONDITION_KIND_ANY_STORE: "任意门店",
                   pb.CONDITION_KIND_SCOPE_TOTAL: "门店范围内累计"}
STATE_NAMES: dict[int, str] = {pb.ALERT_STATE_OPEN: "待处理", pb.ALERT_STATE_WHITELISTED: "已加入白名单",
               pb.ALERT_STATE_MEMBER_DISABLED: "会员已禁用"}
ENCODINGS: dict[int, str] = {pb.EXPORT_ENCODING_UNSPECIFIED: UTF8_BOM, pb.EXPORT_ENCODING_UTF8_BOM: UTF8_BOM,
                              pb.EXPORT_ENCODING_GB18030: GB18030}


def alerts_csv(rows: Iterable[tuple[Alert, bool, bool]], encoding: int, zones: dict[str, str] | None = None) -> bytes:
    """The rows as CSV bytes in ``encoding`` (an ExportEncoding); times in the time zone ``zones`` names for each
    alert's mall (mall id -> IANA name; Beijing time for a mall it does not name)."""
    named = zones or {}
    return csv_download(HEADERS, (_row(a, store_member, disabled, named.get(a.mall_id))
                                  for a, store_member, disabled in rows), ENCODINGS[encoding])


def _row(a: Alert, store_member: bool, disabled: bool, zone_name: str | None) -> Sequence[object]:
    zone = zone_of(zone_name)
    return (a.id, a.mall_id, a.member_id, a.rule_id, a.rule_name,
            "、".join(CONDITION_NAMES[c] for c in conditions_of(a.conditions)), STATE_NAMES.get(a.state, ""),
            yes_no(store_member), yes_no(disabled), local_time(a.first_triggered_at, zone),
            local_time(a.last_triggered_at, zone), a.order_count)
