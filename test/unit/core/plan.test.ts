import { describe, expect, it } from 'vitest';
import { PlanError } from '#core/errors';
import { findJob, parsePlan, retentionOf, validatePlan } from '#core/plan';
import { SOURCE_KINDS } from '#core/sources/index';
import { minimalPlanData, planWithJob } from './fixtures';

/** The issues validatePlan reports for `data`, or a failure when it accepts it. */
function issuesOf(data: unknown): readonly string[] {
  try {
    validatePlan(data);
  } catch (error) {
    if (error instanceof PlanError) return error.issues;
    throw error;
  }
  throw new Error('expected the plan to be rejected');
}

/** Minimal plan data with one part replaced. */
function withPlan(fields: Record<string, unknown>): Record<string, unknown> {
  return { ...minimalPlanData(), ...fields };
}

/** Minimal plan data whose only job has extra or replaced fields. */
function withJob(fields: Record<string, unknown>): Record<string, unknown> {
  return withPlan({ jobs: [{ name: 'app-db', source: { kind: 'postgres', database: 'app' }, ...fields }] });
}

const FULL_PLAN = `
version: 1
name: acme-prod
timezone: Europe/Berlin
vault:
  url: s3://acme-backups/strongbox
  endpoint: https://minio.acme.internal:9000
  region: eu-central-1
  forcePathStyle: true
  checksums: when-required
  partSizeMiB: 64
  queueSize: 2
  storageClass: STANDARD_IA
  objectLock: { mode: compliance, days: 30 }
  replicaRegion: eu-west-1
  keyRotationDays: 365
key:
  type: kms
  keyId: alias/strongbox
  region: eu-central-1
retention:
  daily: 14d
  weekly: 5w
  monthly: 12mo
  yearly: 7y
  pointInTime: 36h
alerts:
  email: [ops@acme.example]
  slack: { webhookParameter: /strongbox/slack-webhook }
verify:
  schedule: cron(30 6 * * ? *)
  recentCount: 10
hosts:
  db-primary:
    instanceIds: [i-0123456789abcdef0, mi-0123456789abcdef0]
    maxConcurrency: 2
    maxErrors: 10%
  drill-hosts:
    tags: { role: restore-drill }
jobs:
  - name: orders-db
    description: Orders database, logical dump
    host: db-primary
    schedule: cron(0 2 * * ? *)
    scheduleWindowMinutes: 30
    source:
      kind: postgres
      database: orders
      host: 10.0.0.5
      port: 5433
      user: backup
      passwordParameter: /strongbox/orders/password
      binDir: /usr/lib/postgresql/16/bin
      excludeTables: [public.audit_log]
      rowCounts: false
      noOwner: true
      noTablespaces: true
      rolePasswords: true
    compression: { algorithm: gzip, level: 6 }
    retention: { daily: 3d }
    limits: { warnAge: 26h, criticalAge: 2d, minBytes: 1048576, shrinkRatio: 0.7 }
    drill:
      schedule: cron(0 4 ? * SUN *)
      host: drill-hosts
      rto: 2h
      checks:
        - { name: orders exist, query: select count(*) > 0 from orders, expect: true }
        - { name: customers, query: select count(*) from customers, expect: 12408 }
    timeout: 4h
  - name: media
    source:
      kind: files
      paths: [/srv/media, /etc/nginx]
      exclude: ['*.tmp']
`;

