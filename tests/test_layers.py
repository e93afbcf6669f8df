"""The package's layers point one way; PyAV stays in media, click in the command line; no underscore names cross modules.

Read from the source with ``ast``, so the check costs nothing and runs
everywhere. ``KNOWN`` lists what still breaks a rule, each with where it is
to go: a new break fails the test, and so does an entry that no longer breaks
anything (the list only shrinks).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "facecolor_video"
# lower numbers are lower layers; a module may import its own layer and those below
LAYERS = {"errors": 0, "settings": 0, "devices": 0, "media": 1, "model": 2, "film": 3,
          "scale": 4, "training": 4, "bench": 4, "cli": 5, "__main__": 5, "__init__": 5}
LIBRARY_HOMES = {"av": "media", "click": "cli"}

KNOWN = {
    # the standard library has no public way to stop a process pool's workers at once (Ctrl-C, SIGTERM)
    ("scale/executors.py", "reaches for executor._processes"),
}


def _module_name(path: Path) -> list[str]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _layer(module: list[str]) -> int | None:
    return LAYERS.get(module[1] if len(module) > 1 else "__init__")


def _imports(path: Path):
    """(imported module as a dotted name, names imported from it) for every import in the file."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, [alias.name for alias in node.names]


def breaks() -> set[tuple[str, str]]:
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        where = str(path.relative_to(PACKAGE))
        module = _module_name(path)
        own_layer = _layer(module)
        for target, names in _imports(path):
            top = target.split(".")[0]
            if top in LIBRARY_HOMES and (len(module) < 2 or module[1] != LIBRARY_HOMES[top]):
                found.add((where, f"imports {top}"))
            if top != "facecolor_video":
                continue
            target_layer = _layer(target.split("."))
            if own_layer is not None and target_layer is not None and target_layer > own_layer:
                found.add((where, f"upward import {target}"))
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    found.add((where, f"imports the private {target}.{name}"))
        for node in ast.walk(ast.parse(path.read_text())):
            # another object's underscore attribute (``colorizer._chunked``); an object's own (self, cls) is its business
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") \
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.add((where, f"reaches for {ast.unparse(node)}"))
    return found


def test_no_new_break_of_the_layering_rules():
    new = breaks() - KNOWN
    assert not new, "\n".join(f"{where}: {what}" for where, what in sorted(new))


def test_the_list_of_known_breaks_only_shrinks():
    mended = KNOWN - breaks()
    assert not mended, "no longer broken, remove from KNOWN: " + ", ".join(f"{w}: {x}" for w, x in sorted(mended))


def test_the_check_sees_a_break(tmp_path, monkeypatch):
    # a model module that reached up into film and for a private name would be caught
    fake = tmp_path / "facecolor_video"
    (fake / "model").mkdir(parents=True)
    (fake / "model" / "bad.py").write_text("import av\nfrom ..film.pipeline import _private\nx = colorizer._chunked\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert breaks() == {("model/bad.py", "imports av"),
                        ("model/bad.py", "upward import facecolor_video.film.pipeline"),
                        ("model/bad.py", "imports the private facecolor_video.film.pipeline._private"),
                        ("model/bad.py", "reaches for colorizer._chunked")}


# names that moved to another module, and the old home that still forwards them
MOVED = [
    ("facecolor_video.film.preview", "facecolor_video.media.sampling", "FrameSampler"),
    ("facecolor_video.film.preview", "facecolor_video.media.sampling", "PickedFrame"),
    ("facecolor_video.film.preview", "facecolor_video.media.sampling", "format_timestamp"),
    ("facecolor_video.scale.join", "facecolor_video.media.segment_files", "join_segments"),
    ("facecolor_video.scale.segments", "facecolor_video.media.segment_files", "scan_packets"),
    # media.video gathers what its parts (one per role PyAV plays) define
    *[("facecolor_video.media.video", f"facecolor_video.media.{home}", name) for home, names in {
        "frames": ["VideoFrame", "decoded_to_video_frame"],
        "reader": ["STDIO", "FALLBACK_FRAME_RATE", "StreamInfo", "VideoReader"],
        "encoders": ["HARDWARE_ENCODERS", "encoder_options"],
        "writer": ["VideoWriter"],
        "remux": ["plan_for", "copier_for"],
    }.items() for name in names],
    # training.train still offers what moved to the run's settings, losses, processes and export
    *[("facecolor_video.training.train", f"facecolor_video.training.{home}", name) for home, names in {
        "config": ["TrainConfig", "LOSSES", "effective_learning_rate", "learning_rate_factor", "CHECKPOINT_NAME"],
        "losses": ["ChromaPrior", "PRIOR_SAMPLE", "colorization_loss"],
        "distributed": ["DistributedContext"],
        "export": ["export_head", "with_uncertainty_strength"],
        "run_log": ["plot_history"],
        "augment": ["jitter_lightness"],
        "starting_head": ["initial_head", "INITIAL_LOG_VARIANCE"],
    }.items() for name in names],
    # film.faces gathers one picture's crops and a film's tracks
    *[("facecolor_video.film.faces", f"facecolor_video.film.{home}", name) for home, names in {
        "face_crops": ["FaceCrop", "crop_lightness", "ellipse_mask", "paste_crop_ab", "refine_stills", "CROP_SIZE"],
        "face_tracks": ["FaceTracker", "FaceBlender", "FacePlacement", "FaceRefiner", "draw_faces", "RECOLOUR_EVERY"],
    }.items() for name in names],
    ("facecolor_video.film.temporal", "facecolor_video.film.scene_cuts", "SceneCutDetector"),
    # the public Colorizer's stills path (faces, references, hints) lives in the film layer
    ("facecolor_video", "facecolor_video.film.stills", "Colorizer"),
    # film.pipeline runs a file around the per-batch stage chain of film.frame_stream
    *[("facecolor_video.film.pipeline", "facecolor_video.film.frame_stream", name) for name in [
        "AnalyzedBatch", "FrameColorizer", "batched", "run_stream", "QUEUE_BYTES", "auto_threads", "torch_threads"]],
]


def test_moved_names_are_still_found_at_their_old_homes():
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for old, new, name in MOVED:
            assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name), name
