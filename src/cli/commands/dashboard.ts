/**
 * Admin verbs of the dashboard area: web users, reports, and the audit log.
 *   patchops users add <name> --role admin|approver|viewer [--password-stdin]
 *   patchops users list | users remove <name>
 * Web users, the report and the audit log go through /api/v1 with the token of `patchops login`; only `users add`
 * with no login opens the database, and only to make the first user (the first admin, with no server running).
 * The file verbs:
 *   patchops report --format csv|pdf [--scope all|compliance|sla|cycles] [--out FILE]
 *   patchops audit verify            (exit 1 naming the first broken row, a cut tail or an altered checkpoint)
 *   patchops audit export --out FILE (CSV)
 */
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { Option } from 'commander';
import type { Config } from '../../config/index';
import type { Database } from '../../db/client';
import { ROLES, type Role } from '../../db/identities';
import { CodedError, ErrorCode } from '../../domain/errors';
import type { AuditLogReport } from '../../db/audit';
import { parseReportScope, REPORT_SCOPES } from '../../reports/report';
import { openDatabaseForCommand } from '../../runtime/database';
import { addWebUser, listWebUsers, type WebUserSummary } from '../../server/dashboard/auth';
import { callOrExit, downloadOrExit, readCredentials } from '../api-client';
import { configOrExit, loggerFor, reportFatal } from '../context';

/** What POST /api/v1/audit/verify answers. */
type AuditVerifyReply = AuditLogReport & {
  checkpoint: { previous: { headId: number; writtenAt: string } | null; movedTo: number | null } | null;
};

/** `?a=1&b=2` of the values given (none: ''). */
function qs(params: Record<string, string | undefined>): string {
  const q = new URLSearchParams(
    Object.entries(params).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''),
  );
  const text = q.toString();
  return text ? `?${text}` : '';
}

/** Who runs a CLI verb, for the audit log. */
function cliActor(): string {
  return `cli:${process.env.USER ?? process.env.LOGNAME ?? 'unknown'}`;
}

/**
 * The database for a one-shot command: DATABASE_URL; else the embedded database of a running
 * `patchops up` (its wire-protocol port); else the embedded database opened here.
 */
async function withDatabase<T>(config: Config, run: (db: Database) => Promise<T>): Promise<T> {
  const logger = loggerFor(config);
  logger.level = 'warn';
  const { database, stop } = await openDatabaseForCommand(config, logger);
  try {
    return await run(database);
  } finally {
    await stop();
  }
}

/**
 * `users add` with no login: only while there is no web user at all (bootstrapping the first admin, with no server
 * running); after that a user is added through the server by an admin.
 */