describe('validatePlan accepts good plans', () => {
  it('fills in every default of a minimal plan', () => {
    // Prepare
    const data = minimalPlanData();

    // Act
    const plan = validatePlan(data);

    // Assess
    expect(plan).toEqual({
      version: 1,
      name: 'strongbox',
      timezone: 'UTC',
      vault: {
        url: 'file:///mnt/nas/strongbox',
        region: 'us-east-1',
        checksums: 'when-supported',
        partSizeMiB: 8,
        queueSize: 2,
        storageClass: 'STANDARD',
      },
      key: { type: 'local', path: '/etc/strongbox/master.key' },
      retention: { daily: 7, weekly: 35, monthly: 365, yearly: 2555, pointInTime: 7 },
      alerts: { email: [] },
      storage: { warnAbovePercent: 80, criticalAbovePercent: 95 },
      verify: { schedule: 'cron(0 7 * * ? *)', recentCount: 7 },
      hosts: {},
      copies: [],
      jobs: [
        {
          name: 'app-db',
          scheduleWindowMinutes: 0,
          source: {
            kind: 'postgres',
            database: 'app',
            host: '127.0.0.1',
            port: 5432,
            user: 'postgres',
            excludeTables: [],
            rowCounts: true,
            noOwner: false,
            noTablespaces: false,
            rolePasswords: false,
          },
          compression: { algorithm: 'zstd' },
          hooks: { before: [], after: [] },
          limits: { warnAge: 25 * 3600, criticalAge: 30 * 3600, minBytes: 0, shrinkRatio: 0.5 },
          timeout: 6 * 3600,
        },
      ],
    });
  });

  it('keeps every field of a full plan and converts durations to seconds and retentions to days', () => {
    // Prepare
    const text = FULL_PLAN;

    // Act
    const plan = parsePlan(text, 'acme.yaml');

    // Assess
    expect(plan.name).toBe('acme-prod');
    expect(plan.timezone).toBe('Europe/Berlin');
    expect(plan.vault).toEqual({
      url: 's3://acme-backups/strongbox',
      endpoint: 'https://minio.acme.internal:9000',
      region: 'eu-central-1',
      forcePathStyle: true,
      checksums: 'when-required',
      partSizeMiB: 64,
      queueSize: 2,
      storageClass: 'STANDARD_IA',
      objectLock: { mode: 'compliance', days: 30 },
      replicaRegion: 'eu-west-1',
      keyRotationDays: 365,
    });
    expect(plan.key).toEqual({ type: 'kms', keyId: 'alias/strongbox', region: 'eu-central-1' });
    expect(plan.retention).toEqual({ daily: 14, weekly: 35, monthly: 366, yearly: 2557, pointInTime: 2 });
    expect(plan.alerts).toEqual({
      email: ['ops@acme.example'],
      slack: { webhookParameter: '/strongbox/slack-webhook' },
    });
    expect(plan.verify).toEqual({ schedule: 'cron(30 6 * * ? *)', recentCount: 10 });
    expect(plan.hosts).toEqual({
      'db-primary': {
        instanceIds: ['i-0123456789abcdef0', 'mi-0123456789abcdef0'],
        maxConcurrency: 2,
        maxErrors: '10%',
      },
      'drill-hosts': { tags: { role: 'restore-drill' }, maxConcurrency: 1, maxErrors: 0 },
    });
    expect(plan.jobs[0]).toEqual({
      name: 'orders-db',
      description: 'Orders database, logical dump',
      host: 'db-primary',
      schedule: 'cron(0 2 * * ? *)',
      scheduleWindowMinutes: 30,
      source: {
        kind: 'postgres',
        database: 'orders',
        host: '10.0.0.5',
        port: 5433,
        user: 'backup',
        passwordParameter: '/strongbox/orders/password',
        binDir: '/usr/lib/postgresql/16/bin',
        excludeTables: ['public.audit_log'],
        rowCounts: false,
        noOwner: true,
        noTablespaces: true,
        rolePasswords: true,
      },
      compression: { algorithm: 'gzip', level: 6 },
      retention: { daily: 3 },
      limits: { warnAge: 26 * 3600, criticalAge: 2 * 86_400, minBytes: 1_048_576, shrinkRatio: 0.7 },
      drill: {
        schedule: 'cron(0 4 ? * SUN *)',
        host: 'drill-hosts',
        rto: 2 * 3600,
        checks: [
          { name: 'orders exist', query: 'select count(*) > 0 from orders', expect: 'true' },
          { name: 'customers', query: 'select count(*) from customers', expect: '12408' },
        ],
      },
      timeout: 4 * 3600,
      hooks: { before: [], after: [] },
    });
    expect(plan.jobs[1]).toEqual({
      name: 'media',
      scheduleWindowMinutes: 0,
      source: { kind: 'files', paths: ['/srv/media', '/etc/nginx'], exclude: ['*.tmp'], unreadable: 'error' },
      compression: { algorithm: 'zstd' },
      hooks: { before: [], after: [] },
      limits: { warnAge: 25 * 3600, criticalAge: 30 * 3600, minBytes: 0, shrinkRatio: 0.5 },
      timeout: 6 * 3600,
    });
  });

  it.each([
    ['hours, rounded up to whole days', '36h', 2],
    ['weeks', '5w', 35],
    ['calendar months (the longest 12 months can be)', '12mo', 366],
    ['calendar years', '7y', 2557],
    ['forever', 'forever', 36_500],
  ])('reads a retention written as %s', (_, written, expectedDays) => {
    // Prepare
    const data = withPlan({ retention: { monthly: written } });

    // Act
    const plan = validatePlan(data);

    // Assess
    expect(plan.retention.monthly).toBe(expectedDays);
  });

  it('accepts a criticalAge equal to warnAge', () => {
    // Prepare
    const data = withJob({ limits: { warnAge: '1d', criticalAge: '24h' } });

    // Act
    const plan = validatePlan(data);

    // Assess
    expect(plan.jobs[0]?.limits).toMatchObject({ warnAge: 86_400, criticalAge: 86_400 });
  });
});

