/**
 * Admin verbs of the dashboard area: web users, reports, and the audit log.
 *   patchops users add <name> --role admin|approver|viewer [--password-stdin]
 *   patchops users list | users remove <name>
 *   patchops report --format csv|pdf [--scope all|compliance|sla|cycles] [--out FILE]
 *   patchops audit verify            (exit 1 naming the first broken row, a cut tail or an altered checkpoint)
 *   patchops audit export --out FILE (CSV)
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { Option } from 'commander';
import cliProgress from 'cli-progress';
import type { Config } from '../../config/index';
import { currentAuditKeys, verifyAuditLog, type AuditLogReport } from '../../db/audit';
import { readAuditCheckpoint, writeAuditCheckpoint, type AuditCheckpoint } from '../../db/audit-checkpoint';
import type { Database } from '../../db/client';
import { iterateAudit } from '../../db/dashboard';
import { ROLES, type Role } from '../../db/identities';
import { CodedError, ErrorCode } from '../../domain/errors';
import { collectReport, parseReportScope, renderReport, REPORT_SCOPES } from '../../reports/report';
import { csvLine } from '../../reports/csv';
import { openDatabaseForCommand } from '../../runtime/database';
import { addWebUser, listWebUsers, removeWebUser } from '../../server/dashboard/auth';
import { configOrExit, loggerFor, reportFatal } from '../context';

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

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

export function registerDashboardCommands(program: Command): void {
  const users = program.command('users').description('local web accounts of the dashboard (roles admin, approver, viewer)');
  users
    .command('add <name>')
    .description('create a web user; the password comes from stdin (--password-stdin) or is generated and printed once')
    .addOption(new Option('--role <role>', 'admin, approver or viewer').choices([...ROLES]).makeOptionMandatory())
    .option('--password-stdin', 'read the password from standard input')
    .action(async (name: string, opts: { role: Role; passwordStdin?: boolean }) => {
      const config = configOrExit();
      try {
        const password = opts.passwordStdin ? await readStdin() : randomBytes(12).toString('base64url');
        await withDatabase(config, (db) => addWebUser(db.db, { username: name, password, role: opts.role, by: cliActor() }));
        console.log(`web user ${name} added with the ${opts.role} role (identity web:${name})`);
        if (!opts.passwordStdin) console.log(`password: ${password}\n(shown once; sign in at ${config.http.publicUrl}/login)`);
      } catch (e) {
        reportFatal(e);
      }
    });
  users
    .command('list')
    .description('list the web users and their roles')
    .action(async () => {
      const config = configOrExit();
      try {
        const list = await withDatabase(config, (db) => listWebUsers(db.db));
        if (list.length === 0) console.log('no web users (the first admin is created by `patchops up`)');
        for (const u of list) console.log(`${u.username.padEnd(20)} ${(u.roles.join(',') || '(no role)').padEnd(24)} last login ${u.lastLoginAt ?? 'never'}`);
      } catch (e) {
        reportFatal(e);
      }
    });
  users
    .command('remove <name>')
    .description('remove a web user, their sessions and roles')
    .action(async (name: string) => {
      const config = configOrExit();
      try {
        const removed = await withDatabase(config, (db) => removeWebUser(db.db, name, cliActor()));
        if (!removed) throw new CodedError(ErrorCode.NotFound, `there is no web user "${name}" (see \`patchops users list\`)`);
        console.log(`web user ${name} removed`);
      } catch (e) {
        reportFatal(e);
      }
    });

  program
    .command('report')
    .description('a compliance report: compliance by group and OS, SLA breaches, cycle results')
    .addOption(new Option('--format <format>', 'csv or pdf').choices(['csv', 'pdf']).default('csv'))
    .option('--scope <scope>', `what to report: ${REPORT_SCOPES.join(', ')}`, 'all')
    .option('--out <file>', 'write to this file (default: standard output for CSV; required for PDF on a terminal)')
    .action(async (opts: { format: 'csv' | 'pdf'; scope: string; out?: string }) => {
      const config = configOrExit();
      try {
        const scope = parseReportScope(opts.scope);
        if (opts.format === 'pdf' && !opts.out && process.stdout.isTTY) {
          throw new CodedError(ErrorCode.InvalidInput, 'a PDF on a terminal is not readable: add --out report.pdf (or redirect the output)');
        }
        const bar = process.stderr.isTTY
          ? new cliProgress.SingleBar({ format: 'report [{bar}] {percentage}% {step}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic)
          : null;
        const buf = await withDatabase(config, async (db) => {
          // Collecting is the first half of the bar, rendering (charts, PDF) the second.
          bar?.start(100, 0, { step: 'starting' });
          const data = await collectReport(db.db, scope, { onProgress: (d, t, step) => bar?.update(Math.round((d / Math.max(1, t)) * 50), { step }) });
          const out = await renderReport(data, opts.format, { onProgress: (d, t, step) => bar?.update(50 + Math.round((d / Math.max(1, t)) * 50), { step }) });
          bar?.update(100, { step: 'done' });
          bar?.stop();
          return out;
        });
        if (opts.out) {
          fs.writeFileSync(opts.out, buf);
          process.stderr.write(`report written to ${opts.out} (${buf.length} bytes)\n`);
        } else {
          process.stdout.write(buf);
        }
      } catch (e) {
        reportFatal(e);
      }
    });

  const audit = program.command('audit').description('the tamper-evident audit log');
  audit
    .command('verify')
    .description('walk the keyed hash chain and compare it with the signed checkpoint; exit 1 naming the first broken row or a cut tail')
    .action(async () => {
      const config = configOrExit();
      const file = config.audit.checkpointFile;
      let result: { report: AuditLogReport; anchor: AuditCheckpoint | null; written: AuditCheckpoint | null };
      try {
        result = await withDatabase(config, async (db) => {
          const keys = currentAuditKeys();
          const anchor = await readAuditCheckpoint(file, keys);
          const report = await verifyAuditLog(db.db, { anchor, keys });
          // An intact log moves the checkpoint forward to its head.
          const written = report.ok ? (await writeAuditCheckpoint(db.db, file, keys)).written : null;
          return { report, anchor, written };
        });
      } catch (e) {
        reportFatal(e);
      }
      const { report, anchor, written } = result;
      if (report.ok) {
        const keyed = report.keyedFrom === null ? 'no keyed rows yet' : `keyed from row ${report.keyedFrom}`;
        const unkeyed = report.unkeyedRows ? `; ${report.unkeyedRows} earlier rows are chained without a key (written before keying)` : '';
        console.log(`audit chain intact: ${report.rows} rows verified (${keyed}${unkeyed})`);
        console.log(anchor ? `checkpoint of ${anchor.writtenAt} (head row ${anchor.headId}) matches` : 'no earlier checkpoint: a cut tail before now cannot be detected');
        if (written && written.headId !== anchor?.headId) console.log(`checkpoint moved to head row ${written.headId} in ${file}`);
        return;
      }
      const problem = report.problem!;
      console.error(`audit chain BROKEN at row ${problem.id}: ${problem.reason}`);
      console.error(`${report.rows} rows before it verified; the checkpoint in ${file} was left as it was. Export the log (patchops audit export) and investigate who had write access to the database.`);
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
      const config = configOrExit();
      try {
        const from = opts.since ? new Date(opts.since) : undefined;
        if (from && Number.isNaN(from.getTime())) throw new CodedError(ErrorCode.InvalidInput, `--since "${opts.since}" is not a date: use YYYY-MM-DD`);
        const rows = await withDatabase(config, async (db) => {
          const fd = fs.openSync(opts.out, 'w');
          let n = 0;
          try {
            fs.writeSync(fd, csvLine(['id', 'at', 'actor', 'action', 'subject_type', 'subject_id', 'details', 'prev_hash', 'hash']));
            for await (const batch of iterateAudit(db.db, { actor: opts.actor, action: opts.action, from })) {
              fs.writeSync(fd, batch.map((r) => csvLine([r.id, r.at, r.actor, r.action, r.subjectType, r.subjectId, r.details, r.prevHash, r.hash])).join(''));
              n += batch.length;
            }
          } finally {
            fs.closeSync(fd);
          }
          return n;
        });
        console.log(`${rows} audit entries written to ${opts.out}`);
      } catch (e) {
        reportFatal(e);
      }
    });
}
