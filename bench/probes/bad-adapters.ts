/**
 * Adapters that are broken on purpose, written from a good demo adapter: a config with a huge alpha or a
 * warning-worthy field, weights overwritten with NaN or 1e30, a weights file that is a FIFO, a config
 * that is a symlink to a file outside the root.
 */
import { execFileSync } from 'node:child_process';
import { cp, mkdir, open, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDemoAdapter } from '../../src/demo/demo-model.ts';

const CONFIG = 'adapter_config.json';
const WEIGHTS = 'adapter_model.safetensors';

export async function writeGoodAdapter(dir: string, seed = 7) {
  await mkdir(dir, { recursive: true });
  await writeDemoAdapter(dir, { name: 'x', r: 8, alpha: 16, rslora: false, targets: ['q_proj', 'v_proj'] }, seed);
}

async function editConfig(dir: string, edit: (config: Record<string, unknown>) => void) {
  const config = JSON.parse(await readFile(join(dir, CONFIG), 'utf8'));
  edit(config);
  await writeFile(join(dir, CONFIG), JSON.stringify(config));
}

/** Fills the tensor data (everything after the safetensors header) with a repeated 2-byte pattern. */
async function fillWeights(dir: string, pattern: [number, number]) {
  const file = await open(join(dir, WEIGHTS), 'r+');
  try {
    const head = Buffer.alloc(8);
    await file.read(head, 0, 8, 0);
    const start = 8 + Number(head.readBigUInt64LE(0));
    const { size } = await file.stat();
    const data = Buffer.alloc(size - start);
    for (let i = 0; i + 1 < data.length; i += 2) {
      data[i] = pattern[0];
      data[i + 1] = pattern[1];
    }
    await file.write(data, 0, data.length, start);
  } finally {
    await file.close();
  }
}

export type BadKind = 'alpha-1e300' | 'nan-weights' | 'huge-weights' | 'fifo-weights' | 'config-symlink-out' | 'warns';

/** Writes a broken adapter of `kind` into `dir`; `outside` is a directory outside every root. */
export async function writeBadAdapter(dir: string, kind: BadKind, outside: string) {
  await rm(dir, { recursive: true, force: true });
  await writeGoodAdapter(dir);
  switch (kind) {
    case 'alpha-1e300':
      return editConfig(dir, (c) => {
        c.lora_alpha = 1e300;
      });
    case 'warns':
      return editConfig(dir, (c) => {
        c.rank_pattern = { no_such_module_anywhere: 4 };
      });
    case 'nan-weights':
      return fillWeights(dir, [0xc0, 0x7f]); // f32 0x7fc07fc0 and bf16 0x7fc0 are both NaN
    case 'huge-weights':
      return fillWeights(dir, [0x4a, 0x71]); // about 1e30 as f32 and as bf16
    case 'fifo-weights':
      await rm(join(dir, WEIGHTS));
      execFileSync('mkfifo', [join(dir, WEIGHTS)]);
      return;
    case 'config-symlink-out': {
      await mkdir(outside, { recursive: true });
      const secret = join(outside, 'secret.txt');
      await writeFile(secret, 'root:x:0:0:SECRET-CONTENT\n');
      await rm(join(dir, CONFIG));
      await symlink(secret, join(dir, CONFIG));
      return;
    }
  }
}

/** A good adapter whose weights file is a symlink to a copy outside the root. */
export async function writeWeightsSymlinkOut(dir: string, outside: string) {
  await rm(dir, { recursive: true, force: true });
  await writeGoodAdapter(dir, 11);
  await mkdir(outside, { recursive: true });
  const target = join(outside, 'weights.safetensors');
  await cp(join(dir, WEIGHTS), target);
  await rm(join(dir, WEIGHTS));
  await symlink(target, join(dir, WEIGHTS));
}
