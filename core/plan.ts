/**
 * The plan: one YAML file that says where backups go, how long they are kept, who is alerted, which
 * hosts exist and which jobs run on them. Validated once, at the edge, into a typed `Plan`; every error
 * names the field it is about (`jobs[1].source.database: required`).
 */
import { parseDocument, type YAMLError } from 'yaml';
import { z } from 'zod';
import { commandSchema } from './command';
import {
  DURATION_UNITS_HINT,
  FOREVER,
  formatDuration,
  parseDurationSeconds,
  retentionDays,
} from './duration';
import { PlanError } from './errors';
import { describeZodIssues } from './issues';
import { DEFAULT_STORAGE, metricsSchema, notifySchema, storageSchema } from './local-ops';
import { scheduleProblem } from './schedule';
import {
  capabilitiesOf,
  SOURCE_KINDS,
  type SourceConfig,
  sourcePlanSchema,
  sourceSpec,
} from './sources/index';
import { UPLOAD_CLASSES } from './storage-classes';
import { TIERS } from './tiers';

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const NAME_HINT = 'lowercase letters, digits and dashes, starting with a letter or digit, at most 63';

/**
 * A duration in seconds, written with a unit: `90s`, `36h`, `7d`, `5w`, `12mo`, `7y`. A bare number is
 * refused (is `25` hours or days?), and so is anything outside `[min, max]` seconds.
 */
function duration(bounds: { min: number; max: number; what: string }) {
  return z
    .union([z.string(), z.number()], { error: `must be a duration such as ${DURATION_UNITS_HINT}` })
    .transform((value, ctx) => {
      if (typeof value === 'number') {
        ctx.addIssue({
          code: 'custom',
          message: `${value} has no unit: write e.g. ${value}h or ${value}d (units: ${DURATION_UNITS_HINT})`,
        });
        return z.NEVER;
      }
      const seconds = parseDurationSeconds(value);
      if (seconds === undefined) {
        ctx.addIssue({
          code: 'custom',
          message: `'${value}' is not a duration (units: ${DURATION_UNITS_HINT})`,
        });
        return z.NEVER;
      }
      if (seconds < bounds.min || seconds > bounds.max) {
        ctx.addIssue({
          code: 'custom',
          message: `'${value}' is not a sensible ${bounds.what}: it must be from ${formatDuration(bounds.min)} to ${formatDuration(bounds.max)}`,
        });
        return z.NEVER;
      }
      return seconds;
    })
    .meta({ 'x-strongbox-type': 'duration (90s, 15m, 36h, 7d)' });
}

/** How old the newest backup may get before alerting: a minute to a year. */
const ageLimit = duration({ min: 60, max: 366 * 86_400, what: 'backup age limit' });

/**
 * A retention in whole days, at least one (S3 lifecycle rules take positive day counts only): calendar
 * months and years, and `forever` (core/duration `retentionDays`).
 */
const days = z
  .union([z.string(), z.number()], { error: `must be a retention such as 7d, 5w, 12mo, 7y or ${FOREVER}` })
  .transform((value, ctx) => {
    const parsed = typeof value === 'string' ? retentionDays(value) : undefined;
    if (parsed === undefined) {
      ctx.addIssue({
        code: 'custom',
        message:
          typeof value === 'number'
            ? `${value} has no unit: write e.g. ${value}d (units: ${DURATION_UNITS_HINT}, or ${FOREVER})`
            : `'${value}' is not a retention (units: ${DURATION_UNITS_HINT}, or ${FOREVER})`,
      });
      return z.NEVER;
    }
    return parsed;
  })
  .refine((value) => value >= 1, { message: 'must be at least 1 day' })
  .meta({ 'x-strongbox-type': `retention (7d, 5w, 12mo, 7y, ${FOREVER})` });

const timeZone = z.string().refine(
  (tz) => {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  },
  { message: 'is not an IANA time zone (e.g. Europe/Berlin, UTC)' },
);

