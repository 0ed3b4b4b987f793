/**
 * Tests that drive a real tool (apt-ftparchive, gpg, dnf, …) check for it here and skip, loudly, when it is
 * missing. `npm test` (scripts/test-tools.mjs) installs these tools first where it can and prints the same
 * reasons; running vitest directly skips the same way.
 */
import fs from 'node:fs';
import path from 'node:path';

/** The commands of `commands` that are not executable files on PATH. */
export function missingCommands(commands: string[], envPath = process.env.PATH ?? ''): string[] {
  const dirs = envPath.split(path.delimiter).filter(Boolean);
  return commands.filter(
    (c) =>
      !dirs.some((d) => {
        try {
          fs.accessSync(path.join(d, c), fs.constants.X_OK);
          return true;
        } catch {
          return false;
        }
      }),
  );
}

/**
 * True (and a visible warning on stderr naming the tools) when any of `commands` is missing: pass it to
 * `describe.skipIf(...)`. `what` names the tests that will not run.
 */
export function skipWithout(commands: string[], what: string, debianPackages: string): boolean {
  const missing = missingCommands(commands);
  if (missing.length === 0) return false;
  process.stderr.write(
    `\n!!!!!!!!!! SKIPPED: ${what} — ${missing.join(', ')} not found on PATH.\n` +
      `!!!!!!!!!! Install it with \`apt-get install -y ${debianPackages}\` (npm test does this itself when run as root).\n\n`,
  );
  return true;
}
