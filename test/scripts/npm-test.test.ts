/**
 * `npm test`'s own machinery, run as a user would run it (node scripts/…): the closing line counts a test
 * file that fails to load and matches the exit code; missing Debian tools are installed through apt-get when
 * we are root, and otherwise named with the tests they skip.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'patchops-npm-test-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** Runs scripts/test.mjs on a scratch project of plain test files (its own vitest config: no Temporal, no database). */
function runTestScript(files: Record<string, string>) {
  const dir = tmp();
  // A config without imports: the scratch directory has no node_modules.
  fs.writeFileSync(
    path.join(dir, 'vitest.config.mjs'),
    "export default { test: { include: ['*.test.mjs'], globals: true, pool: 'forks', maxWorkers: 1 } };\n",
  );
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  const r = spawnSync(
    process.execPath,
    ['scripts/test.mjs', '--root', dir, '--config', path.join(dir, 'vitest.config.mjs')],
    {
      cwd: root,
      encoding: 'utf8',
      env: {
        ...process.env,
        PATCHOPS_TEST_NO_INSTALL: '1',
        PATCHOPS_TEST_REPORT: path.join(dir, 'report.json'),
        FORCE_COLOR: '0',
        NO_COLOR: '1',
      },
      timeout: 120_000,
    },
  );
  const closing = r.stdout.trim().split('\n').at(-1);
  return { status: r.status, stdout: r.stdout, closing };
}

const OK = "test('adds', () => { if (1 + 1 !== 2) throw new Error('arithmetic'); });\n";
const SKIPPED = "test.skip('later', () => {});\n";

describe('npm test’s closing line', () => {
  it('counts a test file that fails to load as a failure, and exits non-zero', () => {
    const r = runTestScript({
      'ok.test.mjs': OK,
      'broken.test.mjs': "throw new Error('deliberately broken at import');\n",
    });
    expect(r.closing).toBe('tests: 1 passed, 1 failed, 0 skipped');
    expect(r.stdout).toContain('FAILED TO RUN: ');
    expect(r.stdout).toMatch(/FAILED TO RUN: .*broken\.test\.mjs: deliberately broken at import/);
    expect(r.status).toBe(1);
  }, 120_000);

  it('counts failed tests, and says 0 failed with exit 0 only when nothing failed', () => {
    const failing = runTestScript({
      'ok.test.mjs': OK,
      'fails.test.mjs': "test('fails', () => { throw new Error('no'); });\n" + SKIPPED,
    });
    expect(failing.closing).toBe('tests: 1 passed, 1 failed, 1 skipped');
    expect(failing.status).toBe(1);
    const passing = runTestScript({ 'ok.test.mjs': OK + SKIPPED });
    expect(passing.closing).toBe('tests: 1 passed, 0 failed, 1 skipped');
    expect(passing.status).toBe(0);
  }, 120_000);
});

/** A PATH directory with only the given commands (symlinks to the real ones) and `extra` scripts. */
function binWith(commands: string[], extra: Record<string, string> = {}): string {
  const bin = path.join(tmp(), 'bin');
  fs.mkdirSync(bin);
  for (const c of commands) {
    const real = ['/usr/bin', '/bin', '/usr/sbin', '/sbin'].map((d) => path.join(d, c)).find((p) => fs.existsSync(p));
    if (real) fs.symlinkSync(real, path.join(bin, c));
  }
  for (const [name, text] of Object.entries(extra)) fs.writeFileSync(path.join(bin, name), text, { mode: 0o755 });
  return bin;
}

const toolsScript = (env: Record<string, string>) =>
  spawnSync(process.execPath, ['scripts/test-tools.mjs'], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 60_000,
  });

describe('the Debian tools npm test needs (scripts/test-tools.mjs)', () => {
  it('names the tests it will skip, and why, when it may not install (PATCHOPS_TEST_NO_INSTALL=1)', () => {
    const bin = binWith(['gpg', 'dpkg-deb']); // no apt-ftparchive, no dnf, …
    const r = toolsScript({ PATH: bin, PATCHOPS_TEST_NO_INSTALL: '1' });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('npm test: not installing apt-utils dpkg-dev rpm dnf zypper createrepo-c fwupd');
    expect(r.stderr).toContain(
      'npm test: SKIPPED: the apt round trip (signed local repository: apt backend, agents end to end) — apt-ftparchive missing (Debian package apt-utils; install it with: apt-get install -y apt-utils)',
    );
    expect(r.stderr).toContain('SKIPPED: the dnf round trip — dnf missing (Debian package dnf');
    expect(r.stderr).not.toContain('(Debian package gpg;');
  });

  it.skipIf(process.getuid?.() !== 0)(
    'installs what is missing with apt-get as root, running apt-get update once when the install fails',
    () => {
      const log = path.join(tmp(), 'apt-get.log');
      const bin = binWith([]);
      // A stand-in apt-get: install fails until `update` ran, then "installs" each package's commands into bin.
      const table = JSON.parse(
        spawnSync(
          process.execPath,
          [
            '--input-type=module',
            '-e',
            "import('./scripts/test-tools.mjs').then((m) => console.log(JSON.stringify(m.TEST_TOOLS)))",
          ],
          { cwd: root, encoding: 'utf8' },
        ).stdout,
      ) as Array<{ pkg: string; commands?: string[] }>;
      const cases = table
        .map(
          (t) =>
            `    ${t.pkg}) for c in ${(t.commands ?? []).join(' ')}; do printf '#!/bin/sh\\n' > "${bin}/$c"; /bin/chmod +x "${bin}/$c"; done ;;`,
        )
        .join('\n');
      const aptGet = `#!/bin/sh
echo "$*" >> "${log}"
case " $* " in *" update "*) : > "${log}.updated"; exit 0 ;; esac
[ -e "${log}.updated" ] || { echo "E: Unable to locate package" >&2; exit 100; }
for p in "$@"; do
  case "$p" in
${cases}
  esac
done
exit 0
`;
      fs.writeFileSync(path.join(bin, 'apt-get'), aptGet, { mode: 0o755 });
      const r = toolsScript({ PATH: bin, PATCHOPS_TEST_NO_INSTALL: '' });
      const calls = fs.readFileSync(log, 'utf8').trim().split('\n');
      expect(calls[0]).toMatch(
        /^-o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends apt-utils gpg dpkg-dev rpm dnf zypper createrepo-c fwupd/,
      );
      expect(calls[1]).toBe('-o DPkg::Lock::Timeout=600 update -q');
      expect(calls[2]).toBe(calls[0]);
      expect(calls).toHaveLength(3);
      expect(r.stderr).toContain(
        'npm test: installing the Debian packages the tests need: apt-utils gpg dpkg-dev rpm dnf zypper createrepo-c fwupd',
      );
      expect(r.stderr).not.toMatch(/SKIPPED: the (apt|dnf|zypper)/);
      for (const c of [
        'apt-ftparchive',
        'gpg',
        'rpmbuild',
        'dnf',
        'zypper',
        'createrepo_c',
        'fwupdmgr',
        'dpkg-scanpackages',
      ])
        expect(fs.existsSync(path.join(bin, c)), c).toBe(true);
    },
  );
});
