#!/usr/bin/env bash
# Run the digits example through tether in a fresh git repository under .demo/,
# so the demo's experiments never land in tether's own repository.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
demo="$here/.demo/digits"
rm -rf "$demo"
mkdir -p "$demo"
cp -R "$here/examples/digits/." "$demo/"
cd "$demo"
git init -q -b main
git -c user.name="tether demo" -c user.email="demo@localhost" add -A
git -c user.name="tether demo" -c user.email="demo@localhost" commit -q -m "digits example"

echo "== tether run (all stages run the first time)"
tether run -n first -m "baseline params"
echo
echo "== tether run -S train.lr=0.05 (prepare is unchanged, so it is skipped)"
tether run -S train.lr=0.05 -n faster-lr
echo
echo "== tether show"
tether show
echo
echo "== a change on a branch, gated against the last main build"
git checkout -q -b exp/fewer-epochs
sed -i.bak 's/epochs: 15/epochs: 3/' params.yaml && rm -f params.yaml.bak
git -c user.name="tether demo" -c user.email="demo@localhost" commit -q -am "fewer epochs"
tether run -n fewer-epochs
echo
echo "== tether gate --against main (exit code 16 means a metric regressed)"
tether gate --against main || echo "(tether gate exited $?)"
echo
echo "== tether report --against main --md"
tether report --against main --md
git checkout -q main
echo
echo "== a queued run, a worker's structured logs, and the metrics"
tether run --queue -S train.lr=0.2 -n queued-lr
tether --log-format logfmt worker --exit-when-idle 2>"$here/.demo/worker.log"
echo "one logfmt line per event (ts level event, then run_id exp entry attempt worker queue host):"
grep -m 1 'event=entry_done' "$here/.demo/worker.log" || head -n 1 "$here/.demo/worker.log"
echo
echo "metrics: \`tether metrics --port 9640\` serves http://localhost:9640/metrics" \
     "(or \`tether worker --metrics-port 9640\`); once, now:"
tether metrics --once | grep -E '^tether_(queue_depth|queue_running|runs_total)' \
  || echo "(tether metrics needs tether[metrics]: pip install 'tether[metrics]')"
echo "every metric is listed in docs/operations.md"
