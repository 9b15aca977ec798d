#!/usr/bin/env bash
# Every benchmark behind benchmarks/README.md, one after another (they share the cores:
# never run two at once), each model at 3 seeds. Usage: benchmarks/run_all.sh [results dir]
# (from the project root, with the project's .venv active and ../shared/data present;
# SEEDS="42" for one seed). About 9 hours on 2 cores (an estimate from the epoch times in
# benchmarks/README.md), more than one sitting: every bench writes one file per seed, and a
# file already in the results dir is skipped, so running it again continues where a run was
# cut short (a cut-short bench never leaves a file: the JSON is written at its end).
set -euo pipefail
out=${1:-benchmarks/results}
seeds=${SEEDS:-42 43 44}
ml100k=../shared/data/ml-100k/u.data
ml1m_half=../shared/data/ml-1m/ratings_users_1-2999_partial.dat
ml1m_split=../shared/data/seq/gsasrec_ml1m # the gSASRec authors' split of all of ML-1M
protocols="full sampled_uniform_99 sampled_uniform_100 sampled_popularity_100"
bench() { # name source data split models...
  local name=$1 source=$2 data=$3 split=$4 seed
  shift 4
  for seed in $seeds; do
    if [[ -s "$out/${name}_seed$seed.json" ]]; then
      echo "run_all: $out/${name}_seed$seed.json exists, skipped"
      continue
    fi
    # shellcheck disable=SC2086 # protocols is a word list
    python -m neurec.benchmark --source "$source" --path "$data" --split "$split" \
      --models "$@" --seeds "$seed" --protocols $protocols \
      --out "$out/${name}_seed$seed.json" 2>&1 | tee "$out/${name}_seed$seed.log"
  done
}
mkdir -p "$out"
non_sequential="most_popular ease ials gmf ncf neumf neumf:pretrain=false multvae multdae"
# BCE leaves its plateau later than ce, and gbce (on ML-100K) went 7 epochs without a
# validation gain before improving again
sequential="rnn rnn:cell=lstm sasrec sasrec:loss=bce,patience=15 sasrec:loss=gbce,patience=15 bert4rec"
# shellcheck disable=SC2086
bench ml100k_ncf_ae movielens "$ml100k" leave_one_out $non_sequential
# shellcheck disable=SC2086
bench ml100k_seq movielens "$ml100k" leave_one_out $sequential
# shellcheck disable=SC2086
bench ml1m_half_ncf_ae movielens "$ml1m_half" leave_one_out $non_sequential
# one file each: a long run keeps what finished
for model in $sequential; do
  bench "ml1m_half_${model//[:=,]/_}" movielens "$ml1m_half" leave_one_out "$model"
done
for model in rnn sasrec sasrec:loss=gbce,patience=15 bert4rec; do
  bench "ml1m_split_${model//[:=,]/_}" gsasrec_split "$ml1m_split" given "$model"
done
python -m neurec.benchmark_tables "$out"/*.json > "$out/tables.md"
