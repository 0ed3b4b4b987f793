import { Command, CommanderError } from 'commander';
import { registerFor } from './registry';

const program = new Command('patchops')
  .description('Patch management as durable Temporal workflows, driven from Slack, Teams and ServiceNow')
  .showHelpAfterError('(run `patchops --help` for the commands)')
  .exitOverride();

await registerFor(program, process.argv);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  throw e;
}
