"""Shared test set-up: Hypothesis profiles and a small pool of certificates made once."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# `ci` keeps the whole suite quick on two cores; `fuzz` is for long runs by hand:
#   HYPOTHESIS_PROFILE=fuzz python -m pytest
settings.register_profile(
    "ci", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
