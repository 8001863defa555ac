#!/usr/bin/env bash
# Compares our group-rollout throughput (the bench program) with llama.cpp's llama-batched-bench on
# the same model and settings: prompt 128, generate 128, B = 1, 8, 16, 2 threads. Both are run
# REPS times per cell, interleaved, and the best generated-tokens/s of each is compared. Run it on
# an otherwise idle machine: OpenMP threads spin and any other load skews both sides.
#
# Usage: scripts/bench_vs_llama.sh [MODEL=smollm2] [REPS=3]      (writes bench-out/)
set -euo pipefail
cd "$(dirname "$0")/.."
model_arg="${1:-smollm2}"
reps="${2:-3}"
NPP=128 NTG=128 NPL=1,8,16 THREADS=2
out=bench-out; mkdir -p "$out"
llama_bench=$(scripts/build_llama_batched_bench.sh | tail -1)
cargo build --release --bin bench >/dev/null 2>&1
model=$(case "$model_arg" in
  smollm2) echo "${FMR_MODEL_DIR:-$HOME/.cache/fmr/models}/SmolLM2-135M-Instruct.Q4_1.gguf" ;;
  gemma3) echo "${FMR_MODEL_DIR:-$HOME/.cache/fmr/models}/gemma-3-270m-Q4_K_M.gguf" ;;
  *) echo "$model_arg" ;;
esac)
: > "$out/llama.jsonl"; : > "$out/ours.jsonl"
for r in $(seq "$reps"); do
  for kvu in "" "-kvu"; do
    # Same context size, batch and micro-batch as ours; flash attention left on auto on both.
    "$llama_bench" -m "$model" -c 4096 -b 2048 -ub 512 -npp $NPP -ntg $NTG -npl $NPL -t $THREADS \
      $kvu --output-format jsonl 2>/dev/null | grep '^{' | sed "s/^{/{\"kvu\": \"${kvu:-no}\", /" >> "$out/llama.jsonl"
  done
  ./target/release/bench --model "$model" --threads $THREADS --npp $NPP --ntg $NTG --npl $NPL \
    --reps 1 --json "$out/ours-$r.json" > "$out/ours-$r.txt"
  cat "$out/ours-$r.txt"
done
python3 - "$out" "$reps" <<'PY'
import json, sys, glob
out, reps = sys.argv[1], int(sys.argv[2])
llama = {}
for line in open(f"{out}/llama.jsonl"):
    r = json.loads(line)
    k = (r["pp"], r["tg"], r["pl"])
    llama[k] = max(llama.get(k, 0.0), r["speed_tg"])
ours = {}
for f in glob.glob(f"{out}/ours-*.json"):
    for r in json.load(open(f)):
        k = (r["pp"], r["tg"], r["b"])
        ours[k] = max(ours.get(k, 0.0), r["s_tg"])
print("\n|  PP |  TG |  B | llama-batched-bench S_TG t/s | fmr bench S_TG t/s | ratio |")
print("|-----|-----|----|------------------------------|--------------------|-------|")
worst = 9.9
for k in sorted(llama):
    if k in ours:
        ratio = ours[k] / llama[k]
        worst = min(worst, ratio)
        print(f"| {k[0]:>3} | {k[1]:>3} | {k[2]:>2} | {llama[k]:>28.2f} | {ours[k]:>18.2f} | {ratio:5.3f} |")
print(f"\nworst ratio {worst:.3f} (target >= 0.95), best of {reps} runs each")
json.dump({"llama": {str(k): v for k, v in llama.items()}, "ours": {str(k): v for k, v in ours.items()}, "worst_ratio": worst}, open(f"{out}/comparison.json", "w"), indent=1)
PY
