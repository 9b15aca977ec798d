#!/usr/bin/env bash
# Every benchmark behind benchmarks/README.md, one after another (they share the cores:
# never run two at once). Usage: benchmarks/run_all.sh [results dir]  (from the project root,
# with the project's .venv active and ../shared/data present). About two hours on 2 cores.
set -euo pipefail
out=${1:-benchmarks/results}
ml100k=../shared/data/ml-100k/u.data
ml1m_half=../shared/data/ml-1m/ratings_users_1-2999_partial.dat
protocols="full sampled_uniform_99 sampled_uniform_100 sampled_popularity_100"
bench() { # name data models...
  local name=$1 data=$2
  shift 2
  python -m neurec.benchmark --source movielens --path "$data" --models "$@" \
    --protocols $protocols --out "$out/$name.json" 2>&1 | tee "$out/$name.log"
}
mkdir -p "$out"
non_sequential="most_popular ease ials gmf ncf neumf neumf:pretrain=false multvae multdae"
sequential="rnn rnn:cell=lstm sasrec sasrec:loss=bce sasrec:loss=gbce,patience=15 bert4rec"
bench ml100k_ncf_ae "$ml100k" $non_sequential
bench ml100k_seq "$ml100k" $sequential
bench ml1m_half_ncf_ae "$ml1m_half" $non_sequential
# one file each (a long run keeps what finished); BCE leaves its plateau later than ce, and
# gbce (on ML-100K) went 7 epochs without a validation gain before improving again
for model in ${sequential/sasrec:loss=bce/sasrec:loss=bce,patience=15}; do
  bench "ml1m_half_${model//[:=,]/_}" "$ml1m_half" "$model"
done
python -m neurec.benchmark_tables "$out"/*.json > "$out/tables.md"