const vaultSchema = z
  .strictObject({
    url: z
      .string()
      .refine(
        (url) => /^file:\/\/\/./.test(url) || /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(url),
        {
          message: 'must be file:///absolute/path or s3://bucket[/prefix]',
        },
      )
      .meta({
        description:
          'Where backups go: file:///absolute/path (a local disk or a mounted NAS) or s3://bucket[/prefix] (AWS S3 or an S3-compatible server with endpoint).',
        examples: ['s3://acme-backups/strongbox'],
      }),
    endpoint: z
      .url()
      .optional()
      .meta({
        description: 'S3-compatible endpoint (MinIO, Ceph, s3rver); AWS S3 when absent.',
        examples: ['https://minio.internal:9000'],
      }),
    region: z.string().default('us-east-1').describe('Region of the S3 bucket.'),
    forcePathStyle: z
      .boolean()
      .optional()
      .describe('Path-style S3 addressing (http://host/bucket/key), which most S3-compatible servers need.'),
    checksums: z
      .enum(['when-supported', 'when-required'])
      .default('when-supported')
      .describe(
        'when-supported (AWS default: a CRC32 checksum on every upload, required with Object Lock) or when-required (for servers that mishandle trailing checksums, such as s3rver).',
      ),
    partSizeMiB: z
      .number()
      .int()
      .min(5)
      .max(512)
      .default(8)
      .describe(
        "Smallest part of an S3 multipart upload; a put whose object was larger last time (the previous backup of the job) uses parts large enough for twice that size in 10,000 parts, and past 5,000 parts an upload doubles its parts every 400, so one object reaches S3's 5 TiB limit.",
      ),
    queueSize: z
      .number()
      .int()
      .min(1)
      .max(16)
      .default(2)
      .describe('Parts uploaded at once; memory used is at most the part size × (queueSize + 1).'),
    storageClass: z
      .enum(UPLOAD_CLASSES)
      .default('STANDARD')
      .describe('S3 storage class of data objects at upload; lifecycle rules move them later.'),
    objectLock: z
      .strictObject({
        mode: z
          .enum(['governance', 'compliance'])
          .describe('S3 Object Lock mode of every data object (compliance: nobody can delete it early).'),
        days: z
          .number()
          .int()
          .min(1)
          .max(36_500)
          .describe('Default retention of the bucket in days; each object is locked until its tier expires.'),
      })
      .optional()
      .describe(
        'S3 Object Lock: backups cannot be deleted, even with stolen credentials. The bucket must have Object Lock enabled; strongbox doctor checks that it does.',
      ),
    replicaRegion: z
      .string()
      .optional()
      .describe('Region of an optional cross-region replica bucket (deployment only).'),
    keyRotationDays: z
      .number()
      .int()
      .min(90)
      .max(2560)
      .optional()
      .describe(
        'Rotation period in days of the KMS key an AWS deployment creates for the vault (deployment only; KMS allows 90 to 2560; 90 when absent). Old key material stays available, so older backups stay readable.',
      ),
  })
  .describe('The vault: where backups are stored.');

/** Rotation period of a deployment's vault key when the plan's `vault.keyRotationDays` is absent. */
export const DEFAULT_KEY_ROTATION_DAYS = 90;
/** `limits.walRpo` when the plan leaves it out: one hour. */
export const DEFAULT_WAL_RPO_SECONDS = 3600;

const keySchema = z
  .discriminatedUnion('type', [
    z
      .strictObject({
        type: z.literal('local'),
        path: z
          .string()
          .min(1)
          .meta({
            description:
              'Master key file made by strongbox keygen (mode 0600), relative to the plan file or absolute.',
            examples: ['/etc/strongbox/master.key'],
          }),
      })
      .describe('A local master key file wraps each backup’s data key.'),
    z
      .strictObject({
        type: z.literal('kms'),
        keyId: z
          .string()
          .min(1)
          .meta({
            description: 'KMS key id, ARN or alias that generates each backup’s data key.',
            examples: ['alias/strongbox'],
          }),
        region: z.string().optional().describe('Region of the KMS key; the vault’s region when absent.'),
      })
      .describe('AWS KMS generates and wraps each backup’s data key.'),
  ])
  .describe('The key that protects each backup’s data key.');

