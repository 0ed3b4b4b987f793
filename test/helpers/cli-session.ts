/**
 * The real `patchops` CLI process logged in to a server as a web user of the test's database: makes the user with
 * `role` (and the approver role in `approverGroup` when given), runs `patchops login --server` with the password on
 * standard input, and returns a `cli(args)` that runs with that login (its own XDG_CONFIG_HOME).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Db } from '../../src/db/client';
import { grantRole, type Role } from '../../src/db/identities';
import { addWebUser } from '../../src/server/dashboard/auth';

const root = path.resolve(import.meta.dirname, '..', '..');

export type CliResult = { code: number; stdout: string; stderr: string };
export type Cli = (args: string[], stdin?: string) => Promise<CliResult>;

/** The CLI with its own (empty) config folder: not logged in until `login` is run through it. */
export async function cliWithConfigHome(): Promise<{ cli: Cli; configHome: string }> {
  const configHome = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-cli-config-'));
  const cli: Cli = (args, stdin) =>
    new Promise((resolve) => {
      const child = execFile(
        process.execPath,
        [path.join(root, 'bin', 'patchops.mjs'), ...args],
        {
          cwd: root,
          env: { PATH: process.env.PATH, HOME: configHome, XDG_CONFIG_HOME: configHome, LOG_LEVEL: 'silent' },
          timeout: 60_000,
        },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
      child.stdin?.end(stdin ?? '');
    });
  return { cli, configHome };
}

export async function loggedInCli(
  server: string,
  db: Db,
  user: { username: string; role: Role; approverGroup?: string },
): Promise<Cli> {
  return (await loginCli(server, db, user)).cli;
}

/** loggedInCli, also giving the config folder, for tests that run the CLI their own way (XDG_CONFIG_HOME=configHome). */
export async function loginCli(
  server: string,
  db: Db,
  user: { username: string; role: Role; approverGroup?: string },
): Promise<{ cli: Cli; configHome: string }> {
  const password = `${user.username}-password-1`;
  await addWebUser(db, { username: user.username, password, role: user.role, by: 'test' });
  if (user.approverGroup)
    await grantRole(db, {
      identity: `web:${user.username}`,
      role: 'approver',
      groupName: user.approverGroup,
      by: 'test',
    });
  const session = await cliWithConfigHome();
  const r = await session.cli(['login', '--server', server], `${user.username}\n${password}\n`);
  if (r.code !== 0) throw new Error(`patchops login as ${user.username} failed: ${r.stderr}`);
  return session;
}
