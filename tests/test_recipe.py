"""The Colorizer's recipe: its defaults are the Colorizer's, and it is what a segmented run's resume key hashes."""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import pytest

from facecolor_video.film.pipeline import ColorizeOptions
from facecolor_video.model.colorizer import Colorizer
from facecolor_video.model.recipe import ColorizerSettings
from facecolor_video.scale.segments import work_key


def test_the_fields_and_defaults_are_the_colorizers():
    parameters = {name: parameter.default for name, parameter in inspect.signature(Colorizer).parameters.items()}
    assert {field.name: field.default for field in dataclasses.fields(ColorizerSettings)} == parameters


def test_of_fills_the_defaults_and_refuses_unknown_keys():
    recipe = ColorizerSettings.of({"render_size": 64, "device": "cpu"})
    assert recipe == ColorizerSettings(render_size=64, device="cpu")
    assert ColorizerSettings.of(recipe) is recipe
    assert ColorizerSettings.of(None) == ColorizerSettings()
    with pytest.raises(TypeError):
        ColorizerSettings.of({"rendersize": 64})


def test_identity_is_every_field_as_text():
    """What resume keys hashed before the recipe: every Colorizer keyword, defaults filled in, str() or None."""
    recipe = ColorizerSettings(render_size=48, chroma_gain=1.5, device="cpu")
    defaults = {name: parameter.default for name, parameter in inspect.signature(Colorizer).parameters.items()}
    spelled = {**defaults, "render_size": 48, "chroma_gain": 1.5, "device": "cpu"}
    assert recipe.identity() == {k: (str(v) if v is not None else None) for k, v in sorted(spelled.items())}
    assert list(recipe.identity()) == sorted(recipe.asdict())
    assert pickle.loads(pickle.dumps(recipe)) == recipe  # it travels to worker processes and Ray tasks


def test_the_resume_key_is_the_same_for_a_recipe_and_its_mapping(tmp_path):
    source = tmp_path / "film.bin"
    source.write_bytes(b"\0" * 4096)
    options = ColorizeOptions(crf=0, preset="ultrafast")
    settings = {"render_size": 64, "global_every": 8, "device": "cpu"}
    key = work_key(source, ColorizerSettings(**settings), options, 0.5)
    assert key == work_key(source, settings, options, 0.5)
    assert key == work_key(source, {**settings, "faces": "auto", "model": "general"}, options, 0.5)  # the defaults
    assert key != work_key(source, {**settings, "faces": "off"}, options, 0.5)
