"""The import tables: uploaded files (kept in the database in chunks), jobs and the rows they skipped."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.customer.models import ID, Base


class ImportFile(Base):
    """An uploaded CSV or XLSX file. Its bytes live in ``import_file_chunk`` so any replica can run its job."""

    __tablename__ = "import_file"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128), unique=True)
    file_name: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # crowdpack.customer.v1.ImportFormat value.
    format: Mapped[int] = mapped_column(SmallInteger)
    # crowdpack.customer.v1.ImportEncoding value (0 for XLSX).
    detected_encoding: Mapped[int] = mapped_column(SmallInteger)
    # JSON list of the header cells read with the detected encoding.
    header: Mapped[str] = mapped_column(Text)
    row_count: Mapped[int] = mapped_column(BigInteger)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"ImportFile(id={self.id}, file_name={self.file_name!r}, size_bytes={self.size_bytes})"


class ImportFileChunk(Base):
    __tablename__ = "import_file_chunk"

    file_id: Mapped[int] = mapped_column(ForeignKey("import_file.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    def __repr__(self) -> str:
        return f"ImportFileChunk(file_id={self.file_id}, seq={self.seq})"


class ImportJob(Base):
    """One import of a file. ``processed_rows`` moves in the same transaction as each batch's writes."""

    __tablename__ = "import_job"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("import_file.id"), index=True)
    # crowdpack.customer.v1.ImportMode / ImportEncoding / ImportJobState values.
    mode: Mapped[int] = mapped_column(SmallInteger)
    encoding: Mapped[int] = mapped_column(SmallInteger)
    # crowdpack.customer.v1.ImportKind value: members (1) or business customers (2).
    kind: Mapped[int] = mapped_column(SmallInteger, default=1)
    state: Mapped[int] = mapped_column(SmallInteger, index=True)
    tag_id: Mapped[Optional[int]] = mapped_column(ForeignKey("tag.id"))
    time_zone: Mapped[str] = mapped_column(String(64))
    operator_id: Mapped[str] = mapped_column(String(64))
    total_rows: Mapped[int] = mapped_column(BigInteger)
    processed_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    created_count: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_count: Mapped[int] = mapped_column(BigInteger, default=0)
    unchanged_count: Mapped[int] = mapped_column(BigInteger, default=0)
    invalid_count: Mapped[int] = mapped_column(BigInteger, default=0)
    duplicate_count: Mapped[int] = mapped_column(BigInteger, default=0)
    conflict_count: Mapped[int] = mapped_column(BigInteger, default=0)
    error_message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"ImportJob(id={self.id}, state={self.state}, {self.processed_rows}/{self.total_rows})"


class ImportRowIssue(Base):
    """A row a job did not import, and why."""

    __tablename__ = "import_row_issue"
    __table_args__ = (Index("ix_import_row_issue_job_row", "job_id", "row_number"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("import_job.id"))
    row_number: Mapped[int] = mapped_column(BigInteger)
    # crowdpack.customer.v1.ImportRowStatus value.
    status: Mapped[int] = mapped_column(SmallInteger)
    field: Mapped[str] = mapped_column(String(40), default="")
    reason: Mapped[str] = mapped_column(String(300))

    def __repr__(self) -> str:
        return f"ImportRowIssue(job_id={self.job_id}, row={self.row_number}, {self.reason!r})"
