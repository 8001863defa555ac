#!/usr/bin/env bash
# Generates real model completions for the verifier agreement study (see README.md):
# SmolLM2-135M-Instruct and Gemma-3-270M on the first N problems of MATH-500 and GSM8K test,
# one sample per problem, written as {"gold", "completion"} lines by `eval --texts`. Files that
# already hold enough lines are kept; a partial file is regenerated from the start.
#
# Usage: scripts/verify_bench/gen_completions.sh OUT_DIR [N=150] [MAX_TOKENS=300] [N_GEMMA=N]
#        [MAX_TOKENS_GEMMA=MAX_TOKENS]
# Needs the models (scripts/setup.sh smollm2 gemma3) and ../shared/data. Runs on one thread
# under nice. The study in experiments/verifier-agreement/README.md used `OUT_DIR 150 300 100 200`
# (SmolLM2: 150 + 150 problems, 300 tokens; Gemma-3: 100 + 100 problems, 200 tokens; about
# three hours on a shared two-core machine). The outputs are not committed.
set -euo pipefail
out="${1:?usage: gen_completions.sh OUT_DIR [N] [MAX_TOKENS]}"
n="${2:-150}"
max_tokens="${3:-300}"
n_gemma="${4:-$n}"
max_tokens_gemma="${5:-$max_tokens}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$out"
(cd "$root" && cargo build --release --quiet --bin eval)
bin="${CARGO_TARGET_DIR:-$root/target}/release/eval"
common="\"n_samples\":1,\"sampling\":{\"temperature\":0.6,\"seed\":7}"
for model in smollm2 gemma3; do
  params="{$common,\"max_tokens\":$max_tokens}"
  limit="$n"
  if [ "$model" = gemma3 ]; then
    # the Gemma-3 GGUF carries no chat template: use llama.cpp's built-in one
    params="{$common,\"max_tokens\":$max_tokens_gemma,\"prompt\":{\"format\":{\"kind\":\"builtin\",\"name\":\"gemma\"}}}"
    limit="$n_gemma"
  fi
  for ds in math500 gsm8k_test; do
    f="$out/${model}_${ds}.jsonl"
    [ -s "$f" ] && [ "$(wc -l < "$f")" -ge "$limit" ] && continue
    (cd "$root" && nice "$bin" --model "$model" --dataset "$ds" --limit "$limit" --threads 1 \
      --params "$params" --texts "$f" > "$out/${model}_${ds}.log" 2>&1)
  done
done
cat "$out"/smollm2_*.jsonl "$out"/gemma3_*.jsonl > "$out/all.jsonl"
wc -l "$out"/*.jsonl
