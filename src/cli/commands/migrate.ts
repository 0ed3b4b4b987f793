import type { Command } from 'commander';
import { startDatabase } from '../../runtime/database';
import { configOrExit, loggerFor, reportFatal } from '../context';

export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('apply the database migrations (DATABASE_URL, or the embedded database under ./data) and exit')
    .action(async () => {
      const config = configOrExit();
      const logger = loggerFor(config);
      try {
        const db = await startDatabase(config, logger);
        console.log(`migrations applied: ${db.description}`);
        await db.stop();
      } catch (e) {
        reportFatal(e);
      }
    });
}
