"""Type stubs for the native module ``segment_engine._core`` (kept by hand, in step with src/*.rs)."""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from os import PathLike
from typing import Any, Literal, TypedDict, final

import numpy as np
import numpy.typing as npt

__all__ = ["Bitmap", "BitmapIter", "MemberIndex", "count", "evaluate"]

_IntArray = npt.NDArray[np.integer[Any]] | npt.NDArray[np.bool_]

@final
class Bitmap:
    """A roaring bitmap of u32 member ids. Immutable: operators return new bitmaps."""

    def __new__(cls, iterable: Iterable[int] | None = None) -> Bitmap: ...
    @staticmethod
    def from_numpy(array: _IntArray) -> Bitmap:
        """Any 1-d integer array with values in 0..2^32-1; anything else is ValueError."""
    def to_numpy(self) -> npt.NDArray[np.uint32]:
        """The ids, sorted, as uint32."""
    def serialize(self) -> bytes:
        """Roaring portable format, byte-compatible with ``pyroaring.BitMap.serialize()``."""
    @staticmethod
    def deserialize(data: bytes) -> Bitmap:
        """Reads the portable format; corrupt or truncated bytes raise ValueError."""
    def __len__(self) -> int: ...
    def __contains__(self, value: object, /) -> bool: ...
    def __iter__(self) -> Iterator[int]: ...
    def __bool__(self) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    def __and__(self, other: Bitmap, /) -> Bitmap: ...
    def __rand__(self, other: Bitmap, /) -> Bitmap: ...
    def __or__(self, other: Bitmap, /) -> Bitmap: ...
    def __ror__(self, other: Bitmap, /) -> Bitmap: ...
    def __sub__(self, other: Bitmap, /) -> Bitmap: ...
    def __rsub__(self, other: Bitmap, /) -> Bitmap: ...
    def __xor__(self, other: Bitmap, /) -> Bitmap: ...
    def __rxor__(self, other: Bitmap, /) -> Bitmap: ...
    def union(self, *others: Bitmap) -> Bitmap:
        """``self | others[0] | ...`` in one fused pass, like ``set.union``."""
    def intersection(self, *others: Bitmap) -> Bitmap:
        """``self & others[0] & ...`` in one fused pass, like ``set.intersection``."""
    def difference(self, *others: Bitmap) -> Bitmap:
        """``self - others[0] - ...`` in one fused pass, like ``set.difference``."""
    def symmetric_difference(self, other: Bitmap) -> Bitmap:
        """``self ^ other``, like ``set.symmetric_difference``."""
    def intersection_len(self, other: Bitmap) -> int:
        """``len(self & other)`` without building the intersection (releases the GIL)."""
    def union_len(self, other: Bitmap) -> int:
        """``len(self | other)`` without building the union (releases the GIL)."""
    def difference_len(self, other: Bitmap) -> int:
        """``len(self - other)`` without building the difference (releases the GIL)."""
    def page(self, offset: int, limit: int) -> npt.NDArray[np.uint32]:
        """The ids of ranks ``offset .. offset + limit`` as uint32."""
    def __reduce__(self) -> tuple[Any, tuple[bytes]]: ...

@final
class BitmapIter:
    def __iter__(self) -> BitmapIter: ...
    def __next__(self) -> int: ...

Expr = str | Mapping[str, Sequence[Any]]
"""A leaf name, ``{"and": [expr, ...]}``, ``{"or": [expr, ...]}`` or ``{"andnot": [expr, expr]}``."""

def evaluate(expr: Expr, leaves: Mapping[str, Bitmap]) -> Bitmap:
    """Evaluates the whole tree in one fused, parallel pass with the GIL released."""

def count(expr: Expr, leaves: Mapping[str, Bitmap]) -> int:
    """``len(evaluate(expr, leaves))`` without building the result."""

Op = Literal["eq", "ne", "in", "not_in", "between", "gte", "lte", "gt", "lt"]
Metric = Literal["count", "sum", "max", "avg", "distinct_stores", "first_day", "last_day"]

class OrdersWindow(TypedDict, total=False):
    stores: list[int] | None
    from_day: int
    to_day: int

Condition = Mapping[str, Any]
"""``{"field", "op", "value"}``, ``{"bitmap"}``, ``{"not_bitmap"}`` or ``{"orders", "metric", "op", "value"}``."""

class Group(TypedDict):
    op: Literal["include", "or", "exclude"]
    all: list[Condition]

class Package(TypedDict):
    groups: list[Group]

class MemoryReport(TypedDict):
    columns: dict[str, int]
    bitmaps: dict[str, int]
    orders: int
    total: int

@final
class MemberIndex:
    """Member columns, named bitmaps and orders over member ids ``0..n_members-1``.

    Evaluation releases the GIL; concurrent readers are safe, updates take an exclusive lock.
    """

    def __new__(cls, n_members: int) -> MemberIndex: ...
    @property
    def n_members(self) -> int: ...
    @property
    def n_orders(self) -> int: ...
    def columns(self) -> list[str]: ...
    def bitmaps(self) -> list[str]: ...
    def set_column(self, name: str, values: _IntArray, valid: npt.NDArray[np.bool_] | None = None) -> None:
        """Indexes an int or bool array of length n_members; ``valid=False`` rows are null."""
    def update(
        self,
        name: str,
        member_ids: _IntArray,
        values: _IntArray,
        valid: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        """Point updates in place, without a rebuild."""
    def grow(self, n_members: int) -> None:
        """Adds members (null in every column, in no bitmap)."""
    def set_bitmap(self, name: str, bitmap: Bitmap) -> None:
        """Names a member set; its ids must be below n_members."""
    def drop_column(self, name: str) -> bool: ...
    def drop_bitmap(self, name: str) -> bool: ...
    def set_orders(self, member: _IntArray, store: _IntArray, day: _IntArray, amount: _IntArray) -> None:
        """Replaces all orders: u32 member, u32 store, i32 day (days since 1970-01-01), i64 amount (fen)."""
    def append_orders(self, member: _IntArray, store: _IntArray, day: _IntArray, amount: _IntArray) -> None:
        """Adds orders, same arrays as ``set_orders``."""
    def evaluate(self, package: Package | Mapping[str, Any]) -> Bitmap:
        """The members matching a crowd package; a bad package is ValueError naming the bad part."""
    def count(self, package: Package | Mapping[str, Any]) -> int:
        """How many members match, without building the set."""
    def column_values(self, name: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """A column's values (0 where null) and its valid mask."""
    def memory_bytes(self) -> int:
        """Heap bytes held by columns, bitmaps and orders."""
    def memory_report(self) -> MemoryReport: ...
    def save(self, path: str | PathLike[str]) -> None:
        """Snapshots the whole index (atomically, via a temporary file)."""
    @staticmethod
    def load(path: str | PathLike[str]) -> MemberIndex:
        """Reads a snapshot; a damaged file is ValueError, a missing one FileNotFoundError."""
