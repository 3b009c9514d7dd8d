/**
 * Backup of a files job: GNU tar (pax format, xattrs, ACLs, sparse) of the configured paths, streamed
 * from tar's stdout. The agent walks the tree itself and hands tar the names (so excludes and path globs
 * mean exactly what docs/plan.md says, and names of any bytes pass through); tar stores each as it is.
 * A live tree does not fail the backup: files that changed, shrank or vanished while tar read them are
 * warnings, named in the result.
 */
import { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { spawnTool, toolVersion } from '#agent/pipeline/child';
import { settleAll } from '#agent/pipeline/flow';
import { SourceError } from '#core/errors';
import type { SourceBackup } from '#core/ports';
import type { FilesDetails, FilesSourceConfig } from '#core/sources/index';
import type { SourceContext } from '../context';
import { oneObject } from '../kit';
import { ArchiveEndCut } from './archive-end';
import { classifyDiagnostic, createArgs, parseIndexLine } from './gnu-tar';
import { expandPath, isLinked, type KeepName, walkNames } from './walk';

/** Warnings kept in the manifest; beyond that one line says how many more there were. */
export const MAX_WARNINGS = 1000;

/**
 * Starts a tar stream of `config.paths` (globs expanded). Symbolic links are stored as links (never
 * followed), hard links as links, sparse files sparse; sockets are left out. A path matched by an
 * `exclude` glob (against its absolute path or its base name) is left out with everything below it.
 * `done` resolves once tar exited 0 or 1 with the counts of what tar stored and `warnings` naming each
 * file that changed, shrank or vanished while it was read (and unreadable files when
 * `config.unreadable` is `warning`); it rejects with a SourceError for an unreadable file when
 * `config.unreadable` is `error`, for any diagnostic it does not know, or when tar fails — the stream
 * then errors too, so a failed archive never passes for a complete one.
 *
 * The archive is written by two tar processes, one after the other, and is one plain archive: first
 * the files that have more than one name (found by a first walk, which reads their link count), so
 * tar stores each once and links the other names to it; then everything else, which tar stores
 * without a table of what it stored (`--hard-dereference`: given its names on stdin, GNU tar would
 * otherwise remember every file it archives in case it is named twice — ~125 bytes a file, 138 MiB at
 * a million files). The first archive's end is cut ({@link ArchiveEndCut}) so the second continues it.
 * A file that gains a second name between the two walks is stored whole under each name.
 * Memory: in the agent, one open directory per level of the walk, the paths of files with more than
 * one name, and at most {@link MAX_WARNINGS} warnings; in tar, a table of those files only
 * (docs/adr/0017-files-no-link-table.md).
 * @example
 * const backup = await backupFiles(job.source, { env });
 * for await (const object of backup.objects) await pipeline(object.stream, compress, encrypt, upload);
 * const { warnings } = await backup.done;
 * @throws SourceError naming a configured path that does not exist or a glob that matches nothing.
 */
export async function backupFiles(
  config: FilesSourceConfig,
  ctx: SourceContext,
): Promise<SourceBackup<FilesDetails>> {
  const roots = (await Promise.all(config.paths.map(expandPath))).flat();
  const version = await toolVersion('tar');
  if (!/GNU tar/.test(version)) {
    throw new SourceError(`the files source needs GNU tar (apt-get install tar), found: ${version}`);
  }
  const controller = new AbortController();
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, controller.signal]) : controller.signal;
  const warnings: string[] = [];
  let fileCount = 0;
  let fileBytes = 0;
  let moreWarnings = 0;
  const failures: string[] = [];
  const onStderrLine = (line: string) => {
    if (line.trim() === '') return;
    const entry = parseIndexLine(line);
    if (entry) {
      if (entry.type === '-' || entry.type === 'h' || entry.type === 'C') fileCount++;
      if (entry.type === '-' || entry.type === 'C') fileBytes += entry.sizeBytes;
      return;
    }
    const diagnostic = classifyDiagnostic(line);
    if (diagnostic.kind === 'ignored') return;
    if (diagnostic.kind === 'unknown') {
      if (failures.length < 20) failures.push(diagnostic.line);
      return;
    }
    const text = `${diagnostic.path}: ${diagnostic.message}`;
    if (diagnostic.kind === 'unreadable' && config.unreadable === 'error') {
      if (failures.length < 20) failures.push(text);
      return;
    }
    if (warnings.length < MAX_WARNINGS) warnings.push(text);
    else moreWarnings++;
  };
  const where = config.paths.join(', ');

  /** One tar process over `names`; yields its archive (through `cut` when given) and ends once tar exited
   * 0 or 1 and said nothing it does not know. */
  async function* tarOf(
    names: AsyncIterable<Buffer>,
    hardLinks: boolean,
    cut?: ArchiveEndCut,
  ): AsyncGenerator<Buffer> {
    const tar = spawnTool('tar', createArgs({ hardLinks }), { signal, okExitCodes: [0, 1], onStderrLine });
    const fed = feedNames(tar.stdin, names, signal);
    const exited = settleAll([tar.done, fed], controller).catch((error: unknown) => {
      if (failures.length === 0) throw error;
    });
    exited.catch(() => {});
    if (!tar.stdout) throw new SourceError('tar has no stdout');
    const through = cut ? pipeline(tar.stdout, cut) : Promise.resolve();
    through.catch(() => {});
    yield* cut ?? tar.stdout;
    await Promise.all([through, exited]);
    if (failures.length > 0) throw new SourceError(`tar of ${where} failed:\n${failures.join('\n')}`);
  }

  let complete = false;
  async function* archive(): AsyncGenerator<Buffer> {
    try {
      // The first walk feeds tar the files with more than one name, and remembers their paths for the
      // second (latin1 keeps every byte). No such file: an empty archive, which the cut leaves empty.
      const linkedPaths = new Set<string>();
      const keepLinked: KeepName = (path, isDirectory) => {
        if (!isLinked(path, isDirectory)) return false;
        linkedPaths.add(path.toString('latin1'));
        return true;
      };
      yield* tarOf(walkNames(roots, config.exclude, keepLinked), true, new ArchiveEndCut());
      const keepRest: KeepName = (path, isDirectory) =>
        isDirectory || linkedPaths.size === 0 || !linkedPaths.has(path.toString('latin1'));
      yield* tarOf(walkNames(roots, config.exclude, keepRest), false);
      complete = true;
    } finally {
      // Read to the end, failed, or dropped by the reader: no tar outlives the stream.
      if (!complete) controller.abort();
    }
  }
  const stream = Readable.from(archive(), { objectMode: false });
  const done = (async () => {
    try {
      await finished(stream);
      const details: FilesDetails = {
        kind: 'files',
        paths: [...config.paths],
        excluded: [...config.exclude],
        fileCount,
        fileBytes,
      };
      if (moreWarnings > 0) warnings.push(`… and ${moreWarnings} more`);
      return { details, tools: { tar: version }, ...(warnings.length ? { warnings } : {}) };
    } catch (error) {
      const failure =
        error instanceof SourceError
          ? error
          : new SourceError(`tar of ${where} failed: ${messageOf(error)}`, { cause: error });
      stream.destroy(failure);
      throw failure;
    }
  })();
  done.catch(() => {});
  return { objects: oneObject(stream), done };
}

