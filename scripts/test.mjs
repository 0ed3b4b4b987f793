// `npm test`: the whole suite. Vitest's global setup obtains the Temporal CLI (building it once into the
// cache when needed), starts one dev server for the run, and each test file makes its own database
// (real PostgreSQL when DATABASE_URL is set, in-memory PGlite otherwise). Ends with one plain summary line.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
const out = path.join(root, 'test-results', 'vitest.json');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.rmSync(out, { force: true });
const r = spawnSync(
  process.execPath,
  [vitest, 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...process.argv.slice(2)],
  { cwd: root, stdio: 'inherit' },
);
if (fs.existsSync(out)) {
  const s = JSON.parse(fs.readFileSync(out, 'utf8'));
  const skipped = (s.numPendingTests ?? 0) + (s.numTodoTests ?? 0);
  console.log(`\ntests: ${s.numPassedTests} passed, ${s.numFailedTests} failed, ${skipped} skipped`);
}
process.exit(r.status ?? 1);
