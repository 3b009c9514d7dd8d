/**
 * Shared inputs of the core unit tests: a minimal valid plan, as YAML would parse it, and a complete
 * manifest. Each test copies and changes what it is about.
 */
import type { Manifest } from '#core/manifest';
import { type Job, type Plan, validatePlan } from '#core/plan';

/** The smallest plan data that validates: one logical PostgreSQL job on a local vault. */
export function minimalPlanData(): Record<string, unknown> {
  return {
    version: 1,
    vault: { url: 'file:///mnt/nas/strongbox' },
    key: { type: 'local', path: '/etc/strongbox/master.key' },
    jobs: [{ name: 'app-db', source: { kind: 'postgres', database: 'app' } }],
  };
}

/** A validated plan with the given job fields merged into its only job. */
export function planWithJob(job: Record<string, unknown> = {}): Plan {
  return validatePlan({
    ...minimalPlanData(),
    jobs: [{ name: 'app-db', source: { kind: 'postgres', database: 'app' }, ...job }],
  });
}

/** The only job of `planWithJob(fields)`. */
export function jobWith(fields: Record<string, unknown> = {}): Job {
  return planWithJob(fields).jobs[0] as Job;
}

/** A manifest with every field filled in, as the agent writes it after a logical PostgreSQL backup. */
export function completeManifest(overrides: Partial<Manifest> = {}): Manifest {
  return {
    format: 'strongbox.manifest',
    version: 2,
    job: 'app-db',
    backupId: '20241206T020000Z-3f9a1c',
    host: 'db-1.example.internal',
    kind: 'postgres',
    tier: 'daily',
    startedAt: '2024-12-06T02:00:00.000Z',
    finishedAt: '2024-12-06T02:04:31.000Z',
    compression: { algorithm: 'zstd', level: 3 },
    encryption: {
      scheme: 'strongbox-stream-v1',
      chunkBytes: 65_536,
      key: {
        type: 'kms',
        keyId: 'arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
      },
      wrappedKey: 'AQIDAHhoNz1c0qYzXGVlIHdyYXBwZWQgZGF0YSBrZXk=',
      context: { 'strongbox:job': 'app-db', 'strongbox:backup': '20241206T020000Z-3f9a1c' },
    },
    objects: [
      {
        name: 'data.zst.sbx',
        storedBytes: 48_213_904,
        sha256: 'a3f1c2d4e5b6a7980f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2',
        sourceBytes: 312_475_136,
        storageClass: 'STANDARD',
      },
    ],
    tools: { strongbox: '0.1.0', pg_dump: '16.4', zstd: '1.5.6' },
    source: {
      kind: 'postgres',
      database: 'app',
      serverVersion: '16.4',
      databaseBytes: 402_653_184,
      tables: [
        { schema: 'public', name: 'customers', rows: 12_408 },
        { schema: 'public', name: 'orders', rows: 981_220 },
      ],
      excludedTables: ['public.audit_log'],
    },
    ...overrides,
  };
}
