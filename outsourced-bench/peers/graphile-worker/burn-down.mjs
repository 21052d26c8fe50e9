// graphile-worker's burn-down, the workload of `outsourced-bench --scenarios burn-down`: N
// no-op jobs inserted first, then timed from the worker's start until every one has run, each
// checked to have run exactly once. Usage:
//   node burn-down.mjs <postgres-url> <jobs> <default|fast> [concurrency]
// `fast` is graphile-worker's documented high-throughput mode: a local queue and batched
// completion. Its schema is dropped and created afresh for every run.
import { Logger, run, runMigrations } from "graphile-worker";
import pg from "pg";

const [url, jobsArg, mode = "default", concurrencyArg = "24"] = process.argv.slice(2);
const jobs = Number(jobsArg);
const concurrency = Number(concurrencyArg);
if (!url || !(jobs > 0) || !["default", "fast"].includes(mode)) {
  console.error("usage: node burn-down.mjs <postgres-url> <jobs> <default|fast> [concurrency]");
  process.exit(2);
}

const pool = new pg.Pool({ connectionString: url, max: concurrency + 2 });
pool.on("error", (error) => console.error("pool:", error.message));
await pool.query("DROP SCHEMA IF EXISTS graphile_worker CASCADE");
await runMigrations({ pgPool: pool });
// One statement per 1,000 jobs, through the schema's own add_jobs.
for (let start = 0; start < jobs; start += 1000) {
  const n = Math.min(1000, jobs - start);
  const specs = Array.from({ length: n }, (_, i) => ({ identifier: "noop", payload: { n: start + i } }));
  await pool.query(
    "SELECT graphile_worker.add_jobs(array(SELECT json_populate_recordset(null::graphile_worker.job_spec, $1::json)))",
    [JSON.stringify(specs)],
  );
}

const seen = new Uint8Array(jobs);
let ran = 0;
let twice = 0;
let finish;
const done = new Promise((resolve) => (finish = resolve));
const preset = {
  worker: {
    concurrentJobs: concurrency,
    maxPoolSize: concurrency + 2,
    pollInterval: 1000,
    ...(mode === "fast"
      ? { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 }
      : {}),
  },
};
const started = process.hrtime.bigint();
const runner = await run({
  pgPool: pool,
  preset,
  noHandleSignals: true,
  // Silent: a log line per job would cost more than the job.
  logger: new Logger(() => () => {}),
  taskList: {
    noop: async (payload) => {
      if (seen[payload.n]++ > 0) twice++;
      if (++ran === jobs) finish();
    },
  },
});
await done;
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
await runner.stop();
const { rows } = await pool.query("SELECT count(*)::int AS left FROM graphile_worker._private_jobs");
await pool.end();
const missing = seen.filter((n) => n === 0).length;
if (twice || missing || rows[0].left) {
  console.error(`FAILED: ${twice} ran twice, ${missing} never ran, ${rows[0].left} left in the table`);
  process.exit(1);
}
console.log(`graphile-worker ${mode}, concurrency ${concurrency}: ${jobs} jobs in ${seconds.toFixed(2)} s = ${Math.round(jobs / seconds)} jobs/s`);
