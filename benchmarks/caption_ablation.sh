#!/usr/bin/env bash
# The README's captioning ablation under one budget: Show-Attend-Tell against the no-attention baseline
# (mean-pooled features into the same LSTM) and the Transformer decoder on the ResNet encoder, and
# Show-Attend-Tell on the ViT encoder; every run cut to the same epochs on the same first LIMIT training scenes;
# then each best checkpoint captions the test scenes greedily and with beam 3 (eval-caption --data). The `_fs16`
# and `_fs8` runs give the ResNet encoder a finer last feature map (model.feature_stride 16 or 8: its last stages
# dilated, 8 x 8 or 16 x 16 cells of a 128-pixel scene instead of 4 x 4) for the decoder to attend to. The
# `_det` runs start the encoder from the shipped scenes detector's backbone (init_backbone) instead of afresh.
#   benchmarks/caption_ablation.sh [EPOCHS [LIMIT [RUNS [BINARY]]]]   (defaults 3, 5000, every run)
# RUNS picks runs by name (comma-separated); the table lists every run that has finished.
# Make data/scenes_train and data/scenes_test first, as configs/train/scenes_caption.yaml's header says.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-3}
limit=${2:-5000}
runs=${3:-show_attend_tell,mean_lstm,transformer,vit_show_attend_tell,show_attend_tell_fs16,mean_lstm_fs16,show_attend_tell_fs8,mean_lstm_fs8,show_attend_tell_det,show_attend_tell_fs16_det}
bin=${4:-build/pipelines/cli/attnvision}
out=runs/ablation_caption
detector=models/pretrained/scenes_detector.safetensors  # the same backbone, trained on the training scenes
sat="--set model.head=show_attend_tell"  # the recipe's own decoder is the Transformer
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
for name in ${runs//,/ }; do
  case $name in
    show_attend_tell) run "$name" configs/train/scenes_caption.yaml $sat ;;
    mean_lstm) run "$name" configs/train/scenes_caption.yaml --set model.head=mean_lstm ;;
    transformer) run "$name" configs/train/scenes_caption.yaml ;;
    vit_show_attend_tell) run "$name" configs/train/scenes_caption_vit.yaml ;;
    show_attend_tell_fs16) run "$name" configs/train/scenes_caption.yaml $sat --set model.feature_stride=16 ;;
    mean_lstm_fs16) run "$name" configs/train/scenes_caption.yaml --set model.head=mean_lstm --set model.feature_stride=16 ;;
    show_attend_tell_fs8) run "$name" configs/train/scenes_caption.yaml $sat --set model.feature_stride=8 ;;
    mean_lstm_fs8) run "$name" configs/train/scenes_caption.yaml --set model.head=mean_lstm --set model.feature_stride=8 ;;
    show_attend_tell_det) run "$name" configs/train/scenes_caption.yaml $sat --set init_backbone="$detector" ;;
    show_attend_tell_fs16_det)
      run "$name" configs/train/scenes_caption.yaml $sat --set model.feature_stride=16 --set init_backbone="$detector" ;;
    *) echo "caption_ablation.sh: unknown run '$name'" >&2; exit 2 ;;
  esac
done
/usr/bin/python3 - "$out" <<'PY'
import json, os, re, sys
out = sys.argv[1]
print("| decoder (encoder) | params | train min | CIDEr-D greedy | CIDEr-D beam 3 | BLEU-4 beam 3 |")
print("|---|---|---|---|---|---|")
for name in ("show_attend_tell", "mean_lstm", "transformer", "vit_show_attend_tell", "show_attend_tell_fs16",
             "mean_lstm_fs16", "show_attend_tell_fs8", "mean_lstm_fs8", "show_attend_tell_det",
             "show_attend_tell_fs16_det"):
    try:
        head = open(os.path.join(out, name + ".log")).readline()
        params = re.search(r"([\d.]+)M parameters", head).group(1)
        summary = json.load(open(os.path.join(out, name + ".json")))
        g = json.load(open(os.path.join(out, name + ".beam1.json")))
        b = json.load(open(os.path.join(out, name + ".beam3.json")))
    except (OSError, ValueError, KeyError, AttributeError):
        continue  # not run (or not finished)
    enc = "ViT" if name.startswith("vit") else "ResNet-ECA"
    from_detector = name.endswith("_det")
    name = name[:-len("_det")] if from_detector else name
    stride = re.search(r"_fs(\d+)$", name)
    if stride:
        enc += f", stride {stride.group(1)}"
        name = name[:stride.start()]
    if from_detector:
        enc += ", from the detector's backbone"

    print(f"| {name.replace('vit_', '')} ({enc}) | {params}M | {summary['train_seconds'] / 60:.1f} | {g['CIDEr']:.3f} | "
          f"{b['CIDEr']:.3f} | {b['Bleu_4']:.3f} |")
PY
