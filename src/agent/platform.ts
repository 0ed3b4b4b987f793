/** Platform detection: OS facts, a stable machine id, and which package-manager backends apply here. */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import { execFile, type Exec } from './exec';

export interface PlatformFacts {
  osFamily: 'linux' | 'windows' | 'macos';
  osName: string;
  osVersion: string;
  arch: string;
  hostname: string;
  machineId: string;
}

/** Parses /etc/os-release (KEY="value" lines). */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
  }
  return out;
}

export async function detectPlatform(
  exec: Exec = execFile,
  platform: NodeJS.Platform = process.platform,
): Promise<PlatformFacts> {
  const hostname = os.hostname();
  const arch = os.arch();
  if (platform === 'win32') {
    const reg = await exec('reg', ['query', 'HKLM\\SOFTWARE\\Microsoft\\Cryptography', '/v', 'MachineGuid']);
    const guid = /MachineGuid\s+REG_SZ\s+(\S+)/.exec(reg.stdout)?.[1];
    return {
      osFamily: 'windows',
      osName: 'Windows',
      osVersion: os.release(),
      arch,
      hostname,
      machineId: guid ?? fallbackId(hostname),
    };
  }
  if (platform === 'darwin') {
    const sw = await exec('sw_vers', []);
    const ver = /ProductVersion:\s*(\S+)/.exec(sw.stdout)?.[1] ?? os.release();
    const io = await exec('ioreg', ['-rd1', '-c', 'IOPlatformExpertDevice']);
    const uuid = /"IOPlatformUUID" = "([^"]+)"/.exec(io.stdout)?.[1];
    return {
      osFamily: 'macos',
      osName: 'macOS',
      osVersion: ver,
      arch,
      hostname,
      machineId: uuid ?? fallbackId(hostname),
    };
  }
  const rel = parseOsRelease(await fs.readFile('/etc/os-release', 'utf8').catch(() => ''));
  const mid =
    (await fs.readFile('/etc/machine-id', 'utf8').catch(() => '')).trim() ||
    (await fs.readFile('/var/lib/dbus/machine-id', 'utf8').catch(() => '')).trim();
  return {
    osFamily: 'linux',
    osName: rel.NAME ?? 'Linux',
    osVersion: rel.VERSION_ID ?? os.release(),
    arch,
    hostname,
    machineId: mid || fallbackId(hostname),
  };
}

function fallbackId(hostname: string): string {
  const nets = Object.values(os.networkInterfaces())
    .flat()
    .map((n) => n?.mac)
    .filter((m) => m && m !== '00:00:00:00:00:00')
    .sort();
  return `derived-${createHash('sha256')
    .update(`${hostname}|${nets.join(',')}`)
    .digest('hex')
    .slice(0, 32)}`;
}

async function onPath(exec: Exec, name: string, platform: NodeJS.Platform): Promise<boolean> {
  const r = platform === 'win32' ? await exec('where', [name]) : await exec('sh', ['-c', `command -v ${name}`]);
  return r.code === 0 && r.stdout.trim() !== '';
}

/** Names of the backends that apply on this machine, in the order they are asked. */
export async function availableBackends(
  facts: Pick<PlatformFacts, 'osFamily'>,
  exec: Exec = execFile,
  platform: NodeJS.Platform = process.platform,
): Promise<string[]> {
  const names: string[] = [];
  if (facts.osFamily === 'windows') {
    names.push('windows-update');
    if (await onPath(exec, 'winget', platform)) names.push('winget');
  } else if (facts.osFamily === 'macos') {
    names.push('softwareupdate');
    if (await onPath(exec, 'brew', platform)) names.push('brew');
  } else {
    if (await onPath(exec, 'apt-get', platform)) names.push('apt');
    else if (await onPath(exec, 'dnf', platform)) names.push('dnf');
    else if (await onPath(exec, 'yum', platform)) names.push('dnf');
    else if (await onPath(exec, 'zypper', platform)) names.push('zypper');
    // Device firmware (LVFS), beside the package manager.
    if (await onPath(exec, 'fwupdmgr', platform)) names.push('fwupd');
  }
  return names;
}
