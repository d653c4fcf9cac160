"""Mutated shipped recipes: validate answers exit 0 or 2 with recipe paths, never a traceback or a file.

A bounded, seeded number of examples here; ``bench/fuzz.py`` runs many more.
"""

from __future__ import annotations

import random

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recipe_fuzz import RECIPES, check_outcome, load, mutate


def test_the_outcome_check_catches_a_message_without_a_path():
    assert check_outcome(2, "error: something went wrong somewhere: fix it\n1 problem(s).")
    assert check_outcome(1, "Traceback (most recent call last):")
    assert check_outcome(2, "error: model.layers[0].units (r.yaml:9): Received: units=-1.\n1 problem(s).") == []


@pytest.mark.slow
@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(recipe=st.sampled_from(RECIPES), seed=st.integers(0, 2**32 - 1), times=st.integers(1, 3))
def test_validate_answers_every_mutated_recipe_cleanly(cli, tmp_path_factory, recipe, seed, times):
    folder = tmp_path_factory.mktemp("fuzz")
    doc = mutate(load(recipe), random.Random(seed), times)
    path = folder / "mutated.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    result = cli("validate", path)
    assert check_outcome(result.exit_code, result.stderr) == [], (recipe.name, seed, result.stderr[-2000:])
    assert [p.name for p in folder.iterdir()] == ["mutated.yaml"]  # nothing written
