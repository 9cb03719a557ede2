"""The Nostalgia tab's glue, without models: NostalgiaOptions is the one owner of the options and
their defaults, and a skipped step says so in its own panel."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from demos import nostalgia as tab
from pipelines.common.errors import InputError
from pipelines.nostalgia.config import NostalgiaOptions
from pipelines.nostalgia.pipeline import NostalgiaResult, Step


def test_every_setting_of_the_endpoints_is_an_option_field() -> None:
    fields = {f.name for f in dataclasses.fields(NostalgiaOptions)} | {"face_number"}
    assert set(tab.ONE_CLICK_FIELDS) <= fields and set(tab.STORY_FIELDS) <= fields
    assert len(tab.ONE_CLICK_FIELDS) == 14  # the /nostalgia API: photo + these, in this order
    assert tab.ONE_CLICK_FIELDS[-1] == tab.STORY_FIELDS[-1] == "precision"  # last: older API calls stay valid


def test_the_precision_choice_reaches_the_options() -> None:
    assert tab.options_from({"precision": "exact"}).precision == "exact"
    assert tab.options_from({"precision": "auto"}).precision == "auto"
    with pytest.raises(InputError, match="precision must be one of auto, exact"):
        tab.options_from({"precision": "fast"})


def test_options_from_the_tab_take_the_defaults_and_the_users_counting() -> None:
    assert tab.options_from({}) == NostalgiaOptions()
    empty = dict.fromkeys(tab.ONE_CLICK_FIELDS)  # what an API call that leaves everything out sends
    assert tab.options_from(empty) == NostalgiaOptions()
    options = tab.options_from({"face_number": 2.0, "render_factor": 21.0, "colorize": "no", "restore": 0})
    assert options == NostalgiaOptions(face_index=1, render_factor=21, colorize="no", restore=False)
    assert isinstance(options.render_factor, int)
    with pytest.raises(InputError, match="face number must be 1 or more"):
        tab.options_from({"face_number": 0})


def test_a_skipped_step_says_so_in_its_own_panel() -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    result = NostalgiaResult(image, image, None, image, np.zeros((0, 4), int),
                             steps=[Step("Restore", True, "ran", 1.0), Step("Colorize", False, "the photo is already in colour")])  # fmt: skip
    skipped = tab._panel(result, "Colorize", None, "Colorized")
    assert skipped["label"] == "Colorized: skipped, the photo is already in colour" and skipped["value"] is None
    ran = tab._panel(result, "Restore", image, "Restored")
    assert ran["label"] == "Restored" and ran["value"] is image
