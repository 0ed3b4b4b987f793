// The Debian packages the tests drive for real, and what `npm test` and `.ci/run` do about them: install the
// missing ones when we are root on a machine with apt-get, otherwise say which tests will be skipped and why.
// Uses only Node built-ins: it runs before (and without) node_modules.
//
//   node scripts/test-tools.mjs         check, install what is missing, print what will be skipped
//   PATCHOPS_TEST_NO_INSTALL=1          check only: never runs apt-get (the tests that need a missing tool skip)
//
// A test that needs one of these tools checks for it itself (test/helpers/tools.ts) and skips with a visible
// warning when it is missing, so running vitest directly behaves the same.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** One row per Debian package: the commands (or files) it gives and the tests that need them. */
export const TEST_TOOLS = [
  {
    pkg: 'apt-utils',
    commands: ['apt-ftparchive'],
    tests: 'the apt round trip (signed local repository: apt backend, agents end to end)',
  },
  { pkg: 'gpg', commands: ['gpg'], tests: 'the apt round trip (repository signing)' },
  { pkg: 'dpkg-dev', commands: ['dpkg-scanpackages'], tests: 'Debian package building and scanning' },
  {
    pkg: 'rpm',
    commands: ['rpm', 'rpmbuild', 'rpmsign'],
    tests: 'the rpm backends (dnf and zypper round trips, rpm packaging)',
  },
  { pkg: 'dnf', commands: ['dnf'], tests: 'the dnf round trip' },
  { pkg: 'zypper', commands: ['zypper'], tests: 'the zypper round trip' },
  {
    pkg: 'createrepo-c',
    commands: ['createrepo_c', 'modifyrepo_c'],
    tests: 'the dnf and zypper round trips (local rpm repository)',
  },
  { pkg: 'fwupd', commands: ['fwupdmgr', 'fwupdtool'], tests: 'the firmware (fwupd) backend' },
  {
    pkg: 'fwupd-tests',
    files: ['/usr/share/installed-tests/fwupd/fwupd-tests.xml'],
    tests: 'the firmware (fwupd) backend (its test plugin and metadata)',
  },
  {
    pkg: 'dbus-daemon',
    commands: ['dbus-daemon'],
    tests: 'the firmware (fwupd) backend (a private message bus for the daemon)',
  },
  { pkg: 'postgresql-client', commands: ['psql'], tests: 'the embedded database test that connects with libpq (psql)' },
  { pkg: 'chromium', files: ['/usr/bin/chromium'], tests: 'the browser tests (test/browser/, playwright-core)' },
];

/** Whether `command` is an executable file in one of PATH's directories. */
export function onPath(command, envPath = process.env.PATH ?? '') {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    try {
      fs.accessSync(path.join(dir, command), fs.constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** What a row lacks: its missing commands and files. */
export function lacking(tool, envPath = process.env.PATH ?? '') {
  return [
    ...(tool.commands ?? []).filter((c) => !onPath(c, envPath)),
    ...(tool.files ?? []).filter((f) => !fs.existsSync(f)),
  ];
}

/** The rows with something missing. */
export function missingTools(envPath = process.env.PATH ?? '') {
  return TEST_TOOLS.filter((t) => lacking(t, envPath).length > 0);
}

function aptGet(args, log) {
  const r = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    timeout: 1_800_000,
    encoding: 'utf8',
  });
  if (r.status !== 0)
    log(
      `apt-get ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}): ${(r.stderr ?? '').trim().split('\n').slice(-2).join(' / ')}`,
    );
  return r.status === 0;
}

const install = (pkgs, log) => aptGet(['install', '-y', '-q', '--no-install-recommends', ...pkgs], log);

/**
 * Installs the missing packages when allowed (root, apt-get on PATH, PATCHOPS_TEST_NO_INSTALL unset): all
 * at once; after a failure, `apt-get update` once and again; then one by one, so one unknown package does
 * not keep the others out. Returns the rows still missing afterwards.
 */
export function ensureTestTools({ log = (m) => process.stderr.write(`npm test: ${m}\n`) } = {}) {
  let missing = missingTools();
  if (missing.length === 0) return [];
  const pkgs = missing.map((t) => t.pkg);
  const why =
    process.env.PATCHOPS_TEST_NO_INSTALL === '1'
      ? 'PATCHOPS_TEST_NO_INSTALL=1'
      : process.getuid?.() !== 0
        ? 'not root'
        : !onPath('apt-get')
          ? 'no apt-get on this machine'
          : undefined;
  if (why) {
    log(`not installing ${pkgs.join(' ')} (${why})`);
  } else {
    log(`installing the Debian packages the tests need: ${pkgs.join(' ')}…`);
    if (!install(pkgs, log)) {
      aptGet(['update', '-q'], log);
      if (!install(pkgs, log)) for (const p of pkgs) install([p], log);
    }
    missing = missingTools();
  }
  return missing;
}

/** The visible lines naming what will be skipped and why. */
export function skipLines(missing) {
  return missing.map(
    (t) =>
      `SKIPPED: ${t.tests} — ${lacking(t).join(', ')} missing (Debian package ${t.pkg}; install it with: apt-get install -y ${t.pkg})`,
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const missing = ensureTestTools();
  for (const line of skipLines(missing)) process.stderr.write(`npm test: ${line}\n`);
  if (missing.length === 0) process.stderr.write('npm test: every Debian package the tests use is installed\n');
}