const retentionSchema = z.strictObject({
  daily: days.prefault('7d').describe('How long daily backups are kept.'),
  weekly: days.prefault('35d').describe('How long weekly backups (the first of each ISO week) are kept.'),
  monthly: days.prefault('365d').describe('How long monthly backups (the first of each month) are kept.'),
  yearly: days.prefault('2555d').describe('How long yearly backups (the first of each year) are kept.'),
  pointInTime: days
    .prefault('7d')
    .describe('How far back point-in-time recovery reaches (WAL kept); physical PostgreSQL jobs only.'),
});

const retentionOverride = z.strictObject({
  daily: days.optional().describe('How long this job’s daily backups are kept.'),
  weekly: days.optional().describe('How long this job’s weekly backups are kept.'),
  monthly: days.optional().describe('How long this job’s monthly backups are kept.'),
  yearly: days.optional().describe('How long this job’s yearly backups are kept.'),
  pointInTime: days.optional().describe('How far back this job’s point-in-time recovery reaches.'),
});

const hostSchema = z
  .strictObject({
    instanceIds: z
      .array(
        z
          .string()
          .regex(
            /^(i-[0-9a-f]{8,17}|mi-[0-9a-f]{17})$/,
            'must be an EC2 (i-…) or managed (mi-…) instance id',
          ),
      )
      .optional()
      .meta({
        description: 'EC2 (i-…) or SSM managed (mi-…) instance ids; give this or tags.',
        examples: [['i-0abc12345def67890']],
      }),
    tags: z
      .record(z.string(), z.string())
      .optional()
      .meta({
        description: 'Instances with these tags; give this or instanceIds.',
        examples: [{ role: 'db' }],
      }),
    maxConcurrency: z
      .union([z.number().int().min(1), z.string().regex(/^\d+%$/)])
      .default(1)
      .describe('Hosts that run a command at once (SSM MaxConcurrency): a number or a percentage.'),
    maxErrors: z
      .union([z.number().int().min(0), z.string().regex(/^\d+%$/)])
      .default(0)
      .describe('Failed hosts after which SSM stops sending the command (MaxErrors).'),
  })
  .refine(
    (host) => Boolean(host.instanceIds?.length) !== Boolean(host.tags && Object.keys(host.tags).length),
    {
      message: 'give exactly one of instanceIds or tags',
    },
  );

const sqlCheck = z.strictObject({
  name: z
    .string()
    .min(1)
    .meta({ description: 'Name of the check in reports.', examples: ['orders exist'] }),
  query: z
    .string()
    .min(1)
    .meta({ description: 'SQL run on the restored copy.', examples: ['select count(*) > 0 from orders'] }),
  expect: z
    .union([z.string(), z.number(), z.boolean()])
    .transform(String)
    .meta({
      description: 'Expected value of the first column of the first row, compared as text.',
      examples: ['true'],
    }),
});

