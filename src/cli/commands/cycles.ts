/**
 * The admin verbs on the command line: the same words as `/patch …` in chat, parsed by the shared
 * grammar and run by the shared executor, against a running `patchops up` (its Temporal and database).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import { Client, Connection } from '@temporalio/client';
import type { Command } from 'commander';
import { sql } from 'drizzle-orm';
import { parseCommand, usage } from '../../commands/grammar';
import type { Config } from '../../config/index';
import type { Database } from '../../db/client';
import { hasRole } from '../../db/identities';
import { getPolicy, listPolicies, savePolicy } from '../../db/policies';
import { isCodedError } from '../../domain/errors';
import { executeCommand } from '../../commands/execute';
import { createCycleService } from '../../services/temporal-cycle-service';
import { connectAppDatabase, loadAuditKeys } from '../../runtime/database';
import { temporalConnectionOptions } from '../../temporal/connection';
import { configOrExit } from '../context';

const VERBS_ON_CLI = ['status', 'cycles', 'scan', 'start', 'approve', 'reject', 'pause', 'resume', 'cancel', 'rollback', 'exceptions', 'endpoints', 'roles'] as const;

function quote(word: string): string {
  return /\s/.test(word) && !/^["'].*["']$/.test(word) ? (word.includes('"') ? `'${word}'` : `"${word}"`) : word;
}

export function cliIdentity(as?: string): string {
  if (as) return as.includes(':') ? as : `cli:${as}`;
  return `cli:${os.userInfo().username}`;
}


export function temporalAddressOf(config: Config): string {
  return config.temporal.address ?? `127.0.0.1:${config.temporal.devPort}`;
}

async function openDatabase(config: Config): Promise<Database> {
  await loadAuditKeys(config);
  let database: Database | undefined;
  try {
    // The embedded database's URL carries the password a running `patchops up` wrote into the data folder.
    database = connectAppDatabase(config, { max: 2, applicationName: 'patchops-cli' });
    await database.db.execute(sql`select 1`);
    return database;
  } catch (e) {
    await database?.close();
    const where = config.database.url ? 'DATABASE_URL' : `the embedded database on 127.0.0.1:${config.database.embeddedPort}`;
    const cause = ((e as { cause?: unknown }).cause as Error | undefined) ?? (e as Error);
    throw new Error(`nothing answers at ${where} (${cause.message || cause.name}). Is \`patchops up\` (npm start) running? Start it, or set DATABASE_URL to your PostgreSQL.`);
  }
}

async function openTemporal(config: Config): Promise<{ client: Client; connection: Connection }> {
  const address = temporalAddressOf(config);
  try {
    const connection = await Connection.connect({ ...temporalConnectionOptions(config.temporal, address), connectTimeout: 5000 });
    return { connection, client: new Client({ connection, namespace: config.temporal.namespace }) };
  } catch (e) {
    throw new Error(
      `nothing answers at Temporal ${address} (${(e as Error).message}). Is \`patchops up\` (npm start) running? Start it, or set TEMPORAL_ADDRESS to your Temporal cluster.`,
    );
  }
}

function fail(message: string, code = 1): never {
  console.error(message);
  process.exit(code);
}

/** Runs one verb line through the grammar and the shared executor; exits 2 on bad words, 1 on refusal/error. */
async function runVerb(words: string[], opts: { as?: string; json?: boolean }): Promise<void> {
  const text = words.map(quote).join(' ');
  const parsed = parseCommand(text);
  if (!parsed.ok) fail(`${parsed.error}\n\nusage:\n${parsed.usage}`, 2);
  const config = configOrExit();
  let database: Database | undefined;
  let connection: Connection | undefined;
  try {
    database = await openDatabase(config);
    const t = await openTemporal(config);
    connection = t.connection;
    const identity = cliIdentity(opts.as);
    const service = createCycleService({ client: t.client, db: database.db });
    // The CLI runs where the database credentials are: its operator is an admin. Approvals still go
    // through the workflow's validator, which checks the --as identity against the policy's approvers.
    const isApprover = await hasRole(database.db, identity, 'approver');
    const result = await executeCommand(parsed.command, { identity, channel: 'cli', service, db: database.db, isAdmin: true, isApprover });
    const error = (result.data as { error?: string } | undefined)?.error;
    if (opts.json) console.log(JSON.stringify(result.data ?? { text: result.text }, null, 2));
    else if (error) console.error(`${result.text}`);
    else console.log(result.text);
    if (error) process.exitCode = 1;
  } catch (e) {
    if (isCodedError(e)) fail(`error [${e.code}]: ${e.message}`);
    fail(`error: ${(e as Error).message}`);
  } finally {
    await connection?.close().catch(() => undefined);
    await database?.close().catch(() => undefined);
  }
}

export function registerCycleCommands(program: Command): void {
  for (const verb of VERBS_ON_CLI) {
    program
      .command(verb)
      .description(usage(verb).split('\n')[0]!.replace(/:$/, ''))
      .argument('[words...]')
      .option('--as <identity>', 'who you act as (cli:<user>, slack:U123 …); default cli:<your login>')
      .option('--emergency', 'start: run under the emergency overrides')
      .option('--json', 'print the result as JSON')
      .allowUnknownOption()
      .addHelpText('after', `\n${usage(verb)}`)
      .action(async (words: string[], opts: { as?: string; emergency?: boolean; json?: boolean }) => {
        await runVerb([verb, ...words, ...(opts.emergency ? ['--emergency'] : [])], opts);
      });
  }

  const policies = program.command('policies').description('deployment policies: list, show <name> [version], set <file.json>');
  policies
    .command('list')
    .description('the latest version of every policy')
    .action(async () => {
      await withDatabase(async (db) => {
        for (const p of await listPolicies(db.db)) console.log(`${p.name.padEnd(20)} v${p.version}  ${p.description}`);
      });
    });
  policies
    .command('show')
    .argument('<name>')
    .argument('[version]')
    .description('print a policy (all fields, defaults filled in) as JSON')
    .action(async (name: string, version?: string) => {
      await withDatabase(async (db) => {
        const p = await getPolicy(db.db, name, version === undefined ? undefined : Number(version));
        console.log(JSON.stringify({ version: p.version, createdBy: p.createdBy, createdAt: p.createdAt, policy: p.policy }, null, 2));
      });
    });
  policies
    .command('set')
    .argument('<file>', 'a JSON policy document ({ "name": "servers", … })')
    .option('--as <identity>', 'who saves it')
    .description('validate a policy file and store it as the next version')
    .action(async (file: string, opts: { as?: string }) => {
      let doc: unknown;
      try {
        doc = JSON.parse(await fs.readFile(file, 'utf8'));
      } catch (e) {
        fail(`cannot read ${file} as JSON: ${(e as Error).message}`, 2);
      }
      await withDatabase(async (db) => {
        const p = await savePolicy(db.db, doc, cliIdentity(opts.as));
        console.log(`policy ${p.name} saved as version ${p.version}`);
      });
    });
}

async function withDatabase(fn: (db: Database) => Promise<void>): Promise<void> {
  const config = configOrExit();
  let database: Database | undefined;
  try {
    database = await openDatabase(config);
    await fn(database);
  } catch (e) {
    if (isCodedError(e)) fail(`error [${e.code}]: ${e.message}`);
    fail(`error: ${(e as Error).message}`);
  } finally {
    await database?.close().catch(() => undefined);
  }
}
