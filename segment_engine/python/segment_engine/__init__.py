"""Crowdpack's segment engine: which members match a crowd package.

``Bitmap`` is a roaring bitmap of u32 member ids (portable format, byte-compatible with
pyroaring). ``evaluate``/``count`` run an AND/OR/ANDNOT tree over named Bitmaps in one fused
pass. ``MemberIndex`` holds member columns, named bitmaps and orders, and evaluates crowd
packages. The native module ``segment_engine._core`` is private; import from here.
"""

from segment_engine._core import Bitmap, MemberIndex, count, evaluate

__all__ = ["Bitmap", "MemberIndex", "count", "evaluate"]
