#!/usr/bin/env bash
# Short VICReg ablation runs (paper Table 7 style): each trains the default CPU network on a Fashion-MNIST
# subset with one set of loss coefficients, evaluates, and renders its report. Summary lines go to
# runs/ablations/summary.jsonl. Usage: bash scripts/ablations.sh [extra npm run train flags]
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/ablations
mkdir -p "$out"
: > "$out/summary.jsonl"
common=(--dataset fashion-mnist --limit 12800 --epochs 2 --batch 256 --seed 0 --diag-every 10
        --eval-train-limit 10000 --eval-test-limit 2000 --probe-epochs 20 --no-raw --quiet "$@")
run() {
  local name=$1; shift
  npm run --silent train -- "${common[@]}" --out "$out/$name" "$@" | tail -n 1 |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);console.log(JSON.stringify({run:process.argv[1],...r}))})' "$name" |
    tee -a "$out/summary.jsonl"
  npm run --silent report -- --run "$out/$name" --out "$out/$name/report.html" --title "VICReg ablation: $name" >/dev/null
}
run vicreg            --lambda 25 --mu 25 --nu 1
run no-covariance     --lambda 25 --mu 25 --nu 0
run no-variance       --lambda 25 --mu 0  --nu 1
run invariance-only   --lambda 25 --mu 0  --nu 0
