#!/usr/bin/env bash
# Benchmark (not a test): throughput of the connectors on one core each.
# - Asterisk: a generated queue_log through `vigie replay --format asterisk` (lines/s,
#   conversion and engine) and `vigie ingest asterisk --once` into Tansu (lines/s).
# - Amazon Connect: generated contact events through `vigie replay --format connect`,
#   and `vigie ingest connect --once` from a raw topic into the events topic (records/s).
# - HTTP: `POST /api/v1/events` of 10,000-event JSON-lines batches to `vigie serve`
#   (events/s, produced to Tansu).
# Usage: scripts/bench-connectors.sh [CALLS]   (default 200,000 calls)
set -euo pipefail
cd "$(dirname "$0")/.."
calls="${1:-200000}"
port=19093
scripts/setup.sh test
cargo build --release --locked -p vigie --bin vigie
bin=./target/release/vigie
dir=target/bench
mkdir -p "$dir"
scripts/broker.sh up "$port"
serve_pid=""
trap '[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; scripts/broker.sh down' EXIT
brokers="127.0.0.1:${port}"

python3 - "$calls" "$dir" <<'PY'
import json, random, sys
calls, out = int(sys.argv[1]), sys.argv[2]
random.seed(7)
start = 1_796_000_000
lines = []
agents = [f"PJSIP/{200+i}" for i in range(40)]
for a in agents:
    lines.append((start, f"{start}|MANAGER|sales|{a}|ADDMEMBER|"))
t = start + 1
records = []
def iso(s): 
    import datetime
    return datetime.datetime.fromtimestamp(s, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
for n in range(calls):
    cid = f"{t}.{n}"; q = random.choice(["sales", "support"]); a = random.choice(agents)
    lines.append((t, f"{t}|{cid}|{q}|NONE|ENTERQUEUE||06{n:08d}|1"))
    d = {"eventType": "QUEUED", "contactId": f"c{n}", "channel": "VOICE", "initiationMethod": "INBOUND",
         "initiationTimestamp": iso(t), "queueInfo": {"queueArn": f"arn:q/queue/{q}", "enqueueTimestamp": iso(t + 10)}}
    records.append(dict(d, eventType="INITIATED"))
    records.append(d)
    if random.random() < 0.8:
        w = random.randint(2, 60); talk = random.randint(60, 400)
        lines.append((t + w, f"{t+w}|{cid}|{q}|{a}|CONNECT|{w}|{cid}.1|2"))
        lines.append((t + w + talk, f"{t+w+talk}|{cid}|{q}|{a}|COMPLETECALLER|{w}|{talk}|1"))
        ag = {"agentArn": f"arn:a/agent/{a}", "connectedToAgentTimestamp": iso(t + 10 + w)}
        records.append(dict(d, eventType="CONNECTED_TO_AGENT", agentInfo=ag))
        records.append(dict(d, eventType="DISCONNECTED", agentInfo=ag, disconnectTimestamp=iso(t + 10 + w + talk)))
    else:
        w = random.randint(2, 120)
        lines.append((t + w, f"{t+w}|{cid}|{q}|NONE|ABANDON|1|1|{w}"))
        records.append(dict(d, eventType="DISCONNECTED", disconnectTimestamp=iso(t + 10 + w)))
    t += random.randint(1, 3)
lines.sort(key=lambda x: x[0])
with open(f"{out}/bench.queue_log", "w") as f:
    f.write("\n".join(l for _, l in lines) + "\n")
with open(f"{out}/bench-connect.jsonl", "w") as f:
    for r in records:
        f.write(json.dumps({"detail-type": "Amazon Connect Contact Event", "detail": r}) + "\n")
PY

rate() { python3 -c "print(f'{int($1 / $2):,}'.replace(',', ' '))"; }
seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>"$dir/last.err"; e=$(date +%s.%N); python3 -c "print($e - $s)"; }
create() {
  python3 -c "from kafka.admin import KafkaAdminClient, NewTopic
a = KafkaAdminClient(bootstrap_servers='$brokers')
a.create_topics([NewTopic(name='$1', num_partitions=1, replication_factor=1)])"
}

lines=$(wc -l < "$dir/bench.queue_log")
records=$(wc -l < "$dir/bench-connect.jsonl")
s=$(seconds "$bin" replay --format asterisk --window 24h "$dir/bench.queue_log")
echo "asterisk replay: $lines lines in $s s = $(rate "$lines" "$s") lines/s"
topic="bench-asterisk-$RANDOM"; create "$topic"
rm -f "$dir/bench.queue_log.vigie-position"
s=$(seconds "$bin" ingest asterisk --once --queue-log "$dir/bench.queue_log" --brokers "$brokers" --topic "$topic")
echo "asterisk bridge to Kafka: $lines lines in $s s = $(rate "$lines" "$s") lines/s"

s=$(seconds "$bin" replay --format connect --window 24h "$dir/bench-connect.jsonl")
echo "connect replay: $records records in $s s = $(rate "$records" "$s") records/s"
raw="bench-connect-raw-$RANDOM"; events="bench-connect-$RANDOM"; create "$raw"; create "$events"
python3 - "$brokers" "$raw" "$dir/bench-connect.jsonl" <<'PY'
import sys
from kafka import KafkaProducer
p = KafkaProducer(bootstrap_servers=sys.argv[1], linger_ms=20, batch_size=1 << 20)
for line in open(sys.argv[3], "rb"):
    p.send(sys.argv[2], line.rstrip(b"\n"))
p.flush()
PY
s=$(seconds "$bin" ingest connect --once --from-topic "$raw" --brokers "$brokers" --topic "$events" --group "bench-$RANDOM")
echo "connect bridge from Kafka to Kafka: $records records in $s s = $(rate "$records" "$s") records/s"

http_topic="bench-http-$RANDOM"; create "$http_topic"; create "$http_topic.dlq"
VIGIE__AUTH__OPEN=true VIGIE__KAFKA__BROKERS="$brokers" VIGIE__KAFKA__TOPIC="$http_topic" VIGIE__KAFKA__DLQ_TOPIC="$http_topic.dlq" \
  VIGIE__KAFKA__GROUP_ID="bench-$RANDOM" RUST_LOG=warn "$bin" serve --listen 127.0.0.1:18089 > "$dir/serve.log" 2>&1 &
serve_pid=$!
"$bin" simulate --contacts 50000 --seed 5 --no-agent-events --output "$dir/http.jsonl" 2>/dev/null
python3 - "$dir/http.jsonl" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen("http://127.0.0.1:18089/healthz"); break
    except Exception:
        time.sleep(0.2)
lines = open(sys.argv[1], "rb").read().splitlines()
start = time.time(); sent = 0
for i in range(0, len(lines), 10000):
    body = b"\n".join(lines[i:i + 10000])
    r = urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:18089/api/v1/events", data=body, method="POST",
        headers={"content-type": "application/x-ndjson"}))
    sent += len(lines[i:i + 10000])
s = time.time() - start
print(f"http POST /api/v1/events: {sent} events in {s:.2f} s = {int(sent / s):,} events/s".replace(",", " "))
PY
