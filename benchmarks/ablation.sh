#!/usr/bin/env bash
# The README's Fashion-MNIST ablation: one recipe and budget, attention none / SE / ECA / CBAM, and the small
# ViT; then the table. Each run writes runs/ablation/<name>/ and its log to runs/ablation/<name>.log.
#   benchmarks/ablation.sh [BINARY]        (about 50 minutes on a 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/pipelines/cli/attnvision}
mkdir -p runs/ablation
for attn in none se eca cbam; do
  "$bin" train configs/train/fmnist_resnet.yaml --set model.attn=$attn --set output=runs/ablation/$attn \
    > runs/ablation/$attn.json 2> runs/ablation/$attn.log
done
"$bin" train configs/train/fmnist_vit.yaml --set output=runs/ablation/vit > runs/ablation/vit.json 2> runs/ablation/vit.log
/usr/bin/python3 benchmarks/ablation_table.py runs/ablation