/** Bytes of names collected before one write into tar's stdin (see {@link feedNames}). */
export const NAME_BATCH_BYTES = 64 * 1024;

/**
 * Writes NUL-terminated names into tar's stdin with backpressure, then ends it. Names go in batches of
 * about {@link NAME_BATCH_BYTES}: one write per name cost a system call and a wake-up of tar per file
 * (docs/adr/0005-files-names-in-batches.md).
 */
async function feedNames(
  stdin: NodeJS.WritableStream | null,
  names: AsyncIterable<Buffer>,
  signal: AbortSignal,
): Promise<void> {
  if (!stdin) throw new SourceError('tar has no stdin');
  const nul = Buffer.from([0]);
  let batch: Buffer[] = [];
  let batchBytes = 0;
  const flush = async () => {
    const more = stdin.write(Buffer.concat(batch, batchBytes));
    batch = [];
    batchBytes = 0;
    if (!more) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          stdin.off('error', onError);
          resolve();
        };
        const onError = (error: Error) => {
          stdin.off('drain', onDrain);
          reject(error);
        };
        stdin.once('drain', onDrain);
        stdin.once('error', onError);
      });
    }
  };
  for await (const name of names) {
    signal.throwIfAborted();
    batch.push(name, nul);
    batchBytes += name.length + 1;
    if (batchBytes >= NAME_BATCH_BYTES) await flush();
  }
  if (batchBytes > 0) await flush();
  stdin.end();
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
