/**
 * Where the Teams bot may send: a Bot Framework activity names its `serviceUrl` (the connector replies go
 * to), and an activity we stored is later continued there for proactive posts. A forged or stale
 * serviceUrl would make every reply, with its card and cycle details, go to whoever named it, so replies
 * go only to Bot Framework's documented Teams connector hosts (https) or to connectors configured in
 * TEAMS_SERVICE_URLS; emulator mode also allows the loopback connector the Bot Framework Emulator runs.
 *
 * The documented hosts are the Teams service endpoints of the public cloud (smba.trafficmanager.net, with
 * its regional paths such as /amer/ and /emea/), GCC, GCC High and DoD (Microsoft 365 Agents SDK
 * `TeamsServiceEndpoints`; "Configure Bot Framework bots for US Government customers").
 */
import { isIP } from 'node:net';

export const TEAMS_SERVICE_HOSTS: readonly string[] = [
  'smba.trafficmanager.net',
  'smba.infra.gcc.teams.microsoft.com',
  'smba.infra.gov.teams.microsoft.us',
  'smba.infra.dod.teams.microsoft.us',
];

export interface ServiceUrlPolicyOptions {
  /** TEAMS_SERVICE_URLS: a serviceUrl is allowed when it starts with one of these (same origin, path prefix). */
  configured?: readonly string[];
  /** Emulator mode: http(s) connectors on loopback addresses (the Bot Framework Emulator's own). */
  allowLoopback?: boolean;
}

/** Answers whether replies may be sent to a serviceUrl. Not a URL, userinfo, or a non-http(s) scheme: no. */
export type ServiceUrlPolicy = (serviceUrl: unknown) => boolean;

export function serviceUrlPolicy(o: ServiceUrlPolicyOptions = {}): ServiceUrlPolicy {
  const configured = (o.configured ?? []).map((u) => {
    const url = new URL(u);
    return { origin: url.origin, path: url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/` };
  });
  return (serviceUrl) => {
    if (typeof serviceUrl !== 'string' || serviceUrl.length > 2048) return false;
    let url: URL;
    try {
      url = new URL(serviceUrl);
    } catch {
      return false;
    }
    if (url.username || url.password || !/^https?:$/.test(url.protocol)) return false;
    if (url.protocol === 'https:' && url.port === '' && TEAMS_SERVICE_HOSTS.includes(url.hostname.toLowerCase()))
      return true;
    const path = url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`;
    if (configured.some((c) => c.origin === url.origin && path.startsWith(c.path))) return true;
    return Boolean(o.allowLoopback) && isLoopbackHost(url.hostname);
  };
}

/** 127.0.0.0/8, ::1 (also IPv4-mapped) and localhost. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.replace(/^\[|\]$/g, '').toLowerCase();
  if (a === '::1' || a === '0:0:0:0:0:0:0:1') return true;
  const v4 = a.startsWith('::ffff:') ? a.slice(7) : a;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

function isLoopbackHost(hostname: string): boolean {
  return hostname.toLowerCase() === 'localhost' || isLoopbackAddress(hostname);
}
