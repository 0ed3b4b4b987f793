/**
 * A local Bot Framework token issuer, for tests: what login.botframework.com is to a bot's /api/messages and
 * what login.microsoftonline.com is to the bot's own replies.
 *
 * - GET /v1/.well-known/openidconfiguration: the OpenID metadata document (issuer, jwks_uri, ...), the shape
 *   of https://login.botframework.com/v1/.well-known/openidconfiguration.
 * - GET /v1/.well-known/keys: a JWKS with one RSA key generated at start, carrying `endorsements: ['msteams']`
 *   as the real keys carry the channels they may sign for.
 * - channelToken(): an RS256 JWT with the claims the Bot Framework service sends to a bot (iss, aud = the app
 *   id, serviceurl, nbf, exp), or a broken one (expired, another audience / issuer / key).
 * - POST /{tenant}/oauth2/v2.0/token: a client-credentials grant for registered apps, answering an app token
 *   (aud = the scope without /.default, appid = the client id) the way Entra ID does.
 *
 * botbuilder fetches the metadata and keys itself (OpenIdMetadata in botframework-connector), pointed here by
 * its own ToBotFromChannelOpenIdMetadataUrl setting (`cloudSettings`). The app token cannot come the same way:
 * botbuilder gets it through MSAL, which takes only https authorities it can look up at
 * login.microsoftonline.com; `credentialsFactory()` is botbuilder's own credential factory whose credentials
 * ask this fake instead. Everything else (appId checks, request signing, the connector client) is botbuilder's.
 */
import { createSign, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CallerIdConstants, ConfigurationServiceClientCredentialFactory } from 'botbuilder';
import {
  AuthenticationConstants,
  MicrosoftAppCredentials,
  type ServiceClientCredentials,
} from 'botframework-connector';
import type { TeamsCloudSettings } from '../../src/chat/teams/bot';
import { readBody } from './http-body';

/** The issuer of channel tokens in the public cloud (AuthenticationConstants.ToBotFromChannelTokenIssuer). */
export const BOT_FRAMEWORK_ISSUER = AuthenticationConstants.ToBotFromChannelTokenIssuer;
/** The issuer of Entra ID v1 app tokens for the botframework.com tenant. */
const ENTRA_ISSUER = 'https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/';

export interface ChannelTokenOptions {
  /** The bot's app id: the `aud` claim. */
  appId: string;
  /** The activity's serviceUrl: the `serviceurl` claim. */
  serviceUrl: string;
  /** Overrides, to make a token the bot must refuse. */
  audience?: string;
  issuer?: string;
  /** Seconds from now; default 3600. Negative: already expired. */
  expiresIn?: number;
  /** Seconds from now; default -300 (Bot Framework tokens are valid from 5 minutes back). */
  notBefore?: number;
  /** Sign with a key that is not in the JWKS, under the published key id or one of its own. */
  signedBy?: 'issuer' | 'stranger-same-kid' | 'stranger';
}

export interface AppTokenGrant {
  clientId: string;
  scope: string;
  tenant: string;
  accessToken: string;
}

export interface BotFrameworkIssuerFake {
  url: string;
  /** Where the channel's OpenID metadata document is (ToBotFromChannelOpenIdMetadataUrl). */
  metadataUrl: string;
  jwksUri: string;
  kid: string;
  /** botbuilder's settings for the public cloud, but with the channel's OpenID metadata here. */
  cloudSettings: TeamsCloudSettings;
  channelToken(o: ChannelTokenOptions): string;
  /** An app the token endpoint will issue tokens to. */
  registerApp(appId: string, password: string): void;
  /**
   * botbuilder's ConfigurationServiceClientCredentialFactory for these app credentials, except that the
   * credentials it makes get their token from this fake's token endpoint instead of MSAL.
   */
  credentialsFactory(o: {
    appId: string;
    appPassword: string;
    tenantId?: string;
  }): ConfigurationServiceClientCredentialFactory;
  /** Requests served, by path, in order (metadata, keys, token). */
  requests: string[];
  /** App tokens issued. */
  grants: AppTokenGrant[];
  close(): Promise<void>;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

function signJwt(header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const signature = createSign('RSA-SHA256').update(input).sign(key);
  return `${input}.${b64url(signature)}`;
}

function rsaKey() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, publicKey };
}

