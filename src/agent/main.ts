/**
 * The bundled agent's entry (`patchops-agent`): the agent alone, without the rest of the `patchops` command.
 * `npm run package:agent` bundles it (scripts/package-agent.mjs); no top-level await, so it bundles as CommonJS too.
 */
import { Command, CommanderError } from 'commander';
import { AGENT_VERSION } from './agent';
import { configureAgentCommand } from './cli';

const program = configureAgentCommand(new Command('patchops-agent'))
  .version(AGENT_VERSION, '-V, --version', 'print the agent version')
  .showHelpAfterError('(run `patchops-agent --help` for the options)')
  .exitOverride();

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  process.stderr.write(`error: ${(e as Error).message}\n`);
  process.exit(1);
});