/** An EventBridge Scheduler expression, `cron(…)` or `rate(…)`, in the plan's time zone. */
const scheduleExpression = z.string().superRefine((expression, ctx) => {
  const problem = scheduleProblem(expression);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const jobSchema = z.strictObject({
  name: z
    .string()
    .regex(NAME, `must be ${NAME_HINT} characters`)
    .meta({
      description: `The job's name (${NAME_HINT} characters); vault keys use it.`,
      examples: ['app-db'],
    }),
  description: z.string().optional().describe('What the job is for, in words.'),
  host: z.string().optional().describe('Key of hosts that runs the job (AWS deployments).'),
  schedule: scheduleExpression.optional().meta({
    description:
      "EventBridge Scheduler expression, cron(…) or rate(…), in the plan's time zone (AWS deployments).",
    examples: ['cron(0 2 * * ? *)'],
  }),
  recoveryOrder: z
    .number()
    .int()
    .min(0)
    .max(10_000)
    .optional()
    .describe(
      'Place in a whole-host recovery (restore --all --host, drill --all --host): lower first; jobs without one follow, in plan order.',
    ),
  scheduleWindowMinutes: z
    .number()
    .int()
    .min(0)
    .max(1440)
    .default(0)
    .describe('Flexible window of the schedule in minutes; 0 runs exactly on time.'),
  source: sourcePlanSchema.describe('What to back up: the kind of data and where it is.'),
  compression: z
    .strictObject({
      algorithm: z.enum(['zstd', 'gzip', 'none']).default('zstd').describe('Compressor run on the host.'),
      level: z
        .number()
        .int()
        .min(1)
        .max(19)
        .optional()
        .describe('Compression level (zstd 1–19, gzip 1–9); the compressor’s default when absent.'),
    })
    .prefault({})
    .describe('How data is compressed before it is encrypted.'),
  retention: retentionOverride.optional().describe('Overrides of the plan’s retention for this job.'),
  limits: z
    .strictObject({
      warnAge: ageLimit.prefault('25h').describe('Age of the newest complete backup that raises a warning.'),
      criticalAge: ageLimit.prefault('30h').describe('Age of the newest complete backup that is critical.'),
      minBytes: z
        .number()
        .int()
        .min(0)
        .default(0)
        .describe('A backup with fewer source bytes than this is critical, whatever the median says.'),
      shrinkRatio: z
        .number()
        .min(0)
        .max(1)
        .default(0.5)
        .describe(
          'A backup with fewer source bytes than this fraction of the recent median (verify.recentCount backups) is a warning: the dump of an empty database.',
        ),
      growthRatio: z
        .number()
        .min(1)
        .optional()
        .meta({
          description:
            'A backup with more source bytes than this multiple of the recent median is a warning (a table filling with junk, a path now taking in a whole disk); 4 when absent.',
          examples: [4],
        }),
      walRpo: ageLimit
        .optional()
        .describe(
          'Point-in-time jobs: age of the newest archived WAL (the RPO met now) at which the AWS RPO alarm fires; 1h when absent. A server that writes nothing archives nothing: set it above the quietest stretch.',
        ),
    })
    .prefault({})
    .describe('What verify, the Nagios check and each backup report: age and size against these.'),
  drill: z
    .strictObject({
      schedule: scheduleExpression.optional().meta({
        description: 'When the restore drill runs (AWS deployments).',
        examples: ['cron(0 4 ? * SUN *)'],
      }),
      host: z.string().optional().describe('Key of hosts that runs the drill (AWS deployments).'),
      rto: duration({ min: 1, max: 30 * 86_400, what: 'recovery time objective' })
        .optional()
        .describe('Recovery time objective: a drill slower than this alerts.'),
      checks: z
        .array(sqlCheck)
        .prefault([])
        .describe('SQL checks run on the restored copy (sources that run SQL).'),
    })
    .optional()
    .describe('Restore drills: the newest backup restored into a scratch target and checked.'),
  timeout: duration({ min: 60, max: 7 * 86_400, what: 'job timeout' })
    .prefault('6h')
    .describe('How long one run of the job may take before it is stopped and its leftovers are stale.'),
  hooks: z
    .strictObject({
      before: z
        .array(commandSchema)
        .prefault([])
        .describe(
          'Commands run in order before the backup; the first failure stops the backup before it starts.',
        ),
      after: z
        .array(commandSchema)
        .prefault([])
        .describe(
          'Commands run in order after the backup, also when before or the backup failed (STRONGBOX_BACKUP_STATUS tells them which).',
        ),
    })
    .prefault({})
    .describe(
      'Commands around each backup of the job: quiesce an application, flush a cache, take an LVM snapshot.',
    ),
});

/** Retention of a copy: days per GFS tier, each optional (absent: the job's retention of that tier). */
const copyRetention = z.strictObject({
  daily: days.optional().describe('How long daily backups are kept on this copy.'),
  weekly: days.optional().describe('How long weekly backups are kept on this copy.'),
  monthly: days.optional().describe('How long monthly backups are kept on this copy.'),
  yearly: days.optional().describe('How long yearly backups are kept on this copy.'),
});

/**
 * A further vault the primary's complete backups are copied to (the 3-2-1 rule): a NAS, an S3 bucket in
 * another account or region, an S3-compatible store. `strongbox copy` (and `backup --copy`) fills it.
 */
const copySchema = z.strictObject({
  /** How commands name the copy: `copy --to <name>`, `restore --from <name>`. */
  name: z
    .string()
    .regex(NAME, `must be ${NAME_HINT} characters`)
    .meta({
      description: 'Name of the copy, unique in the plan: `strongbox copy --to <name>`, `--from <name>`.',
      examples: ['offsite'],
    }),
  description: z.string().optional().describe('What the copy is, for people reading the plan.'),
  vault: vaultSchema,
  /**
   * The copy's own master key, declared like the plan's `key`. When it is given, each backup's data key
   * is re-wrapped for it (unwrapped with the primary's key, wrapped with this one); the data itself is
   * never decrypted. Absent: the primary's key, and the wrapped data keys are copied as they are.
   */
  key: keySchema.optional(),
  /** Days kept per tier on this copy; a tier left out keeps the job's retention of that tier. */
  retention: copyRetention
    .optional()
    .describe('Days kept per tier on this copy; a tier left out keeps the job’s retention of that tier.'),
  /** Only backups of these tiers go to this copy (e.g. `[weekly, monthly, yearly]` off-site). @default every tier */
  tiers: z
    .array(z.enum(TIERS, { error: `must be one of ${TIERS.join(', ')}` }))
    .min(1, 'names no tier: leave tiers out to copy every tier')
    .optional()
    .meta({
      description: 'Only backups of these tiers go to this copy; every tier when absent.',
      examples: [['weekly', 'monthly', 'yearly']],
    }),
});

/** Where a vault config points: its URL without a trailing slash, and its endpoint. */
function vaultIdentity(vault: { url: string; endpoint?: string }): string {
  return `${vault.url.replace(/\/+$/, '')} ${vault.endpoint?.replace(/\/+$/, '') ?? ''}`;
}

export const planSchema = z
  .strictObject({
    version: z.literal(1).describe('Version of the plan format: 1.'),
    name: z
      .string()
      .regex(NAME, `must be ${NAME_HINT} characters`)
      .default('strongbox')
      .describe('Name of the deployment (AWS resource names and alerts use it).'),
    timezone: timeZone.default('UTC').meta({
      description:
        'IANA time zone of schedules and of the GFS calendar (first backup of a week, month, year).',
      examples: ['Europe/Berlin'],
    }),
    vault: vaultSchema,
    key: keySchema,
    retention: retentionSchema
      .prefault({})
      .describe('How long backups of each GFS tier are kept (jobs may override it).'),
    alerts: z
      .strictObject({
        email: z
          .array(z.email())
          .default([])
          .meta({ description: 'Addresses the alert topic mails.', examples: [['ops@example.com']] }),
        slack: z
          .strictObject({
            webhookParameter: z
              .string()
              .min(1)
              .meta({
                description:
                  'SSM SecureString parameter that holds the Slack webhook URL (never the URL itself).',
                examples: ['/strongbox/slack-webhook'],
              }),
          })
          .optional()
          .describe('Slack messages for alerts.'),
      })
      .prefault({})
      .describe('Who is told about failures and findings (AWS deployments).'),
    /** Alerts the agent sends itself after each run (sites without AWS): core/local-ops. */
    notify: notifySchema
      .optional()
      .describe('Alerts the agent sends itself after each run, for sites without AWS.'),
    /** A Prometheus node_exporter textfile the agent rewrites after each run: core/local-ops. */
    metrics: metricsSchema
      .optional()
      .describe('A Prometheus node_exporter textfile the agent rewrites after each run.'),
    /** How full a file vault's file system may get before verify, doctor and backup report it. */
    storage: storageSchema
      .default(DEFAULT_STORAGE)
      .describe("How full a file vault's file system may get before verify, doctor and backup report it."),
    verify: z
      .strictObject({
        schedule: scheduleExpression
          .default('cron(0 7 * * ? *)')
          .describe('When the verify function runs (AWS deployments).'),
        recentCount: z
          .number()
          .int()
          .min(1)
          .default(7)
          .describe('How many recent backups the size median takes.'),
      })
      .prefault({})
      .describe('Verification of every job: age, objects, size, tiers, WAL.'),
    hosts: z
      .record(z.string().regex(NAME, `host names must be ${NAME_HINT} characters`), hostSchema)
      .default({})
      .describe('Named groups of hosts that run jobs and drills (AWS deployments).'),
    jobs: z
      .array(jobSchema)
      .min(1, 'needs at least one job')
      .describe('What is backed up, one job per source.'),
    /** Further vaults the primary's backups are copied to (the 3-2-1 rule); none by default. */
    copies: z
      .array(copySchema)
      .default([])
      .describe("Further vaults the primary's backups are copied to (the 3-2-1 rule)."),
  })
  .superRefine((plan, ctx) => {
    const copyNames = new Map<string, number>();
    const copyVaults = new Map<string, number>([[vaultIdentity(plan.vault), -1]]);
    plan.copies.forEach((copy, index) => {
      const first = copyNames.get(copy.name);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['copies', index, 'name'],
          message: `'${copy.name}' is used by copies[${first}] too`,
        });
      } else copyNames.set(copy.name, index);
      const same = copyVaults.get(vaultIdentity(copy.vault));
      if (same !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['copies', index, 'vault', 'url'],
          message:
            same === -1
              ? `'${copy.vault.url}' is the primary vault (vault.url): a copy must be another vault`
              : `'${copy.vault.url}' is the vault of copies[${same}] too`,
        });
      } else copyVaults.set(vaultIdentity(copy.vault), index);
      const tiers = copy.tiers ?? [];
      const repeated = tiers.find((tier, i) => tiers.indexOf(tier) !== i);
      if (repeated) {
        ctx.addIssue({
          code: 'custom',
          path: ['copies', index, 'tiers'],
          message: `names ${repeated} twice`,
        });
      }
    });
    const seen = new Map<string, number>();
    plan.jobs.forEach((job, index) => {
      const first = seen.get(job.name);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['jobs', index, 'name'],
          message: `'${job.name}' is used by jobs[${first}] too`,
        });
      }
      seen.set(job.name, index);
      for (const [field, host] of [
        ['host', job.host],
        ['drill.host', job.drill?.host],
      ] as const) {
        if (host !== undefined && !Object.hasOwn(plan.hosts, host)) {
          ctx.addIssue({
            code: 'custom',
            path: ['jobs', index, ...field.split('.')],
            message: `'${host}' is not one of hosts (${Object.keys(plan.hosts).join(', ') || 'none defined'})`,
          });
        }
      }
      if (job.drill?.checks.length && !capabilitiesOf(job.source.kind).sqlChecks) {
        ctx.addIssue({
          code: 'custom',
          path: ['jobs', index, 'drill', 'checks'],
          message: `SQL checks need a source that runs SQL; a ${sourceSpec(job.source.kind).title} source does not`,
        });
      }
      if (job.limits.criticalAge < job.limits.warnAge) {
        ctx.addIssue({
          code: 'custom',
          path: ['jobs', index, 'limits', 'criticalAge'],
          message: 'must not be shorter than warnAge',
        });
      }
    });
  });