describe('validatePlan rejects bad fields, naming each one', () => {
  const postgres = { kind: 'postgres', database: 'app' };

  it.each([
    [
      'a required field of the second job',
      withPlan({
        jobs: [
          { name: 'media', source: { kind: 'files', paths: ['/srv'] } },
          { name: 'app-db', source: { kind: 'postgres' } },
        ],
      }),
      'jobs[1].source.database: required',
    ],
    ['a missing key section', { ...minimalPlanData(), key: undefined }, 'key: required'],
    ['an unknown top-level field', withPlan({ retain: 7 }), "unknown field 'retain'"],
    [
      'unknown fields of the vault',
      withPlan({ vault: { url: 'file:///mnt/nas', bucket: 'x', acl: 'private' } }),
      "vault: unknown fields 'bucket', 'acl'",
    ],
    [
      'an unknown field of a source',
      withJob({ source: { ...postgres, dbname: 'app' } }),
      "jobs[0].source: unknown field 'dbname'",
    ],
    ['another version', withPlan({ version: 2 }), 'version: must be 1'],
    [
      'an unknown compression algorithm',
      withJob({ compression: { algorithm: 'lz4' } }),
      'jobs[0].compression.algorithm: must be one of zstd, gzip, none',
    ],
    [
      'an unknown source kind',
      withJob({ source: { kind: 'mysql', database: 'app' } }),
      `jobs[0].source.kind: must be one of ${SOURCE_KINDS.join(', ')}`,
    ],
    [
      'an unknown key type',
      withPlan({ key: { type: 'vault', path: '/k' } }),
      'key.type: must be one of local, kms',
    ],
    ['a key without type', withPlan({ key: { path: '/k' } }), 'key.type: must be one of local, kms'],
    [
      'a key that is not a mapping',
      withPlan({ key: 'master.key' }),
      'key: expected object, got string "master.key"',
    ],
    [
      'a port of the wrong type',
      withJob({ source: { ...postgres, port: 'five' } }),
      'jobs[0].source.port: expected number, got string "five"',
    ],
    [
      'a duration with an unknown unit',
      withPlan({ retention: { daily: '7 days' } }),
      "retention.daily: '7 days' is not a retention (units: s, m, h, d, w, mo or y, e.g. 36h, 7d, 5w, 12mo, 7y, or forever)",
    ],
    [
      'a negative duration',
      withJob({ timeout: '-3h' }),
      "jobs[0].timeout: '-3h' is not a duration (units: s, m, h, d, w, mo or y, e.g. 36h, 7d, 5w, 12mo, 7y)",
    ],
    [
      'a duration that is neither text nor a number',
      withJob({ limits: { warnAge: true } }),
      'jobs[0].limits.warnAge: must be a duration such as s, m, h, d, w, mo or y, e.g. 36h, 7d, 5w, 12mo, 7y',
    ],
    [
      'a retention of zero days',
      withPlan({ retention: { weekly: '0d' } }),
      'retention.weekly: must be at least 1 day',
    ],
    [
      'a time zone that does not exist',
      withPlan({ timezone: 'Europe/Atlantis' }),
      'timezone: is not an IANA time zone (e.g. Europe/Berlin, UTC)',
    ],
    [
      'a relative file vault URL',
      withPlan({ vault: { url: 'file://mnt/nas' } }),
      'vault.url: must be file:///absolute/path or s3://bucket[/prefix]',
    ],
    [
      'an S3 bucket name with capitals',
      withPlan({ vault: { url: 's3://Backups/prefix' } }),
      'vault.url: must be file:///absolute/path or s3://bucket[/prefix]',
    ],
    [
      'an HTTP vault URL',
      withPlan({ vault: { url: 'https://backups.example.com' } }),
      'vault.url: must be file:///absolute/path or s3://bucket[/prefix]',
    ],
    [
      'an instance id that is not EC2 or managed',
      withPlan({ hosts: { db: { instanceIds: ['i-12345'] } } }),
      'hosts.db.instanceIds[0]: must be an EC2 (i-…) or managed (mi-…) instance id',
    ],
    [
      'a host with both instanceIds and tags',
      withPlan({ hosts: { db: { instanceIds: ['i-0123456789abcdef0'], tags: { role: 'db' } } } }),
      'hosts.db: give exactly one of instanceIds or tags',
    ],
    [
      'a host with neither instanceIds nor tags',
      withPlan({ hosts: { db: { instanceIds: [], tags: {} } } }),
      'hosts.db: give exactly one of instanceIds or tags',
    ],
    [
      'a host name with capitals',
      withPlan({ hosts: { DbPrimary: { tags: { role: 'db' } } } }),
      'hosts.DbPrimary: host names must be lowercase letters, digits and dashes, starting with a letter or digit, at most 63 characters',
    ],
    [
      'a job name with an underscore',
      withPlan({ jobs: [{ name: 'app_db', source: postgres }] }),
      'jobs[0].name: must be lowercase letters, digits and dashes, starting with a letter or digit, at most 63 characters',
    ],
    ['no jobs', withPlan({ jobs: [] }), 'jobs: needs at least one job'],
    [
      'a relative path of a files source',
      withJob({ source: { kind: 'files', paths: ['srv/media'] } }),
      'jobs[0].source.paths[0]: must be an absolute path',
    ],
    [
      'a schedule that is neither cron nor rate',
      withJob({ schedule: 'every day at 2' }),
      "jobs[0].schedule: 'every day at 2' must be cron(minutes hours day-of-month month day-of-week year) or rate(value unit), e.g. cron(0 2 * * ? *) or rate(12 hours)",
    ],
    [
      'a drill schedule that is neither cron nor rate',
      withJob({ drill: { schedule: 'sundays' } }),
      "jobs[0].drill.schedule: 'sundays' must be cron(minutes hours day-of-month month day-of-week year) or rate(value unit), e.g. cron(0 2 * * ? *) or rate(12 hours)",
    ],
    [
      'a verify schedule that is neither cron nor rate',
      withPlan({ verify: { schedule: '0 7 * * *' } }),
      "verify.schedule: '0 7 * * *' must be cron(minutes hours day-of-month month day-of-week year) or rate(value unit), e.g. cron(0 2 * * ? *) or rate(12 hours)",
    ],
    [
      'a bare number for an age (hours or days?)',
      withJob({ limits: { warnAge: 25 } }),
      'jobs[0].limits.warnAge: 25 has no unit: write e.g. 25h or 25d (units: s, m, h, d, w, mo or y, e.g. 36h, 7d, 5w, 12mo, 7y)',
    ],
    [
      'a bare number for a retention',
      withPlan({ retention: { daily: 14 } }),
      'retention.daily: 14 has no unit: write e.g. 14d (units: s, m, h, d, w, mo or y, e.g. 36h, 7d, 5w, 12mo, 7y, or forever)',
    ],
    [
      'a zero timeout',
      withJob({ timeout: '0s' }),
      "jobs[0].timeout: '0s' is not a sensible job timeout: it must be from 1m 0s to 7d 0h",
    ],
    [
      'an absurd timeout',
      withJob({ timeout: '100y' }),
      "jobs[0].timeout: '100y' is not a sensible job timeout: it must be from 1m 0s to 7d 0h",
    ],
    [
      'a zero rto',
      withJob({ drill: { rto: '0m' } }),
      "jobs[0].drill.rto: '0m' is not a sensible recovery time objective: it must be from 1s to 30d 0h",
    ],
    [
      'a zero warnAge',
      withJob({ limits: { warnAge: '0h' } }),
      "jobs[0].limits.warnAge: '0h' is not a sensible backup age limit: it must be from 1m 0s to 366d 0h",
    ],
    [
      'an absurd criticalAge',
      withJob({ limits: { criticalAge: '50y' } }),
      "jobs[0].limits.criticalAge: '50y' is not a sensible backup age limit: it must be from 1m 0s to 366d 0h",
    ],
    ...(
      [
        ['cron(foo)', 'expected 6 fields (minutes hours day-of-month month day-of-week year), got 1'],
        ['cron(0 2 * * *)', 'expected 6 fields (minutes hours day-of-month month day-of-week year), got 5'],
        [
          'cron(0 2 * * * *)',
          "exactly one of day-of-month and day-of-week must be '?' (e.g. cron(0 2 * * ? *) daily, cron(0 2 ? * SUN *) on Sundays)",
        ],
        [
          'cron(0 2 ? * ? *)',
          "exactly one of day-of-month and day-of-week must be '?' (e.g. cron(0 2 * * ? *) daily, cron(0 2 ? * SUN *) on Sundays)",
        ],
        ['cron(60 2 * * ? *)', "minutes '60': '60' is not a minutes value (0-59)"],
        ['cron(0 24 * * ? *)', "hours '24': '24' is not a hours value (0-23)"],
        ['cron(0 2 0 * ? *)', "day-of-month '0': '0' is not a day-of-month value (1-31)"],
        ['cron(0 2 ? FOO MON *)', "month 'FOO': 'FOO' is not a month value (1-12 or JAN-DEC)"],
        ['cron(0 2 ? * MON#6 *)', "day-of-week 'MON#6': the week after # must be 1 to 5"],
        ['cron(0 10-2 * * ? *)', "hours '10-2': the range runs backwards (10 is after 2)"],
        [
          'cron(0/0 2 * * ? *)',
          "minutes '0/0': the increment after '/' must be a whole number of at least 1",
        ],
        ['cron(0 ? * * ? *)', "hours '?': '?' is only allowed in day-of-month and day-of-week"],
        ['cron(0 2 * * ? 1969)', "year '1969': '1969' is not a year value (1970-2199)"],
        ['rate(0 minutes)', 'the value must be a whole number of at least 1'],
        ['rate(5 fortnights)', "the unit must be minutes, hours or days, got 'fortnights'"],
        ['rate(1 hours)', 'write rate(1 hour)'],
        ['rate(2 day)', 'write rate(2 days)'],
        ['rate(1.5 hours)', 'the value must be a whole number of at least 1'],
      ] as const
    ).map(
      ([schedule, problem]) =>
        [`the schedule ${schedule}`, withJob({ schedule }), `jobs[0].schedule: ${schedule}: ${problem}`] as [
          string,
          Record<string, unknown>,
          string,
        ],
    ),
    [
      'an e-mail address that is not one',
      withPlan({ alerts: { email: ['ops'] } }),
      'alerts.email[0]: Invalid email address',
    ],
  ])('rejects %s', (_, data, expected) => {
    // Act
    const issues = issuesOf(data);

    // Assess
    expect(issues).toEqual([expected]);
  });

  it('reports every bad field at once, one per line', () => {
    // Prepare
    const data = withPlan({ version: 3, timezone: 'Nowhere/Land' });

    // Act
    const act = () => validatePlan(data);

    // Assess
    expect(act).toThrow(
      'invalid plan:\n  version: must be 1\n  timezone: is not an IANA time zone (e.g. Europe/Berlin, UTC)',
    );
  });

  it('reports field errors before cross-field rules (they run on valid fields only)', () => {
    // Prepare
    const data = withPlan({
      jobs: [
        { name: 'app-db', source: { kind: 'postgres' } },
        { name: 'app-db', source: { kind: 'postgres', database: 'app' } },
      ],
    });

    // Act
    const issues = issuesOf(data);

    // Assess
    expect(issues).toEqual(['jobs[0].source.database: required']);
  });
});

