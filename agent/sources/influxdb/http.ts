/**
 * Talking to InfluxDB 1.x over its HTTP API (`/ping`, `/query`): the version, the databases, their
 * measurements and series counts. The password goes in a Basic `Authorization` header, never a URL,
 * argv or a message.
 */
import { describeError, SourceError } from '#core/errors';

/** Where the HTTP API answers, and who asks. */
export interface InfluxEndpoint {
  host: string;
  port: number;
  user?: string;
  password?: string;
}

/** How long one HTTP request may take. */
const REQUEST_TIMEOUT_MS = 60_000;

/** `influxdb host:port` for messages. */
export function describeInflux(endpoint: Pick<InfluxEndpoint, 'host' | 'port'>): string {
  return `influxdb ${endpoint.host}:${endpoint.port}`;
}

function headers(endpoint: InfluxEndpoint): Record<string, string> {
  if (endpoint.user === undefined && endpoint.password === undefined) return {};
  const basic = Buffer.from(`${endpoint.user ?? ''}:${endpoint.password ?? ''}`).toString('base64');
  return { Authorization: `Basic ${basic}` };
}

function urlOf(endpoint: InfluxEndpoint, path: string): URL {
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return new URL(`http://${host}:${endpoint.port}${path}`);
}

/**
 * The server's version, from `/ping` (`X-Influxdb-Version`).
 * @throws SourceError when it does not answer.
 */
export async function pingInflux(endpoint: InfluxEndpoint, signal?: AbortSignal): Promise<string> {
  const response = await request(endpoint, urlOf(endpoint, '/ping'), 'GET', signal);
  if (response.status !== 204) {
    throw new SourceError(`${describeInflux(endpoint)}: /ping answered HTTP ${response.status}`);
  }
  return response.headers.get('x-influxdb-version') ?? 'unknown';
}

/** One series of a query result. */
export interface ResultSeries {
  name?: string;
  tags?: Record<string, string>;
  columns?: string[];
  values?: unknown[][];
}

/**
 * Runs one InfluxQL statement and returns its series.
 * @throws SourceError naming the server and the statement's error.
 * @example await queryInflux(endpoint, 'SHOW DATABASES')
 */
export async function queryInflux(
  endpoint: InfluxEndpoint,
  statement: string,
  options: { db?: string; method?: 'GET' | 'POST'; signal?: AbortSignal } = {},
): Promise<ResultSeries[]> {
  const url = urlOf(endpoint, '/query');
  url.searchParams.set('q', statement);
  if (options.db) url.searchParams.set('db', options.db);
  const response = await request(endpoint, url, options.method ?? 'GET', options.signal);
  const text = await response.text();
  let body: { error?: string; results?: { error?: string; series?: ResultSeries[] }[] };
  try {
    body = JSON.parse(text);
  } catch {
    throw new SourceError(
      `${describeInflux(endpoint)}: HTTP ${response.status} to ${statement.split(' ').slice(0, 2).join(' ')}: ${text.slice(0, 200)}`,
    );
  }
  const error = body.error ?? body.results?.[0]?.error;
  if (error || response.status >= 300) {
    const hint = response.status === 401 ? ' (check source.user and the password)' : '';
    throw new SourceError(
      `${describeInflux(endpoint)}: ${statement}: ${error ?? `HTTP ${response.status}`}${hint}`,
    );
  }
  return body.results?.[0]?.series ?? [];
}

async function request(
  endpoint: InfluxEndpoint,
  url: URL,
  method: 'GET' | 'POST',
  signal?: AbortSignal,
): Promise<Response> {
  const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  try {
    return await fetch(url, {
      method,
      headers: headers(endpoint),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
  } catch (error) {
    signal?.throwIfAborted();
    const cause = (error as { cause?: unknown }).cause ?? error;
    throw new SourceError(`${describeInflux(endpoint)}: ${describeError(cause)}`, { cause: error });
  }
}

/** A database's measurements and the series of each: `SHOW SERIES EXACT CARDINALITY`. */
export async function measurementsOf(
  endpoint: InfluxEndpoint,
  database: string,
  signal?: AbortSignal,
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const name of await measurementNames(endpoint, database, signal)) counts.set(name, 0);
  const series = await queryInflux(
    endpoint,
    `SHOW SERIES EXACT CARDINALITY ON ${quoteIdentifier(database)}`,
    {
      signal,
    },
  );
  for (const s of series) {
    if (s.name !== undefined) counts.set(s.name, Number(s.values?.[0]?.[0] ?? 0));
  }
  return counts;
}

async function measurementNames(endpoint: InfluxEndpoint, database: string, signal?: AbortSignal) {
  const series = await queryInflux(endpoint, `SHOW MEASUREMENTS ON ${quoteIdentifier(database)}`, { signal });
  return series.flatMap((s) => (s.values ?? []).map((row) => String(row[0])));
}

/** The server's databases, `_internal` (the monitor's own) left out. */
export async function databasesOf(endpoint: InfluxEndpoint, signal?: AbortSignal): Promise<string[]> {
  const series = await queryInflux(endpoint, 'SHOW DATABASES', { signal });
  return series
    .flatMap((s) => (s.values ?? []).map((row) => String(row[0])))
    .filter((name) => name !== '_internal');
}

/** An InfluxQL identifier in double quotes. */
export function quoteIdentifier(name: string): string {
  return `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
