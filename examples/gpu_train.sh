#!/usr/bin/env bash
# Train the colorization head on one GPU from the packed data, in calls of a few minutes each.
#
#   bash examples/gpu_train.sh --plan            # here: which shards each call can carry
#   bash examples/gpu_train.sh MINUTES [OPTION...]  # there: stage what came, train MINUTES, export
#
# The pack (`facecolor-video pack -o .pack`, ignored by git) is ~54 MiB in 4 MiB
# shards; a call carries at most 64 MiB with the tracked files, so the shards
# travel in parts. Every shard is a random sample of all sets, so each call
# trains on the same mix, and on more of it as shards arrive. Each call:
#
#  1. copies the carried .pack/ files into the staging folder ($FACECOLOR_STAGE,
#     default /tmp/facecolor-stage), which lasts while the machine is held;
#  2. checks what training needs (torch with CUDA, torchvision, Pillow, click,
#     tqdm, numpy; PyAV is not needed) and installs carried wheels (.whl/) if any;
#  3. trains for MINUTES, resuming from the staged run's checkpoint (optimizer,
#     step and learning-rate schedule included); a fresh machine starts from
#     .pack/init.pt when one was carried (a head an earlier call returned), else
#     from the shipped general model;
#  4. writes the best epoch's head (float16, named by its sha256), its .sha256,
#     log.csv, losses.png and the last lines of the log into $OUT.
#
# The learning rate decays (cosine) over TOTAL_MINUTES of training summed over
# calls (default 10), so the last call ends at the low rate. Options after
# MINUTES go to `train` (they override the defaults below). TRAIN_OPTIONS
# (default --uncertainty: one run gives every fading strength, see
# `with_uncertainty_strength`) replaces the option list; TRAIN_OPTIONS= turns it off. DEVICE=cpu
# EPOCH_SIZE=64 BATCH_SIZE=8 WORKERS=1 tries the script on a machine without a GPU.
set -euo pipefail

if [[ "${1:-}" == "--plan" ]]; then
    python3 - <<'EOF'
import json, os, subprocess
from pathlib import Path

limit = 64 * 2**20
tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout.split(b"\0")
tree = sum(os.path.getsize(p) for p in tracked if p and os.path.isfile(p))
manifest = json.loads(Path(".pack/manifest.json").read_text())
always = [".pack/manifest.json"] + [f".pack/{s['file']}" for s in manifest["shards"] if s["split"] == "val"]
room = limit - tree - sum(os.path.getsize(p) for p in always) - 2**20  # 1 MiB kept spare
print(f"tree {tree / 2**20:.1f} MiB; always carried {', '.join(always)}; room for shards {room / 2**20:.1f} MiB")
calls, current, size = [], [], 0
for shard in (s for s in manifest["shards"] if s["split"] == "train"):
    if current and (size + shard["bytes"] > room or len(current) + len(always) >= 8):
        calls.append(current)
        current, size = [], 0
    current.append(f".pack/{shard['file']}")
    size += shard["bytes"]
calls.append(current)
for number, shards in enumerate(calls, 1):
    print(f"call {number}: carry {json.dumps(always + shards)}")
EOF
    exit 0
fi

minutes=${1:?usage: gpu_train.sh MINUTES [train options] | --plan}
shift
stage=${FACECOLOR_STAGE:-/tmp/facecolor-stage}
out=${OUT:-$stage/out}
total=${TOTAL_MINUTES:-10}
mkdir -p "$stage/pack" "$stage/run" "$out"
log="$out/train.log"

# 1. stage the carried shards (a shard already staged with the same size is kept)
for file in .pack/*; do
    [[ -f "$file" ]] || continue
    target="$stage/pack/$(basename "$file")"
    if [[ ! -f "$target" || $(stat -c %s "$file") != $(stat -c %s "$target") || "$file" == *.json ]]; then
        cp "$file" "$target"
    fi
done
ls "$stage/pack"/manifest.json > /dev/null || { echo "no .pack/manifest.json carried or staged"; exit 1; }
echo "staged: $(ls "$stage/pack" | tr '\n' ' ')"

# 2. what training needs
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 - <<'EOF'
import click, numpy, PIL, torch, torchvision, tqdm  # noqa: F401  (what training imports)
from PIL import features
assert features.check("webp"), "Pillow without WebP"
import os
if os.environ.get("DEVICE", "cuda") == "cuda":
    assert torch.cuda.is_available(), "no CUDA GPU visible"
    print(torch.cuda.get_device_name(0), end=" ")
print("torch", torch.__version__, "torchvision", torchvision.__version__, flush=True)
EOF

# 3. train (resume when the staged run has a checkpoint)
init=general
[[ -f .pack/init.pt ]] && init=.pack/init.pt
resume=()
[[ -f "$stage/run/checkpoint.pt" ]] && resume=(--resume)
mix="utkface=0.25,youtube_faces=0.12,street_fashion=0.1,imagenette=0.12,imagenet_sample=0.06,bsds500=0.03"
mix+=",mebeauty=0.15,bundestag=0.02,clothing=0.15"
set +e
python3 -m facecolor_video train \
    --data "$stage/pack/manifest.json" --val "$stage/pack/manifest.json" -o "$stage/run" \
    --init "$init" --epochs 1000 --epoch-size "${EPOCH_SIZE:-196608}" --batch-size "${BATCH_SIZE:-128}" \
    --workers "${WORKERS:-14}" --device "${DEVICE:-cuda}" \
    --lr 2e-4 --warmup-steps 100 --lr-decay-minutes "$total" --time-limit "$minutes" \
    --checkpoint-every 1000 --mix "$mix" ${TRAIN_OPTIONS---uncertainty} "${resume[@]}" "$@" -q 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# 4. export what there is, even after a failure (the best head so far is worth keeping)
if [[ -f "$stage/run/head.pt" ]]; then
    sha=$(sha256sum "$stage/run/head.pt" | cut -d' ' -f1)
    name="colorizer_general-${sha:0:8}.pt"
    cp "$stage/run/head.pt" "$out/$name"
    echo "$sha  $name" > "$out/$name.sha256"
    echo "head: $name sha256 $sha"
fi
for file in log.csv losses.png; do
    [[ -f "$stage/run/$file" ]] && cp "$stage/run/$file" "$out/$file"
done
[[ -f "$stage/run/log.csv" ]] && tail -n 5 "$stage/run/log.csv"
exit "$status"