describe('validatePlan checks rules across fields', () => {
  const source = { kind: 'postgres', database: 'app' };

  it('rejects two jobs of the same name, naming both', () => {
    // Prepare
    const data = withPlan({
      jobs: [
        { name: 'app-db', source },
        { name: 'media', source: { kind: 'files', paths: ['/srv'] } },
        { name: 'app-db', source },
      ],
    });

    // Act
    const issues = issuesOf(data);

    // Assess
    expect(issues).toEqual(["jobs[2].name: 'app-db' is used by jobs[0] too"]);
  });

  it.each([
    ['no hosts are defined', {}, "jobs[0].host: 'db' is not one of hosts (none defined)"],
    [
      'other hosts are defined',
      { web: { tags: { role: 'web' } }, cache: { tags: { role: 'cache' } } },
      "jobs[0].host: 'db' is not one of hosts (web, cache)",
    ],
  ])('rejects a job host that is not defined when %s', (_, hosts, expected) => {
    // Prepare
    const data = withPlan({ hosts, jobs: [{ name: 'app-db', host: 'db', source }] });

    // Act
    const issues = issuesOf(data);

    // Assess
    expect(issues).toEqual([expected]);
  });

  it('rejects a drill host that is not defined', () => {
    // Prepare
    const data = withPlan({
      hosts: { db: { tags: { role: 'db' } } },
      jobs: [{ name: 'app-db', host: 'db', source, drill: { host: 'scratch' } }],
    });

    // Act
    const issues = issuesOf(data);

    // Assess
    expect(issues).toEqual(["jobs[0].drill.host: 'scratch' is not one of hosts (db)"]);
  });

  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty'])(
    'rejects a job host named like an object built-in (%s)',
    (host) => {
      // Prepare
      const data = withPlan({ jobs: [{ name: 'app-db', host, source }] });

      // Act
      const issues = issuesOf(data);

      // Assess
      expect(issues).toEqual([`jobs[0].host: '${host}' is not one of hosts (none defined)`]);
    },
  );

  it('accepts job and drill hosts that are defined', () => {
    // Prepare
    const data = withPlan({
      hosts: { db: { tags: { role: 'db' } }, scratch: { instanceIds: ['i-0123abcd'] } },
      jobs: [{ name: 'app-db', host: 'db', source, drill: { host: 'scratch' } }],
    });

    // Act
    const plan = validatePlan(data);

    // Assess
    expect(plan.jobs[0]?.drill?.host).toBe('scratch');
  });

  it('rejects a criticalAge shorter than warnAge', () => {
    // Prepare
    const data = withJob({ limits: { warnAge: '30h', criticalAge: '25h' } });

    // Act
    const issues = issuesOf(data);

    // Assess
    expect(issues).toEqual(['jobs[0].limits.criticalAge: must not be shorter than warnAge']);
  });

  it('rejects a warnAge beyond the default criticalAge', () => {
    // Prepare
    const data = withJob({ limits: { warnAge: '2d' } });

    // Act
    const issues = issuesOf(data);

    // Assess
    expect(issues).toEqual(['jobs[0].limits.criticalAge: must not be shorter than warnAge']);
  });
});

