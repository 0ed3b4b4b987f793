import { generateKeyPairSync, sign } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { ManifestBody, SignedManifest } from '../shared/agent-protocol';
import { RecordingRebooter } from './reboot';
import { JobRunner } from './runner';
import type { AgentState } from './state';
import { downloadVerified, sha256OfBuffer, verifyManifest, type VerificationError } from './verify';

const keys = () =>
  generateKeyPairSync('ed25519', {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
const pinned = keys();
const attacker = keys();
const installer = Buffer.from('#!/bin/sh\necho installer 1.2.3\n');
const goodHash = sha256OfBuffer(installer);
const now = new Date('2026-11-27T10:00:00Z');

function signed(body: Partial<ManifestBody> = {}, privateKey = pinned.privateKey): SignedManifest {
  const text = JSON.stringify({
    version: 5,
    expiresAt: '2026-12-01T00:00:00Z',
    files: [{ name: 'tool-1.2.3.sh', sha256: goodHash, size: installer.length }],
    ...body,
  });
  return { body: text, signature: sign(null, Buffer.from(text), privateKey).toString('base64'), keyId: 1 };
}

const reason = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as VerificationError).reason;
  }
  return 'accepted';
};

describe('verifyManifest', () => {
  it.each([
    ['a good manifest', () => signed(), 4, 'accepted'],
    ['the same version again', () => signed(), 5, 'accepted'],
    ['a signature by another key', () => signed({}, attacker.privateKey), 0, 'bad_signature'],
    [
      'a body changed after signing',
      () => ({ ...signed(), body: signed().body.replace('"version":5', '"version":6') }),
      0,
      'bad_signature',
    ],
    ['an expired manifest', () => signed({ expiresAt: '2026-11-27T09:59:59Z' }), 0, 'expired'],
    ['an older manifest than seen', () => signed({ version: 4 }), 5, 'older_manifest'],
    ['a garbage signature', () => ({ ...signed(), signature: 'AAAA' }), 0, 'bad_signature'],
  ] as const)('%s → %s', (_name, make, lastSeenVersion, expected) => {
    expect(reason(() => verifyManifest(make(), pinned.publicKey, { now, lastSeenVersion }))).toBe(expected);
  });
});

const respond = (map: Record<string, Buffer | number | Error>): typeof fetch =>
  (async (url: string | URL | Request) => {
    const u = String(url);
    const base = Object.keys(map).find((b) => u.startsWith(b));
    const v = base ? map[base] : 404;
    if (v instanceof Error) throw v;
    if (typeof v === 'number') return new Response('no', { status: v });
    return new Response(v);
  }) as typeof fetch;

