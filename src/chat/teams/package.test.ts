import { inflateSync } from 'node:zlib';
import { unzipSync, strFromU8 } from 'fflate';
import { describe, expect, it } from 'vitest';
import { teamsAppPackage, teamsManifest } from './package';

const APP_ID = '6c1f0a2e-94a1-4c2b-9d1e-2b7f5a0c1d3e';

function pngSize(bytes: Uint8Array): { width: number; height: number; colorType: number; pixels: Buffer } {
  const b = Buffer.from(bytes);
  expect(b.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  let off = 8;
  let width = 0;
  let height = 0;
  let colorType = 0;
  const idat: Buffer[] = [];
  while (off < b.length) {
    const len = b.readUInt32BE(off);
    const type = b.toString('ascii', off + 4, off + 8);
    const data = b.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      colorType = data[9]!;
    }
    if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  return { width, height, colorType, pixels: inflateSync(Buffer.concat(idat)) };
}

describe('Teams app package', () => {
  it('zips manifest.json, a 192×192 color icon and a 32×32 transparent outline icon at the root', () => {
    const files = unzipSync(teamsAppPackage({ appId: APP_ID, publicUrl: 'https://patchops.example.com' }));
    expect(Object.keys(files).sort()).toEqual(['color.png', 'manifest.json', 'outline.png']);
    const manifest = JSON.parse(strFromU8(files['manifest.json']!)) as { bots: Array<Record<string, unknown>> };
    expect(manifest).toMatchObject({
      manifestVersion: '1.17',
      id: APP_ID,
      icons: { color: 'color.png', outline: 'outline.png' },
      validDomains: ['patchops.example.com'],
    });
    expect(manifest.bots[0]).toMatchObject({ botId: APP_ID, scopes: ['personal', 'team', 'groupChat'] });
    const color = pngSize(files['color.png']!);
    expect([color.width, color.height, color.colorType]).toEqual([192, 192, 6]);
    expect(color.pixels.length).toBe((192 * 4 + 1) * 192);
    const outline = pngSize(files['outline.png']!);
    expect([outline.width, outline.height]).toEqual([32, 32]);
    // outline: only white or fully transparent pixels, some of each
    let white = 0;
    let clear = 0;
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const i = y * (32 * 4 + 1) + 1 + x * 4;
        const [r, g, b, a] = outline.pixels.subarray(i, i + 4);
        if (a === 0) clear++;
        else if (r === 255 && g === 255 && b === 255 && a === 255) white++;
        else throw new Error(`outline pixel ${x},${y} is neither white nor transparent`);
      }
    }
    expect(white).toBeGreaterThan(20);
    expect(clear).toBeGreaterThan(500);
  });

  it('refuses an app id that is not a GUID, saying what to set', () => {
    expect(() => teamsManifest({ appId: 'patchops', publicUrl: 'https://x.example' })).toThrow(/TEAMS_APP_ID/);
  });
});
