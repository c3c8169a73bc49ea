"""The KPIs of `vigie replay`'s total for one window, computed by DuckDB with SQL from the
same JSONL file: redeliveries dropped by `event_id`, events joined per interaction, the
7-day look-back of repeats with a window function. Prints DuckDB's time and its numbers
next to Vigie's (read from the snapshot JSON given), so both are checked, not only timed.

Usage: python3 kpis.py FILE SNAPSHOT.json THREADS
"""
import json
import sys
import time

import duckdb

path, snapshot_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
vigie = json.load(open(snapshot_path))
start, end = vigie["window"]["from"], vigie["window"]["to"]
H = 7 * 86_400_000
SHORT = 5_000
# Service-level thresholds of the default configuration (ms); other channels have none.
T = {"phone": 20_000, "chat": 40_000, "messaging": 60_000, "social": 3_600_000,
     "email": 14_400_000, "callback": 1_800_000}
thresholds = " ".join(f"WHEN '{c}' THEN {ms}" for c, ms in T.items())

con = duckdb.connect()
con.execute(f"SET threads = {threads}")
began = time.perf_counter()
row = con.execute(f"""
WITH ev AS (
  SELECT DISTINCT ON (event_id) event_id, type, interaction_id, customer_id, channel, resolved,
         epoch_ms(ts::TIMESTAMPTZ) AS t
  FROM read_json('{path}', format = 'newline_delimited', columns = {{
    event_id: 'VARCHAR', type: 'VARCHAR', ts: 'VARCHAR', interaction_id: 'VARCHAR',
    customer_id: 'VARCHAR', channel: 'VARCHAR', resolved: 'BOOLEAN'}})
  WHERE type <> 'agent_state'
), it AS (
  SELECT interaction_id,
    min(t) FILTER (WHERE type = 'arrived') AS arr,
    arg_min(channel, t) FILTER (WHERE type = 'arrived') AS channel,
    arg_min(customer_id, t) FILTER (WHERE type = 'arrived') AS customer,
    min(t) FILTER (WHERE type = 'answered') AS ans,
    min(t) FILTER (WHERE type = 'abandoned') AS ab,
    min(t) FILTER (WHERE type = 'ended') AS en,
    arg_min(resolved, t) FILTER (WHERE type = 'ended') AS resolved
  FROM ev GROUP BY interaction_id
), c AS (
  SELECT *, CASE channel {thresholds} ELSE NULL END AS sl_t,
    arr - lag(arr) OVER (PARTITION BY customer ORDER BY arr) <= {H} AS repeat
  FROM it WHERE arr IS NOT NULL
)
SELECT
  count(*) FILTER (WHERE arr >= {start} AND arr < {end}) AS arrivals,
  count(*) FILTER (WHERE ans >= {start} AND ans < {end}) AS answered,
  count(*) FILTER (WHERE ans IS NULL AND ab >= {start} AND ab < {end} AND ab - arr >= {SHORT}) AS abandoned,
  count(*) FILTER (WHERE ans IS NULL AND ab >= {start} AND ab < {end} AND ab - arr < {SHORT}) AS short_abandoned,
  avg(ans - arr) FILTER (WHERE ans >= {start} AND ans < {end}) AS asa_ms,
  avg(en - ans) FILTER (WHERE en >= {start} AND en < {end} AND ans IS NOT NULL) AS aht_ms,
  (count(*) FILTER (WHERE ans >= {start} AND ans < {end} AND sl_t IS NOT NULL AND ans - arr <= sl_t))::DOUBLE
    / nullif(count(*) FILTER (WHERE sl_t IS NOT NULL AND ((ans >= {start} AND ans < {end})
       OR (ans IS NULL AND ab >= {start} AND ab < {end} AND ab - arr >= {SHORT}))), 0) AS service_level,
  avg(coalesce(repeat, false)::INT) FILTER (WHERE arr >= {start} AND arr < {end} AND customer IS NOT NULL) AS repeat_rate,
  avg((coalesce(resolved, false) AND NOT coalesce(repeat, false))::INT)
    FILTER (WHERE en >= {start} AND en < {end} AND customer IS NOT NULL) AS once_and_done_rate
FROM c
""").fetchone()
seconds = time.perf_counter() - began
names = ["arrivals", "answered", "abandoned", "short_abandoned", "asa_ms", "aht_ms",
         "service_level", "repeat_rate", "once_and_done_rate"]
print(f"duckdb ({threads} threads): {seconds:.2f} s")
total = vigie["total"]
for name, value in zip(names, row):
    mine = total.get(name)
    same = (mine == value) if isinstance(value, int) else (
        mine is not None and value is not None and abs(mine - value) <= 1e-6 * max(1, abs(value)))
    print(f"  {name:20} vigie {mine!s:>22}  duckdb {value!s:>22}  {'same' if same else 'DIFFERENT'}")
print(f"DUCKDB_SECONDS={seconds:.3f}")
