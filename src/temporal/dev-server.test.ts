import fs from 'node:fs';
import { expect, inject, it } from 'vitest';
import { freePort, startDevServer } from './dev-server';

/** Field 5 of /proc/<pid>/stat: the process group. */
function processGroupOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

it('runs the dev server in its own process group, so a Ctrl-C to patchops reaches patchops only and it stops the server itself', async () => {
  const server = await startDevServer({ cliPath: inject('temporalCliPath'), port: await freePort() });
  try {
    expect(processGroupOf(server.pid)).toBe(server.pid);
    expect(processGroupOf(server.pid)).not.toBe(processGroupOf(process.pid));
  } finally {
    await server.stop();
  }
  expect(
    fs.existsSync(`/proc/${server.pid}`) && !fs.readFileSync(`/proc/${server.pid}/stat`, 'utf8').includes(') Z '),
  ).toBe(false);
}, 90_000);
