"""Custom nodes for the harness's own server tests, linked into the test server only (never part of the pack).

``HarnessTest_Sleep`` takes time in a way a test controls: ``reports`` ProgressBar steps of ``step_seconds`` each, then
``silent_seconds`` without any report, so one prompt can progress slowly and another stall.
"""

from __future__ import annotations

import time

import comfy.utils


class SleepForTests:
    @classmethod
    def INPUT_TYPES(cls) -> dict:
        seconds = {"default": 0.0, "min": 0.0, "max": 60.0, "step": 0.01}
        return {
            "required": {
                "reports": ("INT", {"default": 0, "min": 0, "max": 1000}),
                "step_seconds": ("FLOAT", seconds),
                "silent_seconds": ("FLOAT", seconds),
            }
        }

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "sleep"
    CATEGORY = "testing"

    @classmethod
    def IS_CHANGED(cls, **inputs: float) -> float:
        return float("nan")  # never cached: every queued prompt sleeps again

    def sleep(self, reports: int, step_seconds: float, silent_seconds: float) -> dict:
        progress = comfy.utils.ProgressBar(reports)
        for _ in range(reports):
            time.sleep(step_seconds)
            progress.update(1)
        time.sleep(silent_seconds)
        return {}


NODE_CLASS_MAPPINGS = {"HarnessTest_Sleep": SleepForTests}
NODE_DISPLAY_NAME_MAPPINGS = {"HarnessTest_Sleep": "Sleep (harness tests)"}
