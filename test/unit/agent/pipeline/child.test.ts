import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { STDERR_LINE_CHARS, STDERR_TAIL_LINES, spawnTool, toolVersion } from '#agent/pipeline/child';
import { SourceError } from '#core/errors';

async function collect(tool: ReturnType<typeof spawnTool>): Promise<string> {
  const chunks: Buffer[] = [];
  await pipeline(
    tool.stdout as NodeJS.ReadableStream,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        chunks.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(chunks).toString();
}

describe('spawnTool', () => {
  it('streams stdout and resolves done when the tool exits 0', async () => {
    const tool = spawnTool('sh', ['-c', 'echo hello; echo noise >&2'], { stdin: 'ignore' });
    expect(await collect(tool)).toBe('hello\n');
    await expect(tool.done).resolves.toBeUndefined();
  });

  it('passes the given environment and cwd to the child', async () => {
    const tool = spawnTool('sh', ['-c', 'echo "$GREETING $(pwd)"'], {
      env: { GREETING: 'hi', PATH: '/usr/bin:/bin' },
      cwd: '/tmp',
      stdin: 'ignore',
    });
    expect(await collect(tool)).toBe('hi /tmp\n');
    await tool.done;
  });

  it('rejects done with the tool name, status and only the last lines of stderr', async () => {
    const script = 'i=1; while [ $i -le 100 ]; do echo line$i >&2; i=$((i+1)); done; exit 3';
    const tool = spawnTool('sh', ['-c', script], { name: 'pg_dump', stdin: 'ignore', stdout: 'ignore' });
    const error = await tool.done.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SourceError);
    const message = (error as Error).message;
    expect(message).toMatch(/^pg_dump exited with status 3:\n/);
    expect(message).toContain('line100');
    expect(message).toContain(`line${101 - STDERR_TAIL_LINES}\n`);
    expect(message).not.toContain(`line${100 - STDERR_TAIL_LINES}\n`);
  });

  it('keeps a bounded stderr tail even when a tool floods it with one endless line', async () => {
    const tool = spawnTool('sh', ['-c', "head -c 3000000 /dev/zero | tr '\\0' x >&2; exit 1"], {
      stdin: 'ignore',
      stdout: 'ignore',
    });
    const error = (await tool.done.catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(SourceError);
    expect(error.message.length).toBeLessThan(STDERR_TAIL_LINES * (STDERR_LINE_CHARS + 2) + 100);
  });

  it('never puts arguments or environment values into its error', async () => {
    const tool = spawnTool('sh', ['-c', 'echo failed >&2; exit 2', 'arg-value-xyz'], {
      env: { PGPASSWORD: 'hunter2-secret' },
      stdin: 'ignore',
      stdout: 'ignore',
    });
    const error = (await tool.done.catch((e: unknown) => e)) as Error;
    expect(error.message).toBe('sh exited with status 2:\nfailed');
    expect(JSON.stringify(error, Object.getOwnPropertyNames(error))).not.toMatch(/hunter2|arg-value-xyz/);
  });

  it('says what to install when the tool does not exist, without throwing synchronously', async () => {
    const tool = spawnTool('/nonexistent/zstd', ['-d'], {});
    const error = (await tool.done.catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(SourceError);
    expect(error.message).toMatch(/^zstd not found: install it \(apt-get install zstd\) or put it on PATH/);
  });

  it('runs a tool under stdbuf with the output buffer asked for, and still finds a missing one missing', async () => {
    // Prepare: stdbuf passes the size to the tool's stdio in _STDBUF_O, as pg_dump's stdio reads it.
    const tool = spawnTool('sh', ['-c', 'echo "$_STDBUF_O $$"'], {
      stdin: 'ignore',
      stdoutBufferBytes: 1024 * 1024,
    });

    // Act
    const out = await collect(tool);
    const missing = spawnTool('/nonexistent/pg_dump', [], { stdoutBufferBytes: 1024 * 1024 });
    const error = (await missing.done.catch((e: unknown) => e)) as Error;

    // Assess: stdbuf execs the tool (same pid), so signals reach the tool itself.
    expect(out.trim()).toBe(`1048576 ${tool.child.pid}`);
    expect(error.message).toMatch(/^pg_dump not found: install it/);
  });

  it('turns a spawn that fails synchronously into a rejected done and failing streams', async () => {
    const tool = spawnTool('sh', ['-c', 'exit 0\0'], {});
    await expect(tool.done).rejects.toBeInstanceOf(SourceError);
    await expect(collect(tool)).rejects.toBeInstanceOf(SourceError);
  });

  it('reports a tool killed by a signal', async () => {
    const tool = spawnTool('sh', ['-c', 'kill -KILL $$'], { stdin: 'ignore', stdout: 'ignore' });
    await expect(tool.done).rejects.toThrow(/^sh was killed by SIGKILL/);
  });

  it('kills the tool when the signal aborts', async () => {
    const controller = new AbortController();
    const tool = spawnTool('sleep', ['30'], { signal: controller.signal, stdin: 'ignore', stdout: 'ignore' });
    const started = Date.now();
    setTimeout(() => controller.abort(), 50);
    await expect(tool.done).rejects.toThrow(/sleep was stopped because the operation was aborted/);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(tool.child.signalCode).toBe('SIGTERM');
  });
});

describe('toolVersion', () => {
  it('returns the first line of --version', async () => {
    expect(await toolVersion('zstd')).toMatch(/Zstandard CLI .*v\d+\.\d+/);
  });

  it('rejects with a SourceError for a missing tool', async () => {
    await expect(toolVersion('strongbox-no-such-tool')).rejects.toThrow(/strongbox-no-such-tool not found/);
  });
});
