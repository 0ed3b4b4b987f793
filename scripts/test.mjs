// `npm test`: the whole suite. First the Debian tools the tests drive (scripts/test-tools.mjs: installed
// when we are root with apt-get, else the tests needing them are named as skipped). Vitest's global setup
// obtains the Temporal CLI (building it once into the cache when needed), starts one dev server for the run,
// and each test file makes its own database (real PostgreSQL when DATABASE_URL is set, in-memory PGlite
// otherwise). Ends with one plain summary line, `tests: N passed, N failed, N skipped`, in which a test file
// that failed to load or run counts as a failure; the exit code is non-zero exactly when that line says
// something failed.
//
//   PATCHOPS_TEST_REPORT=<file>   where Vitest's JSON report goes (default test-results/vitest.json)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ensureTestTools, skipLines } from './test-tools.mjs';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
const out = path.resolve(process.env.PATCHOPS_TEST_REPORT ?? path.join(root, 'test-results', 'vitest.json'));
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.rmSync(out, { force: true });

const skips = skipLines(ensureTestTools());
for (const line of skips) process.stderr.write(`npm test: ${line}\n`);

const r = spawnSync(
  process.execPath,
  [vitest, 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...process.argv.slice(2)],
  { cwd: root, stdio: 'inherit' },
);
const { passed, failed, skipped, problems } = summarise(out, r.status, r.error);
for (const line of skips) console.log(line);
for (const p of problems) console.log(p);
console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);

/**
 * The counts for the closing line. Failed = failed tests + test files that failed without a failed test
 * (an import that threw, a hook that failed) + 1 when Vitest itself failed with nothing else to show for it
 * (an unhandled error, or no report at all).
 */
function summarise(reportFile, status, spawnError) {
  const problems = [];
  if (!fs.existsSync(reportFile)) {
    problems.push(
      `vitest wrote no report (${spawnError?.message ?? `exit code ${status}`}): the run failed before it could count its tests`,
    );
    return { passed: 0, failed: 1, skipped: 0, problems };
  }
  const s = JSON.parse(fs.readFileSync(reportFile, 'utf8'));
  const brokenFiles = (s.testResults ?? []).filter(
    (f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed'),
  );
  for (const f of brokenFiles)
    problems.push(`FAILED TO RUN: ${path.relative(root, f.name)}: ${(f.message || 'failed').split('\n')[0]}`);
  let failed = (s.numFailedTests ?? 0) + brokenFiles.length;
  if (status !== 0 && failed === 0) {
    problems.push(
      `vitest exited with code ${status ?? spawnError?.message} although every test passed (an unhandled error: see its output above)`,
    );
    failed = 1;
  }
  return { passed: s.numPassedTests ?? 0, failed, skipped: (s.numPendingTests ?? 0) + (s.numTodoTests ?? 0), problems };
}