describe('downloadVerified', () => {
  const manifest = verifyManifest(signed(), pinned.publicKey, { now, lastSeenVersion: 0 });
  const file = { name: 'tool-1.2.3.sh', sha256: goodHash };

  it('falls back from a distribution point that is down or serves tampered bytes to the central server', async () => {
    const destDir = await fs.mkdtemp(path.join(os.tmpdir(), 'po-dl-'));
    const fetchImpl = respond({
      'http://dp-down': new Error('ECONNREFUSED'),
      'http://dp-evil': Buffer.from('evil'),
      'http://central': installer,
    });
    const p = await downloadVerified(file, manifest, {
      sources: ['http://dp-down', 'http://dp-evil', 'http://central'],
      destDir,
      fetchImpl,
    });
    expect(await fs.readFile(p)).toEqual(installer);
  });

  it('refuses when every source serves wrong bytes, and files the manifest does not list', async () => {
    const destDir = await fs.mkdtemp(path.join(os.tmpdir(), 'po-dl-'));
    const evil = respond({ 'http://central': Buffer.from('tampered') });
    await expect(
      downloadVerified(file, manifest, { sources: ['http://central'], destDir, fetchImpl: evil }),
    ).rejects.toMatchObject({ reason: 'bad_hash' });
    await expect(
      downloadVerified({ name: 'x', sha256: 'a'.repeat(64) }, manifest, {
        sources: ['http://central'],
        destDir,
        fetchImpl: evil,
      }),
    ).rejects.toMatchObject({ reason: 'not_in_manifest' });
    expect(await fs.readdir(destDir)).toEqual([]);
  });

  it("stops reading a body past the manifest's size, refuses it (bad_size) and leaves no partial file", async () => {
    const destDir = await fs.mkdtemp(path.join(os.tmpdir(), 'po-dl-'));
    let pulled = 0;
    let cancelled = false;
    const endless = (async () =>
      new Response(
        new ReadableStream<Uint8Array>({
          // "Endless" up to 16 MiB, so that code without the cap ends (with the wrong reason) instead of hanging.
          pull(c) {
            if (++pulled > 256) return c.close();
            c.enqueue(new Uint8Array(64 * 1024));
          },
          cancel() {
            cancelled = true;
          },
        }),
      )) as typeof fetch;
    await expect(
      downloadVerified(file, manifest, { sources: ['http://central'], destDir, fetchImpl: endless }),
    ).rejects.toMatchObject({ reason: 'bad_size' });
    expect(cancelled).toBe(true);
    expect(pulled).toBeLessThan(4);
    const announced = (async () =>
      new Response(installer, { headers: { 'content-length': String(installer.length + 1) } })) as typeof fetch;
    await expect(
      downloadVerified(file, manifest, { sources: ['http://central'], destDir, fetchImpl: announced }),
    ).rejects.toMatchObject({ reason: 'bad_size' });
    expect(await fs.readdir(destDir)).toEqual([]);
  });

  it('sends each source the Authorization header authFor gives it, and none when it gives none', async () => {
    const destDir = await fs.mkdtemp(path.join(os.tmpdir(), 'po-dl-'));
    const sent: Array<[string, string | null]> = [];
    const fetchImpl = (async (url: string | URL | Request, init?: RequestInit) => {
      sent.push([new URL(String(url)).origin, new Headers(init?.headers).get('authorization')]);
      return String(url).startsWith('http://central') ? new Response(installer) : new Response('no', { status: 503 });
    }) as typeof fetch;
    const authFor = (source: string) =>
      source === 'http://central' ? 'Bearer node-key' : source === 'http://dp1' ? 'Bearer v1.tok.sig' : undefined;
    await downloadVerified(file, manifest, {
      sources: ['http://dp1', 'http://dp2', 'http://central'],
      destDir,
      fetchImpl,
      authFor,
    });
    expect(sent).toEqual([
      ['http://dp1', 'Bearer v1.tok.sig'],
      ['http://dp2', null],
      ['http://central', 'Bearer node-key'],
    ]);
  });
});

describe('an install job carrying files installs nothing when verification fails', () => {
  async function runInstall(manifest: SignedManifest, served: Buffer, lastManifestVersion = 0) {
    let state: AgentState = {
      serverUrl: 's',
      endpointId: 'e',
      nodeKey: 'k',
      manifestSigningKey: pinned.publicKey,
      machineId: 'm',
      lastManifestVersion,
      previousVersions: {},
    };
    const installed: string[] = [];
    const runner = new JobRunner({
      backends: new Map(),
      getState: () => state,
      updateState: async (p) => {
        state = { ...state, ...p };
      },
      rebooter: new RecordingRebooter(),
      fetchManifest: async () => manifest,
      sources: () => ['http://central'],
      downloadDir: await fs.mkdtemp(path.join(os.tmpdir(), 'po-dl-')),
      fileInstaller: async (f) => {
        installed.push(f);
        return { ok: true, log: '' };
      },
      fetchImpl: respond({ 'http://central': served }),
      now: () => now,
      log: pino({ level: 'silent' }),
    });
    const result = await runner.run({
      id: 'j',
      kind: 'install',
      payload: {
        patches: [
          {
            patchId: 'third-party:tool:1.2.3',
            packages: [{ manager: 'file', name: 'tool-1.2.3.sh', sha256: goodHash }],
          },
        ],
        reboot: { behaviour: 'never' },
      },
      deadline: null,
      leaseExpiresAt: '',
    });
    return { result, installed, state };
  }

  it('installs a verified file and remembers the manifest version', async () => {
    const { result, installed, state } = await runInstall(signed(), installer);
    expect(result.status).toBe('succeeded');
    expect(installed).toHaveLength(1);
    expect(state.lastManifestVersion).toBe(5);
  });

  it.each([
    ['tampered file', signed(), Buffer.from('tampered'), 0, /bad_hash/],
    ['bad signature', signed({}, attacker.privateKey), installer, 0, /bad_signature/],
    ['expired manifest', signed({ expiresAt: '2026-11-01T00:00:00Z' }), installer, 0, /expired/],
    ['older manifest', signed({ version: 3 }), installer, 5, /older_manifest/],
  ] as const)('%s → refused, reported, nothing installed', async (_n, manifest, served, last, why) => {
    const { result, installed } = await runInstall(manifest, served, last);
    expect(result.status).toBe('failed');
    expect(result.error).toMatch(why);
    expect(result.patches).toEqual([expect.objectContaining({ patchId: 'third-party:tool:1.2.3', state: 'failed' })]);
    expect(installed).toEqual([]);
  });
});
