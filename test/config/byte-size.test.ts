/** Size flags (--max-cpu-lora-bytes, merge's --max-shard-size): decimal and binary units, plain bytes, refusals. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidArgumentError } from 'commander';
import { byteSizeArg } from '../../src/cli/options.ts';
import { parseByteSize } from '../../src/config/byte-size.ts';

test('sizes in decimal and binary units, or plain bytes', () => {
  assert.equal(parseByteSize('2GiB'), 2 * 2 ** 30);
  assert.equal(parseByteSize('512MB'), 512e6);
  assert.equal(parseByteSize('1.5 kib'), 1536);
  assert.equal(parseByteSize('4096'), 4096);
  assert.equal(parseByteSize('10B'), 10);
});

test('what is not a size of at least one byte is NaN, and the flag parser names the value', () => {
  for (const bad of ['', '0', '0.2', '-1GB', '2 XB', 'GB', '1e9', '99999999TiB']) {
    assert.ok(Number.isNaN(parseByteSize(bad)), bad);
  }
  assert.throws(
    () => byteSizeArg('lots'),
    (e: unknown) => e instanceof InvalidArgumentError && /'lots'/.test(e.message),
  );
  assert.equal(byteSizeArg('1GiB'), 2 ** 30);
});