/** A validated plan, with every default filled in. */
export type Plan = z.output<typeof planSchema>;
/** One job of a plan. */
export type Job = Plan['jobs'][number];
export type { SourceConfig };
/** One of a drill's SQL checks (`jobs[].drill.checks`). */
export type SqlCheck = NonNullable<Job['drill']>['checks'][number];
/** Retention in days per GFS tier, plus the point-in-time window. */
export type Retention = Plan['retention'];
export type VaultConfig = Plan['vault'];
export type KeyConfig = Plan['key'];
/** One of the plan's `copies`. */
export type CopyConfig = Plan['copies'][number];

/** @deprecated moved to core/issues; kept so existing imports of `#core/plan` keep working. */
export { formatPath } from './issues';

/**
 * Validates plan data that is already parsed (from YAML or JSON).
 * @throws PlanError naming every bad field.
 */
export function validatePlan(data: unknown): Plan {
  const result = planSchema.safeParse(data, {
    error: (issue) => {
      if (issue.code === 'invalid_union' && 'discriminator' in issue && issue.discriminator) {
        return `must be one of ${discriminatorHint(issue.path ?? [])}`;
      }
      return undefined;
    },
  });
  if (!result.success)
    throw new PlanError(describeZodIssues(result.error.issues, data, { notation: 'yaml' }));
  return result.data;
}

