#!/usr/bin/env bash
# The README's Fashion-MNIST ablation: the recipes as they stand (configs/train/fmnist_resnet.yaml with
# attention none / SE / ECA / CBAM, and configs/train/fmnist_vit.yaml), every run cut to the same number of
# epochs (and 1 warm-up epoch) so that they share one budget; then the table. Each run writes
# runs/ablation/<name>/ and its log to runs/ablation/<name>.log.
#   benchmarks/ablation.sh [EPOCHS [BINARY]]     (EPOCHS default 6: about 30 minutes on a 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-6}
bin=${2:-build/pipelines/cli/attnvision}
out=runs/ablation
mkdir -p "$out"
for attn in none se eca cbam; do
  "$bin" train configs/train/fmnist_resnet.yaml --set model.attn=$attn --set schedule.epochs=$epochs \
    --set schedule.warmup_epochs=1 --set output=$out/$attn > $out/$attn.json 2> $out/$attn.log
done
"$bin" train configs/train/fmnist_vit.yaml --set schedule.epochs=$epochs --set schedule.warmup_epochs=1 \
  --set output=$out/vit > $out/vit.json 2> $out/vit.log
/usr/bin/python3 benchmarks/ablation_table.py "$out"
