/**
 * The post-data section of a logical restore runs with parallel jobs, except for an archive that
 * attaches partition indexes: pg_restore's workers then deadlock (`ALTER INDEX … ATTACH PARTITION`
 * against another worker's build on the same tables), which failed a whole restore of a partitioned
 * schema in postgres-fidelity.
 */
import { describe, expect, it } from 'vitest';
import { postDataJobs } from '#agent/sources/postgres/restore';
import { parseTocList } from '#agent/sources/postgres/toc';

const list = (...lines: string[]) =>
  parseTocList(`;\n; Archive created at 2026-12-02\n;\n${lines.join('\n')}\n`);
const INDEX = '4010; 1259 16720 INDEX core orders_2024_customer_id_idx app';
const ATTACH = '4011; 0 0 INDEX ATTACH core orders_2024_rest_customer_id_idx app';
const FK = '4012; 2606 16800 FK CONSTRAINT core orders orders_customer_fkey app';

describe('post-data jobs', () => {
  it('are the wanted number for an archive without partition index attachments', () => {
    expect(postDataJobs(list(INDEX, FK), 4)).toEqual({ jobs: 4 });
  });

  it('are one, saying why, when the archive attaches partition indexes', () => {
    const entries = list(INDEX, ATTACH, FK);
    expect(entries.map((e) => e.desc)).toContain('INDEX ATTACH');
    const chosen = postDataJobs(entries, 4);
    expect(chosen.jobs).toBe(1);
    expect(chosen.why).toMatch(/attaches partition indexes/);
  });

  it('stay one when one was wanted', () => {
    expect(postDataJobs(list(ATTACH), 1)).toEqual({ jobs: 1 });
  });
});
