#!/usr/bin/env bash
# The README's captioning ablation under one budget: Show-Attend-Tell against the no-attention baseline
# (mean-pooled features into the same LSTM) and the Transformer decoder on the ResNet encoder, and
# Show-Attend-Tell on the ViT encoder; every run cut to the same epochs on the same first LIMIT training scenes;
# then each best checkpoint captions the test scenes greedily and with beam 3 (eval-caption --data).
#   benchmarks/caption_ablation.sh [EPOCHS [LIMIT [BINARY]]]   (defaults 3, 5000)
# Make data/scenes_train and data/scenes_test first, as configs/train/scenes_caption.yaml's header says.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-3}
limit=${2:-5000}
bin=${3:-build/pipelines/cli/attnvision}
out=runs/ablation_caption
mkdir -p "$out"
run() {  # NAME RECIPE [--set ...]
  local name=$1 recipe=$2
  shift 2
  rm -rf "$out/$name"
  "$bin" train "$recipe" "$@" --set schedule.epochs="$epochs" --set schedule.warmup_epochs=1 \
    --set schedule.patience=0 --set data.limit="$limit" --set output="$out/$name" > "$out/$name.json" 2> "$out/$name.log"
  for beam in 1 3; do
    "$bin" eval-caption --data data/scenes_test --weights "$out/$name/best.safetensors" --beam $beam --json \
      > "$out/$name.beam$beam.json" 2>> "$out/$name.log"
  done
}
run show_attend_tell configs/train/scenes_caption.yaml
run mean_lstm configs/train/scenes_caption.yaml --set model.head=mean_lstm
run transformer configs/train/scenes_caption.yaml --set model.head=transformer
run vit_show_attend_tell configs/train/scenes_caption_vit.yaml
/usr/bin/python3 - "$out" <<'PY'
import json, os, re, sys
out = sys.argv[1]
print("| decoder (encoder) | params | train min | CIDEr-D greedy | CIDEr-D beam 3 | BLEU-4 beam 3 |")
print("|---|---|---|---|---|---|")
for name in ("show_attend_tell", "mean_lstm", "transformer", "vit_show_attend_tell"):
    head = open(os.path.join(out, name + ".log")).readline()
    params = re.search(r"([\d.]+)M parameters", head).group(1)
    summary = json.load(open(os.path.join(out, name + ".json")))
    g = json.load(open(os.path.join(out, name + ".beam1.json")))
    b = json.load(open(os.path.join(out, name + ".beam3.json")))
    enc = "ViT" if name.startswith("vit") else "ResNet-ECA"
    print(f"| {name.replace('vit_', '')} ({enc}) | {params}M | {summary['train_seconds'] / 60:.1f} | {g['CIDEr']:.3f} | "
          f"{b['CIDEr']:.3f} | {b['Bleu_4']:.3f} |")
PY