describe('parsePlan', () => {
  it('reads a plan from YAML', () => {
    // Prepare
    const text =
      'version: 1\nvault: { url: "file:///srv/vault" }\nkey: { type: local, path: /k }\njobs:\n  - { name: etc, source: { kind: files, paths: [/etc] } }\n';

    // Act
    const plan = parsePlan(text, 'plan.yaml');

    // Assess
    expect(plan.jobs.map((j) => j.name)).toEqual(['etc']);
  });

  it.each([
    [
      'an unterminated flow sequence',
      'version: 1\nvault:\n  url: [file:///srv\nkey: { type: local, path: /k }\n',
      /^site\.yaml:4:1: Flow sequence in block collection must be sufficiently indented and end with a \]$/,
    ],
    [
      'a badly indented mapping',
      'version: 1\nvault: { url: a }\n  bad: x\n',
      /^site\.yaml:3:1: All mapping items must start at the same column$/,
    ],
    ['a duplicated key', 'version: 1\nname: a\nname: b\n', /^site\.yaml:3:1: Map keys must be unique$/],
  ])('reports a YAML syntax error with file, line and column: %s', (_, text, expected) => {
    // Act
    const act = () => parsePlan(text, 'site.yaml');

    // Assess
    expect(act).toThrow(PlanError);
    expect(act).toThrow(expected);
  });

  it('keeps the YAML error as the cause', () => {
    // Prepare
    const text = 'a: [\n';

    // Act
    let caught: unknown;
    try {
      parsePlan(text);
    } catch (error) {
      caught = error;
    }

    // Assess
    expect(caught).toBeInstanceOf(PlanError);
    expect((caught as PlanError).cause).toBeInstanceOf(Error);
  });

  it.each([
    ['a list', '- version: 1\n'],
    ['a scalar', 'just text\n'],
    ['an empty file', ''],
    ['a null document', '~\n'],
  ])('rejects a top level that is %s', (_, text) => {
    // Act
    const act = () => parsePlan(text, 'site.yaml');

    // Assess
    expect(act).toThrow(new PlanError(['site.yaml: must be a mapping with version, vault, key and jobs']));
  });

  it('names the origin "plan" when none is given', () => {
    // Act
    const act = () => parsePlan('[]');

    // Assess
    expect(act).toThrow('plan: must be a mapping with version, vault, key and jobs');
  });
});

