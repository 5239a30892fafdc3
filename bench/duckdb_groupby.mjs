// DuckDB's GROUP BY on the keyed data flow-keyed-bench wrote (--csv), held
// in memory: the reference of issue 17's target 2. Loads the CSV into an
// in-memory table (not timed), then times
//   SELECT k, sum(v), count(*), min(v), max(v) FROM t GROUP BY k
// into a temporary table (so that no row crosses into JavaScript), RUNS
// times, and prints CSV lines as flow-keyed-bench does, plus the checksum of
// the result (over keys, k * 1000003 + sum, mod 2^64) on stderr.
// usage: node bench/duckdb_groupby.mjs FILE.csv LABEL [RUNS] [THREADS]
import { DuckDBInstance } from '@duckdb/node-api';

const [file, label, runsArg, threadsArg] = process.argv.slice(2);
const runs = Number(runsArg ?? 5);
const threads = String(threadsArg ?? 2);
const instance = await DuckDBInstance.create(':memory:', { threads });
const db = await instance.connect();
await db.run(`CREATE TABLE t AS SELECT * FROM read_csv('${file}',
  header = false, columns = {'k': 'BIGINT', 'v': 'BIGINT'})`);
const times = [];
for (let i = 0; i < runs; ++i) {
  const t0 = process.hrtime.bigint();
  await db.run(`CREATE OR REPLACE TEMP TABLE r AS
    SELECT k, sum(v) AS s, count(*) AS c, min(v) AS lo, max(v) AS hi
    FROM t GROUP BY k`);
  times.push(Number(process.hrtime.bigint() - t0) / 1e9);
}
const check = await db.runAndReadAll(`SELECT
  (sum((k::HUGEINT * 1000003 + s::HUGEINT) % 18446744073709551616)
     % 18446744073709551616)::UBIGINT::VARCHAR AS c,
  count(*)::VARCHAR AS n FROM r`);
const [c, n] = check.getRows()[0];
times.sort((a, b) => a - b);
const med = times[Math.floor(times.length / 2)];
console.log(`keyed,${label},duckdb_${threads}threads,${med.toFixed(6)},` +
            `${times[0].toFixed(6)},${times[times.length - 1].toFixed(6)},` +
            `${runs},${n}`);
console.error(`duckdb checksum ${c} keys ${n}`);