function discriminatorHint(path: readonly PropertyKey[]): string {
  return path.at(-2) === 'key' ? 'local, kms' : SOURCE_KINDS.join(', ');
}

/** Deepest nesting of mappings and lists a plan may have; real plans stay under 8. */
export const PLAN_MAX_DEPTH = 32;

/**
 * Parses and validates a plan from YAML text. `origin` names the file in messages. Only plain YAML is
 * a plan: one document, no unknown tags, no NUL bytes, aliases that do not multiply (at most 100
 * expansions), nesting at most {@link PLAN_MAX_DEPTH} deep.
 * @example loadPlan(readFileSync('plan.yaml', 'utf8'), 'plan.yaml').jobs[0].name
 * @throws PlanError for YAML syntax errors, YAML that is not plain, and for every invalid field.
 */
export function parsePlan(text: string, origin = 'plan'): Plan {
  const data = parsePlainYaml(text, origin);
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new PlanError([`${origin}: must be a mapping with version, vault, key and jobs`]);
  }
  return validatePlan(data);
}

function parsePlainYaml(text: string, origin: string): unknown {
  const at = (offset: number) => {
    const before = text.slice(0, offset).split('\n');
    return `${origin}:${before.length}:${(before.at(-1)?.length ?? 0) + 1}`;
  };
  const nul = text.indexOf('\0');
  if (nul >= 0)
    throw new PlanError([`${at(nul)}: contains a NUL byte: a plan is a text file (is this the right file?)`]);
  const document = parseDocument(text, { uniqueKeys: true });
  const where = (error: YAMLError) => {
    const line = error.linePos?.[0];
    return `${origin}${line ? `:${line.line}:${line.col}` : ''}`;
  };
  const first = (message: string) => message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '');
  for (const error of document.errors) {
    if (error.code === 'MULTIPLE_DOCS') {
      throw new PlanError([
        `${where(error)}: a second YAML document starts here (---): a plan is one document`,
      ]);
    }
    if (error.code === 'RESOURCE_EXHAUSTION') {
      throw new PlanError([
        `${where(error)}: nested too deeply to be a plan (at most ${PLAN_MAX_DEPTH} levels)`,
      ]);
    }
    throw new PlanError([`${where(error)}: ${first(error.message)}`], { cause: error });
  }
  const tag = document.warnings.find((warning) => warning.code === 'TAG_RESOLVE_FAILED');
  if (tag) {
    throw new PlanError([
      `${where(tag)}: ${first(tag.message)?.replace('Unresolved tag', 'unknown tag')}: a plan is plain YAML, without tags`,
    ]);
  }
  let data: unknown;
  try {
    data = document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    if (error instanceof ReferenceError || error instanceof RangeError) {
      throw new PlanError(
        [
          `${origin}: its aliases (*name) expand to more than 100 copies or refer to nothing: a plan needs none of that`,
        ],
        { cause: error },
      );
    }
    throw error;
  }
  if (depthOf(data) > PLAN_MAX_DEPTH) {
    throw new PlanError([`${origin}: nested too deeply to be a plan (at most ${PLAN_MAX_DEPTH} levels)`]);
  }
  return data;
}

