/**
 * Where a webhook may go. A URL registered by an admin must not turn the server into a way to reach what only it
 * can reach (the database, a cloud metadata service at 169.254.169.254, other internal services): every address
 * the host resolves to must be public, unless WEBHOOK_ALLOW_PRIVATE=true. The connection is then made to the
 * addresses that were checked (the request's `lookup` returns them), so a DNS answer that changes between the
 * check and the connect (DNS rebinding) cannot slip a private address in.
 */
import dns from 'node:dns/promises';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { CodedError, ErrorCode } from '../domain/errors';

const NOT_PUBLIC = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], // "this" network
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata services)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  NOT_PUBLIC.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['64:ff9b::', 96], // NAT64: may embed any IPv4 address
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const) {
  NOT_PUBLIC.addSubnet(net, bits, 'ipv6');
}

/** True for an address a webhook may reach without WEBHOOK_ALLOW_PRIVATE. IPv4-mapped IPv6 is judged as IPv4. */
export function isPublicAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return isPublicAddress(mapped[1]!);
  const family = isIP(address);
  if (family === 0) return false;
  return !NOT_PUBLIC.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

const systemResolver: Resolver = async (hostname) =>
  (await dns.lookup(hostname, { all: true, verbatim: true })) as ResolvedAddress[];

/**
 * The addresses `url` may be sent to: its host resolved, every address checked. Throws FORBIDDEN naming the
 * address when one is not public (and private targets are not allowed), INTEGRATION_FAILED when the host does
 * not resolve.
 */
export async function resolveWebhookTarget(
  url: URL,
  o: { allowPrivate: boolean; resolve?: Resolver },
): Promise<ResolvedAddress[]> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CodedError(ErrorCode.InvalidInput, `a webhook URL must be http: or https:, not ${url.protocol}`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  let addresses: ResolvedAddress[];
  if (isIP(host)) {
    addresses = [{ address: host, family: isIP(host) as 4 | 6 }];
  } else {
    try {
      addresses = await (o.resolve ?? systemResolver)(host);
    } catch (e) {
      throw new CodedError(
        ErrorCode.IntegrationFailed,
        `the webhook host ${host} does not resolve (${(e as Error).message})`,
        { cause: e, retryable: true },
      );
    }
    if (addresses.length === 0)
      throw new CodedError(ErrorCode.IntegrationFailed, `the webhook host ${host} resolves to no address`, {
        retryable: true,
      });
  }
  if (!o.allowPrivate) {
    const refused = addresses.find((a) => !isPublicAddress(a.address));
    if (refused) {
      throw new CodedError(
        ErrorCode.Forbidden,
        `the webhook host ${host} resolves to ${refused.address}, a loopback, private, link-local or reserved address: webhooks go to public addresses only. ` +
          'Set WEBHOOK_ALLOW_PRIVATE=true to allow internal receivers.',
      );
    }
  }
  return addresses;
}

/** A `lookup` for http.request that answers with the addresses already checked, never asking DNS again. */
export function pinnedLookup(addresses: ResolvedAddress[]): LookupFunction {
  return (_hostname, options, callback) => {
    const usable =
      options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
    if (usable.length === 0) {
      callback(Object.assign(new Error('no checked address of the requested family'), { code: 'ENOTFOUND' }), '', 4);
      return;
    }
    if (options.all) (callback as unknown as (err: null, all: ResolvedAddress[]) => void)(null, usable);
    else callback(null, usable[0]!.address, usable[0]!.family);
  };
}
