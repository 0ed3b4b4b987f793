/**
 * The Teams app package: manifest.json + color.png (192×192) + outline.png (32×32, white on transparent),
 * zipped at the root, ready to upload in Teams (Apps → Manage your apps → Upload an app) or the Developer Portal.
 * https://learn.microsoft.com/microsoftteams/platform/concepts/build-and-test/apps-package
 */
import { deflateSync, crc32 } from 'node:zlib';
import { zipSync, strToU8 } from 'fflate';

export interface TeamsPackageOptions {
  /** The bot's Microsoft App ID (TEAMS_APP_ID): also used as the Teams app id. */
  appId: string;
  /** PUBLIC_URL: the messaging endpoint is `${publicUrl}/api/messages` (set in the Azure Bot resource). */
  publicUrl: string;
  name?: string;
  version?: string;
  developerName?: string;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function teamsManifest(o: TeamsPackageOptions): Record<string, unknown> {
  if (!GUID.test(o.appId))
    throw new Error(
      `"${o.appId}" is not a Microsoft App ID (a GUID such as 00000000-0000-0000-0000-000000000000): set TEAMS_APP_ID or pass --app-id`,
    );
  const url = new URL(o.publicUrl);
  const name = o.name ?? 'patchops';
  const commands = [
    ['help', 'What I can do'],
    ['status', 'status [cycle]: a cycle, or the latest'],
    ['cycles', 'The recent patch cycles'],
    ['start', 'start <policy> [scope] [--emergency]'],
    ['approve', 'approve <cycle>'],
    ['reject', 'reject <cycle> <reason>'],
    ['pause', 'pause|resume|cancel <cycle>'],
    ['rollback', 'rollback <cycle> [endpoint]'],
    ['scan', 'scan <scope>'],
    ['report', 'report [scope]'],
  ].map(([title, description]) => ({ title, description }));
  return {
    $schema: 'https://developer.microsoft.com/en-us/json-schemas/teams/v1.17/MicrosoftTeams.schema.json',
    manifestVersion: '1.17',
    version: o.version ?? '1.0.0',
    id: o.appId,
    developer: {
      name: o.developerName ?? 'patchops',
      websiteUrl: `${url.origin}/`,
      privacyUrl: `${url.origin}/`,
      termsOfUseUrl: `${url.origin}/`,
    },
    name: { short: name.slice(0, 30), full: `${name}: patch management approvals and commands` },
    description: {
      short: 'Approve patch cycles and follow their progress.',
      full: 'patchops posts patch-cycle approvals as Adaptive Cards (Approve, Reject with a reason), follows each cycle with stage updates, and takes the same commands as the patchops CLI and Slack (/patch): status, cycles, start, approve, reject, pause, resume, cancel, rollback, scan, report.',
    },
    icons: { color: 'color.png', outline: 'outline.png' },
    accentColor: '#1F6FEB',
    bots: [
      {
        botId: o.appId,
        scopes: ['personal', 'team', 'groupChat'],
        supportsFiles: false,
        isNotificationOnly: false,
        commandLists: [{ scopes: ['personal', 'team', 'groupChat'], commands }],
      },
    ],
    permissions: ['identity', 'messageTeamMembers'],
    validDomains: [url.host],
  };
}

/** A PNG (8-bit RGBA, no interlace) of `size`×`size` from a pixel function. */
export function png(size: number, pixel: (x: number, y: number) => [number, number, number, number]): Uint8Array {
  const raw = Buffer.alloc((size * 4 + 1) * size);
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0; // filter: none
    for (let x = 0; x < size; x++) {
      const [r, g, b, a] = pixel(x, y);
      const i = y * (size * 4 + 1) + 1 + x * 4;
      raw[i] = r;
      raw[i + 1] = g;
      raw[i + 2] = b;
      raw[i + 3] = a;
    }
  }
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return new Uint8Array(
    Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]),
  );
}

/** Is (x, y) on the check mark of a `size` icon (two thick strokes)? */
function onCheck(x: number, y: number, size: number, width: number): boolean {
  const u = x / size;
  const v = y / size;
  const near = (ax: number, ay: number, bx: number, by: number) => {
    const dx = bx - ax;
    const dy = by - ay;
    const t = Math.max(0, Math.min(1, ((u - ax) * dx + (v - ay) * dy) / (dx * dx + dy * dy)));
    return Math.hypot(u - (ax + t * dx), v - (ay + t * dy)) <= width;
  };
  return near(0.25, 0.52, 0.43, 0.7) || near(0.43, 0.7, 0.76, 0.32);
}

export function colorIcon(): Uint8Array {
  return png(192, (x, y) => (onCheck(x, y, 192, 0.06) ? [255, 255, 255, 255] : [0x1f, 0x6f, 0xeb, 255]));
}

export function outlineIcon(): Uint8Array {
  return png(32, (x, y) => (onCheck(x, y, 32, 0.08) ? [255, 255, 255, 255] : [0, 0, 0, 0]));
}

/** The zip, files at its root as Teams requires. */
export function teamsAppPackage(o: TeamsPackageOptions): Uint8Array {
  return zipSync({
    'manifest.json': strToU8(JSON.stringify(teamsManifest(o), null, 2)),
    'color.png': colorIcon(),
    'outline.png': outlineIcon(),
  });
}
