"""What a shared table mixin becomes once a service maps it on its own ``DeclarativeBase``.

The outbox, idempotency and processed-message mixins are columns only; each service maps them on
its Base, which gives the class its ``__table__``, its ``metadata`` and a keyword constructor.
``MappedMixin`` declares those for the type checker (as ``DeclarativeBase`` does), so code written
against the mixin type (``type[OutboxMixin]``) is checked. At run time it adds nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from sqlalchemy import Table
from sqlalchemy.orm import DeclarativeBase

if TYPE_CHECKING:
    from sqlalchemy import FromClause, MetaData


class MappedMixin:
    if TYPE_CHECKING:
        __table__: ClassVar[FromClause]
        metadata: ClassVar[MetaData]

        def __init__(self, **kwargs: Any) -> None: ...


def table_of(model: type[MappedMixin] | type[DeclarativeBase]) -> Table:
    """The table ``model`` is mapped to, for Core statements. A class declared with ``__tablename__`` and
    columns is mapped to a ``Table``; ``DeclarativeBase`` types ``__table__`` as any ``FromClause`` for
    the mappings that are not (a class mapped to a join or a select)."""
    return cast(Table, model.__table__)
