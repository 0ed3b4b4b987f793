import fs from 'node:fs';
import type { Command } from 'commander';
import { sql } from 'drizzle-orm';
import { ConfigError, loadConfig, type Config } from '../../config/index';
import { connectDatabase } from '../../db/client';
import { integrationStates } from '../../runtime/integrations';
import { obtainTemporalCli } from '../../temporal/cli-binary';
import { connectClient } from '../../temporal/connection';
import { portFree } from '../../temporal/dev-server';

export interface DoctorCheck {
  name: string;
  ok: boolean;
  /** What was found. */
  detail: string;
  /** What to do about it, when not ok. */
  fix?: string;
  /** A warning is shown but does not fail doctor. */
  warning?: boolean;
}

/** Checks every dependency and integration setting and says, in plain words, what is wrong and how to fix it. */
export async function runDoctor(env: Record<string, string | undefined> = process.env): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  const major = Number(process.versions.node.split('.')[0]);
  checks.push({
    name: 'Node.js',
    ok: major >= 20,
    detail: `v${process.versions.node}`,
    fix: 'install Node.js 20 or newer',
  });

  let config: Config;
  try {
    config = loadConfig(env);
    checks.push({ name: 'configuration', ok: true, detail: 'every variable is valid' });
  } catch (e) {
    if (e instanceof ConfigError) {
      for (const p of e.problems)
        checks.push({ name: 'configuration', ok: false, detail: p, fix: 'correct the variable (see .env.example)' });
      return checks;
    }
    throw e;
  }

  // Database
  if (config.database.url) {
    const database = connectDatabase(config.database.url, { max: 1 });
    try {
      await database.db.execute(sql`select 1`);
      const applied = await database.db
        .execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`)
        .then((r) => Number((r.rows[0] as { n: number }).n))
        .catch(() => 0);
      checks.push({
        name: 'database',
        ok: true,
        detail: `reachable; ${applied} migrations applied`,
        ...(applied === 0 ? { warning: true, fix: 'run `patchops migrate` (npm start does it too)' } : {}),
      });
    } catch (e) {
      checks.push({
        name: 'database',
        ok: false,
        detail: `DATABASE_URL cannot be reached: ${(e as Error).message}`,
        fix: 'start PostgreSQL or correct DATABASE_URL; unset it to use the embedded database',
      });
    } finally {
      await database.close();
    }
  } else {
    const free = await portFree('127.0.0.1', config.database.embeddedPort);
    checks.push({
      name: 'database',
      ok: true,
      detail: `embedded PGlite in ${config.dataDir}/pglite${free ? '' : ` (port ${config.database.embeddedPort} in use: patchops is probably running)`}`,
    });
  }

  // Temporal
  if (config.temporal.address) {
    try {
      const { connection } = await connectClient(config.temporal, config.temporal.address);
      const info = await connection.workflowService.getSystemInfo({});
      await connection.close();
      checks.push({
        name: 'Temporal',
        ok: true,
        detail: `${config.temporal.address} answers (server ${info.serverVersion})`,
      });
    } catch (e) {
      checks.push({
        name: 'Temporal',
        ok: false,
        detail: `${config.temporal.address} does not answer: ${(e as Error).message}`,
        fix: 'check TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and the TLS/API-key variables; unset TEMPORAL_ADDRESS for the embedded server',
      });
    }
  } else {
    try {
      const cli = await obtainTemporalCli({
        explicitPath: config.temporal.cliPath,
        cacheDir: config.cacheDir,
        allowDownload: false,
        onProgress: (m) => process.stderr.write(`doctor: ${m}\n`),
      });
      checks.push({ name: 'Temporal CLI', ok: true, detail: `${cli.path} (${cli.route})` });
    } catch (e) {
      checks.push({ name: 'Temporal CLI', ok: false, detail: (e as Error).message, fix: 'see the routes above' });
    }
  }

  for (const i of integrationStates(config)) {
    checks.push({ name: i.label, ok: true, detail: i.summary, warning: !i.configured });
  }
  for (const [name, file] of [
    ['TEMPORAL_TLS_CERT', config.temporal.tls.certPath],
    ['TEMPORAL_TLS_KEY', config.temporal.tls.keyPath],
    ['TEMPORAL_TLS_CA', config.temporal.tls.caPath],
  ] as const) {
    if (file && !fs.existsSync(file))
      checks.push({ name, ok: false, detail: `${file} does not exist`, fix: `point ${name} at a readable file` });
  }
  return checks;
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check every dependency and integration setting, and say how to fix what is wrong')
    .action(async () => {
      const checks = await runDoctor();
      for (const c of checks) {
        const mark = !c.ok ? '✗' : c.warning ? '·' : '✓';
        console.log(`${mark} ${c.name.padEnd(14)} ${c.detail}`);
        if ((!c.ok || c.warning) && c.fix) console.log(`  ${''.padEnd(14)} → ${c.fix}`);
      }
      const failed = checks.filter((c) => !c.ok).length;
      console.log(failed === 0 ? '\nall good' : `\n${failed} problem(s) found`);
      process.exit(failed === 0 ? 0 : 1);
    });
}
