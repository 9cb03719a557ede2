"""Nostalgia Studio: restore, colorize, animate and make old photos dance.

``python app.py --help`` lists the options; each also reads an environment variable so a
Hugging Face Space can be configured without a command line.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

import gradio as gr

from demos import registered_tabs
from demos.common import harden_inputs, limits_markdown
from pipelines.common.limits import LIMITS

TITLE = "Nostalgia Studio"
FIXTURE_BANNER = "fixture weights: outputs are not real"

INTRO = (
    "Bring old photos back to life with published research models: **Restore** (Wan et al., CVPR 2020), "
    "**Colorize** (DeOldify), **Animate** (Thin-Plate Spline Motion Model, CVPR 2022) and **Dance** "
    "(Everybody Dance Now, ICCV 2019). Weights are listed in the **Models** tab."
)


def fixture_banner_html() -> str:
    """A visible warning while any checkpoint in the cache is a fixture (not the real weights)."""
    from weights.store import any_fixture_in_use

    ids = any_fixture_in_use()
    if not ids:
        return ""
    return (
        '<div id="fixture-banner" style="background:#b00020;color:white;padding:8px 12px;border-radius:6px;'
        f'font-weight:600">⚠ {FIXTURE_BANNER} ({len(ids)} fixture checkpoint{"s" if len(ids) != 1 else ""}: '
        f"{', '.join(ids[:6])}{' …' if len(ids) > 6 else ''})</div>"
    )


def build_app() -> gr.Blocks:
    """The whole UI: one tab per registered demo, in a fixed order, then the Models tab."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        banner = gr.HTML(fixture_banner_html(), elem_id="fixture-banner-box")
        gr.Markdown(limits_markdown())
        with gr.Tabs():
            for tab in registered_tabs():
                with gr.Tab(tab.TITLE, id=tab.__name__.rsplit(".", 1)[-1]):
                    tab.build()
        demo.load(fixture_banner_html, outputs=banner, api_name=False, queue=False)
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


def launch(args: argparse.Namespace, **kwargs) -> gr.Blocks:
    demo = build_app()
    demo.queue(max_size=args.queue_size, default_concurrency_limit=1)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=f"{LIMITS.max_upload_mb:g}mb",
        show_error=True,
        **kwargs,
    )
    return demo


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    launch(args)


if __name__ == "__main__":
    main()
