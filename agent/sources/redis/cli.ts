/**
 * Talking to Redis through redis-cli (the tool the backup itself uses, so one set of connection
 * settings, TLS included): connection arguments, the password in REDISCLI_AUTH (never argv), and
 * commands whose replies are read in `--no-raw` form, where an error reply is unambiguous (`(error) …`;
 * INFO, printed raw all the same, is sections starting with `#`) and strings are quoted.
 */
import { spawnTool } from '#agent/pipeline/child';
import { SourceError } from '#core/errors';
import type { SourceContext } from '#core/ports';

/** Where a redis-cli connects. */
export interface RedisEndpoint {
  host: string;
  port: number;
  user?: string;
  tls?: { caCert?: string; serverName?: string };
}

/** Longest reply read from one command (INFO, SCAN pages, one DUMP). */
const MAX_REPLY_BYTES = 64 * 1024 * 1024;

/** redis-cli's connection arguments: host, port, user, TLS. Never the password. */
export function connectionArgs(endpoint: RedisEndpoint): string[] {
  return [
    '-h',
    endpoint.host,
    '-p',
    String(endpoint.port),
    ...(endpoint.user ? ['--user', endpoint.user] : []),
    ...(endpoint.tls
      ? [
          '--tls',
          ...(endpoint.tls.caCert ? ['--cacert', endpoint.tls.caCert] : []),
          ...(endpoint.tls.serverName ? ['--sni', endpoint.tls.serverName] : []),
        ]
      : []),
  ];
}

/** The environment of a redis-cli: the agent's, with the password in REDISCLI_AUTH when there is one. */
export function cliEnv(ctx: SourceContext, password: string | undefined): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...ctx.env };
  delete env.REDISCLI_AUTH;
  if (password !== undefined) env.REDISCLI_AUTH = password;
  return env;
}

/** `host:port` for messages. */
export function describeEndpoint(endpoint: RedisEndpoint): string {
  return `redis ${endpoint.host}:${endpoint.port}`;
}

/**
 * Runs one command and returns its reply as redis-cli prints it with `--no-raw`.
 * @throws SourceError naming the server for an error reply, a failed connection or a missing redis-cli.
 * @example await redisCli(endpoint, password, ctx, ['INFO', 'server'])
 */
export async function redisCli(
  endpoint: RedisEndpoint,
  password: string | undefined,
  ctx: SourceContext,
  args: string[],
  options: { db?: number } = {},
): Promise<string> {
  const tool = spawnTool(
    'redis-cli',
    [
      ...connectionArgs(endpoint),
      ...(options.db !== undefined ? ['-n', String(options.db)] : []),
      '--no-raw',
      ...args,
    ],
    { env: cliEnv(ctx, password), signal: ctx.signal, stdin: 'ignore' },
  );
  const chunks: Buffer[] = [];
  let size = 0;
  tool.stdout?.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_REPLY_BYTES) chunks.push(chunk);
  });
  const closed = new Promise<void>((resolve) => {
    if (!tool.stdout) return resolve();
    tool.stdout.on('close', () => resolve());
    tool.stdout.on('error', () => resolve());
  });
  try {
    await tool.done;
  } catch (error) {
    throw new SourceError(`${describeEndpoint(endpoint)}: ${(error as Error).message}`, { cause: error });
  }
  await closed;
  if (size > MAX_REPLY_BYTES) {
    throw new SourceError(
      `${describeEndpoint(endpoint)}: the reply to ${args[0]} exceeded ${MAX_REPLY_BYTES} bytes`,
    );
  }
  const reply = Buffer.concat(chunks).toString('utf8');
  // INFO is printed raw even under --no-raw: a reply that is not sections is an error reply.
  const infoError = args[0]?.toUpperCase() === 'INFO' && reply.trim() !== '' && !reply.startsWith('#');
  if (infoError || reply.startsWith('(error) ') || /^(Could not connect|AUTH failed)/.test(reply)) {
    throw new SourceError(
      `${describeEndpoint(endpoint)}: ${args[0]} failed: ${reply.trim().replace(/^\(error\) /, '')}`,
    );
  }
  return reply;
}

/** The fields of an INFO section: `redis_version` → `7.0.15`. */
export function parseInfo(reply: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of reply.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (line.startsWith('#') || at < 0) continue;
    fields.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  return fields;
}

/** Keys per database from INFO keyspace: `db0:keys=10,expires=0,…` → { 0: 10 }. */
export function parseKeyspace(reply: string): Map<number, number> {
  const counts = new Map<number, number>();
  for (const [field, value] of parseInfo(reply)) {
    const db = /^db(\d+)$/.exec(field);
    const keys = /(?:^|,)keys=(\d+)/.exec(value);
    if (db && keys) counts.set(Number(db[1]), Number(keys[1]));
  }
  return counts;
}

/**
 * The quoted strings of a `--no-raw` reply, in order, unescaped (`"b\nc"` → `b` newline `c`); the
 * lines without a quoted string (integers, nesting) are skipped. Strings that held bytes other than
 * printable ASCII and the usual escapes come back as undefined (they cannot be passed on in argv).
 */
export function quotedStrings(reply: string): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  for (const line of reply.split('\n')) {
    const match = /^\s*(?:\d+\)\s*)*"(.*)"\s*$/.exec(line);
    if (!match) continue;
    out.push(unquote(match[1] as string));
  }
  return out;
}

function unquote(body: string): string | undefined {
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i] as string;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = body[++i];
    const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', '"': '"', '\\': '\\' };
    if (next !== undefined && next in simple) out += simple[next];
    else return undefined;
  }
  return out;
}
