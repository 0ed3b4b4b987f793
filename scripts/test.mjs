// `npm test`: the whole suite. Vitest's global setup obtains the Temporal CLI (building it once into the
// cache when needed), starts one dev server for the run, and an embedded database when DATABASE_URL is unset.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
const r = spawnSync(process.execPath, [vitest, 'run', ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
