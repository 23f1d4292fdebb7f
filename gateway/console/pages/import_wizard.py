"""Import wizard (document 002): upload, tag, encoding switch redrawing the preview, counts, mode,
live progress, and the result with its row errors to download."""

from __future__ import annotations

import csv
import io
import uuid
from functools import partial
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.api import ApiError
from gateway.console.layout import PAGE_TIMEOUT_S, Page, frame, open_page
from gateway.console.widgets import attempt, table_labels

ENCODINGS = ("IMPORT_ENCODING_UTF8", "IMPORT_ENCODING_GB18030", "IMPORT_ENCODING_BIG5")
MODES = ("IMPORT_MODE_NORMAL", "IMPORT_MODE_FAST")
KINDS = ("IMPORT_KIND_MEMBERS", "IMPORT_KIND_BUSINESS_CUSTOMERS")
DONE = ("IMPORT_JOB_STATE_SUCCEEDED", "IMPORT_JOB_STATE_FAILED")
MAX_BYTES = 100 * 1024 * 1024


@ui.page("/import", response_timeout=PAGE_TIMEOUT_S)
async def import_page(request: Request) -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    with frame(page, "import.title"):
        await ImportWizard(page).build()
    return None


class ImportWizard:
    def __init__(self, page: Page) -> None:
        self.page, self.t, self.api = page, page.t, page.api
        self.file: dict[str, Any] = {}
        self.encoding = ENCODINGS[0]
        self.kind = KINDS[0]
        self.job: dict[str, Any] = {}

    async def build(self) -> None:
        t = self.t
        tags = await attempt(lambda: self.api.call("ClassificationService.ListTags", {"page_size": 1000})) or {}
        self.tag_names = sorted(tag["name"] for tag in tags.get("tags", []))
        with ui.stepper().props("flat animated").classes("w-full") as self.stepper:
            with ui.step("upload", title=t("import.step.upload")):
                with ui.row().classes("items-center gap-4"):
                    ui.label(t("import.kind")).classes("text-sm")
                    self.kind_toggle = ui.toggle({k: t.enum("import_kind", k) for k in KINDS}, value=self.kind,
                                                 on_change=self.kind_changed).props(f'aria-label="{t("import.kind")}"')
                ui.label(t("import.upload_hint")).classes("text-sm text-grey-8")
                ui.upload(label=t("import.choose_file"), auto_upload=True, max_file_size=MAX_BYTES,
                          on_upload=self.uploaded).props('accept=".csv,.xlsx" flat bordered').classes("w-96")
                self.upload_error = ui.label("").classes("text-negative").props('role="alert"')
            with ui.step("preview", title=t("import.step.preview")):
                self.file_label = ui.label("").classes("font-medium")
                with ui.row().classes("items-end gap-4"):
                    self.tag = ui.select(self.tag_names, label=t("import.tag"), with_input=True,
                                         new_value_mode="add-unique", clearable=True).classes("w-80")
                    ui.label(t("import.encoding")).classes("text-sm")
                    self.encoding_toggle = ui.toggle({e: t.enum("encoding", e) for e in ENCODINGS}, value=self.encoding,
                                                     on_change=self.encoding_changed).props(
                        f'aria-label="{t("import.encoding")}"')
                self.encoding_error = ui.label("").classes("text-negative text-sm").props('role="alert"')
                with ui.row().classes("gap-6"):
                    self.counts = {key: self.count_tile(key)
                                   for key in ("scanned", "duplicate", "invalid", "to_import")}
                self.preview_table = ui.table(columns=[], rows=[], row_key="row_number").classes("w-full").props(
                    table_labels(t) + " dense hide-pagination").props(f'aria-label="{t("import.preview")}"')
                self.preview_table.pagination = {"rowsPerPage": 0}
                with ui.row().classes("items-center gap-4"):
                    ui.label(t("import.mode")).classes("text-sm")
                    self.mode = ui.toggle({m: t.enum("import_mode", m) for m in MODES}, value=MODES[0]).props(
                        f'aria-label="{t("import.mode")}"')
                    self.mode_note = ui.label(t("import.fast_note")).classes("text-xs text-grey-7")
                with ui.stepper_navigation():
                    ui.button(t("import.back"), on_click=self.stepper.previous).props("flat")
                    ui.button(t("import.start"), on_click=self.start)
            with ui.step("progress", title=t("import.step.progress")):
                self.state_label = ui.label("").props('data-testid="import-state"')
                self.progress = ui.linear_progress(value=0, show_value=False).props(
                    f'aria-label="{t("import.progress")}" instant-feedback').classes("w-full")
                self.progress_label = ui.label("").props('data-testid="import-progress"')
                with ui.row().classes("gap-6"):
                    self.results = {key: self.count_tile(key) for key in
                                    ("created", "updated", "unchanged", "invalid_rows", "duplicate_rows", "conflict")}
                self.error_label = ui.label("").classes("text-negative").props('role="alert"')
                with ui.row().classes("gap-2"):
                    self.issues_button = ui.button(t("import.download_issues"), icon="download",
                                                   on_click=self.download_issues).props("outline")
                    self.issues_button.visible = False
                    ui.button(t("import.again"), on_click=lambda: ui.navigate.to("/import")).props("flat")
                    self.see_button = ui.button(t("import.see_members"),
                                                on_click=lambda: ui.navigate.to(self.destination())).props("flat")

    def count_tile(self, key: str) -> ui.label:
        with ui.column().classes("gap-0"):
            ui.label(self.t(f"import.count.{key}")).classes("text-xs text-grey-7")
            return ui.label("—").classes("text-xl font-medium").props(f'data-testid="count-{key}"')

    async def uploaded(self, event: Any) -> None:
        upload = event.file
        data = await upload.read()
        self.upload_error.set_text("")
        answer = await attempt(lambda: self.api.upload("ImportService.UploadImportFile", data, upload.name))
        if answer is None:
            event.sender.reset()
            return
        self.file = answer.get("file", answer)
        detected = self.file.get("detected_encoding", "IMPORT_ENCODING_UNSPECIFIED")
        self.encoding = detected if detected in ENCODINGS else ENCODINGS[0]
        self.encoding_toggle.value = self.encoding
        self.file_label.set_text(self.t("import.file", name=self.file.get("file_name", upload.name),
                                        rows=int(self.file.get("row_count") or 0)))
        await self.preview()
        self.stepper.next()

    async def kind_changed(self, event: Any) -> None:
        """Members or business customers: a business import runs in normal mode only (StartImportRequest.kind)."""
        self.kind = event.value
        business = self.kind == "IMPORT_KIND_BUSINESS_CUSTOMERS"
        self.mode.value = MODES[0]
        self.mode.set_enabled(not business)
        self.mode_note.set_text(self.t("import.business_note") if business else self.t("import.fast_note"))
        self.see_button.set_text(self.t("import.see_business") if business else self.t("import.see_members"))
        if self.file:
            await self.preview()

    def destination(self) -> str:
        return "/business-customers" if self.kind == "IMPORT_KIND_BUSINESS_CUSTOMERS" else "/members"

    async def encoding_changed(self, event: Any) -> None:
        self.encoding = event.value
        if self.file:
            await self.preview()

    async def preview(self) -> None:
        t = self.t
        self.encoding_error.set_text("")
        try:
            answer = await self.api.call("ImportService.PreviewImport", {"file_id": self.file["file_id"],
                                                                         "encoding": self.encoding, "kind": self.kind})
        except ApiError as err:
            # The preview must never show rows read with another encoding than the one chosen.
            self.encoding_error.set_text(err.message)
            self.preview_table.rows = []
            self.preview_table.update()
            for label in self.counts.values():
                label.set_text("—")
            return
        warning = answer.get("warning", "")
        if warning:  # read with the wrong encoding, or no key column: the rows are shown as read, to compare
            self.encoding_error.set_text(t("import.preview_warning", warning=warning))
        counts = answer.get("counts") or {}
        for key, label in self.counts.items():
            label.set_text(f"{int(counts.get(key) or 0):,}")
        headers = [c.get("header", "") for c in answer.get("columns", [])]
        columns = [{"name": "row_number", "label": t("import.row"), "field": "row_number", "align": "left"}]
        columns += [{"name": f"c{i}", "label": h, "field": f"c{i}", "align": "left"} for i, h in enumerate(headers)]
        columns.append({"name": "status", "label": t("import.status"), "field": "status", "align": "left"})
        rows = []
        for row in answer.get("rows", []):
            cells = row.get("cells") or {}
            status = t.enum("row_status", row.get("status"))
            rows.append({"row_number": row.get("row_number"), "status": f"{status} {row.get('reason', '')}".strip(),
                         **{f"c{i}": cells.get(h, "") for i, h in enumerate(headers)}})
        self.preview_table.columns = columns
        self.preview_table.rows = rows
        self.preview_table.update()

    async def start(self) -> None:
        request = {"request_id": uuid.uuid4().hex, "file_id": self.file.get("file_id", ""), "mode": self.mode.value,
                   "encoding": self.encoding, "tag_name": (self.tag.value or "").strip(), "kind": self.kind}
        answer = await attempt(lambda: self.api.call("ImportService.StartImport", request))
        if answer is None:
            return
        self.job = answer.get("job", answer)
        self.stepper.next()
        self.show_job()
        self.timer = ui.timer(0.5, self.poll)

    async def poll(self) -> None:
        answer = await attempt(lambda: self.api.call("ImportService.GetImportJob", {"job_id": self.job["job_id"]}))
        if answer is None:
            self.timer.deactivate()
            return
        self.job = answer.get("job", answer)
        self.show_job()
        if self.job.get("state") in DONE:
            self.timer.deactivate()

    def show_job(self) -> None:
        t, job = self.t, self.job
        total, done = int(job.get("total_rows") or 0), int(job.get("processed_rows") or 0)
        self.progress.set_value(done / total if total else (1.0 if job.get("state") in DONE else 0.0))
        self.progress_label.set_text(t("import.progress_text", done=f"{done:,}", total=f"{total:,}"))
        self.state_label.set_text(t.enum("job_state", job.get("state")))
        for key, label in self.results.items():
            label.set_text(f"{int(job.get(key.removesuffix('_rows')) or 0):,}")
        self.error_label.set_text(job.get("error_message", ""))
        problems = sum(int(job.get(k) or 0) for k in ("invalid", "duplicate", "conflict"))
        self.issues_button.visible = job.get("state") in DONE and problems > 0

    async def download_issues(self) -> None:
        t = self.t
        notice = ui.notification(t("common.downloading"), spinner=True, timeout=None)
        issues: list[dict[str, Any]] = []
        token = ""
        while True:
            answer = await attempt(partial(self.api.call, "ImportService.ListImportIssues", {
                "job_id": self.job["job_id"], "page_size": 1000, "page_token": token}))
            if answer is None:
                break
            issues.extend(answer.get("issues", []))
            notice.message = t("import.issues_read", n=len(issues))
            token = answer.get("next_page_token", "")
            if not token:
                break
        notice.dismiss()
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([t("import.row"), t("import.status"), t("import.field"), t("import.reason")])
        for issue in issues:
            writer.writerow([issue.get("row_number"), t.enum("row_status", issue.get("status")),
                             issue.get("field", ""), issue.get("reason", "")])
        ui.download.content(("\ufeff" + out.getvalue()).encode("utf-8"), f"import-issues-{self.job['job_id']}.csv",
                            "text/csv")
