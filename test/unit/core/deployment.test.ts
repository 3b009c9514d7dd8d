import { describe, expect, it } from 'vitest';
import {
  AGENT_ACTIONS,
  type AgentAction,
  agentArgv,
  FUNCTION_ENV,
  FUNCTIONS,
  HOST_PATHS,
} from '#core/deployment';

const ID = '20241206T020000Z-3f9a1c';
const OPTIONS = JSON.stringify({ target: 'app_scratch', tables: ['public.orders'] });

describe('agentArgv', () => {
  it('runs a backup with the installed plan, the job, the backup id and the tier', () => {
    // Act
    const argv = agentArgv({ action: 'backup', job: 'app-db', backupId: ID, tier: 'weekly' });

    // Assess
    expect(argv).toEqual([
      'backup',
      '--plan',
      '/etc/strongbox/plan.json',
      '--job',
      'app-db',
      '--json',
      '--backup-id',
      ID,
      '--tier',
      'weekly',
    ]);
  });

  it.each<[AgentAction, string[]]>([
    ['restore', ['--backup-id', ID, '--options', OPTIONS]],
    ['drill', ['--backup-id', ID, '--options', OPTIONS]],
    ['verify', ['--backup-id', ID]],
    ['backup', ['--backup-id', ID, '--tier', 'daily']],
  ])('passes to %s only the flags it takes', (action, flags) => {
    // Act
    const argv = agentArgv({ action, job: 'app-db', backupId: ID, tier: 'daily', options: OPTIONS });

    // Assess
    expect(argv).toEqual([action, '--plan', HOST_PATHS.plan, '--job', 'app-db', '--json', ...flags]);
  });

  it.each<[AgentAction]>([['backup'], ['restore'], ['verify'], ['drill']])(
    'leaves out empty document parameters for %s (latest backup, no options)',
    (action) => {
      // Act
      const argv = agentArgv({ action, job: 'app-db', backupId: '', tier: '', options: '' });

      // Assess
      expect(argv).toEqual([action, '--plan', HOST_PATHS.plan, '--job', 'app-db', '--json']);
    },
  );

  it('keeps each value one argv element, shell characters and all', () => {
    // Prepare
    const options = '{"target":"x; rm -rf / #","tables":["a b"]}';

    // Act
    const argv = agentArgv({ action: 'restore', job: 'app-db', options });

    // Assess
    expect(argv.at(-1)).toBe(options);
    expect(argv).toHaveLength(8);
  });
});

describe('deployment names', () => {
  it('names every Lambda handler file in kebab-case, once', () => {
    // Prepare
    const names = Object.values(FUNCTIONS);

    // Assess
    expect(names.every((n) => /^[a-z]+(-[a-z]+)*$/.test(n))).toBe(true);
    expect(new Set(names).size).toBe(names.length);
  });

  it('gives every function environment variable its own name', () => {
    // Prepare
    const names = Object.values(FUNCTION_ENV);

    // Assess
    expect(new Set(names).size).toBe(names.length);
  });

  it('lets the document run the four agent actions', () => {
    // Assess
    expect(AGENT_ACTIONS).toEqual(['backup', 'restore', 'verify', 'drill']);
  });
});