/** How deep mappings and lists nest in a value (0 for a scalar), without recursion. */
function depthOf(value: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number];
    if (node === null || typeof node !== 'object') continue;
    deepest = Math.max(deepest, depth + 1);
    if (deepest > PLAN_MAX_DEPTH) return deepest;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/** Finds a job by name. @throws PlanError naming the jobs there are. */
export function findJob(plan: Plan, name: string): Job {
  const job = plan.jobs.find((j) => j.name === name);
  if (!job)
    throw new PlanError([
      `job '${name}' is not in the plan (jobs: ${plan.jobs.map((j) => j.name).join(', ')})`,
    ]);
  return job;
}

/**
 * The jobs a command runs on: the named ones in plan order (each once), or every job when no name is
 * given. Every unknown name is reported, not only the first.
 * @example selectJobs(plan, ['app-db', 'media']).map((j) => j.name) // ['app-db', 'media']
 * @throws PlanError naming each job that is not in the plan, and the jobs there are.
 */
export function selectJobs(plan: Plan, names?: readonly string[]): Job[] {
  if (!names || names.length === 0) return [...plan.jobs];
  const unknown = [...new Set(names.filter((name) => !plan.jobs.some((j) => j.name === name)))];
  if (unknown.length > 0) {
    const list = unknown.map((name) => `'${name}'`).join(', ');
    throw new PlanError([
      `${unknown.length === 1 ? 'job' : 'jobs'} ${list} ${unknown.length === 1 ? 'is' : 'are'} not in the plan (jobs: ${plan.jobs.map((j) => j.name).join(', ')})`,
    ]);
  }
  return plan.jobs.filter((job) => names.includes(job.name));
}

