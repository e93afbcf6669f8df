#!/usr/bin/env bash
# The GPU rows of the README's performance table, measured in one run (a few
# minutes on one H100): the CUDA tests, a 1080p clip end to end against the
# transcode floor with libx264 and, where FFmpeg has it, NVENC, and the network
# alone at batch sizes 8 to 64.
#
#   bash examples/gpu_benchmark.sh [SOURCE_CLIP] [OUT_DIR] [PEAK_TFLOPS]
#
# SOURCE_CLIP: any clip, scaled to 1920x1080 for the test (default: a moving
# test pattern made here). PEAK_TFLOPS: the card's dense bf16 peak (989 for an
# H100/H200 SXM), for the fraction-of-peak column. Results go to OUT_DIR as JSON.
set -euo pipefail

source_clip=${1:-}
out=${2:-gpu_benchmark}
peak=${3:-989}
frames=${FRAMES:-300}
device=${DEVICE:-cuda}  # DEVICE=cpu FRAMES=8 SWEEP=1 tries the script on a machine without a GPU
sweep=${SWEEP:-8,16,32,64}
mkdir -p "$out"

python - "$device" <<'EOF'
import sys
import torch
if sys.argv[1] == "cuda":
    assert torch.cuda.is_available(), "no CUDA GPU visible"
    print(torch.cuda.get_device_name(0), "torch", torch.__version__)
EOF

python -m pytest -q tests/test_cuda.py tests/test_bench.py | tail -n 3

# A 1080p clip: the source scaled, or a moving pattern.
python - "$source_clip" "$out/clip1080.mp4" "$frames" <<'EOF'
import sys
from pathlib import Path

import av
import numpy as np

source, target, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
with av.open(str(target), "w") as output:
    stream = output.add_stream("libx264", rate=25, options={"crf": "18"})
    stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"

    def frames():
        if source:
            with av.open(source) as clip:
                for frame in clip.decode(video=0):
                    yield frame.reformat(width=1920, height=1080, format="yuv420p")
        else:
            y, x = np.mgrid[0:1080, 0:1920]
            for index in range(count):
                gray = ((x + 7 * index) % 256 * 0.6 + (y // 40 % 2) * 80).astype(np.uint8)
                yield av.VideoFrame.from_ndarray(np.repeat(gray[..., None], 3, axis=2), format="rgb24")

    for index, frame in zip(range(count), frames()):
        frame.pts = None
        output.mux(stream.encode(frame))
    output.mux(stream.encode())
print("clip:", target)
EOF

clip="$out/clip1080.mp4"
facecolor-video bench "$clip" --device "$device" --frames "$frames" --batch-size 32 --json > "$out/end_to_end_libx264.json"
if python -c "import av, sys; sys.exit('h264_nvenc' not in av.codecs_available)"; then
    facecolor-video bench "$clip" --device "$device" --frames "$frames" --batch-size 32 --codec h264_nvenc --json \
        > "$out/nvenc.tmp" && mv "$out/nvenc.tmp" "$out/end_to_end_nvenc.json" \
        || { rm -f "$out/nvenc.tmp"; echo "NVENC could not start on this machine"; }
fi
facecolor-video bench "$clip" --device "$device" --model-only --sweep-batch "$sweep" --peak-tflops "$peak" \
    --render-size 8192 --global-every 1 --json > "$out/model_1080p_full.json"
facecolor-video bench "$clip" --device "$device" --model-only --sweep-batch "$sweep" --peak-tflops "$peak" \
    --json > "$out/model_1080p_render_default.json"

python - "$out" <<'EOF'
import json, sys
from pathlib import Path

for path in sorted(Path(sys.argv[1]).glob("*.json")):
    result = json.loads(path.read_text())
    if "end_to_end" in result:
        print(f"{path.stem}: {result['end_to_end']['frames_per_second']:.1f} fps end to end, "
              f"floor {result['floor']['frames_per_second']:.1f} fps, ratio {result['ratio']:.2f}, "
              f"peak RSS {result['peak_rss_mib']:.0f} MiB")
    else:
        flops = result["flops_per_frame"]["per_frame"] / 1e9
        rows = ", ".join(f"batch {row['batch_size']}: {row['frames_per_second']:.1f} fps "
                         f"({100 * (row['fraction_of_peak'] or 0):.0f}% of peak)" for row in result["rows"])
        print(f"{path.stem} at {result['render_resolution']}, {flops:.0f} GFLOP/frame: {rows}")
EOF