export async function startFakeBotFrameworkIssuer(): Promise<BotFrameworkIssuerFake> {
  const signing = rsaKey();
  const stranger = rsaKey();
  const kid = b64url(randomBytes(12));
  const strangerKid = b64url(randomBytes(12));
  const apps = new Map<string, string>();
  const requests: string[] = [];
  const grants: AppTokenGrant[] = [];
  let url = '';

  const jwk = signing.publicKey.export({ format: 'jwk' });
  const jwks = () => ({
    keys: [{ kty: 'RSA', use: 'sig', kid, x5t: kid, n: jwk.n, e: jwk.e, endorsements: ['msteams'] }],
  });
  const metadata = () => ({
    issuer: BOT_FRAMEWORK_ISSUER,
    authorization_endpoint: 'https://invalid.botframework.com',
    jwks_uri: `${url}/v1/.well-known/keys`,
    id_token_signing_alg_values_supported: ['RS256'],
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
  });

  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      requests.push(path);
      const json = (status: number, body: unknown) =>
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
      if (req.method === 'GET' && path === '/v1/.well-known/openidconfiguration') return json(200, metadata());
      if (req.method === 'GET' && path === '/v1/.well-known/keys') return json(200, jwks());
      const token = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(path);
      if (req.method === 'POST' && token) {
        const form = new URLSearchParams(await readBody(req));
        const clientId = form.get('client_id') ?? '';
        if (form.get('grant_type') !== 'client_credentials') return json(400, { error: 'unsupported_grant_type' });
        if (!apps.has(clientId) || apps.get(clientId) !== form.get('client_secret')) {
          return json(401, {
            error: 'invalid_client',
            error_description: 'AADSTS7000215: Invalid client secret provided.',
          });
        }
        const scope = form.get('scope') ?? '';
        const now = Math.floor(Date.now() / 1000);
        const accessToken = signJwt(
          { alg: 'RS256', typ: 'JWT', kid },
          {
            aud: scope.replace(/\/\.default$/, ''),
            iss: ENTRA_ISSUER,
            iat: now,
            nbf: now - 300,
            exp: now + 3600,
            appid: clientId,
            tid: decodeURIComponent(token[1]!),
            ver: '1.0',
          },
          signing.privateKey,
        );
        grants.push({ clientId, scope, tenant: decodeURIComponent(token[1]!), accessToken });
        return json(200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: accessToken });
      }
      return json(404, { error: `no route ${req.method} ${path}` });
    })().catch((e: unknown) => res.writeHead(500).end(String(e)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const metadataUrl = `${url}/v1/.well-known/openidconfiguration`;

  function channelToken(o: ChannelTokenOptions): string {
    const now = Math.floor(Date.now() / 1000);
    const signedBy = o.signedBy ?? 'issuer';
    const key = signedBy === 'issuer' ? signing.privateKey : stranger.privateKey;
    const keyId = signedBy === 'stranger' ? strangerKid : kid;
    return signJwt(
      { alg: 'RS256', typ: 'JWT', kid: keyId, x5t: keyId },
      {
        serviceurl: o.serviceUrl,
        nbf: now + (o.notBefore ?? -300),
        exp: now + (o.expiresIn ?? 3600),
        iss: o.issuer ?? BOT_FRAMEWORK_ISSUER,
        aud: o.audience ?? o.appId,
      },
      key,
    );
  }

  function credentialsFactory(o: { appId: string; appPassword: string; tenantId?: string }) {
    return new LocalLoginCredentialFactory(url, {
      MicrosoftAppId: o.appId,
      MicrosoftAppPassword: o.appPassword,
      MicrosoftAppTenantId: o.tenantId,
      MicrosoftAppType: o.tenantId ? 'SingleTenant' : 'MultiTenant',
    });
  }

  return {
    url,
    metadataUrl,
    jwksUri: `${url}/v1/.well-known/keys`,
    kid,
    cloudSettings: {
      ToBotFromChannelOpenIdMetadataUrl: metadataUrl,
      ToBotFromChannelTokenIssuer: BOT_FRAMEWORK_ISSUER,
      ToChannelFromBotLoginUrl: AuthenticationConstants.ToChannelFromBotLoginUrl,
      ToChannelFromBotOAuthScope: AuthenticationConstants.ToChannelFromBotOAuthScope,
      ToBotFromEmulatorOpenIdMetadataUrl: AuthenticationConstants.ToBotFromEmulatorOpenIdMetadataUrl,
      OAuthUrl: AuthenticationConstants.OAuthUrl,
      CallerId: CallerIdConstants.PublicAzureChannel,
    },
    channelToken,
    registerApp: (appId, password) => void apps.set(appId, password),
    credentialsFactory,
    requests,
    grants,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** MicrosoftAppCredentials whose token comes from the fake's token endpoint (same form post as MSAL sends). */
class LocalLoginAppCredentials extends MicrosoftAppCredentials {
  constructor(
    private readonly issuerUrl: string,
    appId: string,
    appPassword: string,
    private readonly tenantId: string | undefined,
    scope: string | undefined,
  ) {
    super(appId, appPassword, tenantId, scope);
  }

  override async getToken(): Promise<string> {
    const scope = this.oAuthScope.endsWith('/.default') ? this.oAuthScope : `${this.oAuthScope}/.default`;
    const res = await fetch(
      `${this.issuerUrl}/${encodeURIComponent(this.tenantId || AuthenticationConstants.DefaultChannelAuthTenant)}/oauth2/v2.0/token`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: this.appId,
          client_secret: this.appPassword,
          scope,
        }).toString(),
      },
    );
    const body = (await res.json()) as { access_token?: string; error_description?: string; error?: string };
    if (!res.ok || !body.access_token)
      throw new Error(`fake login: ${res.status} ${body.error_description ?? body.error ?? ''}`);
    return body.access_token;
  }
}

/** botbuilder's factory (its appId checks and choice of credentials), with tokens from the fake. */
class LocalLoginCredentialFactory extends ConfigurationServiceClientCredentialFactory {
  constructor(
    private readonly issuerUrl: string,
    private readonly options: {
      MicrosoftAppId: string;
      MicrosoftAppPassword: string;
      MicrosoftAppTenantId?: string;
      MicrosoftAppType: string;
    },
  ) {
    super(options);
  }

  override async createCredentials(
    appId: string,
    audience: string,
    loginEndpoint: string,
    validateAuthority: boolean,
  ): Promise<ServiceClientCredentials> {
    const real = await super.createCredentials(appId, audience, loginEndpoint, validateAuthority);
    if (!(real instanceof MicrosoftAppCredentials) || !real.appId) return real;
    return new LocalLoginAppCredentials(
      this.issuerUrl,
      appId,
      this.options.MicrosoftAppPassword,
      this.options.MicrosoftAppTenantId,
      audience,
    );
  }
}
