"""Models tab: every published checkpoint, its status, and a download button for each."""

from __future__ import annotations

import gradio as gr

from demos.common import job, user_error
from pipelines.common.limits import public_mode
from weights import registry, store

DOWNLOADS_OFF = (
    "Downloads are turned off on this public server: visitors cannot make it fetch files. "
    "The operator fetches the weights when building the server: `python -m weights download` "
    "(all of them) or `python -m weights download ID`."
)

TITLE = "Models"
CHECKPOINTS: list[str] = []

COLUMNS = ["id", "family", "file", "size", "licence", "status", "source"]


def models_table() -> list[list[str]]:
    """One row per registered checkpoint (also the ``/models`` API endpoint)."""
    rows = []
    for c in registry.all_checkpoints():
        st = store.status(c)
        source = c.sources[0].resolved_url if c.sources else "(none published)"
        rows.append([c.id, c.family, c.filename, registry.size_label(c), c.licence_short, st.state, source])
    return rows


@job
def download_checkpoint(checkpoint_id: str, progress: gr.Progress = gr.Progress()) -> list[list[str]]:
    """Download one checkpoint (``/download_weights``), with a progress bar; returns the new table.
    Refused in public mode (:data:`DOWNLOADS_OFF`)."""
    if public_mode():
        raise user_error(DOWNLOADS_OFF, "download_weights")
    try:
        ckpt = registry.get(checkpoint_id)
    except KeyError as exc:
        raise gr.Error(str(exc.args[0])) from exc

    def report(done: int, total: int | None, message: str) -> None:
        progress((done, total) if total else None, desc=message, unit="bytes")

    try:
        store.download(ckpt, report)
    except store.WeightsError as exc:
        raise user_error(str(exc).replace("\n", "<br>"), "download_weights") from exc
    gr.Info(f"{checkpoint_id} downloaded and verified.")
    return models_table()


def build() -> None:
    public = public_mode()
    where = (
        "" if public else f"Cache folder: `{store.cache_dir()}` (set `NOSTALGIA_WEIGHTS_DIR` to move it). "
    )
    gr.Markdown(
        "Every checkpoint the pipelines use. **present**: in the cache; **verified**: sha256 checked; "
        "**fixture**: deterministic test weights (outputs are not real); **missing**: not downloaded. "
        f"{where}Command line: `python -m weights list | download ID | verify`."
        + (f"\n\n**{DOWNLOADS_OFF}**" if public else "")
    )
    table = gr.Dataframe(
        value=models_table(),
        headers=COLUMNS,
        interactive=False,
        wrap=True,
        label="Checkpoints",
        column_widths=["20%", "7%", "17%", "7%", "9%", "8%", "32%"],
    )
    with gr.Row():
        refresh = gr.Button("Refresh status", size="sm")
    refresh.click(models_table, outputs=table, api_name="models", queue=False)
    hidden_id = gr.Textbox(visible=False)
    hidden_id.submit(download_checkpoint, hidden_id, table, api_name="download_weights", concurrency_id="downloads")
    by_family: dict[str, list[registry.Checkpoint]] = {}
    for c in registry.all_checkpoints():
        by_family.setdefault(c.family, []).append(c)
    for family, ckpts in by_family.items():
        with gr.Accordion(f"{'Sources of' if public else 'Download'} {family} checkpoints ({len(ckpts)} file{'s' if len(ckpts) > 1 else ''})", open=False):
            for c in ckpts:
                with gr.Row(equal_height=True):
                    sources = " · ".join(f"[{i + 1}]({s.resolved_url})" for i, s in enumerate(c.sources)) or "no public source"
                    gr.Markdown(
                        f"**{c.id}** · `{c.filename}` · sources: {sources}<br>"
                        f"<small>{c.description} Licence: {c.licence}</small>"
                    )
                    button = gr.Button(f"Download {c.id}", size="sm", scale=0, min_width=220, visible=not public)
                button.click(
                    lambda progress=gr.Progress(), _id=c.id: download_checkpoint(_id, progress),
                    outputs=table,
                    api_name=False,
                    concurrency_id="downloads",
                )
