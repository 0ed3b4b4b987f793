import { Command, CommanderError } from 'commander';
import { registerAgentCommands } from './commands/agent';
import { registerChatCommands } from './commands/chat';
import { registerCycleCommands } from './commands/cycles';
import { registerDashboardCommands } from './commands/dashboard';
import { registerDoctorCommand } from './commands/doctor';
import { registerMigrateCommand } from './commands/migrate';
import { registerUpCommands } from './commands/up';

const program = new Command('patchops')
  .description('Patch management as durable Temporal workflows, driven from Slack, Teams and ServiceNow')
  .showHelpAfterError('(run `patchops --help` for the commands)')
  .exitOverride();

registerUpCommands(program);
registerMigrateCommand(program);
registerAgentCommands(program);
registerDoctorCommand(program);
registerDashboardCommands(program);
registerCycleCommands(program);
registerChatCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  throw e;
}
