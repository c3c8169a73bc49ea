"""The KPIs of `vigie replay`'s total for one window, computed by DuckDB with SQL from the
same JSONL file: redeliveries dropped by `event_id`, events joined per interaction, the
7-day look-back of repeats with a window function.

Runs ROUNDS pairs, each the Vigie command given (its whole process, the snapshot JSON
read from its standard output) and then the DuckDB query, so that the two of a pair run
at the same moment: this machine's speed swings by up to 2x within the hour, and a ratio
of times taken minutes apart says more about the machine than about the programs. Prints
each pair, the median of the pairs' ratios and the best time of each, and both sets of
numbers side by side, checked equal at every round (the exit status says whether they were).

Usage: python3 kpis.py FILE THREADS ROUNDS VIGIE_COMMAND...
"""
import json
import statistics
import subprocess
import sys
import time

import duckdb

path, threads, rounds, command = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]


def run_vigie():
    """Vigie's snapshot and the seconds its process took."""
    began = time.perf_counter()
    out = subprocess.run(command, check=True, capture_output=True).stdout
    return json.loads(out), time.perf_counter() - began


# The window is known once Vigie has read the file (the end of its last hour).
vigie, _ = run_vigie()
start, end = vigie["window"]["from"], vigie["window"]["to"]
H = 7 * 86_400_000
SHORT = 5_000
# Service-level thresholds of the default configuration (ms); other channels have none.
T = {"phone": 20_000, "chat": 40_000, "messaging": 60_000, "social": 3_600_000,
     "email": 14_400_000, "callback": 1_800_000}
thresholds = " ".join(f"WHEN '{c}' THEN {ms}" for c, ms in T.items())

con = duckdb.connect()
con.execute(f"SET threads = {threads}")
QUERY = f"""
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
"""
NAMES = ["arrivals", "answered", "abandoned", "short_abandoned", "asa_ms", "aht_ms",
         "service_level", "repeat_rate", "once_and_done_rate"]


def compare(total, row):
    """Each KPI's line, and whether all are the same."""
    lines, all_same = [], True
    for name, value in zip(NAMES, row):
        mine = total.get(name)
        same = (mine == value) if isinstance(value, int) else (
            mine is not None and value is not None
            and abs(mine - value) <= 1e-6 * max(1, abs(value)))
        all_same &= same
        lines.append(f"  {name:20} vigie {mine!s:>22}  duckdb {value!s:>22}  "
                     f"{'same' if same else 'DIFFERENT'}")
    return lines, all_same


pairs, all_same = [], True
for n in range(1, rounds + 1):
    vigie, vigie_s = run_vigie()
    began = time.perf_counter()
    row = con.execute(QUERY).fetchone()
    duck_s = time.perf_counter() - began
    lines, same = compare(vigie["total"], row)
    all_same &= same
    pairs.append((vigie_s, duck_s))
    print(f"pair {n}: vigie {vigie_s:.3f} s, duckdb {duck_s:.3f} s, ratio {vigie_s / duck_s:.2f}"
          f"{'' if same else ', KPIs DIFFERENT'}")
print("\n".join(lines))
ratios = sorted(v / d for v, d in pairs)
print(f"vigie replay, {threads} thread(s): best {min(v for v, _ in pairs):.3f} s")
print(f"duckdb ({threads} threads): best {min(d for _, d in pairs):.3f} s")
print(f"ratio vigie / duckdb, median of {rounds} pairs: {statistics.median(ratios):.2f} "
      f"(pairs {ratios[0]:.2f} to {ratios[-1]:.2f}; target <= 0.5)")
sys.exit(0 if all_same else 1)
