"""The recipe of a Colorizer: its constructor's settings as one frozen, typed value.

The command line fills one from its options, the segment workers rebuild
their colorizer from one (it pickles, and crosses to spawned processes and to
Ray), and the resume key of a segmented run hashes its ``identity()``.
The defaults are ``Colorizer.__init__``'s (tests/test_recipe.py checks it).
Nothing heavy is imported here: ``build`` loads the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..settings import SETTINGS


@dataclass(frozen=True)
class ColorizerSettings:
    """Keyword arguments of ``facecolor_video.model.colorizer.Colorizer``, all of them."""

    model: str | Path = SETTINGS["model"].default
    device: str = "auto"
    precision: str = "auto"
    render_size: int | None = SETTINGS["render_size"].default
    global_every: int = SETTINGS["global_every"].default
    chroma_gain: float | None = None
    backbone_weights: str | Path | None = None
    faces: str = SETTINGS["faces"].default

    @classmethod
    def of(cls, settings: ColorizerSettings | Mapping | None = None) -> ColorizerSettings:
        """A recipe from a recipe, from a mapping of some of the fields (the rest default), or from None.

        An unknown key raises TypeError, as the Colorizer itself would.
        """
        if isinstance(settings, cls):
            return settings
        return cls(**dict(settings or {}))

    def asdict(self) -> dict:
        """The fields as keyword arguments of Colorizer."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def identity(self) -> dict:
        """Every field, as text (None stays None): what a resume key hashes; equal recipes give equal identities."""
        return {name: (str(value) if value is not None else None) for name, value in sorted(self.asdict().items())}

    def replace(self, **changes) -> ColorizerSettings:
        return dataclasses.replace(self, **changes)

    def build(self):
        """Load the model: a ``facecolor_video.model.colorizer.Colorizer`` made from these settings."""
        from .colorizer import Colorizer

        return Colorizer(**self.asdict())
