"""The header mapping: which file column feeds which member field, by Chinese or English name.

Headers match case-insensitively, ignoring surrounding spaces, a byte order mark, and the
characters space, ``_``, ``-`` and ``.`` inside (so ``Phone Number``, ``phone_number`` and
``PHONE-NUMBER`` are one name). Columns that match nothing are ignored (the preview lists them).
docs/import.md has the same table for people.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.errors import InvalidArgument

# Member field (a ``customer`` column, or ``registered_at`` for 注册时间) -> the headers that feed it.
ALIASES: dict[str, tuple[str, ...]] = {
    "phone": ("手机号", "手机", "手机号码", "电话", "电话号码", "联系电话", "phone", "mobile", "phone number",
              "mobile phone", "cellphone", "tel"),
    "email": ("邮箱", "电子邮箱", "邮件", "邮箱地址", "email", "e-mail", "mail", "email address"),
    "name": ("姓名", "名称", "昵称", "客户名称", "会员名称", "name", "nickname", "display name"),
    "real_name": ("真实姓名", "real name", "realname", "full name"),
    "gender": ("性别", "gender", "sex"),
    "birthday": ("生日", "出生日期", "birthday", "birth date", "date of birth", "dob"),
    "avatar_url": ("头像", "头像地址", "avatar", "avatar url"),
    "wechat_openid": ("openid", "微信openid", "wechat openid", "open id"),
    "wechat_unionid": ("unionid", "微信unionid", "wechat unionid", "union id"),
    "douyin_id": ("抖音id", "抖音号", "douyin id"),
    "alipay_id": ("支付宝id", "支付宝用户id", "alipay id"),
    "xiaohongshu_id": ("小红书id", "小红书号", "xiaohongshu id"),
    "registration_mall_id": ("注册商场", "注册商场id", "registration mall", "registration mall id"),
    "registered_at": ("注册时间", "registration time", "registered at", "register time"),
    "card_number": ("会员卡号", "卡号", "card number", "card no", "member card number"),
    "card_open_time": ("开卡时间", "card open time", "open time"),
    "card_open_mall_id": ("开卡商场", "开卡商场id", "card open mall", "card open mall id", "open mall id"),
    "promotion_channel": ("推广渠道", "promotion channel"),
    "open_scene": ("开卡场景", "open scene"),
    "level": ("等级", "会员等级", "level", "member level"),
}
# Traditional-Chinese spellings (Big5 files usually come with them).
TRADITIONAL: dict[str, tuple[str, ...]] = {
    "phone": ("手機號", "手機", "手機號碼", "電話", "電話號碼", "聯繫電話", "聯絡電話"),
    "email": ("郵箱", "電子郵箱", "電子郵件", "電郵", "郵件"),
    "name": ("暱稱", "昵稱", "客戶名稱", "會員名稱"),
    "real_name": ("真實姓名",),
    "gender": ("性別",),
    "avatar_url": ("頭像",),
    "registration_mall_id": ("註冊商場", "注冊商場"),
    "registered_at": ("註冊時間", "注冊時間"),
    "card_number": ("會員卡號",),
    "card_open_time": ("開卡時間",),
    "card_open_mall_id": ("開卡商場",),
    "promotion_channel": ("推廣渠道",),
    "open_scene": ("開卡場景",),
    "level": ("等級", "會員等級"),
}
KEYS = ("phone", "email")


def normalize_header(header: str) -> str:
    cleaned = header.strip().lstrip("\ufeff").strip().casefold()
    for ch in " _-.\u3000":
        cleaned = cleaned.replace(ch, "")
    return cleaned


def lookup_of(*tables: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Normalised header -> field for alias tables; the field names themselves always work too
    (e.g. "wechat_openid", "card_open_mall_id")."""
    lookup = {normalize_header(alias): field for table in tables for field, names in table.items()
              for alias in names}
    lookup.update({normalize_header(field): field for field in tables[0]})
    return lookup


LOOKUP = lookup_of(ALIASES, TRADITIONAL)


@dataclass(frozen=True)
class HeaderMapping:
    headers: list[str]
    # Per header, its field or "" when ignored.
    fields: list[str]
    # Field -> column index.
    index: dict[str, int]

    @property
    def has_key(self) -> bool:
        return any(k in self.index for k in KEYS)

    def require_key(self) -> None:
        if not self.has_key:
            raise InvalidArgument(MISSING_KEY, field="file")


MISSING_KEY = ("no phone or email column (e.g. 手机号, phone, 邮箱, email) in the header row; "
               "if the header looks garbled, choose another encoding")


def map_header(headers: list[str], lookup: dict[str, str] = LOOKUP) -> HeaderMapping:
    """Maps a header row (member columns unless another ``lookup_of`` table is given); two columns feeding
    one field is INVALID_ARGUMENT."""
    fields: list[str] = []
    index: dict[str, int] = {}
    for i, header in enumerate(headers):
        field = lookup.get(normalize_header(header), "")
        if field and field in index:
            raise InvalidArgument(f"columns {headers[index[field]]!r} and {header!r} both mean {field}",
                                  field="file")
        if field:
            index[field] = i
        fields.append(field)
    return HeaderMapping(list(headers), fields, index)
