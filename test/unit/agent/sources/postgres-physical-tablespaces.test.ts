/**
 * Where a physical restore puts a backup's tablespaces (`placeTablespaces`) and how `--tablespace-map`
 * is read from the command line and from `--options`; the restore itself on a real cluster is in
 * test/integration/pitr-tablespaces.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { parseRestoreOptions } from '#agent/commands/restore';
import { defaultTablespaceDir, placeTablespaces } from '#agent/sources/postgres-physical/index';
import { PlanError, RestoreError } from '#core/errors';
import type { PostgresPhysicalDetails } from '#core/sources/index';

const details = {
  tablespaces: [
    { oid: 16385, name: 'ts_app', location: '/srv/pg/ts_app' },
    { oid: 16390, name: 'ts "odd"/name', location: '/srv/pg/ts_odd' },
  ],
} as PostgresPhysicalDetails;

describe('placeTablespaces', () => {
  it('puts each tablespace beside the data directory by name, or by oid when the name is no file name', () => {
    expect(placeTablespaces(details, '/restore/pg')).toEqual([
      { oid: 16385, name: 'ts_app', from: '/srv/pg/ts_app', to: '/restore/pg-tablespace-ts_app' },
      { oid: 16390, name: 'ts "odd"/name', from: '/srv/pg/ts_odd', to: '/restore/pg-tablespace-16390' },
    ]);
    expect(defaultTablespaceDir('/restore/pg/', { oid: 1, name: 'a' })).toBe('/restore/pg-tablespace-a');
  });

  it('follows the map by original location (trailing slash or not) and leaves the others beside', () => {
    expect(
      placeTablespaces(details, '/restore/pg', { '/srv/pg/ts_app/': '/fast/ts_app' }).map((p) => p.to),
    ).toEqual(['/fast/ts_app', '/restore/pg-tablespace-16390']);
  });

  it('is nothing for a backup without tablespaces', () => {
    expect(placeTablespaces({} as PostgresPhysicalDetails, '/restore/pg')).toEqual([]);
  });

  it.each([
    [
      { '/srv/other': '/x' },
      '--tablespace-map /srv/other=…: /srv/other is not a tablespace location of this backup',
    ],
    [{ '/srv/pg/ts_app': 'fast' }, "tablespace ts_app: new location 'fast' must be an absolute path"],
    [
      { '/srv/pg/ts_app': '/restore/pg/ts' },
      'tablespace ts_app: new location /restore/pg/ts is inside the data directory',
    ],
    [
      { '/srv/pg/ts_app': '/restore/pg' },
      'tablespace ts_app: new location /restore/pg is inside the data directory',
    ],
    [
      { '/srv/pg/ts_app': '/fast/ts', '/srv/pg/ts_odd': '/fast/ts' },
      'tablespace ts "odd"/name: /fast/ts is the new location of two tablespaces',
    ],
  ])('refuses %j', (map, message) => {
    expect(() => placeTablespaces(details, '/restore/pg', map)).toThrow(RestoreError);
    expect(() => placeTablespaces(details, '/restore/pg', map)).toThrow(message);
  });
});

describe('--tablespace-map', () => {
  it('reads repeated OLD=NEW flags, and the map from --options', () => {
    expect(
      parseRestoreOptions({ job: 'pg', tablespaceMap: ['/srv/a=/new/a', '/srv/b=/new/b=c'] } as never)
        .tablespaceMap,
    ).toEqual({ '/srv/a': '/new/a', '/srv/b': '/new/b=c' });
    expect(
      parseRestoreOptions({ job: 'pg', options: '{"tablespaceMap":{"/srv/a":"/new/a"}}' }).tablespaceMap,
    ).toEqual({ '/srv/a': '/new/a' });
  });

  it.each([
    [['/srv/a'], "--tablespace-map: '/srv/a' is not OLD=NEW"],
    [['/srv/a='], "--tablespace-map: '/srv/a=' is not OLD=NEW"],
    [['/srv/a=/x', '/srv/a=/y'], '--tablespace-map: /srv/a is mapped twice'],
  ])('refuses %j', (entries, message) => {
    expect(() => parseRestoreOptions({ job: 'pg', tablespaceMap: entries } as never)).toThrow(PlanError);
    expect(() => parseRestoreOptions({ job: 'pg', tablespaceMap: entries } as never)).toThrow(message);
  });
});
