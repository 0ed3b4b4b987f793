/**
 * `patchops login --server URL` (asks for the web user name and password, or takes `--token pat_…`) and
 * `patchops logout` (revokes the token on the server and deletes the stored credentials).
 */
import readline from 'node:readline';
import type { Command } from 'commander';
import {
  ApiCallError,
  callApi,
  deleteCredentials,
  normalizeServer,
  readCredentials,
  writeCredentials,
} from '../api-client';

/** Reads `prompts.length` answers: asked on a terminal (the last one hidden), or lines of standard input otherwise. */
async function ask(prompts: string[]): Promise<string[]> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8').split(/\r?\n/).slice(0, prompts.length);
  }
  const answers: string[] = [];
  for (const [i, prompt] of prompts.entries()) {
    const hidden = i === prompts.length - 1;
    const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: true });
    if (hidden) {
      const out = rl as unknown as { _writeToOutput: (s: string) => void; output: NodeJS.WriteStream };
      out._writeToOutput = (s: string) => {
        if (s.startsWith(prompt)) out.output.write(prompt);
      };
    }
    answers.push(await new Promise<string>((resolve) => rl.question(prompt, resolve)));
    if (hidden) process.stdout.write('\n');
    rl.close();
  }
  return answers;
}

function fail(e: unknown): never {
  if (e instanceof ApiCallError) console.error(`error [${e.code}]: ${e.message}`);
  else console.error(`error: ${(e as Error).message}`);
  process.exit(1);
}

interface Whoami {
  identity: string;
  scope: string;
  roles: string[];
}

export function registerSessionCommands(program: Command): void {
  program
    .command('login')
    .description('sign in to a patchops server and keep a personal access token for the other commands')
    .requiredOption('--server <url>', 'the server, e.g. http://127.0.0.1:3000')
    .option('--token <pat>', 'use a token made elsewhere (the dashboard, POST /api/v1/login) instead of a password')
    .option('--scope <scope>', 'read | approve | admin: the most the token may do (your role may be lower)', 'admin')
    .option('--name <name>', 'what the token is for', 'patchops CLI')
    .option('--days <n>', 'how long the token lives (1-366)', '90')
    .action(async (opts: { server: string; token?: string; scope: string; name: string; days: string }) => {
      try {
        const server = normalizeServer(opts.server);
        let token = opts.token;
        if (!token) {
          const [user, password] = await ask(['user: ', 'password: ']);
          if (!user || !password) throw new Error('a user name and a password are needed (or --token pat_…)');
          const made = await callApi<{ token: string }>(server, null, 'POST', '/login', {
            user: user.trim(),
            password,
            scope: opts.scope,
            name: opts.name,
            expiresInDays: Number(opts.days),
          });
          token = made.token;
        }
        const me = await callApi<Whoami>(server, token, 'GET', '/whoami');
        const file = await writeCredentials({ server, token });
        console.log(
          `logged in to ${server} as ${me.identity} (scope ${me.scope}; roles ${me.roles.join(', ') || 'none'}); token kept in ${file}`,
        );
      } catch (e) {
        fail(e);
      }
    });

  program
    .command('logout')
    .description('revoke the stored token on the server and forget it here')
    .action(async () => {
      const c = await readCredentials();
      if (!c) {
        console.log('not logged in');
        return;
      }
      const id = /^pat_([0-9a-f]{16})_/.exec(c.token)?.[1];
      try {
        if (id) await callApi(c.server, c.token, 'DELETE', `/tokens/${id}`);
      } catch (e) {
        // A token the server no longer accepts is as good as revoked; anything else is said, and the file kept.
        if (!(e instanceof ApiCallError && e.status === 401)) fail(e);
      }
      await deleteCredentials();
      console.log(`logged out of ${c.server}`);
    });
}
