#!/usr/bin/env bash
# The GPU rows of the README's performance table, measured in one run (a few
# minutes on one H100/H200): the CUDA tests, a 1080p clip end to end on the
# planes path (the default for films) and on the Lab path (--exact-lab), each
# against the transcode floor and the encode-only floor measured in the same
# run, with the stage table, each thread's busy share and the peak memory; then
# the network alone at batch sizes 8 to 64.
#
#   bash examples/gpu_benchmark.sh [SOURCE_CLIP] [OUT_DIR] [PEAK_TFLOPS]
#
# SOURCE_CLIP: any clip, scaled to 1920x1080 for the test (default: a moving
# test pattern made here). PEAK_TFLOPS: the card's dense bf16 peak (989 for an
# H100/H200 SXM), for the fraction-of-peak column. Results go to OUT_DIR as JSON.
# TIME_LIMIT (seconds, default 540): the script ends by then; a step that would
# run past it is stopped, and the steps after it are skipped, saying so.
# DEVICE=cpu FRAMES=8 SWEEP=1 tries the whole script on a machine without a GPU.
# H100/H200 cards have no NVENC: the NVENC row is measured only where it starts.
set -euo pipefail
cd "$(dirname "$0")/.."

source_clip=${1:-}
out=${2:-gpu_benchmark}
peak=${3:-989}
frames=${FRAMES:-300}
device=${DEVICE:-cuda}
sweep=${SWEEP:-8,16,32,64}
batch=${BATCH:-32}
python=${PYTHON:-python}
deadline=$((SECONDS + ${TIME_LIMIT:-540}))
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# step NAME COMMAND...: run COMMAND within what is left of TIME_LIMIT; never stops the script.
step() {
    local name=$1 left=$((deadline - SECONDS))
    shift
    if [ "$left" -le 5 ]; then
        echo "skipped, time limit reached: $name"
        return 0
    fi
    local status=0
    timeout "$left" "$@" || status=$?
    if [ "$status" -eq 124 ]; then
        echo "stopped at the time limit: $name"
    elif [ "$status" -ne 0 ]; then
        echo "failed (exit $status): $name"
    fi
}

# bench_json NAME ARGS...: `bench --json` on the clip into OUT_DIR/NAME.json (kept only when complete).
bench_json() {
    local name=$1
    shift
    step "bench $name" bash -c 'target=$1; shift; "$@" > "$target"' _ "$out/$name.tmp" \
        "$python" -m facecolor_video bench "$clip" --device "$device" "$@" --json
    if "$python" -c "import json, sys; json.load(open(sys.argv[1]))" "$out/$name.tmp" 2>/dev/null; then
        mv "$out/$name.tmp" "$out/$name.json"
    else
        rm -f "$out/$name.tmp"
        echo "no result: $name"
    fi
}

"$python" - "$device" <<'EOF'
import sys
import torch
if sys.argv[1] == "cuda":
    assert torch.cuda.is_available(), "no CUDA GPU visible"
    print(torch.cuda.get_device_name(0), "torch", torch.__version__)
EOF

step "tests" "$python" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_planes.py tests/test_bench.py

# A 1080p clip: the source scaled, or a moving pattern.
step "clip" "$python" - "$source_clip" "$out/clip1080.mp4" "$frames" <<'EOF'
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
bench_json end_to_end_planes --frames "$frames" --batch-size "$batch"
bench_json end_to_end_lab --frames "$frames" --batch-size "$batch" --exact-lab
if "$python" -c "import av, sys; sys.exit('h264_nvenc' not in av.codecs_available)"; then
    bench_json end_to_end_nvenc --frames "$frames" --batch-size "$batch" --codec h264_nvenc
fi
bench_json model_1080p_full --model-only --sweep-batch "$sweep" --peak-tflops "$peak" --render-size 8192 --global-every 1
bench_json model_1080p_render_default --model-only --sweep-batch "$sweep" --peak-tflops "$peak"

"$python" - "$out" <<'EOF'
import json, sys
from pathlib import Path

for path in sorted(Path(sys.argv[1]).glob("*.json")):
    result = json.loads(path.read_text())
    if "end_to_end" in result:
        environment = result["environment"]
        print(f"\n{path.stem} ({environment.get('composition', 'lab')}, {environment['device_name']}, "
              f"{environment['precision']}, batch {environment['batch_size']}, {result['frames']} frames):")
        print(f"  end to end {result['end_to_end']['frames_per_second']:.1f} fps, "
              f"transcode floor {result['floor']['frames_per_second']:.1f} fps, "
              f"encode-only floor {result['encode_only_floor']['frames_per_second']:.1f} fps, "
              f"ratio {result['ratio']:.2f}")
        print(f"  peak RSS {result['pipeline_peak_rss_mib']:.0f} MiB end to end ({result['peak_rss_mib']:.0f} MiB with the stage timing)")
        print("  busy share: " + ", ".join(f"{name} {busy['share']:.0%}" for name, busy in result["threads_busy"].items()))
        print("  ms/frame:   " + ", ".join(f"{name} {stage['ms_per_frame']:.1f}" for name, stage in result["stages"].items()))
    else:
        flops = result["flops_per_frame"]["per_frame"] / 1e9
        rows = ", ".join(f"batch {row['batch_size']}: {row['frames_per_second']:.1f} fps "
                         f"({100 * (row['fraction_of_peak'] or 0):.0f}% of peak)" for row in result["rows"])
        print(f"{path.stem} at {result['render_resolution']}, {flops:.0f} GFLOP/frame: {rows}")
EOF
