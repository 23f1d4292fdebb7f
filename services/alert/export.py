"""The alert list as a CSV file that Excel opens: Chinese headers, UTF-8 with a BOM or GB18030."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from crowdpack.alert.v1 import alert_service_pb2 as pb
from services.alert.evaluation import conditions_of
from services.alert.models import Alert
from services.common.validation import aware

HEADERS = ("预警编号", "商场编号", "会员编号", "规则编号", "规则名称", "触发条件", "状态", "门店成员", "会员已禁用",
           "首次触发时间", "最近触发时间", "相关订单数")
CONDITION_NAMES: dict[int, str] = {pb.CONDITION_KIND_SINGLE_ORDER: "单笔异常", pb.CONDITION_KIND_ANY_STORE: "任意门店",
                   pb.CONDITION_KIND_SCOPE_TOTAL: "门店范围内累计"}
STATE_NAMES: dict[int, str] = {pb.ALERT_STATE_OPEN: "待处理", pb.ALERT_STATE_WHITELISTED: "已加入白名单",
               pb.ALERT_STATE_MEMBER_DISABLED: "会员已禁用"}
ENCODINGS: dict[int, str] = {pb.EXPORT_ENCODING_UNSPECIFIED: "utf-8-sig", pb.EXPORT_ENCODING_UTF8_BOM: "utf-8-sig",
             pb.EXPORT_ENCODING_GB18030: "gb18030"}
SHOWN_IN = ZoneInfo("Asia/Shanghai")


def alerts_csv(rows: Iterable[tuple[Alert, bool, bool]], encoding: int) -> bytes:
    """The rows as CSV bytes in ``encoding`` (an ExportEncoding); times in Beijing time."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADERS)
    for alert, store_member, disabled in rows:
        writer.writerow(_row(alert, store_member, disabled))
    return out.getvalue().encode(ENCODINGS[encoding])


def _row(a: Alert, store_member: bool, disabled: bool) -> Sequence[object]:
    def when(t: datetime) -> str:
        return aware(t).astimezone(SHOWN_IN).strftime("%Y-%m-%d %H:%M:%S")

    return (a.id, a.mall_id, a.member_id, a.rule_id, a.rule_name,
            "、".join(CONDITION_NAMES[c] for c in conditions_of(a.conditions)), STATE_NAMES.get(a.state, ""),
            "是" if store_member else "否", "是" if disabled else "否", when(a.first_triggered_at),
            when(a.last_triggered_at), a.order_count)