describe('findJob', () => {
  it('finds a job by name', () => {
    // Prepare
    const plan = parsePlan(FULL_PLAN);

    // Act
    const job = findJob(plan, 'media');

    // Assess
    expect(job.source.kind).toBe('files');
  });

  it('names the jobs there are when the job is not in the plan', () => {
    // Prepare
    const plan = parsePlan(FULL_PLAN);

    // Act
    const act = () => findJob(plan, 'orders');

    // Assess
    expect(act).toThrow(new PlanError(["job 'orders' is not in the plan (jobs: orders-db, media)"]));
  });
});

describe('retentionOf', () => {
  it("is the plan's retention when the job overrides nothing", () => {
    // Prepare
    const plan = planWithJob();

    // Act
    const retention = retentionOf(plan, findJob(plan, 'app-db'));

    // Assess
    expect(retention).toEqual({ daily: 7, weekly: 35, monthly: 365, yearly: 2555, pointInTime: 7 });
  });

  it("takes the job's overrides and the plan's other tiers", () => {
    // Prepare
    const plan = planWithJob({ retention: { daily: '3d', yearly: '10y' } });

    // Act
    const retention = retentionOf(plan, findJob(plan, 'app-db'));

    // Assess
    expect(retention).toEqual({ daily: 3, weekly: 35, monthly: 365, yearly: 3653, pointInTime: 7 });
  });

  it("does not change the plan's retention", () => {
    // Prepare
    const plan = planWithJob({ retention: { weekly: '14d' } });

    // Act
    retentionOf(plan, findJob(plan, 'app-db'));

    // Assess
    expect(plan.retention.weekly).toBe(35);
  });
});

describe('schedules EventBridge Scheduler accepts', () => {
  it.each([
    'cron(0 2 * * ? *)',
    'cron(30 6 ? * MON-FRI *)',
    'cron(0 4 ? * SUN *)',
    'cron(0/15 * * * ? *)',
    'cron(*/10 8-17 ? * 2-6 *)',
    'cron(0 3 L * ? *)',
    'cron(0 3 15W * ? *)',
    'cron(0 3 ? * 6L *)',
    'cron(0 3 ? * MON#1 2026-2030)',
    'cron(0 0 1 JAN,JUL ? *)',
    'rate(1 hour)',
    'rate(12 hours)',
    'rate(1 day)',
    'rate(5 minutes)',
  ])('accepts %s', (schedule) => {
    expect(validatePlan(withJob({ schedule })).jobs[0]?.schedule).toBe(schedule);
  });
});
