"""Golden outputs: a fixed clip through `colorize` three ways, decoded, kept to guard refactors.

The clip is a gray portrait panning for 14 frames, then a cut to 10 frames of a
moving pattern. Each case runs the command line in a child process (as a user
would) in float32, encodes with FFV1 (lossless, so the decoded frames are the
colorizer's own) and keeps every decoded frame and its pts:

    faces       --faces auto (the face found in the first shot gets its close-up)
    reference   --reference with the colour portrait
    segmented   --workers 2 with 0.3 s segments (four segments, cut mid-shot)

`python -m tests.golden_outputs` rewrites tests/data/golden_outputs.npz. Do that
only when the output is meant to change (new weights, a deliberate change of the
colour) and say why in the commit; a refactor must leave the file as it is.
`--code DIR` runs another checkout's code (an older commit, to show a refactor
kept the output).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from facecolor_video.model.weights import (
    FACE_DETECTOR,
    FACE_PRIOR,
    MODELS,
    VGG16_FEATURES,
)
from tests.media import pattern_frame, portrait_frame

GOLDEN = Path(__file__).parent / "data" / "golden_outputs.npz"
SIZE = (128, 96)
PORTRAIT_FRAMES, PATTERN_FRAMES = 14, 10
COMMON = ["--precision", "fp32", "--device", "cpu", "--codec", "ffv1", "--no-audio", "-q"]
CASES: dict[str, list[str]] = {
    "faces": ["--faces", "auto"],
    "reference": ["--reference", "{reference}"],
    "segmented": ["--workers", "2", "--segment-seconds", "0.3"],
}
WEIGHTS = (MODELS["general"], VGG16_FEATURES, FACE_PRIOR, FACE_DETECTOR)


def machine() -> dict:
    """What the float32 rounding of a run depends on besides the code: the kernels' ISA and torch."""
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "machine": platform.machine()}


def weights_identity() -> dict:
    return {w.filename: w.sha256 for w in WEIGHTS}


def make_clip(folder: Path) -> tuple[Path, Path]:
    """The gray two-shot clip (libx264 qp 0) and the colour portrait as a reference picture."""
    width, height = SIZE
    clip = folder / "golden_clip.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"qp": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        frames = [portrait_frame(i, width, height, gray=True) for i in range(PORTRAIT_FRAMES)]
        frames += [pattern_frame(i, width, height, gray=True) for i in range(PATTERN_FRAMES)]
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    reference = folder / "golden_reference.png"
    Image.fromarray(portrait_frame(0, width, height)).save(reference)
    return clip, reference


def decoded(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of the output as RGB, and its pts."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return np.stack([f.to_ndarray(format="rgb24") for f in frames]), np.array([f.pts for f in frames])


def run_case(name: str, clip: Path, reference: Path, folder: Path, code: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Colorize the clip with one case's options in a child process; its decoded frames and pts."""
    output = folder / f"{name}.mkv"
    options = [arg.format(reference=reference) for arg in CASES[name]]
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "facecolor_video", "colorize", str(clip), str(output), *COMMON, *options]
    subprocess.run(command, check=True, env=env, cwd=folder)
    return decoded(output)


def run_all(folder: Path, code: Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    clip, reference = make_clip(folder)
    return {name: run_case(name, clip, reference, folder, code) for name in CASES}


def save(results: dict, path: Path = GOLDEN) -> None:
    arrays = {}
    for name, (frames, pts) in results.items():
        arrays[f"{name}_frames"], arrays[f"{name}_pts"] = frames, pts
    meta = {"machine": machine(), "weights": weights_identity()}
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)


def load(path: Path = GOLDEN) -> tuple[dict, dict[str, tuple[np.ndarray, np.ndarray]]]:
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        results = {name: (data[f"{name}_frames"], data[f"{name}_pts"]) for name in CASES}
    return meta, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, help="a checkout whose code runs the cases (default: this one)")
    parser.add_argument("--out", type=Path, default=GOLDEN)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        results = run_all(Path(folder), args.code.resolve() if args.code else None)
    save(results, args.out)
    for name, (frames, pts) in results.items():
        print(f"{name}: {len(frames)} frames, pts {pts.tolist()}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
