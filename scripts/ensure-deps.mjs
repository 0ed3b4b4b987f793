// Installs dependencies when node_modules is missing or stale, so `npm start` and `npm test` work right
// after `git clone`. Uses only Node built-ins: it runs before anything is installed.
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const lockFile = path.join(root, 'package-lock.json');

function stale() {
  if (!fs.existsSync(path.join(root, 'node_modules'))) return 'node_modules is missing';
  if (!fs.existsSync(lockFile)) return undefined;
  const lock = JSON.parse(fs.readFileSync(lockFile, 'utf8'));
  const top = lock.packages?.[''] ?? {};
  const wanted = { ...top.dependencies, ...top.devDependencies };
  for (const name of Object.keys(wanted)) {
    const entry = lock.packages?.[`node_modules/${name}`];
    const pkgJson = path.join(root, 'node_modules', name, 'package.json');
    if (!fs.existsSync(pkgJson)) return `${name} is not installed`;
    const installed = JSON.parse(fs.readFileSync(pkgJson, 'utf8')).version;
    if (entry?.version && installed !== entry.version)
      return `${name} is ${installed}, the lockfile wants ${entry.version}`;
  }
  return undefined;
}

const why = stale();
if (why) {
  process.stderr.write(`patchops: installing dependencies (${why})…\n`);
  execSync(fs.existsSync(lockFile) ? 'npm ci --no-audit --no-fund' : 'npm install --no-audit --no-fund', {
    cwd: root,
    stdio: 'inherit',
  });
}
