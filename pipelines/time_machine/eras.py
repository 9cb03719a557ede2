"""The eras a person can be portrayed in, read from ``eras.json`` (data: add an era there)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from pipelines.common.errors import InputError

ERAS_FILE = Path(__file__).with_name("eras.json")


@dataclass(frozen=True)
class Era:
    id: str
    label: str
    prompt: str  # contains "{subject}"
    negative: str

    def prompt_for(self, subject: str) -> str:
        return self.prompt.replace("{subject}", subject)


@functools.cache
def all_eras() -> dict[str, Era]:
    data = json.loads(ERAS_FILE.read_text())
    eras = {}
    for key, item in data.items():
        if key.startswith("_"):
            continue
        if "{subject}" not in item["prompt"]:
            raise ValueError(f"era {key!r}: its prompt has no {{subject}} placeholder")
        eras[key] = Era(key, item["label"], item["prompt"], item.get("negative", ""))
    return eras


def get_era(era_id: str) -> Era:
    try:
        return all_eras()[era_id]
    except KeyError:
        raise InputError(f"Unknown era {era_id!r}; choose from: {', '.join(all_eras())}.") from None
