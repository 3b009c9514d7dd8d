/**
 * The physical PostgreSQL source driver: pg_basebackup base backups streamed as one tar (with the WAL
 * they need), restored into a new data directory — to the backup's end, or with the job's WAL archive to
 * a point in time — the checks a drill runs on the copy, and what doctor checks. One module per concern;
 * this one assembles the driver (core/ports `SourceDriver`).
 */
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { RestoreError } from '#core/errors';
import type { SourceDriver } from '#core/ports';
import { postgresPhysicalSource } from '#core/sources/postgres-physical';
import { BASE_OBJECT, backupPhysical } from './backup';
import { checkPhysical } from './checks';
import { doctorPhysical } from './doctor';
import { recoveryPointOf } from './recovery-point';
import { restorePhysical, stopCopy } from './restore';

export { BASE_OBJECT, backupPhysical } from './backup';
export { checkPhysical } from './checks';
export { type PhysicalRestoreOptions, RESTORE_LOG, restorePhysical, stopCopy } from './restore';

/** The `postgres-physical` driver. */
export const postgresPhysicalDriver: SourceDriver<'postgres-physical'> = {
  spec: postgresPhysicalSource,
  backup: backupPhysical,
  restore: async (config, input, { target, recovery, start, ctx }) => {
    await restorePhysical(config, undefined, await input.open(BASE_OBJECT), {
      targetDir: target,
      recovery,
      start,
      ctx,
    });
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