/** The retention that applies to a job: the plan's, with the job's overrides. */
export function retentionOf(plan: Plan, job: Job): Retention {
  const override = Object.fromEntries(Object.entries(job.retention ?? {}).filter(([, v]) => v !== undefined));
  return { ...plan.retention, ...override };
}

/**
 * Finds one of the plan's copies by name.
 * @throws PlanError naming the copies there are.
 */
export function findCopy(plan: Plan, name: string): CopyConfig {
  const copy = plan.copies.find((c) => c.name === name);
  if (!copy) {
    throw new PlanError([
      `copy '${name}' is not in the plan (copies: ${plan.copies.map((c) => c.name).join(', ') || 'none defined'})`,
    ]);
  }
  return copy;
}

/**
 * The retention that applies to a job's backups on a copy: the job's retention (plan and job
 * overrides), with the copy's own days per tier over it.
 * @example copyRetentionOf(plan, job, findCopy(plan, 'offsite')).monthly
 */
export function copyRetentionOf(plan: Plan, job: Job, copy: CopyConfig): Retention {
  const override = Object.fromEntries(
    Object.entries(copy.retention ?? {}).filter(([, v]) => v !== undefined),
  );
  return { ...retentionOf(plan, job), ...override };
}

/** Whether a copy takes backups of a tier (its `tiers` filter; every tier when absent). */
export function copyTakesTier(copy: CopyConfig, tier: (typeof TIERS)[number]): boolean {
  return copy.tiers === undefined || copy.tiers.includes(tier);
}

/**
 * The jobs of one host in recovery order: `recoveryOrder` ascending (ties in plan order), then the jobs
 * without one, in plan order. Used by `restore --all` and `drill --all`.
 * @example recoveryOrderOf(plan, 'db1').map((j) => j.name) // ['appdb', 'sessions', 'volumes']
 * @throws PlanError when the host is not in the plan or runs no job.
 */
export function recoveryOrderOf(plan: Plan, host: string): Job[] {
  const hosts = Object.keys(plan.hosts);
  if (!Object.hasOwn(plan.hosts, host)) {
    throw new PlanError([
      `--host: '${host}' is not one of hosts (${hosts.join(', ') || 'the plan defines none: give jobs a host'})`,
    ]);
  }
  const jobs = plan.jobs.filter((job) => job.host === host);
  if (jobs.length === 0) throw new PlanError([`--host: no job of the plan runs on host '${host}'`]);
  const rank = (job: Job) => job.recoveryOrder ?? Number.POSITIVE_INFINITY;
  return jobs
    .map((job, index) => ({ job, index }))
    .sort((a, b) => rank(a.job) - rank(b.job) || a.index - b.index)
    .map(({ job }) => job);
}
