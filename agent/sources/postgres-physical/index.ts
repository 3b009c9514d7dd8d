/**
 * The physical PostgreSQL source driver: base backups streamed as one tar (with the WAL they need), or
 * one per tablespace, restored into a new data directory (tablespaces mapped to new locations) — to the backup's end, or with the job's WAL archive to
 * a point in time — the checks a drill runs on the copy, and what doctor checks. One module per concern;
 * this one assembles the driver (core/ports `SourceDriver`).
 */
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { RestoreError } from '#core/errors';
import type { SourceDriver } from '#core/ports';
import { postgresPhysicalSource } from '#core/sources/postgres-physical';
import { backupPhysical } from './backup';
import { checkPhysical } from './checks';
import { doctorPhysical } from './doctor';
import { recoveryPointOf } from './recovery-point';
import { createdTablespaceDirs, restorePhysical, stopCopy } from './restore';

export { BASE_OBJECT, backupPhysical, MANIFEST_OBJECT, tablespaceObject } from './backup';
export { checkPhysical } from './checks';
export {
  defaultTablespaceDir,
  type PhysicalRestoreOptions,
  placeTablespaces,
  RESTORE_LOG,
  restorePhysical,
  stopCopy,
} from './restore';

/** The `postgres-physical` driver. */
export const postgresPhysicalDriver: SourceDriver<'postgres-physical'> = {
  spec: postgresPhysicalSource,
  backup: backupPhysical,
  restore: async (config, input, { target, details, recovery, start, tablespaceMap, ctx }) => {
    const { tablespaces } = await restorePhysical(
      config,
      details,
      {
        names: input.objects.map((o) => o.name),
        open: (name) => input.open(name),
        openInto: (name, stdin) => input.openInto(name, stdin),
      },
      { targetDir: target, recovery, start, tablespaceMap, ctx },
    );
    return {
      notes: tablespaces.map(
        (t) => `tablespace ${t.name} (oid ${t.oid}, ${t.from} on the source) restored into ${t.to}`,
      ),
    };
  },
  check: (config, details, { target }) => checkPhysical(config, details, target),
  doctor: doctorPhysical,
  recoveryPoint: (_config, target) => recoveryPointOf(target),
  targetExists: async (_config, target) =>
    stat(target).then(
      () => true,
      () => false,
    ),
  discard: async (config, target) => {
    await stopCopy(config, target);
    // The tablespace directories this restore created beside it go with it.
    for (const dir of await createdTablespaceDirs(target)) await rm(dir, { recursive: true, force: true });
    await rm(target, { recursive: true, force: true });
  },
  originalTarget: async () => {
    throw new RestoreError(
      "the plan names no data directory for a postgres-physical job, so a whole-host recovery cannot put it back in its place: restore it with 'restore --job <name> --target <new data directory>'",
    );
  },
  scratchTarget: (_config, label, now, tempDir) =>
    join(tempDir, `strongbox-pgdata-${label}-${now.toISOString().replace(/[-:.]/g, '')}`),
};
