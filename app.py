"""Nostalgia Studio: restore, colorize, animate and make old photos dance.

``python app.py --help`` lists the options; each also reads an environment variable so a
Hugging Face Space can be configured without a command line.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import anyio
import gradio as gr

from demos import registered_tabs
from demos.common import harden_inputs, limits_markdown
from pipelines.common.limits import LIMITS, DiskBudgets, public_mode, set_served_address

log = logging.getLogger("nostalgia")

TITLE = "Nostalgia Studio"
FIXTURE_BANNER = "fixture weights: outputs are not real"

INTRO = (
    "Bring old photos back to life with published research models: **Restore** (Wan et al., CVPR 2020), "
    "**Colorize** (DeOldify), **Animate** (Thin-Plate Spline Motion Model, CVPR 2022), **Dance** "
    "(Everybody Dance Now, ICCV 2019) and **Time Machine** (a person's portraits in past eras: DreamBooth-style "
    "LoRA on Stable Diffusion 1.5). Weights are listed in the **Models** tab."
)


def tabs_using(ids: Sequence[str]) -> list[str]:
    """Titles of the tabs whose ``CHECKPOINTS`` include any of ``ids``, in tab order."""
    wanted = set(ids)
    return [tab.TITLE for tab in registered_tabs() if wanted & set(getattr(tab, "CHECKPOINTS", ()))]


def fixture_banner_html() -> str:
    """A visible warning while any checkpoint in the cache is a fixture (not the real weights),
    naming the tabs whose outputs that affects (from each tab's ``CHECKPOINTS``)."""
    from weights.store import any_fixture_in_use

    ids = any_fixture_in_use()
    if not ids:
        return ""
    tabs = tabs_using(ids)
    return (
        '<div id="fixture-banner" style="background:#b00020;color:white;padding:8px 12px;border-radius:6px;'
        f'font-weight:600">⚠ {FIXTURE_BANNER}' + (f" in {', '.join(tabs)}" if tabs else "")
        + f" ({len(ids)} fixture checkpoint{'s' if len(ids) != 1 else ''}: "
        f"{', '.join(ids[:6])}{' …' if len(ids) > 6 else ''})</div>"
    )


def _banner_update() -> dict:
    """The banner as of this page load, hidden (taking no room) when no fixture is in use."""
    html = fixture_banner_html()
    return gr.update(value=html, visible=bool(html))


#: Page styles: while a job runs, Gradio dims the job panel's last note to 20 % under the progress
#: line, where it reads as a garbled second line; hide it until the job answers.
CSS = ".job-status .pending { opacity: 0 !important; }"


def build_app() -> gr.Blocks:
    """The whole UI: one tab per registered demo, in a fixed order, then the Models tab."""
    budgets = DiskBudgets.from_env()
    # Gradio's own clean-up of the files this app created (uploads and served copies); the size
    # budget is kept by prune_upload_cache after every upload
    delete_cache = (max(1, int(budgets.prune_every_s)), max(1, int(budgets.upload_ttl_hours * 3600)))
    with gr.Blocks(title=TITLE, delete_cache=delete_cache) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}<br>{limits_markdown()}")  # the limits, once for every tab
        first = fixture_banner_html()
        banner = gr.HTML(first, elem_id="fixture-banner-box", visible=bool(first))
        with gr.Tabs():
            for tab in registered_tabs():
                with gr.Tab(tab.TITLE, id=tab.__name__.rsplit(".", 1)[-1]):
                    tab.build()
        demo.load(_banner_update, outputs=banner, api_name=False, queue=False)
    return harden_inputs(demo)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        description="Nostalgia Studio web app. Every option can also be set by the environment variable shown.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default=env("NOSTALGIA_HOST", env("GRADIO_SERVER_NAME", "127.0.0.1")),
        help="address to listen on (NOSTALGIA_HOST); use 0.0.0.0 to serve the network",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env("NOSTALGIA_PORT", env("GRADIO_SERVER_PORT", "7860"))),
        help="port (NOSTALGIA_PORT)",
    )
    parser.add_argument(
        "--share",
        action="store_true",
        default=env("NOSTALGIA_SHARE", "") == "1",
        help="create a public gradio.live link (NOSTALGIA_SHARE=1)",
    )
    parser.add_argument(
        "--queue-size",
        type=int,
        default=int(env("NOSTALGIA_QUEUE_SIZE", "16")),
        help="maximum number of waiting jobs before new ones are refused (NOSTALGIA_QUEUE_SIZE)",
    )
    parser.add_argument(
        "--log-level", default=env("NOSTALGIA_LOG_LEVEL", "INFO"), help="logging level (NOSTALGIA_LOG_LEVEL)"
    )
    return parser.parse_args(argv)


def upload_folder() -> Path:
    """Gradio's upload/cache folder (``GRADIO_TEMP_DIR``)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def prune_upload_cache() -> int:
    """Keep Gradio's upload/cache folder within ``NOSTALGIA_UPLOAD_TTL_HOURS`` and
    ``NOSTALGIA_UPLOAD_BUDGET_MB`` (oldest first), the app's own example files apart. Returns
    the number of entries removed."""
    from pipelines.common import disk

    budgets = DiskBudgets.from_env()
    return disk.prune(
        upload_folder(),
        max_age_s=budgets.upload_ttl_hours * 3600,
        max_bytes=budgets.upload_budget_mb * 1e6,
        candidates=lambda p: p.name not in _APP_FILES,
    ).removed


# Folders of the upload folder that the app itself put there while building the page (its
# examples): never pruned, and not counted against the visitors' budget.
_APP_FILES: set[str] = set()


class UploadBudget:
    """ASGI middleware: after every upload, prune the upload folder back within its budget, so a
    flood of uploads (``/gradio_api/upload`` bypasses the queue) cannot fill the disk."""

    def __init__(self, app) -> None:
        self.app = app
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)
        if scope.get("type") == "http" and scope.get("path", "").endswith("/upload"):
            await anyio.to_thread.run_sync(self._prune)

    def _prune(self) -> None:
        with self._lock:
            try:
                prune_upload_cache()
            except OSError:
                log.exception("pruning the upload folder failed")


def prepare_disk() -> None:
    """Before serving: a private upload folder unless one is set, what killed jobs left removed,
    every folder within its budget."""
    from pipelines.common import media

    os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(tempfile.gettempdir()) / "nostalgia-gradio"))
    removed = media.clean_outputs_at_start() + media.prune_outputs() + prune_upload_cache()
    if removed:
        log.info("start-up clean-up: %d leftover entries removed", removed)


def launch(args: argparse.Namespace, **kwargs) -> gr.Blocks:
    from starlette.middleware import Middleware

    set_served_address(args.host, share=args.share)
    prepare_disk()
    demo = build_app()
    if upload_folder().is_dir():
        _APP_FILES.update(p.name for p in upload_folder().iterdir())
    log.info("public mode: %s", "ON (visitors see only their own jobs; downloads off)" if public_mode() else "off (local use)")
    demo.queue(max_size=args.queue_size, default_concurrency_limit=1)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=f"{LIMITS.max_upload_mb:g}mb",
        show_error=True,
        css=CSS,
        app_kwargs={"middleware": [Middleware(UploadBudget)]},
        **kwargs,
    )
    return demo


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    launch(args)


if __name__ == "__main__":
    main()
