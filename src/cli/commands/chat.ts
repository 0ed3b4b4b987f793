import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { teamsAppPackage } from '../../chat/teams/package';
import { configOrExit, reportFatal } from '../context';

export function registerChatCommands(program: Command): void {
  program
    .command('teams-package')
    .description(
      'write the Teams app package (manifest.json + icons, zipped) to upload in Teams or the Developer Portal',
    )
    .option('--out <file>', 'where to write the zip', 'patchops-teams.zip')
    .option('--app-id <guid>', 'Microsoft App ID of the bot (default TEAMS_APP_ID)')
    .option('--url <url>', 'public URL of patchops; Teams calls <url>/api/messages (default PUBLIC_URL)')
    .option('--name <name>', 'app name shown in Teams', 'patchops')
    .option('--version <semver>', 'package version (raise it for each upload)', '1.0.0')
    .action(async (opts: { out: string; appId?: string; url?: string; name: string; version: string }) => {
      const config = configOrExit();
      const appId = opts.appId ?? config.teams.appId;
      if (!appId) {
        console.error(
          'No bot app id: set TEAMS_APP_ID (the Microsoft App ID of your Azure Bot) or pass --app-id <guid>.',
        );
        process.exit(2);
      }
      try {
        const zip = teamsAppPackage({
          appId,
          publicUrl: opts.url ?? config.http.publicUrl,
          name: opts.name,
          version: opts.version,
        });
        const out = path.resolve(opts.out);
        await writeFile(out, zip);
        console.log(`Teams app package written: ${out} (${zip.length} bytes)`);
        console.log(
          `Messaging endpoint to set on the Azure Bot: ${(opts.url ?? config.http.publicUrl).replace(/\/$/, '')}/api/messages`,
        );
      } catch (e) {
        if (e instanceof Error && /not a Microsoft App ID/.test(e.message)) {
          console.error(e.message);
          process.exit(2);
        }
        reportFatal(e);
      }
    });
}
