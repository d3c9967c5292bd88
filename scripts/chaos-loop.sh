#!/usr/bin/env bash
# Run the queue's chaos tests (embedded, Celery+Redis, Celery+RabbitMQ) ROUNDS times
# while LOAD processes keep the CPUs busy, recording each round's seed and outcome.
# A failed round keeps its chaos report (seed, entry states, store view, worker logs).
#   bash scripts/chaos-loop.sh [ROUNDS=20] [LOAD=2] [OUT=chaos-rounds]
set -uo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-20} load=${2:-2} out=${3:-chaos-rounds}
mkdir -p "$out"
burners=()
for _ in $(seq "$load"); do
  python3 -c "while True: pass" & burners+=($!)
done
trap 'kill "${burners[@]}" 2>/dev/null' EXIT
passed=0
for round in $(seq "$rounds"); do
  seed=$(( (RANDOM << 15 | RANDOM) % 1000000 ))
  if TETHER_CHAOS_SEED=$seed .venv/bin/pytest -q -p no:cacheprovider \
      --basetemp="$out/round-$round" tests/queueing/test_chaos.py \
      tests/queueing/test_celery.py -k chaos > "$out/round-$round.log" 2>&1; then
    passed=$((passed + 1)); echo "round $round seed $seed: passed"
    rm -rf "$out/round-$round"
  else
    echo "round $round seed $seed: FAILED (see $out/round-$round.log and chaos-report.txt files)"
  fi
done
echo "$passed of $rounds rounds passed under $load CPU burners"
[ "$passed" -eq "$rounds" ]
