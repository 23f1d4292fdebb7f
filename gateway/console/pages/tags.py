"""Customer tags (documents 002 and 003): the predefined and custom tags, their counts, add and delete."""

from __future__ import annotations

import uuid

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.layout import PAGE_TIMEOUT_S, frame, open_page
from gateway.console.widgets import Form, attempt, table_labels, when


@ui.page("/tags", response_timeout=PAGE_TIMEOUT_S)
async def tags_page(request: Request) -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    t = page.t
    with frame(page, "tags.title"):
        form = Form(t)
        with ui.row().classes("items-start gap-2"):
            name = form.add("name", ui.input(t("tags.name")).classes("w-64"))
            add_button = ui.button(t("tags.add"), icon="add")
        form.error_banner()

        @ui.refreshable
        async def table() -> None:
            answer = await attempt(lambda: page.api.call("ClassificationService.ListTags", {"page_size": 1000}))
            rows = [{"tag_id": tag["tag_id"], "name": tag.get("name", ""),
                     "kind": t("tags.predefined") if tag.get("predefined") else t("tags.custom"),
                     "count": int(tag.get("customer_count") or 0), "created": when(tag.get("create_time")),
                     "deletable": not tag.get("predefined")} for tag in (answer or {}).get("tags", [])]
            columns = [{"name": k, "label": t(f"tags.col.{k}"), "field": k, "align": "left"}
                       for k in ("name", "kind", "count", "created")]
            columns.append({"name": "actions", "label": t("crowds.col.actions"), "field": "tag_id", "align": "left"})
            grid = ui.table(columns=columns, rows=rows, row_key="tag_id").classes("w-full max-w-4xl").props(
                table_labels(t)).props(f'aria-label="{t("tags.title")}"')
            grid.add_slot("body-cell-actions", f'''
                <q-td :props="props">
                  <q-btn v-if="props.row.deletable" flat dense no-caps color="negative" label="{t('common.delete')}"
                         @click="() => $parent.$emit('delete', props.row)" />
                </q-td>''')
            grid.on("delete", lambda e: delete(e.args["tag_id"]))

        async def add() -> None:
            if await form.submit(lambda: page.api.call("ClassificationService.CreateTag", {
                    "request_id": uuid.uuid4().hex, "name": name.value or ""})) is not None:
                name.set_value("")
                table.refresh()

        async def delete(tag_id: str) -> None:
            answer = await attempt(lambda: page.api.call("ClassificationService.DeleteTag", {
                "request_id": uuid.uuid4().hex, "tag_id": tag_id}))
            if answer is not None:
                ui.notify(t("tags.deleted", n=int(answer.get("untagged_count") or 0)), type="positive")
                table.refresh()

        add_button.on_click(add)
        await table()
    return None
