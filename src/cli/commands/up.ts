import type { Command } from 'commander';
import type { Config } from '../../config/index';
import { integrationStates } from '../../runtime/integrations';
import { up, type Running } from '../../runtime/up';
import { configOrExit, loggerFor, reportFatal, runUntilSignal } from '../context';

export function registerUpCommands(program: Command): void {
  program
    .command('up')
    .description(
      'the main job: migrations, Temporal (embedded dev server unless TEMPORAL_ADDRESS), worker and HTTP server',
    )
    .action(async () => run({ worker: true, server: true }));
  program
    .command('worker')
    .description('only the Temporal worker (needs DATABASE_URL, or runs its own embedded database)')
    .action(async () => run({ worker: true, server: false }));
  program
    .command('server')
    .description('only the HTTP server: dashboard, Slack, Teams, agent gateway, webhooks, /healthz')
    .action(async () => run({ worker: false, server: true }));
}

async function run(what: { worker: boolean; server: boolean }): Promise<void> {
  const config = configOrExit();
  const logger = loggerFor(config);
  let running: Running;
  try {
    running = await up(config, logger, { ...what, onProgress: (m) => process.stderr.write(`patchops: ${m}\n`) });
  } catch (e) {
    reportFatal(e);
  }
  process.stdout.write(readyBlock(config, running, what));
  await runUntilSignal(running.stop, logger);
  process.stdout.write('patchops stopped\n');
  process.exit(0);
}

export function readyBlock(config: Config, r: Running, what: { worker: boolean; server: boolean }): string {
  const lines: string[] = ['', 'patchops is up'];
  const row = (k: string, v: string) => lines.push(`  ${k.padEnd(14)} ${v}`);
  if (r.serverUrl) {
    row('Dashboard', `${config.http.publicUrl}/`);
    if (r.firstAdmin) {
      row(
        'First admin',
        r.firstAdmin.generatedPassword
          ? `user ${r.firstAdmin.username}, password ${r.firstAdmin.generatedPassword} (generated, shown only now; add users with \`patchops users add\`)`
          : `user ${r.firstAdmin.username}, password from PATCHOPS_ADMIN_PASSWORD`,
      );
    }
    row('Health', `${config.http.publicUrl}/healthz`);
  }
  row(
    'Temporal',
    `${r.temporal.address} (namespace ${r.temporal.namespace}${r.temporal.embedded ? ', embedded dev server' : ''})`,
  );
  if (r.temporal.uiUrl) row('Temporal UI', r.temporal.uiUrl);
  row('Database', r.db.description);
  row('Worker', what.worker ? 'running (task queue patchops-cycles)' : 'not in this process');
  const integrations = integrationStates(config);
  integrations.forEach((i, n) => row(n === 0 ? 'Integrations' : '', `${i.label}: ${i.summary}`));
  if (config.agents.enrollSecret)
    row('Enrol agent', `npx patchops agent --server ${config.http.publicUrl} --enroll-secret "$AGENT_ENROLL_SECRET"`);
  else {
    row('Enrol agent', 'npx patchops enroll-secret add --name site-a   (prints a secret), then');
    row('', `npx patchops agent --server ${config.http.publicUrl} --enroll-secret <that secret>`);
  }
  row('Stop', 'Ctrl-C');
  lines.push('patchops ready', '');
  return lines.join('\n');
}
