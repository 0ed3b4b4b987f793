import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/**
 * Finds Debian's chromium, installing it with apt-get when missing and we are root (unless
 * PATCHOPS_TEST_NO_INSTALL=1; `npm test` installs it first through scripts/test-tools.mjs). Returns null (and
 * says so loudly) only when it cannot be had.
 */
export function findChromium(): string | null {
  if (fs.existsSync(CHROMIUM)) return CHROMIUM;
  if (process.getuid?.() === 0 && fs.existsSync('/usr/bin/apt-get') && process.env.PATCHOPS_TEST_NO_INSTALL !== '1') {
    process.stderr.write(
      "browser tests: /usr/bin/chromium is missing; installing Debian's chromium package (apt-get install -y chromium)…\n",
    );
    const r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      timeout: 600_000,
    });
    if (r.status !== 0)
      spawnSync('sh', ['-c', 'apt-get update && apt-get install -y --no-install-recommends chromium'], {
        stdio: 'inherit',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
        timeout: 900_000,
      });
    if (fs.existsSync(CHROMIUM)) return CHROMIUM;
  }
  process.stderr.write(
    '\n\n!!!!!!!!!! BROWSER TESTS SKIPPED: /usr/bin/chromium is not installed and could not be installed here.\n' +
      '!!!!!!!!!! Install it with `apt-get install -y chromium` (root) and run the tests again.\n\n',
  );
  return null;
}

/** A fresh headless Chromium with its own profile directory; close() removes the profile. */
export async function launchChromium(
  executablePath: string,
): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'patchops-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}
