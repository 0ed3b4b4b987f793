import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { runDemo } from '../../runtime/demo';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'one whole patch cycle on a simulated fleet with local fakes of Slack, Teams, ServiceNow and SMTP (no account needed)',
    )
    .option('--auto', 'click the approvals itself and run unattended (also when stdin is not a terminal)')
    .option('--endpoints <n>', 'simulated endpoints', (v) => Number(v), 200)
    .option('--keep', 'keep the demo data folder afterwards')
    .action(async (opts: { auto?: boolean; endpoints: number; keep?: boolean }) => {
      if (!Number.isInteger(opts.endpoints) || opts.endpoints < 3 || opts.endpoints > 5000) {
        console.error('error: --endpoints must be a whole number from 3 to 5000');
        process.exit(2);
      }
      const auto = Boolean(opts.auto) || !process.stdin.isTTY;
      const abort = new AbortController();
      let signals = 0;
      const onSignal = () => {
        signals += 1;
        if (signals > 1) process.exit(130);
        process.stderr.write('\npatchops demo: stopping everything (Ctrl-C again to exit at once)\n');
        abort.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const result = await runDemo({
        auto,
        endpoints: opts.endpoints,
        keep: Boolean(opts.keep),
        tty: Boolean(process.stdout.isTTY),
        out: (line) => process.stdout.write(`${line}\n`),
        signal: abort.signal,
        waitForPerson: async (prompt) => {
          const rl = createInterface({ input: process.stdin, output: process.stdout });
          try {
            await rl.question(prompt);
          } finally {
            rl.close();
          }
        },
      });
      if (result.ok) {
        process.stdout.write('patchops demo: the cycle COMPLETED; everything it started is stopped\n');
        process.exit(0);
      }
      process.stderr.write(`patchops demo failed: ${result.reason ?? `the cycle ended ${result.stage}`}\n`);
      process.exit(abort.signal.aborted ? 130 : 1);
    });
}
