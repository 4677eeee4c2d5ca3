/**
 * The --bf16-dot path switched per setting: the addon's flag is process-wide and read at each GEMM call, so a
 * setting sets it before its engine runs and puts the previous path back after.
 *
 *   dotPaths();                        // ['amx', 'vdpbf16ps'] with AMX, ['vdpbf16ps'] with AVX-512 BF16 only, [] without
 *   await withDotPath('amx', () => …); // bf16 weights through TDPBF16PS inside, the previous path after
 */
import { type Bf16DotPath, bf16DotPath, setBf16Dot } from '../../src/kernels/native/gemm.ts';

export type DotPath = Bf16DotPath;

/** Sets the path; throws when this machine (or the ISA cap) cannot run it, so no run is mislabelled. */
export function setDotPath(path: DotPath): void {
  setBf16Dot(path !== 'off', { amx: path === 'amx' });
  const now = bf16DotPath();
  if (now !== path) throw new Error(`bf16 dot path '${path}' is not available here (the addon runs '${now}')`);
}

/** The dot paths this machine runs, AMX first; the current path is left as it was. */
export function dotPaths(): Exclude<DotPath, 'off'>[] {
  const before = bf16DotPath();
  const paths: Exclude<DotPath, 'off'>[] = [];
  try {
    for (const amx of [true, false]) {
      setBf16Dot(true, { amx });
      const path = bf16DotPath();
      if (path !== 'off' && !paths.includes(path)) paths.push(path);
    }
  } finally {
    setDotPath(before);
  }
  return paths;
}

export async function withDotPath<T>(path: DotPath, fn: () => Promise<T>): Promise<T> {
  const before = bf16DotPath();
  setDotPath(path);
  try {
    return await fn();
  } finally {
    setDotPath(before);
  }
}
