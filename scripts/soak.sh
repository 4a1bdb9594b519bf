#!/usr/bin/env bash
# Soak test (make soak; not part of make test): meshca serve --dev under the load tester at a steady rate for
# SOAK_DURATION, after SOAK_WARMUP. Passes when no request failed and meshca's RSS and goroutine count are flat:
# sampled after every run, the mean of the last third of the samples is within SOAK_TOLERANCE percent of the
# mean of the first third. (Two single samples are not a trend: RSS right after a run moves by +-30 % with the
# GC's timing and the machine's load, measured here, while a leak grows from third to third.)
#   SOAK_RATE      offered requests/s (default 500: half the ~1,000/s this 2-core box saturates at,
#                  docs/benchmarks.md)
#   SOAK_DURATION  length of the measured run (default 30m; the load tester's limit is 1h)
#   SOAK_WARMUP    load before the first sample (default 3m: the bounded stores fill first, e.g. the
#                  revocation inventory's 20,000 records at 250/s take 80 s)
#   SOAK_TOLERANCE allowed growth in percent (default 10; goroutines may also grow by 5, as a count of ~15
#                  moves by one with every idle connection)
#   SOAK_CHUNK     the run is made of load-tester runs this long (default 2m): each prepares its keys and CSRs
#                  before its timer, and a 30m run prepared at once would hold ~900k CSRs
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${SOAK_RATE:-500} duration=${SOAK_DURATION:-30m} warmup=${SOAK_WARMUP:-3m} tol=${SOAK_TOLERANCE:-10}
chunk=${SOAK_CHUNK:-2m}
secs() { python3 -c 'import re,sys; print(sum(int(n)*{"h":3600,"m":60,"s":1}[u] for n,u in re.findall(r"(\d+)([hms])", sys.argv[1])))' "$1"; }
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
grpc=127.0.0.1:$(port) http=127.0.0.1:$(port) admin=127.0.0.1:$(port)

bin/meshca init --dir "$dir" >/dev/null
bin/meshca serve --dev "$dir" --grpc-addr "$grpc" --http-addr "$http" --admin-addr "$admin" --log-level warn 2>"$dir/meshca.log" &
pid=$!
ready=
for _ in $(seq 600); do
  curl -fsS "http://$http/readyz" >/dev/null 2>&1 && { ready=1; break; }
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "soak: meshca did not become ready at http://$http/readyz within 60 s; its log:" >&2
  tail -20 "$dir/meshca.log" >&2
  exit 1
fi

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }           # KiB
goroutines() { curl -fsS "http://$http/metrics" | awk '/^go_goroutines / {print $2}'; }
heap() { curl -fsS "http://$http/metrics" | awk '/^go_memstats_heap_inuse_bytes / {printf "%d", $2/1024}'; } # KiB
load() {
  bin/meshca-loadtest --addr "$grpc" --root "$dir/cacerts/root-cert.pem" --dev-dir "$dir" \
    --rate "$rate" --duration "$1" --fail-on-error "${@:2}"
}

echo "== warm-up: $rate/s for $warmup"
load "$warmup" >/dev/null
echo "after warm-up: RSS $(rss) KiB, heap in use $(heap) KiB, $(goroutines) goroutines"
echo "== soak: $rate/s for $duration, in runs of $chunk"
samples="$dir/samples"
: >"$samples"
left=$(secs "$duration")
while [ "$left" -gt 0 ]; do
  run=$(( left < $(secs "$chunk") ? left : $(secs "$chunk") ))
  load "${run}s" | grep -E '^(sent|dropped|ok|errors|latency)' | tr -s ' ' | paste -sd' ' -
  r=$(rss) h=$(heap) g=$(goroutines)
  echo "$r $h $g" >>"$samples"
  echo "  after this run: RSS $r KiB, heap in use $h KiB, $g goroutines, load $(cut -d' ' -f1 /proc/loadavg)"
  left=$(( left - run ))
done
python3 - "$samples" "$tol" <<'PY'
import sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
tol = float(sys.argv[2])
if len(rows) < 3:
    sys.exit("soak: fewer than 3 samples; make SOAK_DURATION at least 3 SOAK_CHUNKs")
third = len(rows) // 3
bad = []
for col, what, slack in ((0, "RSS (KiB)", 0), (1, "heap in use (KiB)", None), (2, "goroutines", 5)):
    first = sum(r[col] for r in rows[:third]) / third
    last = sum(r[col] for r in rows[-third:]) / third
    growth = (last - first) / first * 100
    print(f"{what}: first third {first:.0f}, last third {last:.0f} ({growth:+.1f}%), "
          f"min {min(r[col] for r in rows):.0f}, max {max(r[col] for r in rows):.0f}")
    if slack is not None and growth > tol and last - first > slack:
        bad.append(f"{what} grew {growth:.1f}% (> {tol:.0f}%)")
if bad:
    sys.exit("soak failed: " + "; ".join(bad))
print("soak passed")
PY