async function addFirstWebUser(db: Database, user: { username: string; password: string; role: Role }): Promise<void> {
  if ((await listWebUsers(db.db)).length > 0) {
    throw new CodedError(
      ErrorCode.Unauthorized,
      'not logged in: web users exist already, so a user is added through the server by an admin. Log in first (patchops login --server http://<host>:<port>), then run this again.',
    );
  }
  await addWebUser(db.db, { ...user, by: cliActor() });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

export function registerDashboardCommands(program: Command): void {
  const users = program
    .command('users')
    .description('local web accounts of the dashboard (roles admin, approver, viewer)');
  users
    .command('add <name>')
    .description(
      'create a web user (needs patchops login, admin; only the first user is made without it); the password comes from stdin (--password-stdin) or is generated and printed once',
    )
    .addOption(new Option('--role <role>', 'admin, approver or viewer').choices([...ROLES]).makeOptionMandatory())
    .option('--password-stdin', 'read the password from standard input')
    .action(async (name: string, opts: { role: Role; passwordStdin?: boolean }) => {
      const config = configOrExit();
      const password = opts.passwordStdin ? await readStdin() : randomBytes(12).toString('base64url');
      if (await readCredentials()) await callOrExit('POST', '/users', { username: name, password, role: opts.role });
      else {
        try {
          await withDatabase(config, (db) => addFirstWebUser(db, { username: name, password, role: opts.role }));
        } catch (e) {
          reportFatal(e);
        }
      }
      console.log(`web user ${name} added with the ${opts.role} role (identity web:${name})`);
      if (!opts.passwordStdin)
        console.log(`password: ${password}\n(shown once; sign in at ${config.http.publicUrl}/login)`);
    });
  users
    .command('list')
    .description('list the web users and their roles (needs patchops login, admin)')
    .action(async () => {
      const list = (await callOrExit<{ users: WebUserSummary[] }>('GET', '/users')).users;
      if (list.length === 0) console.log('no web users (the first admin is created by `patchops up`)');
      for (const u of list)
        console.log(
          `${u.username.padEnd(20)} ${(u.roles.join(',') || '(no role)').padEnd(24)} last login ${u.lastLoginAt ?? 'never'}`,
        );
    });
  users
    .command('remove <name>')
    .description('remove a web user, their sessions and roles (needs patchops login, admin)')
    .action(async (name: string) => {
      await callOrExit('DELETE', `/users/${encodeURIComponent(name)}`);
      console.log(`web user ${name} removed`);
    });

  program
    .command('report')
    .description(
      'a compliance report: compliance by group and OS, SLA breaches, cycle results (from the server: needs patchops login)',
    )
    .addOption(new Option('--format <format>', 'csv or pdf').choices(['csv', 'pdf']).default('csv'))
    .option('--scope <scope>', `what to report: ${REPORT_SCOPES.join(', ')}`, 'all')
    .option('--out <file>', 'write to this file (default: standard output for CSV; required for PDF on a terminal)')
    .action(async (opts: { format: 'csv' | 'pdf'; scope: string; out?: string }) => {
      try {
        const scope = parseReportScope(opts.scope);
        if (opts.format === 'pdf' && !opts.out && process.stdout.isTTY) {
          throw new CodedError(
            ErrorCode.InvalidInput,
            'a PDF on a terminal is not readable: add --out report.pdf (or redirect the output)',
          );
        }
        const bytes = await downloadOrExit(`/reports${qs({ format: opts.format, scope })}`, opts.out ?? process.stdout);
        if (opts.out) process.stderr.write(`report written to ${opts.out} (${bytes} bytes)\n`);
      } catch (e) {
        reportFatal(e);
      }
    });

  const audit = program
    .command('audit')
    .description('the tamper-evident audit log (on the server: needs patchops login with an admin token)');
  audit
    .command('verify')
    .description(
      "walk the keyed hash chain and compare it with the server's signed checkpoint; exit 1 naming the first broken row or a cut tail",
    )
    .action(async () => {
      const report = await callOrExit<AuditVerifyReply>('POST', '/audit/verify');
      if (report.ok) {
        const keyed = report.keyedFrom === null ? 'no keyed rows yet' : `keyed from row ${report.keyedFrom}`;
        const unkeyed = report.unkeyedRows
          ? `; ${report.unkeyedRows} earlier rows are chained without a key (written before keying)`
          : '';
        console.log(`audit chain intact: ${report.rows} rows verified (${keyed}${unkeyed})`);
        const cp = report.checkpoint;
        if (!cp) console.log('the server keeps no checkpoint: a cut tail cannot be detected');
        else {
          console.log(
            cp.previous
              ? `checkpoint of ${cp.previous.writtenAt} (head row ${cp.previous.headId}) matches`
              : 'no earlier checkpoint: a cut tail before now cannot be detected',
          );
          if (cp.movedTo !== null) console.log(`checkpoint moved to head row ${cp.movedTo}`);
        }
        return;
      }
      const problem = report.problem!;
      console.error(`audit chain BROKEN at row ${problem.id}: ${problem.reason}`);
      console.error(
        `${report.rows} rows before it verified; the server's checkpoint was left as it was. Export the log (patchops audit export) and investigate who had write access to the database.`,
      );
      process.exit(1);
    });
  audit
    .command('export')
    .description('write the audit log as CSV')
    .requiredOption('--out <file>', 'CSV file to write')
    .option('--actor <actor>', 'only entries whose actor contains this')
    .option('--action <prefix>', 'only actions starting with this')
    .option('--since <date>', 'only entries at or after this date (YYYY-MM-DD)')
    .action(async (opts: { out: string; actor?: string; action?: string; since?: string }) => {
      try {
        if (opts.since && (!/^\d{4}-\d{2}-\d{2}$/.test(opts.since) || Number.isNaN(new Date(opts.since).getTime()))) {
          throw new CodedError(ErrorCode.InvalidInput, `--since "${opts.since}" is not a date: use YYYY-MM-DD`);
        }
        const bytes = await downloadOrExit(
          `/audit/export${qs({ actor: opts.actor, action: opts.action, since: opts.since })}`,
          opts.out,
        );
        console.log(`audit log written to ${opts.out} (${bytes} bytes)`);
      } catch (e) {
        reportFatal(e);
      }
    });
}
